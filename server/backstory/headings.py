"""Heading lines of an article's text: lines in capitals and lines in Title Case.

A heading's capitals say nothing about which words are names ("OpenAI Considers Open-Sourcing
Its Models in Industry Shift"), so the entity repairs re-case them and keyphrases never come
from a heading alone. Both are lines of the text, found by their letters only (no model).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["WORD", "caps_lines", "heading_lines", "title_lines"]

WORD = re.compile(r"[A-Za-z][A-Za-z'’.&-]*")

# Words a Title Case headline may leave in lower case ("Models in Industry Shift").
_SMALL_WORDS = frozenset(
    "a an the and or but nor for of in on at to by with from as vs via into onto over per up out off so yet".split()
)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    pos = 0
    for line in text.split("\n"):
        yield pos, line
        pos += len(line) + 1


def caps_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of lines written in capitals (at least two words of three letters)."""
    out = []
    for pos, line in _lines(text):
        letters = [c for c in line if c.isalpha()]
        if len(letters) >= 3:
            upper = sum(c.isupper() for c in letters)
            words = [w for w in WORD.findall(line) if len(w) >= 2]
            if upper >= 0.8 * len(letters) and words and sum(w.isupper() for w in words) >= max(1, 0.7 * len(words)):
                out.append((pos, pos + len(line)))
    return out


def title_lines(text: str, min_words: int = 3) -> list[tuple[int, int]]:
    """(start, end) of lines in Title Case: at most 20 words, every word but the small ones
    capitalised, at least ``min_words`` of them, not in capitals throughout, and not ending like
    a sentence (a headline may end in a question mark). Two such words may be a byline or a name
    as well as a subheading ("Industry Shift")."""
    out = []
    for pos, line in _lines(text):
        stripped = line.rstrip()
        if not stripped or stripped[-1] in ".,;:!\"”'’)" or len(stripped) > 200:
            continue
        words = WORD.findall(line)
        content = [w for w in words if w.lower() not in _SMALL_WORDS]
        if not min_words <= len(content) <= 20 or len(words) > 20:
            continue
        if all(w[0].isupper() for w in content) and not all(w.isupper() for w in content):
            out.append((pos, pos + len(line)))
    return out


def heading_lines(text: str) -> list[tuple[int, int]]:
    """Every line that may be a heading (capitals, or Title Case of two words or more), sorted
    by position: no keyphrase comes from these alone (a byline is no keyphrase either)."""
    return sorted(caps_lines(text) + title_lines(text, min_words=2))
