"""Repairs of spaCy's entity mentions before they are labelled: trimmed spans, re-cased
ALL-CAPS lines.

- Spans lose a leading "the", a possessive "'s", trailing numbers and punctuation, and end at a
  line break (:func:`trim`).
- ALL-CAPS lines (headlines, datelines, results tables) are re-cased — words take the casing
  they have elsewhere in the article, place names from the gazetteer, other words lower case —
  and tagged again (:func:`recased_spans`); the re-cased text has the same length, so offsets
  stay exact. Title Case headlines are re-cased too, but only their capitalised words that the
  article writes otherwise elsewhere ("OpenAI Considers ... in Industry Shift" was one ORG).
"""

from __future__ import annotations

import re

from .gazetteer import Gazetteer, gazetteer
from .headings import WORD as _WORD
from .nlp import ner_pipeline

__all__ = ["casing_evidence", "recased_lines", "recased_spans", "trim"]

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


def _recase_title(line: str, evidence: dict[str, str]) -> str:
    """A Title Case line with each capitalised word as the article writes it elsewhere (when it
    does, in the same length); acronyms, mixed-case names and unknown words stay as they are."""

    def form(m: re.Match) -> str:
        word = m.group(0)
        if word[0].isupper() and word[1:].islower():
            other = evidence.get(word.lower())
            if other is not None and len(other) == len(word):
                return other
        return word

    return _WORD.sub(form, line)


def recased_lines(
    text: str, caps: list[tuple[int, int]], titled: list[tuple[int, int]], evidence: dict[str, str]
) -> list[tuple[int, str, bool]]:
    """(start, re-cased line, whether it was Title Case) of every capitals line and of each Title
    Case line that re-casing changes (the others keep spaCy's tags, made with the whole text
    around them)."""
    gaz = gazetteer()
    out = [(start, _recase(text[start:end], evidence, gaz), False) for start, end in caps]
    for start, end in titled:
        line = text[start:end]
        recased = _recase_title(line, evidence)
        if recased != line:
            out.append((start, recased, True))
    return sorted(out)


_LOWER_START = re.compile(r"(?:[a-z][a-z'’.-]*\s+)+")


def recased_spans(lines: list[tuple[int, str, bool]]) -> list[tuple[int, int, str]]:
    """The entities NER finds in each re-cased line of :func:`recased_lines`, as offsets into the text."""
    nlp = ner_pipeline()  # the NER process's own pipeline: never a second one loaded just for this
    gaz = gazetteer()
    ner = nlp.get_pipe("ner")
    recased = [line for _, line, _ in lines]
    out = []
    for (start, _, titled), line, sub in zip(lines, recased, ner.pipe((nlp.make_doc(r) for r in recased), batch_size=64)):
        found = []
        for e in sub.ents:
            # A word the article writes in lower case starts no name ("Company Name Homegate
            # Hospitality Inc" gave "Name Homegate Hospitality Inc"). In a capitals line lower
            # case is only the default for a word the article has nowhere else.
            first = _LOWER_START.match(line, e.start_char, e.end_char) if titled else None
            s = first.end() if first else e.start_char
            if s < e.end_char:
                found.append((start + s, start + e.end_char, e.label_))
        m = _DATELINE_PLACE.match(line)
        if m and m.group(1).lower() in gaz.places:  # "BUCHAREST 1996-08-30": alone, NER misses it
            found = [f for f in found if f[0] >= start + m.end(1)] + [(start, start + m.end(1), "GPE")]
        out.extend(found)
    return out
