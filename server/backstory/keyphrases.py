"""Keyphrases: noun-phrase candidates from spaCy POS tags (PatternRank), ranked with KeyBERT.

1. Candidates are real phrases of the text: runs of adjectives and nouns ending in a noun
   (hyphenated words such as ``987-foot`` count as one word), never crossing numbers, dates,
   verbs or punctuation, so no determiner or possessive ever starts one. Each run also yields
   its shorter endings ("biggest oil spill" → "oil spill") and its inner proper-noun stretches
   ("tanker Exxon Valdez" → "Exxon Valdez"). Phrases are lower-cased except proper nouns and
   merged when they agree after case-folding, Porter stemming and removing spaces
   ("Ad Tech" = "adtech" = "ad-tech", "tornado" = "tornadoes").
2. A cheap prior (frequency, first position, title words, how frequent its words are) keeps
   the ``max_candidates`` best, so only those are embedded, in one batched call; phrases met
   in earlier articles come from the embedder's cache.
3. KeyBERT scores each kept candidate by cosine similarity with the document embedding.
4. The final score adds a steep lead bias (news leads carry the key facts) and frequency to
   that similarity and docks single words; picking is greedy with a penalty for repeating the
   words of a phrase already picked (a mild MMR: full MMR with diversity 0.5 halves F1 on
   news). Scores are scaled into [0, 1].

Tuned on the DUC-2001 dev half (154 news articles): F1@10 0.359, F1@5 0.338 with the metric of
``backstory_tools.quality.metrics`` and 30 embedded candidates (40 gave 0.361 / 0.344; PatternRank
0.286 / 0.247, KeyBERT defaults 0.110).
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from .generic_terms import is_generic_term
from .headings import heading_lines
from .schemas import Keyphrase, Mention
from .story import embedding_text

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
_ADJECTIVE_TAGS = frozenset({"JJ", "JJR", "JJS"})
_SENTENCE_START_TAGS = frozenset({".", ":", "``", "''", "-LRB-", "_SP", "NFP", ""})


class _Unit:
    """A word for the pattern: one token, or tokens glued by hyphens ("987-foot", "ad-tech")."""

    __slots__ = ("text", "tag", "start", "end", "is_time", "proper", "cased", "lower", "weak_start", "verb_like")

    def __init__(
        self, texts: Sequence[str], tags: Sequence[str], start: int, next_tag: str = "", prev_tag: str = "."
    ) -> None:
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
        # Shown with its capitals: a name, or an adjective capitalised inside a sentence ("Chinese").
        self.cased = all(tag in _PROPER_TAGS or tag == "HYPH" for tag in tags) or (
            self.tag in _ADJECTIVE_TAGS and self.text[:1].isupper() and prev_tag not in _SENTENCE_START_TAGS
        )
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
        prev_tag = tags[first - 1] if first else ""
        return _Unit(
            [text[starts[i] : ends[i]] for i in range(first, last + 1)],
            tags[first : last + 1],
            starts[first],
            next_tag,
            prev_tag,
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


class KeyphraseExtractor:
    """``extract(doc, title)`` → up to ``top_n`` :class:`schemas.Keyphrase`, best first.

    ``embedder`` is a :class:`backstory.embed.MiniLMEmbedder` (any KeyBERT ``BaseEmbedder``
    whose ``embed`` returns L2-normalised rows works).
    """

    def __init__(
        self,
        embedder: Any,
        *,
        max_words: int = 4,
        max_candidates: int = MAX_CANDIDATES,
        weights: Weights | None = None,
    ) -> None:
        from keybert import KeyBERT

        self.embedder = embedder
        self.keybert = KeyBERT(model=embedder)
        self.max_words = max_words
        self.max_candidates = max_candidates
        self.weights = weights or Weights()
        _stemmer()  # import it now rather than on the first request

    # --- candidates -------------------------------------------------------------------------

    def candidates(self, doc: Any, title: str | None = None) -> list[Candidate]:
        """Every candidate phrase of ``doc`` (see :func:`find_candidates`)."""
        return find_candidates(doc, title, self.max_words)

    # --- ranking ----------------------------------------------------------------------------

    def extract(
        self,
        doc: Any,
        title: str | None = None,
        top_n: int = 10,
        doc_embedding: np.ndarray | None = None,
    ) -> list[Keyphrase]:
        """The ``top_n`` keyphrases of the spaCy ``doc`` (its text is the article body)."""
        cands = select_candidates(
            doc, title, max_words=self.max_words, max_candidates=self.max_candidates, weights=self.weights
        )
        return self.extract_from(cands, doc.text, title, top_n=top_n, doc_embedding=doc_embedding)

    def extract_from(
        self,
        cands: list[Candidate],
        text: str,
        title: str | None = None,
        top_n: int = 10,
        doc_embedding: np.ndarray | None = None,
    ) -> list[Keyphrase]:
        """Rank candidates chosen by :func:`select_candidates` (possibly in another process)."""
        if not cands:
            return []
        texts = [c.text for c in cands]
        if doc_embedding is None:
            doc_embedding = self.embedder.embed_document(embedding_text(title, text))
        embed_phrases = getattr(self.embedder, "embed_phrases", self.embedder.embed)
        word_embeddings = embed_phrases(texts)
        similarity = self._similarities(text, texts, np.asarray(doc_embedding, dtype=np.float32), word_embeddings)
        return self.rank(cands, similarity, top_n)

    def _similarities(
        self, text: str, phrases: list[str], doc_embedding: np.ndarray, word_embeddings: np.ndarray
    ) -> dict[str, float]:
        """Cosine similarity of each phrase with the document, computed by KeyBERT."""
        from sklearn.feature_extraction.text import CountVectorizer

        # The vocabulary is exactly our candidates, in our order, so the embeddings line up.
        vectorizer = CountVectorizer(
            analyzer=lambda _doc: phrases, vocabulary=phrases, lowercase=False, token_pattern=None
        )
        scored = self.keybert.extract_keywords(
            text,
            vectorizer=vectorizer,
            top_n=len(phrases),
            doc_embeddings=doc_embedding.reshape(1, -1),
            word_embeddings=word_embeddings,
        )
        return {phrase: float(score) for phrase, score in scored}

    def rank(self, cands: list[Candidate], similarity: dict[str, float], top_n: int = 10) -> list[Keyphrase]:
        """Combine similarity with position and frequency; best first, scores in [0, 1].

        Picking is greedy: a phrase whose words mostly repeat an already picked phrase loses
        ``weights.overlap`` times that share ("oil spill" after "biggest oil spill"), and one
        phrase per head is kept: a phrase that ends another picked one, or that the other ends,
        is left out ("Sam Altman" beside "Altman" or "CEO Sam Altman").
        """
        w = self.weights
        max_count = max(c.count for c in cands)
        base: list[tuple[float, Candidate, tuple[str, ...]]] = []
        for c in cands:
            s = similarity.get(c.text, 0.0)
            s += w.position * (1.0 - c.first) ** w.position_power
            s += w.frequency * math.log1p(c.count) / math.log1p(max_count)
            if c.words == 1:
                s -= w.single_word
            base.append((s, c, tuple(_stem_words(c.text))))
        base.sort(key=lambda item: item[0], reverse=True)
        total = 1.0 + w.position + w.frequency
        picked: list[tuple[float, Candidate, frozenset[str]]] = []
        pool = [(s, c, frozenset(words), words) for s, c, words in base if words]
        while pool and len(picked) < top_n:
            best_i, best_s = 0, -math.inf
            for i, (s, c, stems, _) in enumerate(pool):
                if s <= best_s:
                    break  # sorted by base score: nothing further can win
                if w.overlap and picked:
                    s -= w.overlap * max(len(stems & p[2]) / len(stems) for p in picked)
                if s > best_s:
                    best_i, best_s = i, s
            _, c, stems, words = pool.pop(best_i)
            picked.append((best_s, c, stems))
            pool = [item for item in pool if not _same_head(item[3], words)]
        return [
            Keyphrase(phrase=c.text, score=round(min(1.0, max(0.0, s / total)), 4), mentions=_mentions(c))
            for s, c, _ in picked
        ]


def _same_head(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether one phrase (as stemmed words) ends the other: the same head, one with more words before it."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return long[len(long) - len(short) :] == short


def _mentions(cand: Candidate) -> list[Mention]:
    """Where the phrase occurs in the text, in order (any spelling that merged into it)."""
    return [Mention(start=start, end=end) for start, end in sorted(set(cand.spans))]
