"""Keyphrases: noun-phrase candidates from spaCy POS tags (PatternRank), ranked with KeyBERT.

1. Candidates are real phrases of the text: runs of adjectives and nouns ending in a noun
   (hyphenated words such as ``987-foot`` count as one word), never crossing numbers, dates,
   verbs or punctuation, so no determiner or possessive ever starts one. Each run also yields
   its shorter endings ("biggest oil spill" → "oil spill") and its inner proper-noun stretches.
   Common words before a name are its title, a phrase of their own ("the tanker Exxon Valdez"
   → "tanker", "Exxon Valdez"; "CEO Sam Altman" → "Sam Altman": a generic acronym is no
   name). A plural "noun" the tagger read where a verb stands, right after a name and before a
   determiner or pronoun, ends no phrase ("Nvidia eyes the market" → "Nvidia"). A phrase met
   only in heading lines is a piece of a headline, no candidate. Phrases are lower-cased
   except names, merged when they agree after
   case-folding, Porter stemming and removing spaces ("Ad Tech" = "adtech" = "ad-tech",
   "tornado" = "tornadoes"), and keep the offsets of every occurrence (the keyphrase's
   ``mentions``).
2. A cheap prior (frequency, first position, title words, how frequent its words are) keeps
   the ``max_candidates`` best, so only those are embedded, in one batched call; phrases met
   in earlier articles come from the embedder's cache.
3. KeyBERT scores each kept candidate by cosine similarity with the document embedding.
4. The final score adds a steep lead bias (news leads carry the key facts) and frequency to
   that similarity and docks single words; picking is greedy with a penalty for repeating the
   words of a phrase already picked (a mild MMR: full MMR with diversity 0.5 halves F1 on
   news) and one phrase per head (a phrase that ends a picked one, or that one ends, is left
   out). Scores are scaled into [0, 1].

The weights were tuned on the DUC-2001 dev half (154 news articles) with the metric of
``backstory_tools.quality.metrics`` and 30 embedded candidates; docs/quality.md has the figures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .keyphrase_candidates import (
    MAX_CANDIDATES,
    Candidate,
    Weights,
    _stem,  # noqa: F401 - the stemmer's cache, cleared by tests
    _stem_words,
    _stemmer,
    find_candidates,
    phrase_key,
    prior,
    select_candidates,
)
from .schemas import Keyphrase, Mention
from .story import embedding_text

__all__ = [
    "MAX_CANDIDATES", "Candidate", "KeyphraseExtractor", "Weights", "find_candidates", "phrase_key", "prior",
    "select_candidates",
]


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
