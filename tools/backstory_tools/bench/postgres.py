"""The PostgreSQL side of the bench (issue 16), in the same run as the SQLite figures.

``scripts/bench.py --database-url URL`` (an empty database; ``pgserver`` starts a throwaway
server from the PyPI package and creates one) adds, beside SQLite's:

* the import phase's documents imported store-only into the empty database (``backstory import
  FILE --archive URL``: the stories become jobs), then the backlog completed by one ``backstory
  worker`` (no server running), and again, on the database emptied, by two workers; the memory
  of the one worker once its stories are done;
* the cached 10,000-story archive copied in with ``backstory migrate-archive`` (timed; nothing is
  kept in PostgreSQL between runs), then a second real server (``python -m backstory serve
  --archive URL``) beside the SQLite one: its cold start, each uncached document sent to it right
  after the SQLite server (paired, as the naive stack is), its memory at rest after that warm-up.

Between the phases the database is emptied (``DROP SCHEMA public CASCADE``): the bench refuses a
database that holds any table when it starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from backstory_tools.bench.common import ROOT, loadavg, log, python
from backstory_tools.bench.corpus import run_import
from backstory_tools.bench.procs import proc_memory

PGSERVER = "pgserver"
DATABASE = "backstory_bench"
_TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
_PENDING = "SELECT count(*) FROM stories WHERE NOT analysed"


class Database:
    """The bench's PostgreSQL database: its URL, emptied on demand."""

    def __init__(self, url: str) -> None:
        self.url = url

    def tables(self) -> int:
        return self._one(_TABLES)

    def empty(self) -> None:
        """Drop what the archive and its job queue created (the migrations create it again)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def pending(self) -> int:
        return self._one(_PENDING)

    def count(self) -> int:
        return self._one("SELECT count(*) FROM stories")

    def _one(self, sql: str) -> Any:
        import psycopg

        with psycopg.connect(self.url) as conn:
            return conn.execute(sql).fetchone()[0]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def bench_database(given: str) -> Iterator[Database]:
    """The database of ``--database-url``: the URL given (it must hold no table), or with
    ``pgserver`` a throwaway server in a temporary directory (not under /root: as root, pgserver
    runs PostgreSQL as a user of its own, who must reach it) and a database created on it."""
    if given != PGSERVER:
        db = Database(given)
        if db.tables():
            raise SystemExit(f"bench: the database of --database-url holds {db.tables()} tables; give an empty one "
                             "(the bench empties it between its phases)")
        yield db
        return
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset: harmless
        warnings.simplefilter("ignore")
        import pgserver
    import psycopg

    directory = tempfile.mkdtemp(prefix="backstory-pg-")
    server = pgserver.get_server(directory, cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        yield Database(with_database(server.get_uri(), DATABASE))
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def database_label(given: str) -> str:
    from backstory.config import masked_url

    return "a throwaway pgserver (PyPI)" if given == PGSERVER else masked_url(given)


def server_version(db: Database) -> dict:
    import psycopg

    with psycopg.connect(db.url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return {"postgresql": version, "pgvector": vector[0] if vector else None}


def migrate(source: Path, db: Database, timeout: float) -> dict:
    """``backstory migrate-archive --from sqlite:///SOURCE --to URL`` into the emptied database."""
    db.empty()
    started = time.perf_counter()
    proc = subprocess.run([python(), "-m", "backstory", "migrate-archive", "--from", f"sqlite:///{source}",
                           "--to", db.url], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    tail = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()][-3:]
    out: dict[str, Any] = {"returncode": proc.returncode, "seconds": round(seconds, 1), "tail": tail,
                           "loadavg": loadavg()}
    if proc.returncode == 0:
        out["stories"] = db.count()
        out["rate_per_s"] = round(out["stories"] / seconds, 1)
    return out


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("BACKSTORY_")},
            "BACKSTORY_LOG_LEVEL": "WARNING", **extra}


def run_workers(db: Database, count: int, log_path: Path, timeout: float, memory_after: bool = False) -> dict:
    """Start ``count`` ``backstory worker`` processes on the database and time them until no
    story is pending. The steady rate runs from the first story completed to the last (a worker
    loads its models first); the wall rate from the workers' spawn. With ``memory_after``, the
    first worker's memory at rest once the backlog is done (:func:`procs.proc_memory`)."""
    first = db.pending()
    workers: list[subprocess.Popen] = []
    fh = log_path.open("ab")
    started = time.perf_counter()
    try:
        for _ in range(count):
            workers.append(subprocess.Popen([python(), "-m", "backstory", "worker", "--archive", db.url],
                                            cwd=ROOT, env=_env(), stdout=fh, stderr=subprocess.STDOUT))
        marks: list[tuple[float, int]] = []
        left = first
        while left and time.perf_counter() - started < timeout:
            if any(w.poll() is not None for w in workers):
                raise RuntimeError(f"a worker exited with {[w.poll() for w in workers]}; see {log_path}")
            time.sleep(0.2)
            now, left = time.perf_counter(), db.pending()
            if left < (marks[-1][1] if marks else first):
                marks.append((now, left))
        wall = time.perf_counter() - started
        out: dict[str, Any] = {"workers": count, "stories": first, "left": left, "wall_s": round(wall, 2),
                               "rate_wall_per_s": round((first - left) / wall, 2) if wall > 0 else None}
        if len(marks) >= 2 and marks[-1][0] > marks[0][0]:
            out["first_done_after_s"] = round(marks[0][0] - started, 2)
            out["rate_steady_per_s"] = round((marks[0][1] - marks[-1][1]) / (marks[-1][0] - marks[0][0]), 2)
        if memory_after:
            from backstory.pipeline import TRIM_INTERVAL

            time.sleep(TRIM_INTERVAL + 1.5)  # at rest, as the server's figure
            out["memory"] = proc_memory(workers[0].pid)
        out["loadavg"] = loadavg()
        return out
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        fh.close()


def import_rounds(db: Database, jsonl: Path, rounds: tuple[int, ...], log_path: Path, timeout: float) -> list[dict]:
    """For each worker count: the database emptied, the file imported store-only (one job a
    story), then the backlog completed by that many workers."""
    out = []
    for count in rounds:
        db.empty()
        log(f"  PostgreSQL: import store-only, then {count} worker(s) ...")
        row = {"workers": count, "import": run_import(jsonl, db.url, timeout)}
        row["backlog"] = run_workers(db, count, log_path, timeout, memory_after=count == 1)
        log(f"    {row}")
        out.append(row)
    return out
