#!/usr/bin/env python3
"""Importing a Pocket export whose pages must be fetched (issue 18): throughput, not politeness.

    .venv/bin/python scripts/bench_import.py                      # 10,000 entries, 180 s of backlog
    .venv/bin/python scripts/bench_import.py --entries 500 --backlog-seconds 30

A Pocket CSV of N URLs on 8 local sites (``backstory_tools.bench.import_pages``: generated news
pages, robots.txt, one URL in ten redirecting) is imported with ``backstory import`` into a fresh
SQLite archive with BACKSTORY_FETCH_HOST_DELAY=0 (the delay would measure the sites, not us; the
politeness itself is tested in tests/test_polite.py) and the other fetch settings at their
defaults (4 hosts at once): stories stored per second, steady and wall. Then the server is started
on that archive and the background analysis of the backlog is timed, for ``--backlog-seconds``
at most (the whole of a 10,000-story backlog takes ~15-20 minutes on 2 cores): analyses per second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from backstory_tools.bench.common import loadavg, log
from backstory_tools.bench.corpus import run_backlog, run_import
from backstory_tools.bench.import_pages import Sites, write_pocket_csv


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=10_000, help="Pocket entries (default 10,000)")
    p.add_argument("--backlog-seconds", type=float, default=180.0,
                   help="how long the background analysis is timed (default 180 s; 0: to the end)")
    p.add_argument("--timeout", type=float, default=3600.0, help="longest import allowed (s)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = p.parse_args()

    os.environ["BACKSTORY_ALLOWED_NETWORKS"] = "127.0.0.0/8"  # the sites are on loopback addresses
    os.environ["BACKSTORY_FETCH_HOST_DELAY"] = "0"
    sites = Sites()
    result: dict = {"entries": args.entries, "hosts": len(sites.servers), "loadavg_before": loadavg(),
                    "cpus": os.cpu_count()}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            folder = Path(tmp)
            export = write_pocket_csv(folder / "part_000000.csv", args.entries, sites.port)
            archive = folder / "archive.sqlite3"
            log(f"importing {args.entries:,} Pocket entries from {len(sites.servers)} local sites (port {sites.port})")
            result["import"] = run_import(export, archive, args.timeout)
            result["import"]["page_server_requests"] = sites.requests
            log(f"import: {json.dumps(result['import'])}")
            log(f"background analysis for {args.backlog_seconds or 'all'} s")
            result["backlog"] = run_backlog(archive, folder / "server.log", timeout=max(args.timeout, 600),
                                            budget=args.backlog_seconds or None)
            log(f"backlog: {json.dumps(result['backlog'])}")
    finally:
        sites.close()
    result["loadavg_after"] = loadavg()
    result["finished_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if result["import"].get("failed") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
