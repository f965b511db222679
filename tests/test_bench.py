"""Pieces of ``scripts/bench.py`` (``backstory_tools.bench``) that its verdicts rest on: the ideal
server that bounds what any server could do under the load phase, and the per-thread CPU reading
of a process tree."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time

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
