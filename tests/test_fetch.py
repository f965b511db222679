"""fetch.fetch_page and its SSRF guard, against real HTTP(S) servers on 127.0.0.x.

Linux routes all of 127.0.0.0/8 to lo, so a server on 127.0.0.2 is "another host" that the
tests admit with allowed_networks=["127.0.0.2/32"], while 127.0.0.1 stays refused.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

from backstory import __version__, errors
from backstory.config import Settings
from backstory.extract import decode_html
from backstory.fetch import FetchedPage, fetch_page, looks_like_html
from backstory.ssrf_guard import blocked_reason

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


# --- normal fetches -------------------------------------------------------------------------


async def test_normal_page(serve):
    srv = serve({"/story": page(headers={"Set-Cookie": "track=1"})})
    got = await fetch_page(srv.url("/story"), ALLOW_2)
    assert isinstance(got, FetchedPage)
    assert (got.status, got.media_type, got.charset, got.body) == (200, "text/html", "utf-8", PAGE)
    assert got.content_type == "text/html; charset=utf-8"
    assert got.final_url == got.url == srv.url("/story")
    assert got.address == "127.0.0.2" and got.redirects == []
    assert "High water at noon." in decode_html(got.body, got.content_type)
    path, headers = srv.requests[0]
    assert path == "/story"
    assert headers["user-agent"] == f"Backstory/{__version__} (+self-hosted reading assistant)"
    assert headers["accept"].startswith("text/html")
    assert headers["host"] == f"127.0.0.2:{srv.port}"
    assert "cookie" not in headers


async def test_hostname_goes_to_resolved_address_with_original_host_header(serve):
    srv = serve({"/a": page()})
    calls: list[str] = []
    url = srv.url("/a", host="news.example")
    got = await fetch_page(url, ALLOW_2, resolver=resolver_for({"news.example": ["127.0.0.2"]}, calls))
    assert got.final_url == url and got.address == "127.0.0.2"
    assert calls == ["news.example"]
    assert srv.requests[0][1]["host"] == f"news.example:{srv.port}"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1 on this machine")
async def test_ipv6_address_when_allowed(serve):
    srv = serve({"/": page()}, host="::1")
    url = f"http://v6.example:{srv.port}/"
    resolve = resolver_for({"v6.example": ["::1"]})
    with pytest.raises(errors.BlockedAddress, match="loopback"):
        await fetch_page(url, Settings(), resolver=resolve)
    got = await fetch_page(url, Settings(allowed_networks=["::1/128"]), resolver=resolve)
    assert got.address == "::1" and got.body == PAGE
    assert srv.requests[0][1]["host"] == f"v6.example:{srv.port}"
    assert (await fetch_page(srv.url("/"), Settings(allowed_networks=["::1/128"]))).body == PAGE


async def test_missing_content_type_is_sniffed(serve):
    srv = serve({"/html": page(ctype=None), "/bin": page(b"%PDF-1.7\n\x00\x01binary", ctype=None)})
    got = await fetch_page(srv.url("/html"), ALLOW_2)
    assert got.content_type == "text/html" and got.charset is None and got.body == PAGE
    with pytest.raises(errors.UnsupportedContent):
        await fetch_page(srv.url("/bin"), ALLOW_2)


async def test_gzip_and_deflate_bodies_are_decoded(serve):
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    srv = serve({
        "/gz": page(gzip.compress(PAGE), headers={"Content-Encoding": "gzip"}),
        "/zlib": page(zlib.compress(PAGE), headers={"Content-Encoding": "deflate"}),
        "/raw": page(raw.compress(PAGE) + raw.flush(), headers={"Content-Encoding": "deflate"}),
        "/br": page(b"\x0b\x02\x80", headers={"Content-Encoding": "br"}),
    })
    for path in ("/gz", "/zlib", "/raw"):
        assert (await fetch_page(srv.url(path), ALLOW_2)).body == PAGE, path
    assert srv.requests[0][1]["accept-encoding"] == "gzip, deflate"
    with pytest.raises(errors.UnsupportedContent, match="br"):
        await fetch_page(srv.url("/br"), ALLOW_2)


# --- redirects ------------------------------------------------------------------------------


async def test_redirect_chain_relative_and_absolute_without_cookies(serve):
    routes: dict[str, Route] = {}
    srv = serve(routes)
    routes.update({
        "/a": redirect("/b", 302, {"Set-Cookie": "session=secret; Path=/"}),
        "/b": redirect("c", 303),
        "/c": redirect(srv.url("/d") + "#frag", 301),
        "/d": redirect("//127.0.0.2:%d/end" % srv.port, 307),
        "/end": page(),
    })
    got = await fetch_page(srv.url("/a"), ALLOW_2)
    assert got.body == PAGE
    assert got.final_url == srv.url("/end")
    assert got.redirects == [srv.url(p) for p in ("/a", "/b", "/c", "/d")]
    assert [p for p, _ in srv.requests] == ["/a", "/b", "/c", "/d", "/end"]
    assert all("cookie" not in headers for _, headers in srv.requests)


async def test_redirect_from_allowed_host_to_refused_host(serve):
    inner = serve({"/": page(b"<html>secret admin page</html>")}, host="127.0.0.1")
    outer = serve({"/go": redirect(inner.url("/"))})
    with pytest.raises(errors.BlockedAddress, match="127.0.0.1") as info:
        await fetch_page(outer.url("/go"), ALLOW_2)
    assert "redirect from" in info.value.detail and info.value.status == 422
    assert [p for p, _ in outer.requests] == ["/go"]
    assert inner.requests == []  # never contacted


async def test_redirect_to_private_name_is_checked_again(serve):
    srv = serve({"/go": redirect("http://intranet.example/admin")})
    calls: list[str] = []
    resolve = resolver_for({"intranet.example": ["10.0.0.5"]}, calls)
    with pytest.raises(errors.BlockedAddress, match="10.0.0.5"):
        await fetch_page(srv.url("/go"), ALLOW_2, resolver=resolve)
    assert calls == ["intranet.example"]


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.2/x", "gopher://127.0.0.2:25/"])
async def test_redirect_to_other_scheme_refused(serve, location):
    srv = serve({"/go": redirect(location)})
    with pytest.raises(errors.InvalidUrl, match="only http and https"):
        await fetch_page(srv.url("/go"), ALLOW_2)


async def test_too_many_redirects(serve):
    routes = {f"/r{i}": redirect(f"/r{i + 1}") for i in range(10)}
    routes["/r5"] = redirect("/done")
    routes["/done"] = page()
    srv = serve(routes)
    # Exactly max_redirects hops is fine ...
    got = await fetch_page(srv.url("/r1"), ALLOW_2.replace(max_redirects=5))
    assert got.final_url == srv.url("/done") and len(got.redirects) == 5
    # ... one more is not, and the extra hop is never requested.
    srv.requests.clear()
    with pytest.raises(errors.UpstreamError, match="too many redirects") as info:
        await fetch_page(srv.url("/r0"), ALLOW_2.replace(max_redirects=5))
    assert info.value.status == 502
    assert [p for p, _ in srv.requests] == ["/r0", "/r1", "/r2", "/r3", "/r4", "/r5"]
    with pytest.raises(errors.UpstreamError, match="more than 0"):
        await fetch_page(srv.url("/r4"), ALLOW_2.replace(max_redirects=0))


async def test_redirect_without_location_is_upstream_error(serve):
    srv = serve({"/x": lambda h: send(h, 302, b"", None)})
    with pytest.raises(errors.UpstreamError, match="without a Location"):
        await fetch_page(srv.url("/x"), ALLOW_2)


# --- address policy -------------------------------------------------------------------------


async def test_localhost_refused_by_default():
    with pytest.raises(errors.BlockedAddress, match="localhost .*loopback"):
        await fetch_page("http://localhost:9/", Settings(fetch_timeout=2.0))


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.2", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:a9fe:a9fe]",
    "0.0.0.0", "[::]", "10.1.2.3", "192.168.1.1", "172.16.0.1", "100.64.0.1", "224.0.0.1", "[fe80::1]",
    "[fd00::1]", "[2002:a00:1::1]", "[64:ff9b::a00:1]", "[::127.0.0.1]",
    "2130706433", "0x7f000001", "127.1", "0",
])
async def test_refused_hosts(host):
    with pytest.raises(errors.BlockedAddress) as info:
        await fetch_page(f"http://{host}/latest/meta-data/", Settings(fetch_timeout=2.0))
    assert info.value.status == 422 and info.value.detail


async def test_name_resolving_to_private_address_refused():
    with pytest.raises(errors.BlockedAddress, match=r"intranet\.example \(resolves to 10\.0\.0\.5\).*private"):
        await fetch_page("https://intranet.example/wiki", Settings(),
                         resolver=resolver_for({"intranet.example": ["10.0.0.5"]}))
    # One bad address among good ones is enough to refuse.
    with pytest.raises(errors.BlockedAddress, match="169.254.169.254"):
        await fetch_page("http://mixed.example/", Settings(),
                         resolver=resolver_for({"mixed.example": ["93.184.216.34", "169.254.169.254"]}))


async def test_denied_networks_beat_allowed_networks(serve):
    srv = serve({"/": page()})
    settings = Settings(allowed_networks=["127.0.0.0/8"], denied_networks=["127.0.0.2/32"])
    with pytest.raises(errors.BlockedAddress, match="denied network 127.0.0.2/32"):
        await fetch_page(srv.url("/"), settings)
    assert srv.requests == []
    # a public address can be denied too (also when written as IPv4-mapped IPv6)
    deny = Settings(denied_networks=["93.184.0.0/16"])
    assert blocked_reason("93.184.216.34", deny) and blocked_reason("::ffff:93.184.216.34", deny)
    assert blocked_reason("93.184.216.34", Settings()) is None


def test_blocked_reason_policy():
    s = Settings()
    for address in ("2001:db8::1", "ff02::1", "fec0::1", "255.255.255.255", "240.0.0.1", "198.18.0.1",
                    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "fe80::1%eth0"):
        assert blocked_reason(address, s), address
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808"):
        assert blocked_reason(address, s) is None, address
    assert "metadata" in blocked_reason("169.254.169.254", s)
    assert blocked_reason("10.9.8.7", Settings(allowed_networks=["10.0.0.0/8"])) is None


@pytest.mark.parametrize("url", [
    "ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "example.com/page",
    "http://user:pw@example.com/", "http://@example.com/", "http:///path", "http://exa mple.com/",
    "http://example.com:99999/", "http://example.com:0/", "http://-bad-.example/", "http://a..b/",
    "http://example.com/\r\nX-Injected: 1", "http://0177.0.0.1/", "http://" + "a" * 2100 + ".com/",
])
async def test_invalid_urls(url):
    with pytest.raises(errors.InvalidUrl):
        await fetch_page(url, Settings(fetch_timeout=2.0), resolver=resolver_for({}))


async def test_unresolvable_name_is_upstream_error():
    with pytest.raises(errors.UpstreamError, match="could not resolve"):
        await fetch_page("http://nowhere.example/", Settings(), resolver=resolver_for({}))


async def test_connection_goes_to_the_checked_address_not_a_second_lookup(serve, monkeypatch):
    """DNS rebinding: the first answer is allowed, any later one would be loopback 127.0.0.1."""
    srv = serve({"/": page(b"<html><body>from the checked server</body></html>")})
    answers = iter([["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    system_lookups: list[object] = []
    real_getaddrinfo = socket.getaddrinfo

    def spy(host, *args, **kwargs):
        system_lookups.append(host)
        if host == "rebind.example":
            return real_getaddrinfo("127.0.0.1", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    got = await fetch_page(srv.url("/", host="rebind.example"), ALLOW_2, resolver=rebinding)
    assert b"from the checked server" in got.body and got.address == "127.0.0.2"
    assert calls == ["rebind.example"]  # one resolution ...
    assert "rebind.example" not in system_lookups  # ... and nobody else resolved the name again
    assert srv.requests[0][1]["host"] == f"rebind.example:{srv.port}"


# --- upstream failures, limits --------------------------------------------------------------


async def test_connection_refused_is_502():
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))  # bound, not listening: connections are refused
    try:
        with pytest.raises(errors.UpstreamError, match="could not connect") as info:
            await fetch_page(f"http://127.0.0.2:{sock.getsockname()[1]}/", ALLOW_2)
        assert info.value.status == 502
    finally:
        sock.close()


@pytest.mark.parametrize("status", [404, 410, 500, 503])
async def test_upstream_error_status_is_502(serve, status):
    srv = serve({"/": lambda h: send(h, status, b"<html>nope</html>")})
    with pytest.raises(errors.UpstreamError, match=f"answered {status}") as info:
        await fetch_page(srv.url("/"), ALLOW_2)
    assert info.value.status == 502


async def test_slow_server_times_out(serve):
    def sleepy(h):
        srv.release.wait(10)

    srv = serve({"/": sleepy})
    # The server holds the request for 10 s and then closes it without an answer: had the fetch
    # waited for it, this would be an UpstreamError, not a timeout.
    with pytest.raises(errors.UpstreamTimeout) as info:
        await fetch_page(srv.url("/"), ALLOW_2.replace(fetch_timeout=0.5))
    assert info.value.status == 504


async def test_trickling_server_hits_the_total_deadline(serve):
    """Each byte arrives well within the read timeout, but the whole fetch must still stop."""

    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.end_headers()
        h.wfile.write(b"<html>")
        while not srv.release.wait(0.1):
            h.wfile.write(b"<p>x</p>")
            h.wfile.flush()

    srv = serve({"/": trickle})
    with pytest.raises(errors.UpstreamTimeout, match="longer than 1 s"):
        # wait_for only turns a missing deadline into a failure instead of a hang
        await asyncio.wait_for(fetch_page(srv.url("/"), ALLOW_2.replace(fetch_timeout=1.0)), 10)


def streamer(srv_box: list, total: int, declare: bool) -> Route:
    chunk = b"<p>" + b"a" * (64 * 1024 - 7) + b"</p>\n"

    def route(h):
        srv = srv_box[0]
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        if declare:
            h.send_header("Content-Length", str(total))
        h.end_headers()
        while srv.sent < total:
            h.wfile.write(chunk)
            srv.sent += len(chunk)

    return route


@pytest.mark.parametrize("declare", [False, True])
async def test_oversize_body_stops_reading(serve, declare):
    total = 64 * 1024 * 1024
    box: list[Server] = []
    srv = serve({"/big": streamer(box, total, declare)})
    box.append(srv)
    with pytest.raises(errors.PayloadTooLarge, match="1,048,576") as info:
        await fetch_page(srv.url("/big"), ALLOW_2.replace(max_fetch_bytes=1024 * 1024))
    assert info.value.status == 413
    time.sleep(0.2)  # let the server notice the closed connection
    assert srv.sent < total // 4  # it did not have to send everything
    if declare:
        assert "not read" in info.value.detail


async def test_compression_bomb_stops_at_the_limit(serve):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)  # ~64 KB on the wire
    srv = serve({"/bomb": page(bomb, headers={"Content-Encoding": "gzip"})})
    with pytest.raises(errors.PayloadTooLarge):
        await fetch_page(srv.url("/bomb"), ALLOW_2.replace(max_fetch_bytes=1024 * 1024))


async def test_endless_empty_gzip_members_stop_at_the_wire_limit(serve):
    """Input that decodes to nothing still counts: the wire bytes are limited too."""
    empty = gzip.compress(b"")
    srv = serve({"/z": page(empty * (2 * 1024 * 1024 // len(empty)), headers={"Content-Encoding": "gzip"}, length=False)})
    with pytest.raises(errors.PayloadTooLarge):
        await fetch_page(srv.url("/z"), ALLOW_2.replace(max_fetch_bytes=1024 * 1024))


@pytest.mark.parametrize("ctype", ["application/pdf", "text/plain; charset=utf-8", "image/png", "application/json"])
async def test_non_html_is_415(serve, ctype):
    srv = serve({"/doc": page(b"%PDF-1.7 not html", ctype=ctype)})
    with pytest.raises(errors.UnsupportedContent, match=ctype.split(";")[0]) as info:
        await fetch_page(srv.url("/doc"), ALLOW_2)
    assert info.value.status == 415


async def test_xhtml_is_accepted(serve):
    srv = serve({"/x": page(ctype="application/xhtml+xml")})
    assert (await fetch_page(srv.url("/x"), ALLOW_2)).media_type == "application/xhtml+xml"


# --- TLS ------------------------------------------------------------------------------------


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


async def test_tls_uses_original_hostname_for_sni_and_certificate(tls_server):
    srv, client_ctx, seen_sni = tls_server
    resolve = resolver_for({"secure.example": ["127.0.0.2"], "other.example": ["127.0.0.2"]})
    got = await fetch_page(srv.url("/", host="secure.example", scheme="https"), ALLOW_2,
                           resolver=resolve, ssl_context=client_ctx)
    assert got.body == PAGE and got.address == "127.0.0.2"
    assert seen_sni == ["secure.example"]
    # Same server and trust, wrong name: the certificate hostname check still applies.
    with pytest.raises(errors.UpstreamError, match="(?i)certificate|hostname"):
        await fetch_page(srv.url("/", host="other.example", scheme="https"), ALLOW_2,
                         resolver=resolve, ssl_context=client_ctx)


async def test_tls_is_verified_against_the_trust_store_by_default(tls_server):
    srv, _, _ = tls_server
    with pytest.raises(errors.UpstreamError, match="(?i)certificate"):
        await fetch_page(srv.url("/", host="secure.example", scheme="https"), ALLOW_2,
                         resolver=resolver_for({"secure.example": ["127.0.0.2"]}))


# --- helpers --------------------------------------------------------------------------------


async def test_header_charset_reaches_the_decoder(serve):
    body = "<html><body><p>Caf\u00e9 na\u00efve \u2013 \u20ac5</p></body></html>".encode("cp1252")
    srv = serve({"/": page(body, ctype="text/html; charset=Windows-1252")})
    got = await fetch_page(srv.url("/"), ALLOW_2)
    assert got.charset == "windows-1252" and got.content_type == "text/html; charset=windows-1252"
    assert "Caf\u00e9 na\u00efve \u2013 \u20ac5" in decode_html(got.body, got.content_type)


def test_html_sniffing():
    assert looks_like_html(b"\n  <!DOCTYPE html><html>") and looks_like_html(b"<HTML lang=en>")
    assert looks_like_html(b"\xef\xbb\xbf<p>hello") and looks_like_html(b"<!-- generated -->")
    assert not looks_like_html(b'{"json": true}') and not looks_like_html(b"<?xml version='1.0'?><rss>")
    assert not looks_like_html(b"<pre>") and not looks_like_html(b"")


# --- decoding and sniffing, to the byte (claims the mutation run showed no test made) ----------


def test_html_sniffing_delimiters_and_window():
    for after in (b" ", b">", b"\t", b"\n", b"\r", b"\x0c", b"/"):  # a tag name ends at whitespace, ">" or "/"
        assert looks_like_html(b"<br" + after), after
    assert looks_like_html(b"<!--comment-->")  # a comment needs no delimiter
    assert not looks_like_html(b"\x0b<html>")  # vertical tab is no HTML whitespace
    assert not looks_like_html(b"X<html>")
    assert not looks_like_html(b" " * 1019 + b"<html lang=en>")  # the tag's end lies past the first 1024 bytes
    assert looks_like_html(b" " * 1018 + b"<html lang=en>")


def test_error_details_are_cut_at_300_characters():
    from backstory.fetch import _describe

    assert _describe(ValueError("")) == "ValueError"  # an exception without a message is named
    assert _describe(ValueError("x" * 299)) == "x" * 299
    assert _describe(ValueError("x" * 300)) == "x" * 300 + "..."
    assert _describe(ValueError("y" * 500)) == "y" * 300 + "..."


def test_a_decoder_never_inflates_more_than_its_budget_and_one_byte():
    from backstory.fetch import _Decoder

    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024), 9)
    assert len(_Decoder("gzip").feed(bomb, 1000)) == 1001
    # a first member of exactly the budget, then another: one byte of the second shows the excess
    two = gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 5000)
    assert _Decoder("gzip").feed(two, 1000) == b"a" * 1000 + b"b"


async def test_x_gzip_several_members_and_nul_padding_are_decoded(serve):
    half = len(PAGE) // 2
    srv = serve({
        "/xgz": page(gzip.compress(PAGE), headers={"Content-Encoding": "x-gzip"}),
        "/members": page(gzip.compress(PAGE[:half]) + gzip.compress(PAGE[half:]), headers={"Content-Encoding": "gzip"}),
        "/padded": page(gzip.compress(PAGE) + b"\0" * 16, headers={"Content-Encoding": "gzip"}),
        "/empty": page(PAGE, headers={"Content-Encoding": ""}),
    })
    for path in ("/xgz", "/members", "/padded", "/empty"):
        assert (await fetch_page(srv.url(path), ALLOW_2)).body == PAGE, path


async def test_corrupt_compressed_bodies_are_502(serve):
    srv = serve({
        "/deflate": page(b"this is neither zlib nor raw deflate" * 4, headers={"Content-Encoding": "deflate"}),
        "/trailing": page(gzip.compress(PAGE) + b"XXXX", headers={"Content-Encoding": "gzip"}),
    })
    with pytest.raises(errors.UpstreamError, match="corrupt deflate body"):
        await fetch_page(srv.url("/deflate"), ALLOW_2)
    with pytest.raises(errors.UpstreamError, match="corrupt gzip body"):  # what follows a member must be one
        await fetch_page(srv.url("/trailing"), ALLOW_2)


async def test_a_body_of_exactly_the_limit_is_read_and_one_more_byte_is_413(serve):
    body = b"<p>" + b"a" * 993 + b"</p>"  # 1000 bytes
    srv = serve({"/exact": page(body, length=False), "/over": page(body + b"\n", length=False),
                 "/gz-over": page(gzip.compress(body + b"\n"), headers={"Content-Encoding": "gzip"})})
    limited = ALLOW_2.replace(max_fetch_bytes=1000)
    assert (await fetch_page(srv.url("/exact"), limited)).body == body
    for path in ("/over", "/gz-over"):
        with pytest.raises(errors.PayloadTooLarge):
            await fetch_page(srv.url(path), limited)


def test_raw_deflate_is_recognised_only_at_the_start_of_a_body():
    from backstory.fetch import _Decoder

    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_page = raw.compress(PAGE) + raw.flush()
    assert _Decoder("deflate").feed(raw_page, 10_000) == PAGE  # a server's raw deflate, from its first byte
    decoder = _Decoder("deflate")
    assert decoder.feed(zlib.compress(b"<p>first</p>"), 10_000) == b"<p>first</p>"
    with pytest.raises(zlib.error):  # after a zlib-wrapped start, more must be zlib-wrapped too
        decoder.feed(raw_page, 10_000)


async def test_accept_follows_the_media_types_asked_for(serve):
    from backstory.fetch import ANY_TYPE

    srv = serve({"/feed": page(b"<rss/>", ctype="application/rss+xml"), "/robots.txt": page(b"", ctype="text/plain")})
    await fetch_page(srv.url("/feed"), ALLOW_2, media_types=frozenset({"application/rss+xml", "application/atom+xml"}))
    await fetch_page(srv.url("/robots.txt"), ALLOW_2, media_types=ANY_TYPE)
    await fetch_page(srv.url("/feed"), ALLOW_2, media_types=frozenset({"application/rss+xml"}) | ANY_TYPE)
    accepts = [headers["accept"] for _, headers in srv.requests]
    assert accepts == ["application/atom+xml,application/rss+xml,*/*;q=0.1", "*/*", "application/rss+xml,*/*;q=0.1"]


async def test_the_charset_parameter_is_read_plain_quoted_or_absent(serve):
    srv = serve({"/plain": page(ctype="text/html"), "/quoted": page(ctype='text/html; charset="UTF-8"'),
                 "/x": page(ctype="text/html; charset=X-SJIS")})
    assert (await fetch_page(srv.url("/plain"), ALLOW_2)).charset is None
    assert (await fetch_page(srv.url("/quoted"), ALLOW_2)).charset == "utf-8"
    assert (await fetch_page(srv.url("/x"), ALLOW_2)).charset == "x-sjis"


async def test_proxies_from_the_environment_are_not_used(serve, monkeypatch):
    srv = serve({"/story": page()})
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.3:9")  # nothing listens there
    assert (await fetch_page(srv.url("/story"), ALLOW_2)).body == PAGE


def test_the_default_trust_store_is_built_once(monkeypatch):
    import backstory.fetch as fetch

    monkeypatch.setattr(fetch, "_ssl_context", None)  # as in a new process
    first = fetch._default_ssl_context()
    assert first.cert_store_stats()["x509_ca"] == ssl.create_default_context().cert_store_stats()["x509_ca"]
    assert isinstance(first, ssl.SSLContext) and first.verify_mode == ssl.CERT_REQUIRED
    assert fetch._default_ssl_context() is first


ALLOW_2_AND_3 = ALLOW_2.replace(allowed_networks=["127.0.0.2/32", "127.0.0.3/32"])


async def test_a_refused_address_is_followed_by_the_next_one(serve):
    srv = serve({"/": page()})  # on 127.0.0.2; nothing listens on 127.0.0.3 at its port
    resolve = resolver_for({"two.example": ["127.0.0.3", "127.0.0.2"]})
    got = await fetch_page(srv.url("/", host="two.example"), ALLOW_2_AND_3, resolver=resolve)
    assert got.body == PAGE and got.address == "127.0.0.2"


async def test_a_tls_failure_is_not_tried_at_another_address(tls_server):
    srv, client_ctx, _ = tls_server
    other = socket.socket()
    other.bind(("127.0.0.3", srv.port))  # would accept a connection, never a TLS handshake
    other.listen()
    other.setblocking(False)
    try:
        resolve = resolver_for({"other.example": ["127.0.0.2", "127.0.0.3"]})
        with pytest.raises(errors.UpstreamError, match="(?i)certificate|hostname"):
            await fetch_page(srv.url("/", host="other.example", scheme="https"), ALLOW_2_AND_3,
                             resolver=resolve, ssl_context=client_ctx)
        with pytest.raises(BlockingIOError):  # nobody connected to the second address
            other.accept()
    finally:
        other.close()


async def test_a_304_is_a_page_only_for_a_conditional_request(serve):
    def not_modified(h):
        send(h, 304, b"", None, {"ETag": '"v2"', "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}, length=False)

    srv = serve({"/feed": not_modified, "/moved": redirect("/feed")})
    got = await fetch_page(srv.url("/moved"), ALLOW_2, headers={"If-None-Match": '"v1"'})
    assert got.not_modified and got.status == 304 and got.body == b"" and got.content_type == ""
    assert (got.url, got.final_url, got.redirects) == (srv.url("/moved"), srv.url("/feed"), [srv.url("/moved")])
    assert (got.etag, got.last_modified, got.address) == ('"v2"', "Tue, 01 Dec 2026 10:00:00 GMT", "127.0.0.2")
    assert srv.requests[-1][1]["if-none-match"] == '"v1"'
    with pytest.raises(errors.UpstreamError, match="answered 304 Not Modified, not a page"):
        await fetch_page(srv.url("/feed"), ALLOW_2)  # nobody asked whether it changed


async def test_validators_of_a_full_answer_are_kept(serve):
    srv = serve({"/": page(headers={"ETag": '"v3"', "Last-Modified": "Wed, 02 Dec 2026 10:00:00 GMT"})})
    got = await fetch_page(srv.url("/"), ALLOW_2)
    assert (got.etag, got.last_modified) == ('"v3"', "Wed, 02 Dec 2026 10:00:00 GMT")


@pytest.mark.parametrize("status", [204, 205, 300])
async def test_a_success_without_a_page_is_502(serve, status):
    srv = serve({"/": lambda h: send(h, status, b"", None, length=False)})
    with pytest.raises(errors.UpstreamError, match=f"answered {status} .*, not a page") as info:
        await fetch_page(srv.url("/"), ALLOW_2)
    assert not isinstance(info.value, errors.UpstreamStatus)


async def test_a_400_is_an_upstream_status_kept_with_the_error(serve):
    srv = serve({"/": lambda h: send(h, 400, b"<html>bad</html>")})
    with pytest.raises(errors.UpstreamStatus, match="answered 400 Bad Request$") as info:
        await fetch_page(srv.url("/"), ALLOW_2)
    assert info.value.upstream_status == 400


async def test_a_refused_media_type_names_what_was_asked_for(serve):
    srv = serve({"/": page(b"{}", ctype="application/json")})
    with pytest.raises(errors.UnsupportedContent, match=r"is application/json, not an HTML page$"):
        await fetch_page(srv.url("/"), ALLOW_2)
    with pytest.raises(errors.UnsupportedContent, match=r"is application/json, not one of application/atom\+xml, "
                                                        r"application/rss\+xml$"):
        await fetch_page(srv.url("/"), ALLOW_2, media_types=frozenset({"application/rss+xml", "application/atom+xml"}))


async def test_a_declared_length_of_exactly_the_limit_is_read(serve):
    body = b"<p>" + b"a" * 993 + b"</p>"  # 1000 bytes, Content-Length: 1000
    srv = serve({"/": page(body), "/over": page(body + b"\n")})
    assert (await fetch_page(srv.url("/"), ALLOW_2.replace(max_fetch_bytes=1000))).body == body
    with pytest.raises(errors.PayloadTooLarge, match=r"more than 1,000 \(BACKSTORY_MAX_FETCH_BYTES\); not read$"):
        await fetch_page(srv.url("/over"), ALLOW_2.replace(max_fetch_bytes=1000))


def test_without_a_system_trust_store_certifi_is_trusted(monkeypatch):
    import certifi

    import backstory.fetch as fetch

    monkeypatch.setattr(fetch, "_ssl_context", None)
    monkeypatch.setattr(ssl, "create_default_context", lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))  # no CAs
    expected = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    expected.load_verify_locations(certifi.where())
    assert fetch._default_ssl_context().cert_store_stats()["x509_ca"] == expected.cert_store_stats()["x509_ca"] > 0


async def test_a_conditional_request_by_date_alone_gets_its_304(serve):
    srv = serve({"/feed": lambda h: send(h, 304, b"", None, length=False)})
    got = await fetch_page(srv.url("/feed"), ALLOW_2, headers={"If-Modified-Since": "Tue, 01 Dec 2026 10:00:00 GMT"})
    assert got.not_modified


async def test_the_callers_headers_never_replace_the_fetchers_own(serve):
    seen: list[list[str]] = []

    def record(h):
        seen.append(h.headers.get_all("User-Agent") + h.headers.get_all("Host"))
        send(h, 200, PAGE)

    srv = serve({"/": record})
    await fetch_page(srv.url("/"), ALLOW_2, headers={"user-agent": "Other/1.0", "host": "other.example"})
    assert seen == [[f"Backstory/{__version__} (+self-hosted reading assistant)", f"127.0.0.2:{srv.port}"]]


async def test_the_request_carries_only_the_fetchers_headers(serve):
    srv = serve({"/": page()})
    await fetch_page(srv.url("/"), ALLOW_2)
    assert set(srv.requests[0][1]) == {"host", "user-agent", "accept", "accept-encoding", "connection"}


async def test_a_body_of_many_chunks_is_read_whole(serve):
    body = b"<html><body>" + b"<p>" + b"tide " * 60_000 + b"</p></body></html>"  # ~300 KB
    srv = serve({"/": page(body, length=False)})
    assert (await fetch_page(srv.url("/"), ALLOW_2)).body == body


async def test_an_unsniffable_body_is_octet_stream_when_more_than_html_is_accepted(serve):
    srv = serve({"/": page(b"\x00\x01binary", ctype=None)})
    got = await fetch_page(srv.url("/"), ALLOW_2, media_types=frozenset({"application/rss+xml"}))
    assert got.content_type == "application/octet-stream"
    with pytest.raises(errors.UnsupportedContent, match="has no Content-Type and does not look like HTML$"):
        await fetch_page(srv.url("/"), ALLOW_2)


async def test_upstream_failures_say_what_happened(serve):
    def hang_up(h):
        h.close_connection = True  # no answer at all

    srv = serve({"/599": lambda h: send(h, 599, b""), "/gone": hang_up})
    with pytest.raises(errors.UpstreamStatus, match=r"answered 599$"):  # no reason phrase, no trailing space
        await fetch_page(srv.url("/599"), ALLOW_2)
    with pytest.raises(errors.UpstreamError, match=r"^fetching .*/gone failed: Server disconnected"):
        await fetch_page(srv.url("/gone"), ALLOW_2)


async def test_sni_is_the_host_without_its_final_dot(tls_server):
    srv, client_ctx, seen_sni = tls_server
    got = await fetch_page(srv.url("/", host="secure.example.", scheme="https"), ALLOW_2,
                           resolver=resolver_for({"secure.example": ["127.0.0.2"], "secure.example.": ["127.0.0.2"]}),
                           ssl_context=client_ctx)
    assert got.body == PAGE and seen_sni == ["secure.example"]
