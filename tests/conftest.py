"""Shared fixtures: the models (loaded once), a settings object on a real SQLite file, the app's
AsyncTestClient and a real HTTP page server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import threading
import warnings
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from litestar.testing import AsyncTestClient

from backstory.config import Settings


# The address tests call the app at: the server answers only to the Host names it is bound to
# (loopback by default), so the test client's own "testserver.local" would be refused.
BASE_URL = "http://127.0.0.1:8000"


# The archive suites (test_archive, test_related, test_feed) run on every backend named here.
ARCHIVE_BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL (with pgvector) from the pgserver package, for the whole session: the URL
    of its maintenance database. Its data directory is not under /root nor pytest's private
    temporary directory: as root, pgserver runs the server as a user of its own, who must reach it."""
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset (no login session): harmless
        warnings.simplefilter("ignore")
        import pgserver

    directory = Path(tempfile.mkdtemp(prefix="backstory-pg-"))
    server = pgserver.get_server(directory, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def postgres_database(postgres_url: str, name: str) -> str:
    """The URL of the database ``name`` on the test server, created (empty) if it is not there."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(params=ARCHIVE_BACKENDS)
def archive_urls(request: pytest.FixtureRequest, tmp_path: Path):
    """``name -> URL`` of an archive on the backend under test, new and empty at first (the same
    name is the same archive again)."""
    if request.param == "sqlite":
        return lambda name="archive": f"sqlite:///{tmp_path / name}.sqlite3"
    server = request.getfixturevalue("postgres_url")
    test = hashlib.blake2b(str(tmp_path).encode(), digest_size=6).hexdigest()
    return lambda name="archive": postgres_database(server, f"t{test}_{name}")


@pytest.fixture
def new_archive(archive_urls):
    """A factory of not yet opened archives on the backend under test (see ``archive_urls``)."""
    from backstory.archive import create_archive

    return lambda name="archive": create_archive(archive_urls(name))


@pytest.fixture(scope="session")
def models():
    from backstory.pipeline import Models

    return Models.load()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(archive=str(tmp_path / "archive.sqlite3"), allowed_networks=["127.0.0.0/8"])


async def wait_ready(client: AsyncTestClient, timeout: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get("/readyz")
        if response.status_code == 200:
            return
        assert response.json().get("status") != "failed", response.text
        assert asyncio.get_running_loop().time() < deadline, "server never became ready"
        await asyncio.sleep(0.05)


@pytest.fixture
async def client(settings: Settings, models) -> AsyncIterator[AsyncTestClient]:
    from backstory.app import create_app

    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as c:
        await wait_ready(c)
        yield c


async def story_count(client: AsyncTestClient) -> int:
    """How many stories the archive holds, as the API lists them."""
    response = await client.get("/api/v1/stories")
    assert response.status_code == 200, response.text
    return response.json()["total"]


def assert_problem(response, status: int) -> dict:
    """The response is a problem+json of this status, with a title and a detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@dataclass
class Route:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class LoopbackServer:
    """A threading HTTP server on a free 127.0.0.1 port, serving ``handler`` until closed."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class PageServer(LoopbackServer):
    """A real HTTP server on 127.0.0.1 serving the routes a test sets."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits.append(self.path)
                route = routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"not found")
                    return
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(Handler)

    def add(self, path: str, body: str | bytes, **kwargs) -> str:
        self.routes[path] = Route(body.encode() if isinstance(body, str) else body, **kwargs)
        return self.url(path)


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()
