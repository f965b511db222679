"""Measurements against the running server (1, 2, 3): uncached analyses, cache hits, the load phase."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from backstory_tools.bench.common import summary
from backstory_tools.bench.corpus import Doc

if TYPE_CHECKING:  # the naive stack's libraries load only when the bench runs it
    from backstory_tools.bench.naive import NaiveStack


STAGES = ("fetch", "extract", "entities", "keyphrases", "related", "total")


def analyze_once(client: Any, body: dict) -> tuple[float, dict]:
    t = time.perf_counter()
    r = client.post("/api/v1/analyze", json=body)
    ms = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"analyze {body['url']}: HTTP {r.status_code} {r.text[:300]}")
    return ms, r.json()


def stage_table(results: list[dict]) -> dict:
    out = {"e2e_client": summary([x["e2e_ms"] for x in results])}
    for stage in STAGES:
        values = [x["timings"].get(stage, 0.0) for x in results]
        if any(values):
            out[stage] = summary(values)
    # The keyphrase stage runs inside the spaCy window (candidates come from the tagger process
    # while the NER process works), so it is not subtracted again.
    sequential = [s for s in STAGES[:-1] if s != "keyphrases"]
    other = [x["timings"]["total"] - sum(x["timings"].get(s, 0.0) for s in sequential) for x in results]
    out["other_server"] = summary(other)  # dedup check, archive write, cache, queueing
    out["http_overhead"] = summary([x["e2e_ms"] - x["timings"]["total"] for x in results])
    return out


def _uncached_row(client: Any, doc: Doc) -> dict:
    try:
        ms, body = analyze_once(client, doc.body())
    except RuntimeError as exc:
        return {"id": doc.id, "kind": doc.kind, "error": str(exc)}
    return {
        "id": doc.id, "kind": doc.kind, "e2e_ms": round(ms, 2), "timings": body["timings_ms"],
        "words": body["word_count"], "cached": body["cached"], "related": len(body["related"]),
        "keyphrases": [k["phrase"] for k in body["keyphrases"]], "entities": len(body["entities"]),
    }


def measure_uncached(base: str, docs: list[Doc], naive: "NaiveStack | None" = None,
                     naive_ids: set[str] | None = None, naive_rows: list[dict] | None = None,
                     beside: str | None = None, beside_rows: list[dict] | None = None) -> list[dict]:
    """Each document once through the server. With ``naive``, the naive stack runs on each
    document (in ``naive_ids``) right after ours, into ``naive_rows``: paired measurements see
    the same state of the machine, whose speed drifts by up to a third over minutes here. With
    ``beside`` (a second server's base URL: the PostgreSQL one), each document goes to it right
    after ours too, into ``beside_rows``."""
    import httpx

    results = []
    with httpx.Client(base_url=base, timeout=120.0) as client, \
            httpx.Client(base_url=beside or base, timeout=120.0) as other:
        for doc in docs:
            results.append(_uncached_row(client, doc))
            if beside is not None and beside_rows is not None:
                beside_rows.append(_uncached_row(other, doc))
            if "error" in results[-1]:
                continue
            if naive is not None and naive_rows is not None and (naive_ids is None or doc.id in naive_ids):
                naive_rows.append(naive.run(doc))
    return results


def measure_cache_hits(base: str, docs: list[Doc], repeats: int) -> dict:
    import httpx

    e2e, server, misses = [], [], 0
    with httpx.Client(base_url=base, timeout=60.0) as client:
        for _ in range(repeats):
            for doc in docs:
                ms, body = analyze_once(client, doc.body())
                e2e.append(ms)
                server.append(body["timings_ms"]["total"])
                misses += not body["cached"]
    return {"e2e_client": summary(e2e), "server_total": summary(server), "not_cached": misses}


async def _load(base: str, docs: list[Doc], clients: int, seconds: float, max_requests: int,
                timeout: float, tag: str = "bench_load") -> dict:
    import httpx
    import msgspec

    results: list[tuple[float, float, bool, str | None, dict | None]] = []
    counter = iter(range(max_requests))
    started = time.perf_counter()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            for n in counter:
                if time.perf_counter() >= deadline:
                    return
                doc = docs[n % len(docs)]
                sep = "&" if "?" in doc.url else "?"
                body = msgspec.json.encode(doc.body(url=f"{doc.url}{sep}{tag}={n}"))
                t = time.perf_counter()
                try:
                    r = await client.post("/api/v1/analyze", content=body,
                                          headers={"content-type": "application/json"})
                    ok = r.status_code == 200
                    err = None if ok else f"HTTP {r.status_code}"
                    timings = msgspec.json.decode(r.content)["timings_ms"] if ok else None
                except httpx.HTTPError as exc:
                    ok, err, timings = False, type(exc).__name__, None
                done = time.perf_counter()
                results.append((t - started, (done - t) * 1000, ok, err, timings))

        await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    ok_ms = [r[1] for r in results if r[2]]
    errors: dict[str, int] = {}
    for r in results:
        if not r[2]:
            errors[r[3] or "?"] = errors.get(r[3] or "?", 0) + 1
    server_total = [r[4]["total"] for r in results if r[4]]
    work = [sum(r[4].get(s, 0.0) for s in ("extract", "entities", "keyphrases", "related")) for r in results if r[4]]
    return {
        "clients": clients, "seconds": round(elapsed, 2), "requests": len(results), "ok": len(ok_ms),
        "errors": sum(errors.values()), "error_kinds": errors,
        "throughput_per_s": round(len(ok_ms) / elapsed, 2) if elapsed else 0.0,
        "completed_in_window_per_s": round(sum(1 for r in results if r[2] and r[0] + r[1] / 1000 <= seconds)
                                           / seconds, 2),
        "latency_ms": summary(ok_ms), "server_total_ms": summary(server_total),
        "server_stage_sum_ms": summary(work),
    }


def measure_load(base: str, docs: list[Doc], clients: int, seconds: float, max_requests: int,
                 tag: str = "bench_load") -> dict:
    """``tag`` names the query parameter that makes each request's URL new: a second load on the
    same server needs another one, or its first requests are cache hits."""
    return asyncio.run(_load(base, docs, clients, seconds, max_requests, timeout=max(60.0, seconds * 2), tag=tag))


def uncached_tables(page_results: list[dict], text_results: list[dict]) -> dict:
    """The stage tables of phase 1: all pages, the ~800-word pages, the texts (errors left out)."""
    out: dict[str, Any] = {}
    good_pages = [r for r in page_results if "error" not in r]
    good_texts = [r for r in text_results if "error" not in r]
    if good_pages:
        out["pages"] = stage_table(good_pages)
        mid = [r for r in good_pages if 600 <= r["words"] <= 1000]
        if mid:
            out["pages_800w"] = stage_table(mid)
    if good_texts:
        out["texts"] = stage_table(good_texts)
    out["related_nonempty"] = sum(1 for r in good_pages + good_texts if r["related"])
    return out
