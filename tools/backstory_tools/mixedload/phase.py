"""One phase of the mixed load: N clients that always wait, and its tally."""

from __future__ import annotations

import asyncio
import collections
import random
import time

import msgspec

from backstory_tools.bench.common import pct
from backstory_tools.bench.server import Server
from backstory_tools.mixedload.kinds import JSON, KINDS, Material, Seen, decoders, fresh_url, send


async def run_phase(base: str, m: Material, seen: Seen, weights: dict[str, float], clients: int,
                    seconds: float, max_requests: int, seed: int, phase: int, timeout: float,
                    huge_timeout: float, huge_in_flight: int) -> dict:
    import httpx

    dec = decoders()
    results: list[tuple[str, float, float, str, bool, bool | None]] = []
    counter = iter(range(max_requests))
    started = time.perf_counter()
    deadline = started + seconds
    huge_now = 0
    names = [k for k, w in weights.items() if w > 0]

    def can_send(kind: str) -> bool:
        if kind == "analyze_cached":
            return bool(seen.recent)
        if kind in ("story", "related"):
            return bool(seen.ids)
        if KINDS[kind].huge:
            return huge_now < huge_in_flight
        return True

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:

        async def worker(index: int) -> None:
            nonlocal huge_now
            rng = random.Random(seed * 1_000_003 + phase * 1009 + index)
            for n in counter:
                if time.perf_counter() >= deadline:
                    return
                kind = rng.choices(names, [weights[k] for k in names])[0]
                if not can_send(kind):
                    ready = [k for k in names if can_send(k)]
                    if not ready:  # only huge kinds in the mix, and the slot is taken
                        await asyncio.sleep(0.05)
                        continue
                    kind = rng.choices(ready, [weights[k] for k in ready])[0]
                huge = KINDS[kind].huge
                huge_now += huge
                t = time.perf_counter()
                cached = None
                try:
                    status, cached = await send(kind, client, m, seen, rng, f"p{phase}-{n}", dec, huge_timeout)
                    outcome, ok = str(status), KINDS[kind].ok(status)
                except httpx.TimeoutException:
                    outcome, ok = "timeout", False
                except httpx.HTTPError as exc:
                    outcome, ok = type(exc).__name__, False
                except msgspec.MsgspecError:  # a 200 whose body is not the documented shape
                    outcome, ok = "200 malformed", False
                finally:
                    huge_now -= huge
                done = time.perf_counter()
                results.append((kind, t - started, (done - t) * 1000, outcome, ok, cached))

        await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "results": results}


def latency(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(pct(values, 50), 1), "p95": round(pct(values, 95), 1),
            "p99": round(pct(values, 99), 1), "max": round(max(values), 1)}


def tally(rows: list[tuple], elapsed: float) -> dict:
    statuses = collections.Counter(r[3] for r in rows)
    return {
        "count": len(rows),
        "errors": sum(1 for r in rows if not r[4]),
        "fivexx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "latency_ms": latency([r[2] for r in rows]),
        "throughput_per_s": round(len(rows) / elapsed, 2) if elapsed else 0.0,
        "statuses": dict(sorted(statuses.items())),
    }


def memory(server: Server) -> dict:
    m = server.memory()
    return {
        "unique_mb": m.get("footprint"),
        "measure": "unique resident pages" if m.get("unique_pages_mb") is not None else "PSS (no frame numbers without root)",
        "rss_sum_mb": m.get("VmRSS"),
        "pss_mb": m.get("Pss"),
        "per_process_rss_mb": m.get("per_process_rss", {}),
        "processes": m.get("processes", 0),
    }


def warm_up(base: str, m: Material, seen: Seen, n: int) -> None:
    """A few pages under their own URLs (never the measured ones): every worker has loaded its
    models, and the first draws of the cached, story and related kinds have something to ask for."""
    import httpx

    dec = decoders()
    with httpx.Client(base_url=base, timeout=120.0) as client:
        for i in range(min(n, len(m.pages))):
            url = fresh_url(m.page_urls[i], f"warm-{i}")
            r = client.post("/api/v1/analyze", content=m.pages[i].render(url), headers=JSON)
            if r.status_code != 200:
                raise RuntimeError(f"warm-up analysis answered {r.status_code}: {r.text[:300]}")
            sidebar = dec["sidebar"].decode(r.content)
            seen.add_id(sidebar.story_id)
            for ref in sidebar.related:
                seen.add_id(ref.story_id)
            seen.recent.append((url, m.pages[i]))
        r = client.get("/api/v1/stories", params={"limit": 50})
        if r.status_code == 200:
            for ref in dec["listing"].decode(r.content).stories:
                seen.add_id(ref.story_id)


def phase_report(run: dict, clients: int, seconds: float, weights: dict[str, float]) -> dict:
    results = run["results"]
    # Rates are over the time until the last answer of the mix: a huge request still in flight
    # at the end would otherwise stretch every row's denominator.
    mix = [r for r in results if not KINDS[r[0]].huge]
    span = max((r[1] + r[2] / 1000 for r in mix), default=run["elapsed"])
    elapsed = span
    kinds = {}
    for name in weights:
        rows = [r for r in results if r[0] == name]
        kinds[name] = {"expected": KINDS[name].expect, **tally(rows, elapsed)}
        if name == "analyze_cached":
            kinds[name]["not_cached"] = sum(1 for r in rows if r[5] is False)
    samples = collections.Counter(f"{r[0]}: {r[3]}" for r in results if not r[4])
    return {
        "clients": clients, "seconds": seconds, "elapsed_s": round(run["elapsed"], 2),
        "mix_span_s": round(span, 2), "requests": len(results),
        "errors": sum(1 for r in results if not r[4]),
        "fivexx": sum(1 for r in results if r[3].startswith("5")),
        # the huge requests' latency is their own row: they are bounded by the deadline, not by the mix
        "overall": tally(mix, elapsed),
        "kinds": kinds,
        "error_kinds": dict(samples.most_common()),
    }
