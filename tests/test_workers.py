"""A team's deployment on one PostgreSQL database, with real processes: two `backstory serve` and a
`backstory worker`. What one server stores the other finds within 2 s; a bulk import becomes jobs
that the worker completes, even when it is SIGKILLed midway and restarted: every story once, and
complete. The queue shows in /readyz and /metrics."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from .conftest import postgres_database
from .e2e.e2e_harness import ROOT, start_server
from .pages import FIRE_A

STALLED_AFTER = "3"  # seconds without a heartbeat before a killed worker's job is given to another
_WORDS = ("river council budget harbour bridge school vote storm rail strike museum court trial market price farm "
          "water power grid road tunnel airport hospital nurse doctor teacher police fire flood drought harvest "
          "festival concert library park tram ferry port ship cargo steel mill mine forest wildfire snow heat wave "
          "election mayor minister senator union wage pension tax loan bank fund report survey census study").split()
_NAMES = ("Ida Brenner", "Tomas Kell", "Rosa Vidal", "Omar Haddad", "Lena Fischer", "Kofi Mensah", "Mei Lin",
          "Arjun Rao", "Sara Nyberg", "Paulo Reis", "Nadia Petrova", "Jonas Weber")
_PLACES = ("Lisdorf", "Varna", "Kelmarsh", "Dunhollow", "Penrow", "Arden", "Harwick", "Ostrava", "Marlow", "Tessin")


def stories(count: int) -> list[dict]:
    """Made-up news texts, all different (no two are copies of one another), naming people and places."""
    rng = random.Random(7)
    out = []
    for i in range(count):
        name, place = _NAMES[i % len(_NAMES)], _PLACES[(i * 3) % len(_PLACES)]
        sentences = [" ".join(rng.choice(_WORDS) for _ in range(14)).capitalize() + "." for _ in range(9)]
        sentences.insert(2, f"{name} said in {place} on Tuesday that the plan would go ahead.")
        out.append({"url": f"https://wire.example/{i}", "title": f"{place} story {i}", "text": " ".join(sentences)})
    return out


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backstory", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def start_worker(database: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "backstory", "worker", "--archive", database],
                               env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
    return process


def jobs_running(database: str) -> bool:
    with psycopg.connect(database) as conn:
        return conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'").fetchone()[0] > 0


def pending(server: str) -> int:
    return httpx.get(server + "/readyz", timeout=10).json()["pending_analysis"]


def wait_for(check, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def database(postgres_url: str, tmp_path: Path) -> str:
    return postgres_database(postgres_url, "team_" + hashlib.blake2b(str(tmp_path).encode(), digest_size=6).hexdigest())


@pytest.fixture
def env() -> dict[str, str]:
    """The processes' environment: this machine's, without its Backstory settings."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("BACKSTORY_")},
            "BACKSTORY_WORKER_STALLED_AFTER": STALLED_AFTER, "PYTHONUNBUFFERED": "1"}


def test_two_servers_and_a_worker_on_one_database(database: str, env: dict[str, str], tmp_path: Path) -> None:
    servers_env = {**env, "BACKSTORY_SERVER_TAKES_JOBS": "false"}  # a thin API tier: the worker alone takes jobs
    a = start_server(tmp_path / "a", servers_env, archive=database)
    b = start_server(tmp_path / "b", servers_env, archive=database)
    worker = None
    try:
        # What one server stores, the other finds: in its search and in its related stories.
        title, text = FIRE_A[0]
        stored = httpx.post(a.url + "/api/v1/analyze", json={"url": "https://news.example/fire/0", "title": title,
                                                              "text": text}, timeout=60).json()
        t0 = time.monotonic()

        def b_finds_it() -> bool:
            found = httpx.get(b.url + "/api/v1/stories", params={"q": "Cactus Ridge"}, timeout=10).json()["stories"]
            return stored["story_id"] in [s["story_id"] for s in found]

        wait_for(b_finds_it, 2.0, "B's search")
        other_title, other_text = FIRE_A[1]

        def b_relates_it() -> bool:
            answer = httpx.post(b.url + "/api/v1/analyze", json={"url": "https://other.example/fire/1", "archive": False,
                                                                 "title": other_title, "text": other_text}, timeout=60)
            return stored["story_id"] in [r["story_id"] for r in answer.json()["related"]]

        wait_for(b_relates_it, 2.0 - (time.monotonic() - t0) + 2.0, "B's related")  # the analysis itself takes time

        # A bulk import stores at once and leaves one job a story; the worker does them.
        batch = stories(24)
        source = tmp_path / "import.jsonl"
        source.write_text("".join(json.dumps(row) + "\n" for row in batch), encoding="utf-8")
        done = cli("import", str(source), "--archive", database, env=env)
        assert done.returncode == 0, done.stderr
        queue = httpx.get(a.url + "/readyz", timeout=10).json()["queue"]
        assert pending(a.url) == queue["waiting"] == len(batch)

        log = tmp_path / "worker.log"
        worker = start_worker(database, env, log)
        wait_for(lambda: pending(a.url) <= 18 and jobs_running(database), 120, "the worker's first stories")
        worker.send_signal(signal.SIGKILL)  # midway, with a job in its hands (an analysis takes a few 100 ms)
        worker.wait(timeout=10)
        left = pending(a.url)
        assert left > 0, "the worker finished before it could be killed"
        worker = start_worker(database, env, log)
        wait_for(lambda: pending(a.url) == 0, 180, "the restarted worker")
        assert "stalled with its worker; retrying it" in log.read_text(errors="replace")  # the killed one's job

        listed = httpx.get(a.url + "/api/v1/stories", params={"limit": 100}, timeout=10).json()
        urls = [s["url"] for s in listed["stories"]]
        assert listed["total"] == len(batch) + 1 and len(set(urls)) == len(urls)  # each story once
        for row in batch:
            story_id = next(s["story_id"] for s in listed["stories"] if s["url"] == row["url"])
            full = httpx.get(f"{a.url}/api/v1/stories/{story_id}", timeout=10).json()
            assert full["analysed"] and full["entities"] and full["keyphrases"], row["url"]
        metrics = httpx.get(a.url + "/metrics", timeout=10).text
        assert "backstory_jobs_waiting 0" in metrics and "backstory_jobs_failed 0" in metrics
        assert f"backstory_stories {len(batch) + 1}" in metrics
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=30)
        a.stop()
        b.stop()


def test_a_thin_server_hands_readers_analyses_to_a_worker(database: str, env: dict[str, str], tmp_path: Path) -> None:
    """BACKSTORY_ANALYSIS=remote: the server loads no models; a worker analyzes, the server stores
    and relates; a worker's error reaches the reader as it was; with no worker, a 503 in time."""
    thin = start_server(tmp_path / "thin", {**env, "BACKSTORY_ANALYSIS": "remote", "BACKSTORY_ANALYSIS_DEADLINE": "4"},
                        archive=database)
    worker = None
    try:
        title, text = FIRE_A[0]
        alone = httpx.post(thin.url + "/api/v1/analyze", json={"url": "https://news.example/fire/0", "title": title,
                                                                "text": text}, timeout=60)
        assert alone.status_code == 503 and "no worker" in alone.json()["detail"] and alone.headers["retry-after"]
        assert httpx.get(thin.url + "/api/v1/stories", timeout=10).json()["total"] == 0  # nothing stored

        worker = start_worker(database, env, tmp_path / "worker.log")
        first = None
        for attempt in range(60):  # until the worker has loaded its models
            answer = httpx.post(thin.url + "/api/v1/analyze", json={"url": "https://news.example/fire/0",
                                                                     "title": title, "text": text}, timeout=60)
            if answer.status_code == 200:
                first = answer.json()
                break
            assert answer.status_code == 503, answer.text
        assert first is not None and first["archived"] and first["entities"] and first["keyphrases"]
        assert first["timings_ms"]["entities"] > 0
        other_title, other_text = FIRE_A[1]
        second = httpx.post(thin.url + "/api/v1/analyze", json={"url": "https://other.example/fire/1",
                                                                 "title": other_title, "text": other_text},
                            timeout=60).json()
        assert first["story_id"] in [r["story_id"] for r in second["related"]]  # related by the thin server's index
        again = httpx.post(thin.url + "/api/v1/analyze", json={"url": "https://news.example/fire/0", "title": title,
                                                                "text": text}, timeout=60).json()
        assert again["cached"] and again["story_id"] == first["story_id"]
        not_article = httpx.post(thin.url + "/api/v1/analyze", json={"url": "https://news.example/empty",
                                                                      "html": "<html><body><p>Hi.</p></body></html>"},
                                 timeout=60)
        assert not_article.status_code == 422 and not_article.json()["title"] == "No article found"
        ready = httpx.get(thin.url + "/readyz", timeout=10).json()
        assert ready["status"] == "ready" and ready["queue"]["failed"] == 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=30)
        thin.stop()


async def test_one_job_a_story_and_a_newer_schema_refused(database: str, tmp_path: Path) -> None:
    import psycopg as pg

    from backstory.archive import create_archive
    from backstory.archive.postgres import SCHEMA_VERSION
    from backstory.archive.storage import SchemaTooNew
    from backstory.jobs import JobQueue

    async with create_archive(database):
        pass  # created: the schema and the queue's tables
    async with JobQueue(database) as jobs:
        assert await jobs.defer_analysis("00000000000000aa")
        assert not await jobs.defer_analysis("00000000000000aa")  # one waits for it already
        assert await jobs.defer_analysis("00000000000000bb")
        assert (await jobs.stats()).waiting == 2
    with pg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    from backstory.archive import ArchiveUnavailable, check_archive
    from backstory.config import Settings

    with pytest.raises(ArchiveUnavailable, match="newer than this Backstory"):
        check_archive(Settings(archive=database))  # every command stops here, before it starts anything
    newer = create_archive(database)
    with pytest.raises(SchemaTooNew, match="newer than this Backstory"):
        await newer.start()
    await newer.close()
