"""The ideal server: the bound that no server could beat under the load phase."""

from __future__ import annotations

import statistics

from backstory_tools.bench.common import summary
from backstory_tools.bench.corpus import Doc
from backstory_tools.bench.procs import BEYOND_STAGES


def ideal_server(costs_ms: list[float], clients: int, seconds: float, cores: int = 2,
                 shortest_first: bool = False) -> dict:
    """The best any server could do with requests of these CPU costs: ``clients`` that always
    wait, each request's cost spread over all ``cores`` with no overhead at all, answered first
    come, first served (or, with ``shortest_first``, the cheapest waiting request first), for
    ``seconds``. Request n costs ``costs_ms[n % len(costs_ms)]`` (the load phase's order of
    pages). First come, first served, the mean latency is clients × mean cost / cores (Little's
    law, the cores never idle) and every request waits for about the same share of the queue's
    work. Shortest first answers more cheap pages in the window by making the dearest wait for as
    long as cheaper ones keep coming (``waiting_at_end_ms``: the longest wait of a request still
    unanswered at the end)."""
    import heapq

    def entry(n: int, arrival: float) -> tuple[float, int, float, float]:
        cost = costs_ms[n % len(costs_ms)]
        return (cost if shortest_first else n, n, arrival, cost)

    queue = [entry(n, 0.0) for n in range(clients)]
    heapq.heapify(queue)
    issued, now, latencies = clients, 0.0, []
    while True:
        _, _, arrival, cost = heapq.heappop(queue)
        now += cost / cores
        if now > seconds * 1000:  # not answered in the window: still waiting, as those queued
            unanswered = [arrival] + [item[2] for item in queue]
            break
        latencies.append(now - arrival)
        heapq.heappush(queue, entry(issued, now))
        issued += 1
    return {"clients": clients, "cores": cores, "seconds": seconds,
            "order": "shortest first" if shortest_first else "first come, first served",
            "throughput_per_s": round(len(latencies) / seconds, 2),
            "latency_ms": summary(latencies), "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
            "mean_cost_ms": round(statistics.fmean(costs_ms), 1),
            "waiting_at_end_ms": round(seconds * 1000 - min(unanswered), 1)}


def ideal_load(report: dict, docs: list[Doc]) -> dict | None:
    """:func:`ideal_server` on the load phase's pages, in its order, at each page's CPU in the
    stages-alone run right after it (``floor.py throughput``), plus the CPU per request that the
    server's archive threads and event loop spent under that load."""
    ld = report.get("load", {})
    by_page = ld.get("floor_throughput", {}).get("cpu_ms_by_page") or {}
    if not by_page:
        return None
    beyond = sum(v for k, v in (ld.get("cpu_ms_per_request_by_thread") or {}).items()
                 if tuple(k.split(" / ", 1)) in BEYOND_STAGES)
    typical = statistics.median(by_page.values())
    stages = [by_page.get(d.id, typical) for d in docs]
    out = {"stages_only": ideal_server(stages, ld["clients"], ld["seconds"]),
           "beyond_stages_ms_per_request": round(beyond, 1)}
    out["with_archive_and_http"] = ideal_server([c + beyond for c in stages], ld["clients"], ld["seconds"])
    out["with_archive_and_http_shortest_first"] = ideal_server(
        [c + beyond for c in stages], ld["clients"], ld["seconds"], shortest_first=True)
    return out
