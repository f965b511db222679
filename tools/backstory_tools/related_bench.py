"""Measure the related-story ranking: quality on ECB+ and lookup speed on synthetic archives.

    python -m backstory_tools.related_bench ecb FEATURES.json   # P@5, P@min(5,R), hard-confusion share (index only)
    python -m backstory_tools.related_bench ecb-archive FEATURES.json   # same protocol through the SQLite archive
    python -m backstory_tools.related_bench speed 100000        # p50/p95 lookup ms on N synthetic stories
    python -m backstory_tools.related_bench features FEATURES.json   # compute the features file (minutes)

The ECB+ features file is a JSON list of {id, topic, event, entities, keyphrases?, embedding?}
computed once with the project's NLP (texts are read from ../shared/data/related/ecbplus.jsonl
and never stored in the repository).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

from backstory import schemas
from backstory.archive import related as rel
from backstory.archive.features import MAX_NUMBERS, Features, compute_features, number_row

from . import default_data_dir

DATA = default_data_dir() / "related" / "ecbplus.jsonl"


def ecb_eval(features_path: str, weights: dict | None = None, data: Path = DATA) -> dict:
    rows = [json.loads(line) for line in data.open()]
    feats = {f["id"]: f for f in json.load(open(features_path))}
    index = rel.RelatedIndex(weights)
    prepared = []
    with index.bulk():
        for r in rows:
            f = feats.get(r["id"], {})
            ents = msgspec.convert(f.get("entities", []), list[schemas.Entity])
            kps = msgspec.convert(f.get("keyphrases", []), list[schemas.Keyphrase])
            feat = compute_features(None, r["text"], ents, kps)
            emb = f.get("embedding")
            index.add(r["id"], feat, emb, None)
            prepared.append((r, feat, emb))
    fmap = {r["id"]: feat for r, feat, _ in prepared}
    by_event: dict[str, int] = {}
    for r in rows:
        by_event[r["event"]] = by_event.get(r["event"], 0) + 1
    meta = {r["id"]: r for r in rows}
    p5, pr, hard = [], [], []
    for r, feat, emb in prepared:
        hits = index.query(feat, emb, exclude_id=r["id"], limit=5, features_of=lambda ids: [fmap[i] for i in ids])
        rel_n = by_event[r["event"]] - 1
        if rel_n == 0:
            continue
        same = [meta[h.story_id]["event"] == r["event"] for h in hits]
        confusing = [meta[h.story_id]["topic"] == r["topic"] and meta[h.story_id]["event"] != r["event"] for h in hits]
        p5.append(sum(same) / 5)
        k = min(5, rel_n)
        pr.append(sum(same[:k]) / k)
        hard.append(sum(confusing) / 5)
    return {"queries": len(p5), "p_at_5": round(statistics.mean(p5), 4), "p_at_min5r": round(statistics.mean(pr), 4),
            "hard_confusion_share": round(statistics.mean(hard), 4)}


def make_features(out: str, data: Path = DATA) -> int:
    """Write the ECB+ features file (:func:`analyze_rows` of every article)."""
    from backstory.pipeline import Models

    models = Models.load()
    try:
        feats = analyze_rows([json.loads(line) for line in data.open()], models)
    finally:
        models.close()
    Path(out).write_text(json.dumps(feats))
    return len(feats)


def analyze_rows(rows: list[dict], models) -> list[dict]:
    """Each article's entities, keyphrases and embedding as the pipeline's analyzer computes them
    with ``models`` (no title: the evaluation sends text only), in the features file's form."""
    from backstory.pipeline.analyzer import Analyzer

    analyzer = Analyzer(models)
    try:
        feats = []
        for r in rows:
            a = analyzer.analyze(None, r["text"])
            feats.append({"id": r["id"], "topic": r["topic"], "event": r["event"],
                          "entities": msgspec.to_builtins(a.entities), "keyphrases": msgspec.to_builtins(a.keyphrases),
                          "embedding": a.embedding})
    finally:
        analyzer.close()
    return feats


def ecb_archive_eval(features_path: str, data: Path = DATA) -> dict:
    """The evaluation protocol end to end minus the NLP: every article upserted one by one into an
    empty SQLite archive (near-duplicates merge), then ``related`` asked for each stored record."""
    import asyncio
    import tempfile

    from backstory.story import StoryRecord
    from backstory.archive.sqlite import archive_at

    rows = [json.loads(line) for line in data.open()]
    feats = {f["id"]: f for f in json.load(open(features_path))}

    async def run() -> dict:
        with tempfile.TemporaryDirectory(prefix="backstory-bench-") as tmp:
            async with archive_at(Path(tmp) / "a.sqlite3") as archive:
                doc_story, story_doc = {}, {}
                t0 = time.perf_counter()
                for r in rows:
                    f = feats.get(r["id"], {})
                    url = f"https://ecbplus.example.org/{r['id']}"
                    rec = await archive.upsert(StoryRecord(
                        url=url, canonical_url=url, text=r["text"], embedding=f.get("embedding"),
                        entities=msgspec.convert(f.get("entities", []), list[schemas.Entity]),
                        keyphrases=msgspec.convert(f.get("keyphrases", []), list[schemas.Keyphrase])))
                    doc_story[r["id"]] = rec.story_id
                    story_doc.setdefault(rec.story_id, r["id"])
                store_ms = (time.perf_counter() - t0) * 1000 / len(rows)
                meta = {r["id"]: r for r in rows}
                by_event: dict[str, int] = {}
                for r in rows:
                    by_event[r["event"]] = by_event.get(r["event"], 0) + 1
                p5, hard, t0 = [], [], time.perf_counter()
                for r in rows:
                    rec = await archive.get(doc_story[r["id"]])
                    got = [meta[story_doc[h.story_id]] for h in await archive.related(rec, limit=5)]
                    if by_event[r["event"]] > 1:
                        p5.append(sum(g["event"] == r["event"] for g in got) / 5)
                        hard.append(sum(g["topic"] == r["topic"] and g["event"] != r["event"] for g in got) / 5)
                related_ms = (time.perf_counter() - t0) * 1000 / len(rows)
                return {"p_at_5": round(statistics.mean(p5), 4), "hard_confusion_share": round(statistics.mean(hard), 4),
                        "merged_as_duplicates": len(rows) - len(story_doc), "upsert_ms": round(store_ms, 2),
                        "related_ms": round(related_ms, 2)}

    return asyncio.run(run())


def _add_slots(index: rel.RelatedIndex, story_ids: list[str], embeddings: np.ndarray) -> np.ndarray:
    """Register stories without features in one go (their postings follow through
    :func:`_add_postings`); returns their slots. ``RelatedIndex.add`` takes one story's features
    at a time, far too slow to build a million-story index, so the benchmark fills its arrays."""
    with index.lock:
        start, m = len(index.ids), len(story_ids)
        index._grow(start + m)
        index.slot_of.update(zip(story_ids, range(start, start + m)))
        index.ids.extend(story_ids)
        index.alive[start : start + m] = True
        index.n_alive += m
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        index.emb[start : start + m] = np.clip(np.rint(embeddings / np.maximum(norms, 1e-12) * 127), -127, 127)
        index.has_emb[start : start + m] = True
        return np.arange(start, start + m, dtype=np.int32)


def _add_postings(index: rel.RelatedIndex, name: str, term_ids: np.ndarray, slots: np.ndarray, raw: np.ndarray) -> None:
    """Queue ready postings (term ids already in the channel's vocabulary) inside ``index.bulk()``:
    the refresh that ends the bulk load computes their impacts, as for stories added one by one."""
    assert index._bulk, "postings are queued inside bulk()"
    index.channels[name].pending_arrays.append(
        (np.asarray(term_ids, dtype=np.int32), np.asarray(slots, dtype=np.int32), np.asarray(raw, dtype=np.float32))
    )


def speed(n: int, queries: int = 200, seed: int = 0) -> dict:
    """Lookup latency on n synthetic stories: Zipf-distributed words (128 per story), 8 names
    from a Zipf-distributed pool, 5 keyphrases, up to 8 numbers, random unit embeddings. Postings are loaded in
    arrays inside ``index.bulk()`` (see :func:`_add_slots`); queries are stories of the archive (with feedback)."""
    rng = np.random.default_rng(seed)
    vocab, n_ents, n_kps = 500_000, 300_000, 200_000
    index = rel.RelatedIndex()
    t0 = time.perf_counter()

    def zipf_ids(size: tuple, pool: int) -> np.ndarray:
        # log-uniform ranks: density ~ 1/rank (a Zipf law), sampled without per-draw python
        ranks = np.floor(np.exp(rng.random(size) * np.log(pool))).astype(np.int64)
        return np.minimum(ranks, pool) - 1

    for name, pool in (("terms", vocab), ("ents", n_ents), ("kps", n_kps)):
        index.channels[name].vocab = {f"{name[0]}{i}": i for i in range(pool)}
        index.channels[name].df = np.zeros(pool, dtype=np.int32)
    per = {"terms": 128, "ents": 8, "kps": 5}
    number_codes = np.asarray([number_row([str(x)])[0] for x in range(100_000)])  # the index's code of each number
    samples: list = []
    store: dict[str, Features] = {}
    sample_at = set(rng.choice(n, size=min(queries, n), replace=False).tolist())
    with index.bulk():
        batch = 50_000
        for start in range(0, n, batch):
            m = min(batch, n - start)
            embs = rng.standard_normal((m, rel.EMBEDDING_DIM)).astype(np.float32)
            slots = _add_slots(index, [f"{start + i:016x}" for i in range(m)], embs)
            for name, pool in (("terms", vocab), ("ents", n_ents), ("kps", n_kps)):
                k = per[name]
                ids = zipf_ids((m, k), pool)
                raw = (1.0 + np.log1p(rng.poisson(0.6, (m, k)))).astype(np.float32)
                _add_postings(index, name, ids.ravel(), np.repeat(slots, k), raw.ravel())
                for i in range(m):
                    if start + i in sample_at:
                        sid = f"{start + i:016x}"
                        entry = store.setdefault(sid, Features(terms=[], ents=[], kps=[]))
                        uniq = dict(zip((f"{name[0]}{t}" for t in ids[i]), raw[i].tolist()))
                        items = [(key, w) if name == "terms" else (key, w, key) for key, w in uniq.items()]
                        setattr(entry, name, items)
            # numbers (counts, amounts): 0-8 per story from a Zipf-distributed pool of 100,000
            nums = zipf_ids((m, MAX_NUMBERS), 100_000)
            nums[rng.random((m, MAX_NUMBERS)) < 0.5] = -1
            index.numbers[slots] = np.where(nums >= 0, number_codes[np.maximum(nums, 0)], 0)
            for i in range(m):
                if start + i in sample_at:
                    store[f"{start + i:016x}"].numbers = [str(x) for x in dict.fromkeys(nums[i].tolist()) if x >= 0]
                    samples.append((f"{start + i:016x}", embs[i]))
    build = time.perf_counter() - t0
    times, cpu = [], []
    for sid, e in samples[:queries]:
        f = store[sid]
        t, c = time.perf_counter(), time.thread_time()
        index.query(f, e, exclude_id=sid, limit=10, features_of=lambda ids: [store.get(i, f) for i in ids])
        cpu.append((time.thread_time() - c) * 1000)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    cpu.sort()
    return {"n": n, "build_s": round(build, 1), "p50_ms": round(times[len(times) // 2], 2),
            "p95_ms": round(times[int(len(times) * 0.95)], 2), "cpu_p50_ms": round(cpu[len(cpu) // 2], 2),
            "queries": len(times)}


if __name__ == "__main__":
    if sys.argv[1] == "features":
        print(make_features(sys.argv[2]))
    elif sys.argv[1] == "ecb-archive":
        print(ecb_archive_eval(sys.argv[2]))
    elif sys.argv[1] == "ecb":
        w = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
        print(ecb_eval(sys.argv[2], w))
    else:
        print(speed(int(sys.argv[2])))
