"""The real server under test: ``python -m backstory serve`` in a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from backstory_tools.bench.common import ROOT, python
from backstory_tools.bench.procs import proc_cpu_by_process, proc_cpu_s, proc_memory


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m backstory serve`` as a subprocess on 127.0.0.1 and a free port."""

    def __init__(self, archive: Path | str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.archive = archive
        self.env = env or {}
        self.log_path = log_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> dict:
        import httpx

        env = {**os.environ, "BACKSTORY_LOG_LEVEL": "WARNING", **self.env}
        self.log_fh = self.log_path.open("ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [python(), "-m", "backstory", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--archive", str(self.archive)],
            cwd=ROOT, env=env, stdout=self.log_fh, stderr=subprocess.STDOUT,
        )
        listening = None
        body: dict = {}
        with httpx.Client(base_url=self.base, timeout=2.0) as client:
            while time.perf_counter() - started < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    r = client.get("/readyz")
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if listening is None:
                    listening = time.perf_counter() - started
                body = r.json()
                if r.status_code == 200:
                    ready = time.perf_counter() - started
                    return {"listening_s": round(listening, 2), "ready_s": round(ready, 2),
                            "server_ready_after_s": body.get("ready_after_s"), **proc_memory(self.proc.pid)}
                if body.get("status") == "failed":
                    raise RuntimeError(f"the server's models failed to load: {body.get('error')}")
                time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout:.0f} s ({body}); see {self.log_path}")

    def memory(self) -> dict:
        return proc_memory(self.proc.pid) if self.proc else {}

    def cpu_s(self) -> float | None:
        return proc_cpu_s(self.proc.pid) if self.proc else None

    def cpu_by_process(self) -> dict[str, float]:
        return proc_cpu_by_process(self.proc.pid) if self.proc else {}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log_fh.close()
