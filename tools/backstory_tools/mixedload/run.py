"""Mixed load (issue 19): the real server, N clients that always wait, a fixed mix of requests.

    .venv/bin/python scripts/load.py                          # 16 clients for 60 s, then 64 for 60 s
    .venv/bin/python scripts/load.py --clients 16 --seconds 15
    .venv/bin/python scripts/load.py --markdown               # + a block for docs/benchmarks.md
    .venv/bin/python scripts/load.py --json                   # + the whole report as one JSON line
    .venv/bin/python scripts/load.py --weight huge_html=0     # change one kind's weight

Starts ``backstory serve`` on 127.0.0.1 (``backstory_tools.bench.server.Server``) on a copy of the bench's cached
10,000-story archive (``scripts/bench.py`` builds it the first time), or on a new empty archive
with ``--fresh``. After ``/readyz`` answers 200 and a short warm-up, each phase (one per
``--clients``) runs that many clients for ``--seconds`` (at most ``--max-requests`` requests);
each client sends one request, waits for its answer, and draws the next kind at random (its own
``random.Random`` from ``--seed``) with the weights of :data:`backstory_tools.mixedload.kinds.KINDS` (printed in the report):

* ``analyze_new``: a dev page's HTML under a URL never sent before (an uncached analysis);
* ``analyze_cached``: one of the last answered ``analyze_new`` requests again (a cache hit);
* ``analyze_text``: a DUC text with ``archive: false`` under a new URL;
* ``search``, ``story``, ``related``: ``GET /api/v1/stories?q=``, ``/stories/{id}`` and
  ``/stories/{id}/related`` for ids and keyphrases seen in earlier answers;
* hostile requests that must be refused: a ``text/plain`` body (415), a foreign ``Origin`` (403),
  invalid UTF-8 in the JSON (400), JSON nested 100,000 deep (400), a foreign ``Host`` (400), a
  title of a million characters (any 4xx);
* ``huge_text`` / ``huge_html``: a text just under the text limit, an HTML page just under the
  request body limit, both ``archive: false``: they must be answered (200, a 4xx or 503) within
  ``--huge-timeout`` (the server's analysis deadline plus queueing). At most ``--huge-in-flight``
  are in flight at once, and their latency is kept out of the overall row.

A draw that cannot be sent yet (no id seen, no answered page to repeat, the huge slot taken) is
drawn again among the kinds that can. An **error** is a 5xx, a transport error, a timeout, or any
status not expected for the kind (a 200 to a hostile request). Memory (``backstory_tools.bench.procs.proc_memory``: the
unique resident pages of the server and its spaCy processes, each process's RSS) is read before
each phase, right after it and after ``--settle`` idle seconds.

Prints a table; ``--json`` adds the report as one JSON line at the end, ``--markdown`` a block to
paste into ``docs/benchmarks.md``. Needs the evaluation data (``--data``); without it, it says so
and exits 0. Exits 1 when any error was counted, 2 when the server did not start or the
warm-up failed (the server's log tail is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backstory_tools.bench.common import DEFAULT_DATA, loadavg, log
from backstory_tools.bench.corpus import cached_archive, data_missing
from backstory_tools.bench.report import git_commit, machine
from backstory_tools.bench.server import Server
from backstory_tools.mixedload.kinds import CACHED_POOL, KINDS, SEARCH_TERMS, Seen, material
from backstory_tools.mixedload.phase import memory, phase_report, run_phase, warm_up
from backstory_tools.mixedload.report import markdown, print_report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clients", type=int, action="append", help="clients of one phase (repeatable; default 16 then 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase (no new request after it)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="at most this many requests a phase")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--weight", action="append", default=[], metavar="KIND=W",
                        help=f"change a kind's weight (repeatable); kinds: {', '.join(KINDS)}")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a client waits for an answer")
    parser.add_argument("--huge-timeout", type=float, default=60.0,
                        help="seconds a huge request may take: the analysis deadline plus its wait in the "
                             "server's queue, which grows with the clients")
    parser.add_argument("--huge-in-flight", type=int, default=1)
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds before the last memory reading")
    parser.add_argument("--warm-up", type=int, default=6, help="pages analysed before the first phase")
    parser.add_argument("--fresh", action="store_true", help="a new empty archive instead of the cached 10,000 stories")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line at the end")
    parser.add_argument("--markdown", action="store_true", help="print a block for docs/benchmarks.md")
    parser.add_argument("--keep-log", type=Path, help="copy the server's log here")
    args = parser.parse_args(argv)
    args.clients = args.clients or [16, 64]
    weights = {k: float(v.weight) for k, v in KINDS.items()}
    for item in args.weight:
        name, _, value = item.partition("=")
        if name not in KINDS or not value:
            parser.error(f"--weight {item!r}: expected KIND=W with KIND one of {', '.join(KINDS)}")
        weights[name] = float(value)
    if not any(weights[k] > 0 for k in ("analyze_new", "analyze_text", "search")) and (
            weights["analyze_cached"] or weights["story"] or weights["related"]):
        parser.error("the cached, story and related kinds need a kind that finds pages or ids")
    args.weights = weights
    if min(args.clients) < 1 or args.seconds <= 0 or args.max_requests < 1:
        parser.error("--clients, --seconds and --max-requests must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    import httpx

    args = parse_args(argv)
    missing = data_missing(args.data)
    if args.fresh:  # the cached archive's source texts are not needed then
        missing = [p for p in missing if "related" not in Path(p).parts]
    if missing:
        print(f"load: evaluation data not found ({', '.join(missing)}); nothing measured")
        return 0

    m = material(args.data)
    work = Path(tempfile.mkdtemp(prefix="backstory-load-"))
    archive = work / "archive.sqlite3"
    if args.fresh:
        described = "a new empty archive"
    else:
        source, meta = cached_archive(args.data, 10_000, 496, 3600)
        shutil.copyfile(source, archive)
        described = f"a copy of the cached {meta.get('size', 10_000):,}-story archive"
    env = dict(item.split("=", 1) for item in args.env)
    server = Server(archive, work / "server.log", env)
    report: dict[str, Any] = {
        "script": "load", "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "argv": " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(), "archive": described, "fresh": args.fresh, "env": env,
        "seed": args.seed, "weights": args.weights, "kinds": {k: KINDS[k].expect for k in KINDS},
        "huge_in_flight": args.huge_in_flight, "huge_timeout_s": args.huge_timeout, "timeout_s": args.timeout,
        "settle_s": args.settle, "sizes": m.sizes, "phases": [],
    }
    seen = Seen(ids=[], id_set=set(), terms=list(SEARCH_TERMS), recent=collections.deque(maxlen=CACHED_POOL))
    try:
        try:
            ready = server.start()
        except RuntimeError as exc:
            print(f"load: the server did not start: {exc}\n{_tail(work / 'server.log')}", file=sys.stderr)
            return 2
        report["ready_s"] = ready.get("ready_s")
        report["memory_at_ready"] = memory(server)
        log(f"server ready in {ready.get('ready_s')} s on {server.base}; warming up")
        try:
            warm_up(server.base, m, seen, args.warm_up)
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"load: the warm-up failed: {exc}\n{_tail(work / 'server.log')}", file=sys.stderr)
            return 2
        for phase, clients in enumerate(args.clients):
            log(f"phase {phase + 1}: {clients} clients for {args.seconds:g} s")
            before, load_before = memory(server), loadavg()
            cpu0, server_cpu0 = time.process_time(), server.cpu_s() or 0.0
            run = asyncio.run(run_phase(server.base, m, seen, args.weights, clients, args.seconds, args.max_requests,
                                        args.seed, phase, args.timeout, args.huge_timeout, args.huge_in_flight))
            cpu1, server_cpu1 = time.process_time(), server.cpu_s() or 0.0
            after, load_after = memory(server), loadavg()
            alive = server.proc is not None and server.proc.poll() is None
            if alive and args.settle > 0:
                time.sleep(args.settle)
            p = phase_report(run, clients, args.seconds, args.weights)
            done = max(1, p["requests"])
            p.update({
                "server_alive": alive,
                "memory": {"before": before, "after": after, "settled": memory(server) if alive else {}},
                "settle_s": args.settle,
                "loadavg": {"before": load_before, "after": load_after},
                "server_cpu_ms_per_request": round((server_cpu1 - server_cpu0) * 1000 / done, 1),
                "client_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / done, 2),
            })
            if not alive:
                p["errors"] += 1
                p["error_kinds"]["server exited"] = 1
            report["phases"].append(p)
            log(f"  {p['requests']} requests, {p['errors']} errors")
            if not alive:
                break
    finally:
        server.stop()
        if args.keep_log and (work / "server.log").exists():
            shutil.copyfile(work / "server.log", args.keep_log)
        errors_seen = sum(p["errors"] for p in report["phases"])
        if errors_seen:
            print(f"server log (tail):\n{_tail(work / 'server.log')}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)

    report["errors"] = sum(p["errors"] for p in report["phases"])
    print_report(report)
    if args.markdown:
        print("\n" + markdown(report))
    if args.json:
        print(json.dumps(report))
    return 1 if report["errors"] else 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    raise SystemExit(main())
