"""The four evaluation metrics, exactly as ``../shared/data/README.md`` defines them.

Pure functions over plain Python values (strings, spans, id lists): no model, no I/O, so each
one is unit-tested on small hand-made cases (``tests/test_metrics.py``) and ``scripts/evaluate.py``
feeds them the product's and the peers' outputs.

- Extraction: 4-token shingle multisets per page (tokens are ``\\w+`` runs, case kept),
  precision/recall per page averaged over pages (an empty prediction is left out of the
  precision mean; its recall is 0), then F1 of the two means.
- Keyphrases: F1@k with lower-case, split on non-word characters, Porter stemming, dedup of the
  predictions after stemming, precision over the kept predictions (at most k); P/R/F1 per
  document, averaged over documents.
- NER: exact-span exact-type P/R/F1 per PER/ORG/LOC (and MISC apart), micro over PER/ORG/LOC;
  spaCy labels mapped to CoNLL types by :data:`LABEL_MAP`.
- Related: P@k, P@min(k, #relevant) and the share of the top k that is the same topic but a
  different event, averaged over queries (the query itself is never counted).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from functools import lru_cache

import msgspec

__all__ = [
    "CONLL_TYPES",
    "LABEL_MAP",
    "ExtractionResult",
    "KeyphraseResult",
    "NerResult",
    "PageScore",
    "PRF",
    "RelatedResult",
    "extraction_scores",
    "f1",
    "keyphrase_doc_scores",
    "keyphrase_scores",
    "ner_scores",
    "normalize_phrase",
    "page_score",
    "related_scores",
    "shingles",
    "to_conll",
]

# ---------------------------------------------------------------------------------------------
# shared


class PRF(msgspec.Struct, frozen=True):
    precision: float
    recall: float
    f1: float


def f1(precision: float, recall: float) -> float:
    """Harmonic mean; 0 when both are 0."""
    total = precision + recall
    return 2 * precision * recall / total if total > 0 else 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _prf_from_counts(tp: int, fp: int, fn: int) -> PRF:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return PRF(precision, recall, f1(precision, recall))


# ---------------------------------------------------------------------------------------------
# extraction

_WORD = re.compile(r"\w+")


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    """Multiset of n-token shingles of ``text``; tokens are ``\\w+`` runs, case kept.

    A text with fewer than ``n`` tokens (but at least one) is a single, shorter shingle, as in
    the benchmark's own script; an empty text has none.
    """
    tokens = _WORD.findall(text or "")
    if not tokens:
        return Counter()
    if len(tokens) < n:
        return Counter([tuple(tokens)])
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


class PageScore(msgspec.Struct, frozen=True):
    """One page: shingle counts and its precision/recall (None = left out of that mean)."""

    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None


def page_score(truth: str, prediction: str, n: int = 4) -> PageScore:
    true_sh = shingles(truth, n)
    pred_sh = shingles(prediction, n)
    tp = sum((true_sh & pred_sh).values())
    fp = sum((pred_sh - true_sh).values())
    fn = sum((true_sh - pred_sh).values())
    # Empty prediction: no precision (left out of the mean). Empty truth: no recall.
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    return PageScore(tp, fp, fn, precision, recall)


class ExtractionResult(msgspec.Struct, frozen=True):
    precision: float
    recall: float
    f1: float
    pages: int
    empty_predictions: int


def extraction_scores(pairs: Iterable[tuple[str, str]], n: int = 4) -> ExtractionResult:
    """``pairs`` are (truth, prediction) per page; precision and recall are averaged over pages."""
    return extraction_from_pages(page_score(truth, prediction, n) for truth, prediction in pairs)


def extraction_from_pages(scores: Iterable[PageScore]) -> ExtractionResult:
    """The set's figures from its pages' scores (see :func:`extraction_scores`)."""
    precisions: list[float] = []
    recalls: list[float] = []
    pages = empty = 0
    for score in scores:
        pages += 1
        if score.precision is None:
            empty += 1
        else:
            precisions.append(score.precision)
        if score.recall is not None:
            recalls.append(score.recall)
    precision, recall = _mean(precisions), _mean(recalls)
    return ExtractionResult(precision, recall, f1(precision, recall), pages, empty)


# ---------------------------------------------------------------------------------------------
# keyphrases

_NON_WORD = re.compile(r"\W+")


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.porter import PorterStemmer  # the algorithm only: no nltk data is needed

    return PorterStemmer()


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stem(word)


def normalize_phrase(phrase: str) -> str:
    """Lower-case, split on non-word characters, Porter-stem each word, join with one space."""
    return " ".join(_stem(w) for w in _NON_WORD.split(phrase.lower()) if w)


def keyphrase_doc_scores(predicted: Sequence[str], gold: Iterable[str], k: int) -> PRF | None:
    """P/R/F1@k for one document; None when the gold set is empty (document left out).

    Predictions are normalised and deduplicated in rank order, then the first ``k`` are kept;
    precision divides by the number kept (0 when none).
    """
    gold_set = {g for g in (normalize_phrase(p) for p in gold) if g}
    if not gold_set:
        return None
    kept: list[str] = []
    seen: set[str] = set()
    for phrase in predicted:
        norm = normalize_phrase(phrase)
        if norm and norm not in seen:
            seen.add(norm)
            kept.append(norm)
            if len(kept) == k:
                break
    hits = sum(1 for p in kept if p in gold_set)
    precision = hits / len(kept) if kept else 0.0
    recall = hits / len(gold_set)
    return PRF(precision, recall, f1(precision, recall))


class KeyphraseResult(msgspec.Struct, frozen=True):
    """Means over documents of the per-document precision, recall and F1 at ``k``."""

    k: int
    precision: float
    recall: float
    f1: float
    documents: int


def keyphrase_scores(docs: Iterable[tuple[Sequence[str], Iterable[str]]], k: int) -> KeyphraseResult:
    """``docs`` are (ranked predictions, gold phrases) per document."""
    scores = [s for s in (keyphrase_doc_scores(p, g, k) for p, g in docs) if s is not None]
    return KeyphraseResult(
        k,
        _mean([s.precision for s in scores]),
        _mean([s.recall for s in scores]),
        _mean([s.f1 for s in scores]),
        len(scores),
    )


# ---------------------------------------------------------------------------------------------
# NER

CONLL_TYPES = ("PER", "ORG", "LOC", "MISC")
MAIN_TYPES = ("PER", "ORG", "LOC")

LABEL_MAP: dict[str, str | None] = {
    # CoNLL labels map to themselves
    "PER": "PER",
    "ORG": "ORG",
    "LOC": "LOC",
    "MISC": "MISC",
    # spaCy (OntoNotes) labels
    "PERSON": "PER",
    "GPE": "LOC",
    "FAC": "LOC",
    "NORP": "MISC",
    "EVENT": "MISC",
    "PRODUCT": "MISC",
    "WORK_OF_ART": "MISC",
    "LAW": "MISC",
    "LANGUAGE": "MISC",
    # numbers and times are not named entities in CoNLL: dropped
    "DATE": None,
    "TIME": None,
    "PERCENT": None,
    "MONEY": None,
    "QUANTITY": None,
    "ORDINAL": None,
    "CARDINAL": None,
}


def to_conll(label: str) -> str | None:
    """The CoNLL type of a spaCy-style or CoNLL label (case-insensitive); None = not an entity."""
    return LABEL_MAP.get(label.upper())


Span = tuple[int, int, str]


class NerResult(msgspec.Struct, frozen=True):
    """Exact-span exact-type scores: ``micro`` over PER/ORG/LOC, ``per_type`` incl. MISC."""

    micro: PRF
    per_type: dict[str, PRF]
    documents: int
    gold: int
    predicted: int


def ner_scores(docs: Iterable[tuple[Iterable[Span], Iterable[Span]]]) -> NerResult:
    """``docs`` are (gold spans, predicted spans) per document; spans are (start, end, label).

    Labels of both sides go through :func:`to_conll`; unknown or non-entity labels are dropped,
    and a span repeated in one document counts once. Counts are summed over documents.
    """
    counts = {t: [0, 0, 0] for t in CONLL_TYPES}  # tp, fp, fn
    n_docs = n_gold = n_pred = 0
    for gold, predicted in docs:
        n_docs += 1
        gold_set = {(s, e, t) for s, e, lab in gold if (t := to_conll(lab))}
        pred_set = {(s, e, t) for s, e, lab in predicted if (t := to_conll(lab))}
        n_gold += len(gold_set)
        n_pred += len(pred_set)
        for s, e, t in pred_set:
            counts[t][0 if (s, e, t) in gold_set else 1] += 1
        for s, e, t in gold_set - pred_set:
            counts[t][2] += 1
    per_type = {t: _prf_from_counts(*counts[t]) for t in CONLL_TYPES}
    micro = _prf_from_counts(*(sum(counts[t][i] for t in MAIN_TYPES) for i in range(3)))
    return NerResult(micro, per_type, n_docs, n_gold, n_pred)


# ---------------------------------------------------------------------------------------------
# related stories


class RelatedResult(msgspec.Struct, frozen=True):
    k: int
    p_at_k: float
    p_at_r: float  # P@min(k, number of relevant)
    hard_share: float  # share of the top k: same topic, different event
    queries: int
    empty_results: int


def related_scores(
    results: Iterable[tuple[Hashable, Sequence[Hashable]]],
    event_of: Mapping[Hashable, Hashable],
    topic_of: Mapping[Hashable, Hashable],
    k: int = 5,
) -> RelatedResult:
    """``results`` are (query id, ranked related ids) per query; ids index ``event_of``/``topic_of``.

    The query itself is removed from its list if present. P@k and the hard share divide by ``k``
    even when fewer than ``k`` stories came back; P@min(k, R) divides by min(k, R) where R is the
    number of other stories of the query's event (queries with R = 0 are left out of that mean).
    """
    sizes = Counter(event_of.values())
    p_at_k: list[float] = []
    p_at_r: list[float] = []
    hard: list[float] = []
    empty = 0
    for query, ranked in results:
        top = [r for r in ranked if r != query][:k]
        empty += not top
        event, topic = event_of[query], topic_of[query]
        relevant = sizes[event] - 1
        same_event = [event_of[r] == event for r in top]
        p_at_k.append(sum(same_event) / k)
        if relevant > 0:
            cut = min(k, relevant)
            p_at_r.append(sum(same_event[:cut]) / cut)
        hard.append(sum(1 for r, same in zip(top, same_event) if not same and topic_of[r] == topic) / k)
    return RelatedResult(k, _mean(p_at_k), _mean(p_at_r), _mean(hard), len(p_at_k), empty)
