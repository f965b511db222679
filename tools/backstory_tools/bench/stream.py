"""The streamed answer (issue 20): how soon the ``facts`` line comes, on an idle server and under load.

1. idle: each ~800-word page (600-1000 words; all pages when none is) streamed ``repeats`` times,
   uncached, one at a time: the time from sending the request to its facts line, and to its
   ``done`` line (the whole sidebar);
2. load: ``clients`` clients streaming pages for ``seconds``, as phase 3 of the bench does
   without the stream: the facts line's and the whole sidebar's latency, their p95 side by side.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from backstory_tools.bench.common import summary
from backstory_tools.bench.corpus import Doc

NDJSON = "application/x-ndjson"


async def streamed(client: Any, body: bytes) -> tuple[float | None, float, dict | None, str | None]:
    """One streamed analyze: ms to the facts line (None if none came), ms to the end, the done
    line's timings (None on failure) and what went wrong."""
    import httpx
    import msgspec

    t = time.perf_counter()
    facts_ms = None
    last: dict | None = None
    try:
        async with client.stream("POST", "/api/v1/analyze", content=body,
                                 headers={"content-type": "application/json", "accept": NDJSON}) as r:
            if r.status_code != 200:
                await r.aread()
                return None, (time.perf_counter() - t) * 1000, None, f"HTTP {r.status_code}"
            async for line in r.aiter_lines():
                if not line:
                    continue
                if facts_ms is None:
                    facts_ms = (time.perf_counter() - t) * 1000
                last = msgspec.json.decode(line)
    except httpx.HTTPError as exc:
        return facts_ms, (time.perf_counter() - t) * 1000, None, type(exc).__name__
    whole_ms = (time.perf_counter() - t) * 1000
    if not last or last.get("event") != "done":
        return facts_ms, whole_ms, None, f"stream ended with {last.get('event') if last else 'nothing'}"
    return facts_ms, whole_ms, last["timings_ms"], None


def _bodies(docs: list[Doc], tag: str, n: int) -> bytes:
    import msgspec

    doc = docs[n % len(docs)]
    sep = "&" if "?" in doc.url else "?"
    return msgspec.json.encode(doc.body(url=f"{doc.url}{sep}{tag}={n}"))


async def _idle(base: str, docs: list[Doc], repeats: int) -> dict:
    import httpx

    facts, whole, extract, errors = [], [], [], 0
    async with httpx.AsyncClient(base_url=base, timeout=120.0) as client:
        for n in range(len(docs) * repeats):
            facts_ms, whole_ms, timings, err = await streamed(client, _bodies(docs, "bench_stream", n))
            if err is not None or facts_ms is None:
                errors += 1
                continue
            facts.append(facts_ms)
            whole.append(whole_ms)
            extract.append(timings["extract"])
    return {"documents": len(docs), "requests": len(docs) * repeats, "errors": errors,
            "facts_ms": summary(facts), "whole_ms": summary(whole), "server_extract_ms": summary(extract)}


def measure_idle(base: str, pages: list[Doc], words: dict[str, int], repeats: int = 3) -> dict:
    """Phase 1 (see the module's docstring); ``words``: each page's word count, from phase 1 of the bench."""
    mid = [d for d in pages if 600 <= words.get(d.id, 0) <= 1000]
    out = asyncio.run(_idle(base, mid or pages, repeats))
    out["pages"] = "600-1000 words" if mid else "all (none of 600-1000 words)"
    return out


async def _load(base: str, docs: list[Doc], clients: int, seconds: float, max_requests: int) -> dict:
    import httpx

    rows: list[tuple[float | None, float, str | None]] = []
    counter = iter(range(max_requests))
    started = time.perf_counter()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=max(60.0, seconds * 2), limits=limits) as client:

        async def worker() -> None:
            for n in counter:
                if time.perf_counter() >= deadline:
                    return
                facts_ms, whole_ms, _, err = await streamed(client, _bodies(docs, "bench_stream_load", n))
                rows.append((facts_ms, whole_ms, err))

        await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    ok = [r for r in rows if r[2] is None and r[0] is not None]
    facts = summary([r[0] for r in ok])
    whole = summary([r[1] for r in ok])
    ratio = round(facts["p95"] / whole["p95"], 3) if ok and whole["p95"] else None
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(rows), "ok": len(ok),
            "errors": len(rows) - len(ok), "throughput_per_s": round(len(ok) / elapsed, 2) if elapsed else 0.0,
            "facts_ms": facts, "whole_ms": whole, "facts_p95_over_whole_p95": ratio}


def measure_load(base: str, pages: list[Doc], clients: int, seconds: float, max_requests: int) -> dict:
    """Phase 2 (see the module's docstring)."""
    return asyncio.run(_load(base, pages, clients, seconds, max_requests))
