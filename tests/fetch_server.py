"""The real HTTP(S) servers on 127.0.0.x that the fetcher's tests (test_fetch*.py) fetch from.

Linux routes all of 127.0.0.0/8 to lo, so a server on 127.0.0.2 is "another host" that the
tests admit with allowed_networks=["127.0.0.2/32"], while 127.0.0.1 stays refused. A test module
uses the fixtures by importing them (``serve``, ``certificate``, ``tls_server``).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

from backstory.config import Settings

PAGE = b"<!doctype html><html><head><title>Tide tables</title></head><body><p>High water at noon.</p></body></html>"
ALLOW_2 = Settings(allowed_networks=["127.0.0.2/32"], fetch_timeout=5.0)

Route = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """A threaded HTTP server on ``host``, port 0, answering from ``routes`` and recording requests."""

    def __init__(self, host: str, routes: dict[str, Route], tls: ssl.SSLContext | None = None) -> None:
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sent = 0  # body bytes the handlers managed to write
        self.release = threading.Event()  # sleeping handlers wake up on close
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    send(self, 404, b"not here", "text/plain")
                    return
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass

            def log_message(self, *args) -> None:
                pass

        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6}) \
            if ":" in host else ThreadingHTTPServer
        self.httpd = server_class((host, 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/", host: str | None = None, scheme: str = "http") -> str:
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str | None = "text/html; charset=utf-8",
         headers: dict[str, str] | None = None, length: bool = True) -> None:
    h.send_response(status)
    if ctype is not None:
        h.send_header("Content-Type", ctype)
    if length:
        h.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    h.end_headers()
    h.wfile.write(body)


def redirect(location: str, status: int = 302, headers: dict[str, str] | None = None) -> Route:
    return lambda h: send(h, status, b"", None, {"Location": location, **(headers or {})})


def page(body: bytes = PAGE, ctype: str | None = "text/html; charset=utf-8", **kw) -> Route:
    return lambda h: send(h, 200, body, ctype, **kw)


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(routes: dict[str, Route], host: str = "127.0.0.2", tls: ssl.SSLContext | None = None) -> Server:
        server = Server(host, routes, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def resolver_for(mapping: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in mapping:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return mapping[host]

    return resolve


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=secure.example",
         "-addext", "subjectAltName=DNS:secure.example", "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(serve, certificate):
    cert, key = certificate
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    seen_sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    srv = serve({"/": page()}, tls=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    return srv, client_ctx, seen_sni
