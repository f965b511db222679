"""Local against remote analysis on one PostgreSQL archive (issue 16): the same texts sent, one at a
time, to a server that analyzes them itself and to a thin server (``BACKSTORY_ANALYSIS=remote``,
no models) whose one ``backstory worker`` does, alternating text by text so both see the same
machine. Each server has its own database (a text analyzed by one is never a copy for the other).

    python -m backstory_tools.bench.remote [--texts 40] [--database-url pgserver|URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import httpx

from backstory_tools import default_data_dir
from backstory_tools.bench.common import ROOT, python
from backstory_tools.bench.postgres import DATABASE, PGSERVER, bench_database, with_database
from backstory_tools.bench.procs import proc_memory
from backstory_tools.bench.server import Server


def _texts(data: Path, count: int) -> list[dict]:
    rows = [json.loads(line) for line in (data / "keyphrases" / "duc2001.jsonl").read_text().splitlines() if line]
    return rows[:count]


def _create(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(url, name)


def _post(client: httpx.Client, base: str, row: dict, i: int) -> float:
    started = time.perf_counter()
    answer = client.post(base + "/api/v1/analyze", json={"url": f"https://duc.example/{i}/{row['id']}",
                                                          "title": row.get("title"), "text": row["text"]})
    answer.raise_for_status()
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=40)
    parser.add_argument("--database-url", default=PGSERVER)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench-remote.json")
    args = parser.parse_args(argv)
    rows = _texts(default_data_dir(), args.texts)
    logs = ROOT / "artifacts"
    logs.mkdir(exist_ok=True)
    with bench_database(args.database_url) as db:
        local_db, remote_db = (_create(db.url.replace(f"/{DATABASE}", "/postgres"), f"remote_bench_{kind}")
                               for kind in ("local", "remote"))
        local = Server(local_db, logs / "bench-remote-local.log")
        thin = Server(remote_db, logs / "bench-remote-thin.log", {"BACKSTORY_ANALYSIS": "remote"})
        local.start()
        thin.start()
        worker = subprocess.Popen([python(), "-m", "backstory", "worker", "--archive", remote_db], cwd=ROOT,
                                  stdout=(logs / "bench-remote-worker.log").open("ab"), stderr=subprocess.STDOUT)
        try:
            timings: dict[str, list[float]] = {"local": [], "remote": []}
            with httpx.Client(timeout=120) as client:
                for i, row in enumerate(rows[:3]):  # warm-up: the worker loads its models meanwhile
                    _post(client, local.base, row, 10_000 + i)
                    while True:
                        try:
                            _post(client, thin.base, row, 10_000 + i)
                            break
                        except httpx.HTTPStatusError:
                            time.sleep(1)
                for i, row in enumerate(rows):
                    order = ("local", "remote") if i % 2 == 0 else ("remote", "local")
                    for kind in order:
                        timings[kind].append(_post(client, local.base if kind == "local" else thin.base, row, i))
            report = {
                kind: {"p50_ms": round(statistics.median(t), 1), "mean_ms": round(statistics.fmean(t), 1),
                       "n": len(t)} for kind, t in timings.items()
            }
            report["remote_over_local_p50"] = round(report["remote"]["p50_ms"] / report["local"]["p50_ms"], 3)
            report["memory_mb"] = {"local server": local.memory().get("footprint"),
                                   "thin server": thin.memory().get("footprint"),
                                   "worker": proc_memory(worker.pid).get("footprint")}
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            local.stop()
            thin.stop()
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
