"""Finding 9: the README's two set-up commands work on a machine where `uv` is not a command.

A new machine has no `uv`, and right after `pip install uv` a shell may still not find one: only
`python3 -m uv` works. Both scripts are run here with every PATH directory that holds a `uv`
removed, and a `python3` that has uv as a module (or gets it from pip, as the scripts do)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env_without_uv(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The interpreter the project's environment was made from: a plain `python3`.
    (bin_dir / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    kept = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.access(os.path.join(d, "uv"), os.X_OK)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKSTORY_", "VIRTUAL_ENV", "UV_"))}
    env["PATH"] = os.pathsep.join([str(bin_dir), *kept])
    probe = subprocess.run(["bash", "-c", "command -v uv || true"], env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == "", f"uv is still a command: {probe.stdout}"
    return env


def test_sourcing_the_helper_gives_a_working_uv(env_without_uv: dict[str, str]) -> None:
    """After `. scripts/_uv.sh`, both `uv` and `"${UV[@]}"` run uv, though uv is no command."""
    done = subprocess.run(["bash", "-c", '. scripts/_uv.sh && uv --version && "${UV[@]}" --version'],
                          cwd=ROOT, env=env_without_uv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("uv ") == 2, done.stdout


def test_the_test_command_runs_without_a_uv_command(env_without_uv: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "scripts/test", "-q", "-p", "no:cacheprovider", "tests/test_threads.py"],
        cwd=ROOT, env=env_without_uv, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "command not found" not in done.stderr


def test_the_serve_command_starts_without_a_uv_command(env_without_uv: dict[str, str], tmp_path: Path) -> None:
    """`scripts/serve` syncs without the dev packages: into an environment of its own here, so
    the one running these tests keeps pytest."""
    env = {**env_without_uv, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        ["bash", "scripts/serve", "--port", str(port), "--archive", str(tmp_path / "archive.sqlite3")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the server never answered: " + (tmp_path / "serve.log").read_text(errors="replace")[-3000:])
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)
        log.close()
    assert shutil.which("uv", path=env["PATH"]) is None
