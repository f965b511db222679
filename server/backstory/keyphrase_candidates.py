"""Keyphrase candidates: the phrases of a text that :mod:`backstory.keyphrases` ranks.

Runs of adjectives and nouns from spaCy's POS tags (PatternRank), their endings and inner
names, cleaned of what a reader would not keep (see the rules in :mod:`backstory.keyphrases`'
docstring, step 1) and merged by :func:`phrase_key`; the cheap :func:`prior` picks which are
embedded. This half runs wherever spaCy runs (the tagger process), without any model of ours.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

from .generic_terms import is_generic_term
from .headings import heading_lines

_NON_WORD = re.compile(r"\W+")
_STEM_LOCK = threading.Lock()
_NOUN_TAGS = {"NN", "NNS", "NNP", "NNPS"}
_PROPER_TAGS = {"NNP", "NNPS"}
_MODIFIER_TAGS = {"JJ", "JJR", "JJS"} | _NOUN_TAGS
# Dates named by a calendar word ("Tuesday", "Sept.") or a generic time word ("last year") are
# no keyphrases; other seasonal words ("the salmon season") stay. Word lists, not spaCy's DATE
# entities: candidates are chosen after the tagger, before NER has run. Numbers never enter a
# phrase (CD is no modifier) except inside a hyphenated word ("987-foot").
_CALENDAR = frozenset(
    """
    monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
_TIME_WORDS = frozenset("year years day days week weeks month months today yesterday tomorrow".split())
# Nouns too generic to be a keyphrase on their own (they may still end a longer phrase).
_GENERIC = frozenset(
    """
    thing things lot lots kind kinds way ways part parts number numbers percent time times
    year years day days week weeks month months today yesterday tomorrow people person persons
    man men woman women mr mrs ms dr one ones other others something anything nothing everything
    someone anyone everyone official officials spokesman spokeswoman statement report reports
    """.split()
)
# Words that only quantify or point ("many people", "other countries") never start a phrase
# (unless part of a name: "New York", "First Lady"); determiners never do, even when the tagger
# calls them proper nouns ("The Times" → "Times").
_DETERMINERS = frozenset("the a an this that these those".split())
_WEAK_STARTS = frozenset(
    """
    many much more most few fewer several other such same own various certain last next first
    second third previous recent new old least less whole entire only main key
    """.split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    # Snowball's original Porter algorithm: it groups news words almost always as nltk's
    # PorterStemmer (what the evaluation uses) does, without nltk's import of scipy. A stemmer
    # object keeps state while it works: see _stem's lock.
    import snowballstemmer

    return snowballstemmer.stemmer("porter")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    with _STEM_LOCK:
        return _stemmer().stemWord(word)


def phrase_key(phrase: str) -> str:
    """The identity of a phrase: case-folded, Porter-stemmed words, spaces removed."""
    return "".join(_stem(w) for w in _NON_WORD.split(phrase.lower()) if w)


def _stem_words(phrase: str) -> list[str]:
    return [_stem(w) for w in _NON_WORD.split(phrase.lower()) if w]


@dataclass
class Candidate:
    """One candidate phrase with what the ranking needs to know about it."""

    key: str
    text: str
    words: int
    count: int = 0
    first: float = 1.0  # relative position of the first occurrence, 0 = start of text
    proper: bool = False
    in_title: float = 0.0  # share of its words that are in the title
    centrality: float = 0.0  # mean log-frequency of its words among all candidate words
    forms: dict[str, int] = field(default_factory=dict)
    spans: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of each occurrence in the text


@dataclass
class Weights:
    """Ranking knobs, tuned on the DUC-2001 dev half (see the module docstring).

    Final score: similarity + position·(1 − first)^position_power + frequency·log-count share
    − single_word (one-word phrases), less overlap × the share of words already picked.
    The prior_* weights rank candidates before any embedding (which ones get embedded).
    """

    position: float = 0.3
    position_power: float = 4.0
    frequency: float = 0.1
    single_word: float = 0.1
    overlap: float = 0.2
    prior_position: float = 2.0
    prior_title: float = 1.0
    prior_words: float = 0.3
    prior_centrality: float = 1.0


_CLAUSE_NEXT_TAGS = frozenset({"DT", "PDT", "PRP", "PRP$", "TO", "VBG", "WDT"})


class _Unit:
    """A word for the pattern: one token, or tokens glued by hyphens ("987-foot", "ad-tech")."""

    __slots__ = ("text", "tag", "start", "end", "is_time", "proper", "cased", "lower", "weak_start", "verb_like")

    def __init__(self, texts: Sequence[str], tags: Sequence[str], start: int, next_tag: str = "") -> None:
        self.text = "".join(texts)
        self.start = start
        self.end = start + len(self.text)  # hyphen-glued tokens have no space between them
        if len(tags) > 1:
            # A hyphenated word ending in a noun behaves like a noun ("ad-tech", "987-foot").
            self.tag = "NN" if tags[-1] in _NOUN_TAGS else "JJ"
        else:
            self.tag = tags[0]
        self.is_time = any(
            (low := t.lower()) in _TIME_WORDS or (tag in _PROPER_TAGS and low.rstrip(".") in _CALENDAR)
            for t, tag in zip(texts, tags)
        )
        # A generic acronym is no name, whatever the tagger says: "CEO Sam Altman" is a title
        # before a name.
        self.cased = all(tag in _PROPER_TAGS or tag == "HYPH" for tag in tags)  # shown with its capitals
        self.proper = self.cased and not is_generic_term(self.text)
        self.lower = self.text.lower()
        self.weak_start = self.lower in _DETERMINERS or (self.lower in _WEAK_STARTS and not self.proper)
        # A plural "noun" right before a determiner, pronoun, "to" or an -ing form is the verb
        # of a clause the tagger misread ("OpenAI considers releasing", "Nvidia plans to").
        self.verb_like = (
            self.tag == "NNS" and len(tags) == 1 and self.lower.endswith("s") and next_tag in _CLAUSE_NEXT_TAGS
        )


def _units(doc: Any, text: str) -> list[_Unit | None]:
    """Tokens grouped into hyphenated words; None marks a token that breaks phrases.

    Reads the tags, offsets and spacing as one array (``Doc.to_array``) instead of one
    ``Token`` object per word: the same units at a fraction of the cost (this runs on every word
    of every article). ``text`` is ``doc.text`` (which spaCy builds anew, token by token, on each
    read)."""
    from spacy.attrs import IDX, LENGTH, SPACY, TAG

    if not len(doc):
        return []
    strings = doc.vocab.strings
    names: dict[int, str] = {}
    tags = []
    array = doc.to_array([TAG, IDX, LENGTH, SPACY])
    for h in array[:, 0].tolist():
        tag = names.get(h)
        if tag is None:
            tag = names[h] = strings[h]
        tags.append(tag)
    starts = array[:, 1].tolist()
    ends = [s + n for s, n in zip(starts, array[:, 2].tolist())]
    spaced = array[:, 3].tolist()
    units: list[_Unit | None] = []

    def unit(first: int, last: int) -> _Unit | None:
        if tags[last] == "HYPH":
            return None
        if first == last and tags[first] not in _MODIFIER_TAGS:
            return None  # breaks a phrase, as a unit of that tag would
        next_tag = tags[last + 1] if last + 1 < len(tags) else ""
        return _Unit(
            [text[starts[i] : ends[i]] for i in range(first, last + 1)], tags[first : last + 1], starts[first], next_tag
        )

    first = 0
    for i in range(1, len(tags)):
        if (tags[i] == "HYPH" or tags[i - 1] == "HYPH") and not spaced[i - 1]:
            continue  # glued to the group by a hyphen
        units.append(unit(first, i - 1))
        first = i
    units.append(unit(first, len(tags) - 1))
    return units


def _runs(units: list[_Unit | None]) -> list[list[_Unit]]:
    """Maximal runs of modifier/noun units that end in a noun (PatternRank's JJ* NN+)."""
    runs: list[list[_Unit]] = []
    current: list[_Unit] = []

    def close() -> None:
        if len(current) > 1 and current[-1].verb_like and current[-2].proper:
            current.pop()  # "OpenAI considers": a subject and its verb, no phrase
        while current and current[-1].tag not in _NOUN_TAGS:
            current.pop()
        while current and current[0].weak_start:
            current.pop(0)
        if current:
            runs.append(list(current))
        current.clear()

    for unit in units:
        if unit is None or unit.is_time or unit.tag not in _MODIFIER_TAGS or not any(c.isalpha() for c in unit.text):
            close()
            continue
        # An adjective after a noun starts a new phrase ("oil spill" | "bigger cleanup").
        if current and unit.tag not in _NOUN_TAGS and current[-1].tag in _NOUN_TAGS:
            close()
        current.append(unit)
    close()
    return runs


def _surface(run: Sequence[_Unit]) -> str:
    return " ".join(u.text if u.cased else u.lower for u in run)


def find_candidates(doc: Any, title: str | None = None, max_words: int = 4) -> list[Candidate]:
    """Every candidate phrase of ``doc``, merged by :func:`phrase_key`, in order of first use."""
    doc_text = doc.text
    length = max(1, len(doc_text))
    title_stems = set(_stem_words(title or ""))
    headings = heading_lines(doc_text)
    heading_starts = [start for start, _ in headings]
    found: dict[str, Candidate] = {}
    in_text: set[str] = set()  # keys met outside the headings
    for run in _runs(_units(doc, doc_text)):
        i = bisect.bisect_right(heading_starts, run[0].start) - 1
        in_heading = i >= 0 and run[0].start < headings[i][1]
        for phrase in _phrases(run, max_words):
            text = _surface(phrase)
            key = phrase_key(text)
            if not key:
                continue
            cand = found.get(key)
            if cand is None:
                words = _stem_words(text)
                cand = found[key] = Candidate(
                    key=key,
                    text=text,
                    words=len(phrase),
                    first=phrase[0].start / length,
                    proper=all(u.proper for u in phrase),
                    in_title=sum(w in title_stems for w in words) / len(words),
                )
            cand.count += 1
            cand.forms[text] = cand.forms.get(text, 0) + 1
            cand.spans.append((phrase[0].start, phrase[-1].end))
            if not in_heading:
                in_text.add(key)
    # A phrase met only in a headline or a subheading is a piece of it ("Industry Shift"), its
    # capitals no sign of a name.
    found = {key: cand for key, cand in found.items() if key in in_text}
    stem_counts: dict[str, int] = {}
    for cand in found.values():
        for stem in _stem_words(cand.text):
            stem_counts[stem] = stem_counts.get(stem, 0) + cand.count
    for cand in found.values():
        # Show the most frequent spelling (first seen wins a tie).
        cand.text = max(cand.forms.items(), key=lambda kv: kv[1])[0]
        stems = _stem_words(cand.text)
        cand.centrality = sum(math.log1p(stem_counts.get(w, 0)) for w in stems) / max(1, len(stems))
    return list(found.values())


def _phrases(run: list[_Unit], max_words: int) -> list[list[_Unit]]:
    """The run itself (when short enough), its endings, and its proper-noun stretches."""
    n = len(run)
    # Common words before a name are its title or kind, not part of it: "chief executive Sam
    # Altman" is "chief executive" and "Sam Altman", never "executive Sam Altman".
    name_start = n
    while name_start > 0 and run[name_start - 1].proper:
        name_start -= 1
    if 0 < name_start < n:
        title = run[:name_start]
        while title and title[-1].tag not in _NOUN_TAGS:
            title.pop()
        return (_phrases(title, max_words) if title else []) + _phrases(run[name_start:], max_words)
    out: list[list[_Unit]] = []
    for start in range(n):
        part = run[start:]
        if len(part) > max_words:
            continue
        if part[0].weak_start:
            continue
        if len(part) == 1 and (part[0].lower in _GENERIC or len(part[0].text) < 3):
            continue
        out.append(part)
    # Proper-noun stretches inside a longer run: "tanker Exxon Valdez" → "Exxon Valdez".
    i = 0
    while i < n:
        if run[i].proper:
            j = i
            while j < n and run[j].proper:
                j += 1
            if j < n and j - i <= max_words:  # one at the end is already an ending
                out.append(run[i:j])
            i = j
        else:
            i += 1
    return out


def prior(cand: Candidate, w: Weights) -> float:
    """The cheap score that decides which candidates get embedded at all."""
    return (
        math.log1p(cand.count)
        + w.prior_position * (1.0 - cand.first)
        + w.prior_title * cand.in_title
        + w.prior_words * min(cand.words, 3)
        + w.prior_centrality * cand.centrality
    )


MAX_CANDIDATES = 30  # embedded per document: more cost keyphrase time out of proportion to the F1 they add


def select_candidates(
    doc: Any,
    title: str | None = None,
    *,
    max_words: int = 4,
    max_candidates: int = MAX_CANDIDATES,
    weights: Weights | None = None,
) -> list[Candidate]:
    """The ``max_candidates`` candidates with the best :func:`prior`, best first (no model needed:
    this half runs wherever spaCy runs)."""
    w = weights or Weights()
    cands = find_candidates(doc, title, max_words)
    cands.sort(key=lambda c: prior(c, w), reverse=True)
    return cands[:max_candidates]
