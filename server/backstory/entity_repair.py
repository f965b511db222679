"""Repairs of spaCy's entity mentions before they are labelled: trimmed spans, re-cased
ALL-CAPS lines.

- Spans lose a leading "the", a possessive "'s", trailing numbers and punctuation, and end at a
  line break (:func:`trim`).
- ALL-CAPS lines (headlines, datelines, results tables) are re-cased — words take the casing
  they have elsewhere in the article, place names from the gazetteer, other words lower case —
  and tagged again (:func:`recased_spans`); the re-cased text has the same length, so offsets
  stay exact.
"""

from __future__ import annotations

import re

from .gazetteer import Gazetteer, gazetteer
from .nlp import ner_pipeline

__all__ = ["caps_lines", "casing_evidence", "recased_spans", "trim"]

_WORD = re.compile(r"[A-Za-z][A-Za-z'’.&-]*")

_LEADING = re.compile(r"^(?:(?:the|The|THE)\s+|[\s\"'“”‘’(\[{,;:*•·-]+)")
_TRAILING = re.compile(
    r"(?:\s*['’]s|(?<=s)['’]|\s+[\d.,:/-]+(?:\s+(?:hundred|thousand|million|billion|trillion))?|\s+\."
    r"|[\s\"'“”‘’)\]},;:*•·-]+)$"
)  # "Apple 1.8 billion" (an amount glued to a name) → "Apple"


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop "the", possessives, trailing numbers and punctuation; cut at a line break."""
    nl = text.find("\n", start, end)
    if nl != -1:
        end = nl
    for _ in range(6):
        piece = text[start:end]
        m = _LEADING.match(piece)
        if m and m.end() < len(piece):
            start += m.end()
            continue
        m = _TRAILING.search(piece)
        if m and m.start() > 0:  # a dot glued to a word stays: "U.S.", "Calif.", "Corp."
            end = start + m.start()
            continue
        break
    return start, end


def caps_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of lines written in capitals (at least two words of three letters)."""
    out = []
    pos = 0
    for line in text.split("\n"):
        letters = [c for c in line if c.isalpha()]
        if len(letters) >= 3:
            upper = sum(c.isupper() for c in letters)
            words = [w for w in _WORD.findall(line) if len(w) >= 2]
            if upper >= 0.8 * len(letters) and words and sum(w.isupper() for w in words) >= max(1, 0.7 * len(words)):
                out.append((pos, pos + len(line)))
        pos += len(line) + 1
    return out


_LINE_OR_SENTENCE_START = re.compile(r"(?:[.!?:\n\"“]\s*|^\s*)$")


def casing_evidence(text: str, skip: list[tuple[int, int]]) -> dict[str, str]:
    """Lower-case word -> how the article writes it elsewhere (not at a sentence start)."""
    forms: dict[str, dict[str, int]] = {}  # lower-case word -> its spellings, counted in order
    skip_iter = iter(skip)
    cur = next(skip_iter, None)
    for m in _WORD.finditer(text):
        while cur is not None and m.start() >= cur[1]:
            cur = next(skip_iter, None)
        if cur is not None and cur[0] <= m.start() < cur[1]:
            continue
        word = m.group(0)
        before = text[max(0, m.start() - 3): m.start()]
        if m.start() == 0 or _LINE_OR_SENTENCE_START.search(before):
            continue  # sentence or line start: capitalised anyway
        if word.isupper() and len(word) > 1:
            continue
        seen = forms.get(low := word.lower())
        if seen is None:
            forms[low] = {word: 1}
        else:
            seen[word] = seen.get(word, 0) + 1
    # The most frequent spelling; the first seen wins a tie.
    return {key: max(seen.items(), key=_second)[0] if len(seen) > 1 else next(iter(seen)) for key, seen in forms.items()}


def _second(pair: tuple[str, int]) -> int:
    return pair[1]


def _recase(line: str, evidence: dict[str, str], gaz: Gazetteer) -> str:
    # Multi-word places first ("NEW YORK", "KANSAS CITY"), then word by word.
    chars = list(line.lower())
    lower_line = line.lower()
    for n in (3, 2):
        for m in re.finditer(r"(?=\b([a-z][a-z.'-]*(?:\s+[a-z][a-z.'-]*){%d})\b)" % (n - 1), lower_line):
            cand = re.sub(r"\s+", " ", m.group(1))
            proper = gaz.places.get(cand)
            if proper and len(proper) == len(m.group(1)):
                chars[m.start(1): m.start(1) + len(proper)] = proper
    out = "".join(chars)
    pieces = []
    last = 0
    for m in _WORD.finditer(out):
        word = line[m.start(): m.end()]
        if not word.isupper() and not word.islower():
            pieces.append(out[last: m.start()] + word)
        elif out[m.start(): m.end()] != word.lower():  # already cased as a multi-word place
            pieces.append(out[last: m.end()])
        else:
            key = word.lower()
            form = evidence.get(key) or gaz.places.get(key)
            if form is None or len(form) != len(word):
                form = key
            pieces.append(out[last: m.start()] + form)
        last = m.end()
    pieces.append(out[last:])
    result = "".join(pieces)
    return result if len(result) == len(line) else line


_DATELINE_PLACE = re.compile(r"^([A-Za-z][A-Za-z.' -]*?)(?:\s*,\s*[A-Za-z][A-Za-z. ]*)?\s+(?:\d{4}-\d{2}-\d{2}|\d{1,2} [A-Z][a-z]+)\b")


def recased_spans(text: str, lines: list[tuple[int, int]], evidence: dict[str, str]) -> list[tuple[int, int, str]]:
    nlp = ner_pipeline()  # the NER process's own pipeline: never a second one loaded just for this
    gaz = gazetteer()
    ner = nlp.get_pipe("ner")
    recased = [_recase(text[start:end], evidence, gaz) for start, end in lines]
    out = []
    for (start, _), line, sub in zip(lines, recased, ner.pipe((nlp.make_doc(r) for r in recased), batch_size=64)):
        found = [(start + e.start_char, start + e.end_char, e.label_) for e in sub.ents]
        m = _DATELINE_PLACE.match(line)
        if m and m.group(1).lower() in gaz.places:  # "BUCHAREST 1996-08-30": alone, NER misses it
            found = [f for f in found if f[0] >= start + m.end(1)] + [(start, start + m.end(1), "GPE")]
        out.extend(found)
    return out
