"""fetch.fetch_page in detail, against real HTTP(S) servers on 127.0.0.x (tests/fetch_server.py):
body decoding at its edges, the headers sent and read, statuses that are no page, connections and
TLS — the claims the mutation run of fetch.py (scripts/mutation) showed no other test made.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import zlib

import pytest

from backstory import __version__, errors
from backstory.extract import decode_html
from backstory.fetch import fetch_page, looks_like_html

from .fetch_server import (  # noqa: F401 - serve, certificate and tls_server are fixtures
    ALLOW_2, PAGE, Server, certificate, page, redirect, resolver_for, send, serve, tls_server,
)
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
