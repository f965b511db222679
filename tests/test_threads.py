"""The server's threads carry their names to the OS (``top -H``, ``/proc/PID/task/*/comm``)."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backstory.threads import name_os_thread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OS thread names are read from /proc")


def _os_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


def test_a_thread_gets_its_python_name_without_the_project_prefix() -> None:
    seen: list[str] = []

    def run() -> None:
        name_os_thread()
        seen.append(_os_name())

    thread = threading.Thread(target=run, name="backstory-archive-writer")
    thread.start()
    thread.join()
    assert seen == ["archive-writer"]


def test_pool_threads_are_named_by_their_initializer() -> None:
    with ThreadPoolExecutor(2, thread_name_prefix="analyze", initializer=name_os_thread) as pool:
        names = set(pool.map(lambda _: _os_name(), range(8)))
    assert names and all(n.startswith("analyze_") for n in names)
    assert _os_name() != "analyze_0"  # the caller's own thread keeps its name


def test_the_load_profile_script_says_so_when_the_data_is_missing(tmp_path: Path, capsys) -> None:
    import runpy

    script = Path(__file__).resolve().parents[1] / "scripts" / "loadprof.py"
    main = runpy.run_path(str(script))["main"]
    assert main(["--data", str(tmp_path)]) == 0
    assert "evaluation data not found" in capsys.readouterr().out
