#!/usr/bin/env python3
"""Bounded work (issue 19): what pathological inputs cost a server, and what a huge one in flight
does to small requests. The figures of docs/benchmarks.md, "Bounded work":

    .venv/bin/python scripts/bounded.py                 # the default limits
    .venv/bin/python scripts/bounded.py --unbounded     # limits lifted: the server as it was
    .venv/bin/python scripts/bounded.py --reps 5 --only "one huge word"

The real app (real models, the spaCy processes, a fresh SQLite archive) under uvicorn on
127.0.0.1, in a thread of this process; this process is its only client. ``inputs``: each input of
tests/hardening/test_bounded.py, ``--reps`` times (a new URL each time, so never a cache hit),
the median wall time seen by the client, the median CPU of this process and the spaCy processes
over the request (``/proc``), and the response's stage timings. ``stall``: the latency of a small
text (three paragraphs) alone, then while a 950,000-character text is analyzed. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def run(args: argparse.Namespace) -> dict:
    import httpx

    from backstory.config import Settings
    from backstory.pipeline import Models
    from tests.hardening.test_bounded import AI_PARAGRAPHS, PATHOLOGICAL, LiveServer, prose

    models = Models.load()
    pids = [os.getpid(), *models.spacy.pids.values()]
    folder = tempfile.mkdtemp(prefix="bounded-")
    settings = Settings(archive=f"{folder}/archive.sqlite3", analysis_deadline=600)
    if args.unbounded:
        settings = settings.replace(max_analysis_chars=2_000_000, max_analysis_tokens=10_000_000, max_html_elements=10_000_000)
    report: dict = {"unbounded": args.unbounded, "inputs": {}, "stall": {}}
    live = await asyncio.to_thread(LiveServer, settings, models)
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=900) as client:

            async def post(body: dict) -> tuple[float, float, dict]:
                c0, w0 = _cpu(pids), time.perf_counter()
                response = await client.post("/api/v1/analyze", json=body)
                wall, cpu = time.perf_counter() - w0, _cpu(pids) - c0
                payload = response.json()
                return wall, cpu, {"status": response.status_code, "timings_ms": payload.get("timings_ms"), "detail": payload.get("detail")}

            for name in args.only or list(PATHOLOGICAL):
                runs = [await post({"url": f"https://bounded.example/{rep}/{abs(hash(name))}", "archive": False, **PATHOLOGICAL[name]})
                        for rep in range(args.reps)]
                report["inputs"][name] = {
                    "wall_s": round(statistics.median(r[0] for r in runs), 2),
                    "cpu_s": round(statistics.median(r[1] for r in runs), 2),
                    "last": runs[-1][2],
                }
                print(name, report["inputs"][name], file=sys.stderr, flush=True)

            small = [" ".join(AI_PARAGRAPHS[i % 6] for i in range(k, k + 3)) for k in range(200)]
            serial = iter(range(200))

            async def small_one() -> float:
                i = next(serial)
                return (await post({"url": f"https://small.example/{i}", "text": small[i], "archive": False}))[0]

            await small_one()
            alone = [await small_one() for _ in range(5)]
            huge = asyncio.ensure_future(post({"url": "https://huge.example/", "text": prose(950_000, seed=9), "archive": False}))
            before = live.pipeline.analyzer.analyzed
            while live.pipeline.analyzer.analyzed == before and not huge.done():
                await asyncio.sleep(0.005)  # the huge text has reached the language stages
            during = []
            while not huge.done() and len(during) < 150:
                during.append(await small_one())
            huge_wall = (await huge)[0]
            report["stall"] = {
                "small_alone_median_s": round(statistics.median(alone), 3),
                "small_during_s": [round(x, 3) for x in during],
                "small_during_max_s": round(max(during), 3) if during else None,
                "huge_wall_s": round(huge_wall, 2),
            }
    finally:
        await asyncio.to_thread(live.close)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unbounded", action="store_true", help="lift the limits (the server as it was)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", action="append", help="one input by its name (repeatable)")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
