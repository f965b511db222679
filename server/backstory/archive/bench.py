"""Measure the related-story ranking: quality on ECB+ and lookup speed on synthetic archives.

    python -m backstory.archive.bench ecb FEATURES.json   # P@5, P@min(5,R), hard-confusion share
    python -m backstory.archive.bench speed 100000        # p50/p95 lookup ms on N synthetic stories

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

from .. import schemas
from . import related as rel

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "related" / "ecbplus.jsonl"


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
        feat = rel.compute_features(None, r["text"], ents, kps)
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


def speed(n: int, queries: int = 200, seed: int = 0) -> dict:
    """Lookup latency on n synthetic stories (Zipf vocabulary, entities, random unit embeddings)."""
    rng = np.random.default_rng(seed)
    vocab = 200_000
    n_ents = 300_000
    index = rel.RelatedIndex()
    t0 = time.perf_counter()
    ranks = np.arange(1, vocab + 1)
    p = 1.0 / ranks**1.05
    p /= p.sum()
    ep = 1.0 / np.arange(1, n_ents + 1) ** 1.1
    ep /= ep.sum()
    samples = []
    store = {}
    batch = 10_000
    bulk = index.bulk()
    bulk.__enter__()
    for start in range(0, n, batch):
        m = min(batch, n - start)
        words = rng.choice(vocab, size=(m, 120), p=p)
        ents = rng.choice(n_ents, size=(m, 8), p=ep)
        embs = rng.standard_normal((m, rel.EMBEDDING_DIM)).astype(np.float32)
        embs /= np.linalg.norm(embs, axis=1, keepdims=True)
        for i in range(m):
            c = np.unique(words[i], return_counts=True)
            order = np.argsort(-c[1])[: rel.MAX_TERMS]
            f = rel.Features(terms=[(f"w{c[0][j]}", 1.0 + float(np.log(c[1][j]))) for j in order],
                             ents=[(f"e{e}", 1.0, f"E{e}") for e in set(ents[i].tolist())],
                             kps=[(f"w{c[0][j]} w{c[0][order[0]]}", 0.5, "kp") for j in order[1:6]])
            sid = f"{start + i:016x}"
            index.add(sid, f, embs[i], None)
            store[sid] = f
            if len(samples) < queries and rng.random() < queries / n * 2:
                samples.append((f, embs[i], sid))
    bulk.__exit__(None, None, None)
    build = time.perf_counter() - t0
    times = []
    for f, e, sid in samples[:queries]:
        t = time.perf_counter()
        index.query(f, e, exclude_id=sid, limit=10, features_of=lambda ids: [store[i] for i in ids])
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"n": n, "build_s": round(build, 1), "p50_ms": round(times[len(times) // 2], 2),
            "p95_ms": round(times[int(len(times) * 0.95)], 2), "queries": len(times)}


if __name__ == "__main__":
    if sys.argv[1] == "ecb":
        w = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
        print(ecb_eval(sys.argv[2], w))
    else:
        print(speed(int(sys.argv[2])))
