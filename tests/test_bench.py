"""Pieces of ``scripts/bench.py`` (``backstory_tools.bench``) that its verdicts rest on: the ideal
server that bounds what any server could do under the load phase, and the per-thread CPU reading
of a process tree."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from pathlib import Path

import pytest

from backstory_tools.bench.ideal import ideal_server
from backstory_tools.bench.procs import proc_tree, roles, thread_cpu, thread_cpu_per_request


def test_ideal_server_with_equal_requests_is_clients_times_cost_over_cores() -> None:
    r = ideal_server([100.0], clients=16, seconds=30, cores=2)
    assert r["throughput_per_s"] == 20.0  # 2 cores / 100 ms
    # once the first round has passed, every request waits for the 15 ahead of it: 16 x 100 / 2
    assert r["latency_ms"]["p50"] == 800.0 and r["latency_ms"]["p95"] == 800.0
    assert r["latency_ms"]["n"] == 600


def test_ideal_server_obeys_littles_law_and_serves_in_order() -> None:
    costs = [60.0, 310.0, 120.0, 95.0, 240.0, 180.0, 75.0]
    r = ideal_server(costs, clients=16, seconds=60, cores=2)
    mean_cost = statistics.fmean(costs)
    assert r["mean_cost_ms"] == pytest.approx(mean_cost, abs=0.05)
    assert r["throughput_per_s"] == pytest.approx(2000 / mean_cost, rel=0.01)
    assert r["mean_ms"] == pytest.approx(16 * mean_cost / 2, rel=0.02)
    # first come, first served: nobody waits for more than the 15 dearest others and itself
    assert r["latency_ms"]["max"] <= sum(sorted(costs * 16)[-16:]) / 2
    assert r["latency_ms"]["p95"] > r["latency_ms"]["p50"]


def test_ideal_server_costs_follow_the_load_phase_order() -> None:
    # one dear page among cheap ones: its share of the work sets the rate
    cheap = ideal_server([100.0] * 9 + [100.0], clients=4, seconds=20)
    dear = ideal_server([100.0] * 9 + [1100.0], clients=4, seconds=20)
    assert dear["throughput_per_s"] == pytest.approx(cheap["throughput_per_s"] * 100 / 200, rel=0.02)


def test_shortest_first_starves_the_dear_pages() -> None:
    costs = [60.0, 310.0, 120.0, 95.0, 240.0, 180.0, 75.0]
    fifo = ideal_server(costs, clients=16, seconds=60)
    sjf = ideal_server(costs, clients=16, seconds=60, shortest_first=True)
    assert sjf["latency_ms"]["p50"] < fifo["latency_ms"]["p50"]
    assert sjf["latency_ms"]["p95"] > 3 * fifo["latency_ms"]["p95"]
    assert sjf["waiting_at_end_ms"] > 3 * fifo["waiting_at_end_ms"]
    assert fifo["waiting_at_end_ms"] <= fifo["latency_ms"]["max"]


def test_thread_cpu_names_this_process_and_its_busy_thread() -> None:
    from backstory.threads import name_os_thread

    spun, read = threading.Event(), threading.Event()

    def spin() -> None:
        name_os_thread()
        # 0.3 s of this thread's own CPU, not of wall time: on a busy machine the wall time
        # passes while the thread waits for a core, and it would spin for less.
        stop = time.thread_time() + 0.3
        while time.thread_time() < stop:
            pass
        spun.set()
        read.wait(10)  # a finished thread leaves /proc: stay until it has been read

    before = thread_cpu(os.getpid())
    thread = threading.Thread(target=spin, name="backstory-bench-spin")
    thread.start()
    assert spun.wait(10)
    during = thread_cpu(os.getpid())
    read.set()
    thread.join()
    assert ("server", "main") in during
    rows = thread_cpu_per_request(before, during, answered=1)
    mine = [r for r in rows if r["thread"] == "bench-spin"]
    assert mine and mine[0]["process"] == "server" and mine[0]["cpu_ms_per_request"] >= 200


def test_each_process_of_the_tree_gets_a_role_of_its_own() -> None:
    import subprocess

    # a child with a child of its own (as the tagger process forks the NER process), and a
    # second child of this process (as after a crash, when both are started fresh); other tests
    # may have left processes of their own running under this one
    first = subprocess.Popen(["bash", "-c", "sleep 30 & wait"], start_new_session=True)
    second = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while len(proc_tree(first.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        grandchild = [p for p in proc_tree(first.pid) if p != first.pid]
        found = roles(os.getpid())
        assert found[os.getpid()] == "server"
        assert len(set(found.values())) == len(found)  # no two alike
        assert found[first.pid].startswith("spaCy tagger process")
        assert found[second.pid].startswith("spaCy tagger process")
        assert len(grandchild) == 1 and found[grandchild[0]].startswith("spaCy NER process")
        assert f"spaCy tagger process {first.pid}" in found.values() or f"spaCy tagger process {second.pid}" in found.values()
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the shell and its sleep
        second.kill()
        for proc in (first, second):
            proc.wait()


# The PostgreSQL side (issue 16): ``--database-url`` and its rows beside SQLite's.

def _recorded_pg_report() -> dict:
    """The shape ``bench.py --database-url pgserver`` writes (figures of a small run, rounded)."""
    def stages(e2e: float, other: float, related: float, n: int) -> dict:
        return {"e2e_client": {"n": n, "p50": e2e, "p95": e2e * 1.3}, "total": {"n": n, "p50": e2e - 4},
                "other_server": {"n": n, "p50": other}, "related": {"n": n, "p50": related}}

    return {
        "meta": {"date": "2026-12-06T08:14:20+00:00", "commit": "abc1234", "loadavg_start": [1.1, 1.8, 1.9],
                 "loadavg_end": [1.9, 1.8, 1.9], "machine": {"cpu": "AMD EPYC", "cores": 2, "avx2": True,
                                                             "memory": "23.5 GB RAM", "python": "3.11.9"}},
        "archive": {"size": 10_000},
        "analyze_uncached": {"pages": stages(160.0, 7.0, 4.2, 91), "texts": stages(171.0, 5.5, 6.4, 154)},
        "cold_start": {"ready_s": 4.3},
        "memory": {"after_warmup": {"footprint": 409.0}},
        "import": {"rate_steady_per_s": 60.0, "backlog": {"rate_per_s": 5.9}},
        "per_document": [{"id": f"p{i}", "kind": "page", "e2e_ms": ms, "words": 800} for i, ms in enumerate((100, 200, 400))],
        "related_lookup": [{"n": 100_000, "p50_ms": 2.1}, {"n": 1_000_000, "p50_ms": 3.3, "build_s": 57.0,
                                                            "peak_rss_mb": 8100.0}],
        "postgres": {
            "database": "a throwaway pgserver (PyPI)", "postgresql": "16.2", "pgvector": "0.7.0",
            "analyze_uncached": {"paired": True, "pages": stages(193.0, 17.0, 6.5, 91), "texts": stages(164.0, 13.2, 6.3, 154)},
            "migrate": {"returncode": 0, "seconds": 116.4, "stories": 10_000, "rate_per_s": 85.9},
            "per_document": [{"id": f"p{i}", "kind": "page", "e2e_ms": ms, "words": 800}
                             for i, ms in enumerate((110, 210, 380))],
            "cold_start": {"ready_s": 6.25},
            "memory": {"after_warmup": {"footprint": 434.0, "per_process_rss": {"server": 312.3}}},
            "import_rounds": [
                {"workers": 1, "import": {"rate_steady_per_s": 41.0},
                 "backlog": {"stories": 100, "left": 0, "rate_steady_per_s": 5.8, "memory": {"footprint": 422.0}}},
                {"workers": 2, "import": {"rate_steady_per_s": 40.0},
                 "backlog": {"stories": 100, "left": 0, "rate_steady_per_s": 6.1}},
            ],
        },
    }


def test_database_url_is_off_by_default_and_takes_pgserver_or_a_url() -> None:
    from backstory_tools.bench.run import parse_args

    assert parse_args([]).database_url is None
    assert parse_args(["--database-url", "pgserver", "--quick"]).database_url == "pgserver"
    url = "postgresql://bench@db.example/empty"
    assert parse_args(["--database-url", url]).database_url == url


def test_postgres_rows_beside_sqlite_in_the_verdicts_table_and_markdown(capsys: pytest.CaptureFixture) -> None:
    from backstory_tools.bench.report import markdown, print_report, verdicts

    report = _recorded_pg_report()
    rows = {r["figure"]: r for r in verdicts(report)}
    pages = rows["PostgreSQL / SQLite, analyze p50, all pages, uncached, e2e"]
    assert pages["measured"] == pytest.approx(193 / 160, abs=0.001) and pages["ok"] is False  # 1.21 > 1.15
    assert "other (dedup check, archive write) p50 17 vs 7 ms" in pages["note"]
    assert "median of the per-document ratios 1.05" in pages["note"]  # 1.1, 1.05, 0.95: paired, document by document
    texts = rows["PostgreSQL / SQLite, analyze p50, DUC texts, uncached, e2e"]
    assert texts["ok"] is True and texts["unit"] == "×"
    lookup = rows["PostgreSQL: related lookup p50 at 100,000 stories"]
    assert lookup["measured"] == 2.1 and lookup["ok"] is True and "same in-memory code" in lookup["note"]
    assert "related stage p50 is 6.5 ms on PostgreSQL and 4.2 ms on SQLite" in lookup["note"]
    on_paper = rows["PostgreSQL: related at 1,000,000 stories (on paper)"]
    assert on_paper["ok"] is None and "~8 GB" in on_paper["note"]
    assert rows["PostgreSQL: bulk import (steady, text stories, store-only)"]["ok"] is True
    assert rows["PostgreSQL: backlog completed by 1 worker (steady)"]["measured"] == 5.8
    assert rows["PostgreSQL: backlog completed by 2 workers (steady)"]["unit"] == "/s"
    assert rows["PostgreSQL: server memory after warm-up"]["ok"] is True
    assert rows["PostgreSQL: one worker's memory, its backlog done"]["measured"] == 422.0
    assert rows["PostgreSQL: migrate-archive of the 10,000-story archive"]["ok"] is None
    assert rows["PostgreSQL: cold start to /readyz"]["ok"] is True

    report["verdicts"] = verdicts(report)
    print_report(report)
    printed = capsys.readouterr().out
    assert "postgres pages" in printed and "postgres texts" in printed and "ours pages" in printed
    md = markdown(report)
    assert "| ours on PostgreSQL pages | 91 |" in md and "| PostgreSQL: cold start to /readyz | 6.25 s" in md

    del report["postgres"]  # a run without --database-url: SQLite's rows alone
    assert not [r for r in verdicts(report) if r["figure"].startswith("PostgreSQL")]


@pytest.mark.postgres
def test_import_rounds_on_a_real_database_complete_every_story(postgres_url: str, tmp_path: Path) -> None:
    """The PostgreSQL phase of the bench on a pgserver database, with three stories: each round
    empties the database, imports them store-only and lets 1, then 2 workers complete them."""
    import json

    from backstory_tools.bench.postgres import Database, import_rounds

    from .conftest import postgres_database
    from .test_workers import stories

    db = Database(postgres_database(postgres_url, "bench_rounds"))
    db.empty()
    source = tmp_path / "stories.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in stories(3)), encoding="utf-8")
    rounds = import_rounds(db, source, (1, 2), tmp_path / "worker.log", timeout=120)
    assert [r["workers"] for r in rounds] == [1, 2]
    for r in rounds:
        assert r["import"]["stories"] == 3 and r["import"]["failed"] == 0
        assert r["backlog"]["stories"] == 3 and r["backlog"]["left"] == 0
    assert rounds[0]["backlog"]["memory"]["processes"] >= 1  # the one worker's, once it is done
    assert db.count() == 3 and db.pending() == 0  # the second round's, on the emptied database


async def test_fetched_import_bench_sites_serve_the_pocket_export_they_are_listed_in(tmp_path: Path) -> None:
    """scripts/bench_import.py's web: every CSV entry is a URL one of the 8 sites serves, as an article."""
    from backstory.config import Settings
    from backstory.extract import decode_html, extract_article
    from backstory.imports import Entry, read
    from backstory.polite import PoliteFetcher
    from backstory_tools.bench.import_pages import ADDRESSES, Sites, write_pocket_csv

    sites = Sites()
    try:
        path = write_pocket_csv(tmp_path / "part_000000.csv", 20, sites.port)
        with path.open("rb") as fh:
            entries = [item for item in read(fh) if isinstance(item, Entry)]
        assert len(entries) == 20 and {e.url.split("/")[2].split(":")[0] for e in entries} == set(ADDRESSES)
        async with PoliteFetcher(Settings(allowed_networks=["127.0.0.0/8"], fetch_host_delay=0)) as fetcher:
            for entry in entries[8:10]:  # entry 9 redirects to its story
                page = await fetcher.fetch(entry.url)
                article = extract_article(decode_html(page.body, page.content_type), page.final_url)
                assert page.final_url.endswith(f"/news/{entries.index(entry)}") and entry.title == article.title
                assert len(article.text) > 300
        assert entries[9].url.split("/")[3] == "r" and entries[0].tags
    finally:
        sites.close()
