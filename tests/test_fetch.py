"""fetch.fetch_page and its SSRF guard, against real HTTP(S) servers on 127.0.0.x
(tests/fetch_server.py; test_fetch_details.py has the rest)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import zlib

import pytest

from backstory import __version__, errors
from backstory.config import Settings
from backstory.extract import decode_html
from backstory.fetch import FetchedPage, fetch_page
from backstory.ssrf_guard import blocked_reason

from .fetch_server import (  # noqa: F401 - serve, certificate and tls_server are fixtures
    ALLOW_2, PAGE, Route, Server, certificate, page, redirect, resolver_for, send, serve, tls_server,
)


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


async def test_redirect_to_a_location_that_is_no_url_is_upstream_error(serve):
    # "//[::1" is a network-path reference whose host part cannot be parsed (":1" as a port).
    srv = serve({"/go": redirect("//[::1")})
    with pytest.raises(errors.UpstreamError) as info:
        await fetch_page(srv.url("/go"), ALLOW_2)
    assert info.value.status == 502
    assert srv.url("/go") in info.value.detail and "location header" in info.value.detail


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
