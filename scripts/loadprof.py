#!/usr/bin/env python3
"""Where the CPU goes under load (issue 5): the real server, N clients, CPU per request by thread.

    .venv/bin/python scripts/loadprof.py                       # 16 clients, 25 s
    .venv/bin/python scripts/loadprof.py --clients 16 --seconds 25 --env BACKSTORY_WORKERS=4

Starts ``backstory serve`` on 127.0.0.1 on a copy of the bench's cached 10,000-story archive
(``scripts/bench.py`` builds it the first time), sends the extraction dev pages from N clients
that always wait (each request under a new URL, so never a cache hit, as the bench's load
phase), and reads ``/proc`` before and after: the CPU milliseconds each thread of the server and
of its spaCy processes spent per answered request, the kernel's share, the whole machine's busy
share (``/proc/stat``: what no process of ours used stayed idle) and this client's own CPU. A
quick way to compare two settings in the same minutes (this VM's speed drifts, see
``docs/benchmarks.md``): run them one after the other, twice, alternating.

Prints a table and, with ``--json``, one JSON object. Needs the evaluation data (``--data``);
without it, it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from backstory_tools.bench.common import DEFAULT_DATA
from backstory_tools.bench.corpus import cached_archive, data_missing, load_pages
from backstory_tools.bench.load import measure_load
from backstory_tools.bench.procs import thread_cpu, thread_cpu_per_request
from backstory_tools.bench.server import Server


def machine_ticks() -> list[int]:
    return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)

    missing = data_missing(args.data)
    if missing:
        print(f"loadprof: evaluation data not found ({', '.join(missing)}); nothing measured")
        return 0
    env = dict(item.split("=", 1) for item in args.env)
    source, _ = cached_archive(args.data, 10_000, 496, 3600)
    pages = load_pages(args.data, None)
    work = Path(tempfile.mkdtemp(prefix="backstory-loadprof-"))
    archive = work / "archive.sqlite3"
    shutil.copyfile(source, archive)
    server = Server(archive, work / "server.log", env)
    try:
        server.start()
        # warm-up: every process has answered (under other URLs: the measured requests must not hit its cache)
        measure_load(server.base, pages, 4, 3, 12, tag="loadprof_warm_up")
        before, ticks0, client0 = thread_cpu(server.proc.pid), machine_ticks(), time.process_time()
        load = measure_load(server.base, pages, args.clients, args.seconds, 5000)
        after, ticks1, client1 = thread_cpu(server.proc.pid), machine_ticks(), time.process_time()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    done = max(1, load["ok"])
    ticks = [b - a for a, b in zip(ticks0, ticks1)]
    idle = (ticks[3] + ticks[4]) / max(1, sum(ticks))
    rows = thread_cpu_per_request(before, after, load["ok"])
    report = {
        "env": env,
        "clients": args.clients,
        "throughput_per_s": load["throughput_per_s"],
        "answered": load["ok"],
        "errors": load["errors"],
        "latency_ms": load["latency_ms"],
        "cpu_ms_per_request": round(sum(r["cpu_ms_per_request"] for r in rows), 1),
        "machine_idle_share": round(idle, 4),
        "client_cpu_ms_per_request": round((client1 - client0) * 1000 / done, 1),
        "threads": rows,
    }
    print(f"{args.clients} clients, {load['seconds']:.1f} s, env {env or 'default'}: "
          f"{load['throughput_per_s']}/s, {load['ok']} answered, {load['errors']} errors, "
          f"p95 {load['latency_ms'].get('p95')} ms")
    print(f"CPU per request {report['cpu_ms_per_request']} ms (server and spaCy processes); "
          f"machine idle {idle:.1%}; this client {report['client_cpu_ms_per_request']} ms a request")
    print(f"{'process':24s} {'thread':28s} {'CPU ms/request':>15s} {'of it kernel':>13s}")
    for r in rows:
        print(f"{r['process']:24s} {r['thread']:28s} {r['cpu_ms_per_request']:15.1f} {r['system_ms_per_request']:13.1f}")
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
