"""Schemathesis against the live OpenAPI document of the real server, with every check (issue 19).

    .venv/bin/python scripts/fuzz.py                  # 300 examples per operation
    .venv/bin/python scripts/fuzz.py -n 2000          # many more
    .venv/bin/python scripts/fuzz.py -n 50 --seed 1   # a short, repeatable run

The server is the real app (real models, a real SQLite file in a temporary folder) under uvicorn
on 127.0.0.1, with a bearer token (so the auth checks have something to check). Its fetcher may
reach only a page server on 127.0.0.2: a URL schemathesis makes up either names a host that does
not resolve (502, documented), an address the fetcher refuses (422, documented), or that page
server — never the API itself or anything else on the machine.

``schemathesis run --checks all`` runs every phase (examples, coverage, fuzzing, stateful) with
two expectations widened to what the document promises (see CHECKS): the documented 502/503/504
of a fetch or of the analysis budget are not server errors (any 500 still is), and a request
that fits the schema may still be refused for what no schema can say (413/415/422: the fetched
page is too big or not HTML, the address may not be fetched, the page has no article).

Prints the number of generated cases and every failure; exits 1 on any failure. The hardening
suite (tests/hardening/test_fuzz.py) runs the same function with fewer examples. The command is
``scripts/fuzz.py`` (or ``python -m backstory_tools.fuzz``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

PAGE_HOST = "127.0.0.2"  # the only address the fetcher may reach; the API listens on 127.0.0.1

CHECKS = """
[checks]
not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502", "503", "504"]
positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429",
                                              "413", "415", "422", "502", "503", "504"]
"""

ARTICLE = (
    "<html><head><title>Open models</title></head><body><article><h1>Open models</h1>"
    + "<p>Sam Altman said in San Francisco on Tuesday that OpenAI would publish open models, "
    "and researchers at Stanford University welcomed the news.</p>" * 8
    + "</article></body></html>"
).encode()


@dataclass
class FuzzResult:
    cases: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0
    output: str = ""
    seconds: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures and not self.errors


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.2 with one article at / (every other path is 404)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            found = self.path in ("/", "/article")
            body = ARTICLE if found else b"not found"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8" if found else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer((PAGE_HOST, 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{PAGE_HOST}:{httpd.server_address[1]}/article"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def live_server(settings: Any, models: Any) -> Iterator[str]:
    """The real app under uvicorn on 127.0.0.1 (a free port), in a thread; yields its base URL once
    /readyz answers 200."""
    import httpx
    import uvicorn

    from backstory.app import create_app

    config = uvicorn.Config(create_app(settings, models=models), host="127.0.0.1", port=0,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not (server.started and server.servers):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        while httpx.get(f"{base}/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the server never became ready")
            time.sleep(0.1)
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


def fuzz_settings(archive_path: str, token: str) -> Any:
    from backstory.config import Settings

    return Settings(archive=archive_path, allowed_networks=[f"{PAGE_HOST}/32"], api_token=token)


def run_schemathesis(base_url: str, token: str, *, max_examples: int, workdir: Path, seed: int | None = None,
                     workers: int = 1, timeout: float = 1800) -> FuzzResult:
    """``schemathesis run --checks all`` against ``base_url``'s document; the counts from its JSON report."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "schemathesis.toml").write_text(CHECKS)
    report = workdir / "report.json"
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{base_url}/schema/openapi.json",
        "--checks", "all", "--max-examples", str(max_examples), "--workers", str(workers),
        "--header", f"Authorization: Bearer {token}", "--request-timeout", "60",
        "--report", "json", "--report-json-path", str(report), "--no-color",
        *(["--seed", str(seed)] if seed is not None else []),
    ]
    started = time.monotonic()
    # cwd: schemathesis.toml is read from there, and its example database is written there.
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - started
    data = json.loads(report.read_text()) if report.exists() else {}
    cases = data.get("test_cases", {}).get("generated", 0)
    return FuzzResult(cases=cases, failures=data.get("failures", []), errors=data.get("errors", []),
                      exit_code=done.returncode, output=done.stdout + done.stderr, seconds=seconds, report=data)


def fuzz(models: Any, *, max_examples: int, seed: int | None = None, workers: int = 1) -> FuzzResult:
    """One whole run: a fresh archive, the page server, the live app, schemathesis."""
    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="backstory-fuzz-") as tmp, page_server():
        settings = fuzz_settings(str(Path(tmp) / "archive.sqlite3"), token)
        with live_server(settings, models) as base:
            return run_schemathesis(base, token, max_examples=max_examples, workdir=Path(tmp) / "st",
                                    seed=seed, workers=workers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--max-examples", type=int, default=300, help="examples per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis' seed (random by default)")
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers (requests in flight)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print schemathesis' own output")
    args = parser.parse_args()
    from backstory.pipeline import Models

    models = Models.load()
    try:
        result = fuzz(models, max_examples=args.max_examples, seed=args.seed, workers=args.workers)
    finally:
        models.close()
    if args.verbose or not result.ok:
        print(result.output)
    print(f"schemathesis --checks all: {result.cases} cases in {result.seconds:.0f} s, "
          f"{len(result.failures)} failure groups, {len(result.errors)} errors (seed {result.report.get('seed')})")
    for failure in [*result.failures, *result.errors]:
        print(f"  - {failure.get('title')} ×{failure.get('count')} {failure.get('operations', '')}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
