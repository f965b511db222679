"""backstory.polite.PoliteFetcher against real HTTP servers on 127.0.0.x written by the tests:
per-host delay and concurrency, hosts at once, robots.txt, User-Agent, conditional requests.

Timings are checked from below only (a gap is at least the delay): the machine may be slow."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from backstory import __version__, errors
from backstory.config import Settings
from backstory.fetch import fetch_page
from backstory.polite import PoliteFetcher
from .fetch_server import PAGE, page, send, serve  # noqa: F401  (serve is a fixture)

LOOPBACK = Settings(allowed_networks=["127.0.0.0/8"], fetch_timeout=5.0, fetch_host_delay=0.0)
FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Tides</title></channel></rss>'


class Clock:
    """Records when requests arrive and how many are being answered at once, across servers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, str]] = []
        self.active = 0
        self.most = 0

    def route(self, hold: float = 0.0, body: bytes = PAGE):
        def answer(h) -> None:
            with self.lock:
                self.arrivals.append((time.monotonic(), h.path))
                self.active += 1
                self.most = max(self.most, self.active)
            try:
                time.sleep(hold)
            finally:
                # Counted off before the answer is written: once the client has it, its next request
                # may arrive before this thread runs again (on a busy machine), and would be counted
                # as overlapping a request that is already answered.
                with self.lock:
                    self.active -= 1
            send(h, 200, body)
        return answer

    def gaps(self) -> list[float]:
        times = sorted(t for t, _ in self.arrivals)
        return [b - a for a, b in zip(times, times[1:])]


async def test_user_agent_names_backstory_and_its_version(serve):
    srv = serve({"/story": page()})
    async with PoliteFetcher(LOOPBACK) as fetcher:
        got = await fetcher.fetch(srv.url("/story"))
    assert got is not None and got.body == PAGE
    assert [path for path, _ in srv.requests] == ["/robots.txt", "/story"]
    for _, headers in srv.requests:
        assert headers["user-agent"].startswith(f"Backstory/{__version__} ")


async def test_per_host_delay_between_requests(serve):
    clock = Clock()
    srv = serve({"/robots.txt": clock.route(body=b""), **{f"/p{i}": clock.route() for i in range(4)}})
    async with PoliteFetcher(LOOPBACK.replace(fetch_host_delay=0.3)) as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(srv.url(f"/p{i}")) for i in range(4)))
    assert all(p is not None and p.body == PAGE for p in pages)
    assert len(clock.arrivals) == 5  # robots.txt once, then the four pages
    assert min(clock.gaps()) >= 0.3


async def test_one_request_at_a_time_per_host(serve):
    clock = Clock()
    srv = serve({f"/p{i}": clock.route(hold=0.1) for i in range(5)})
    async with PoliteFetcher(LOOPBACK.replace(fetch_hosts_at_once=8)) as fetcher:
        await asyncio.gather(*(fetcher.fetch(srv.url(f"/p{i}")) for i in range(5)))
    assert len(clock.arrivals) == 5 and clock.most == 1


async def test_hosts_fetched_at_once_are_bounded(serve):
    clock = Clock()
    servers = [serve({"/robots.txt": clock.route(hold=0.2, body=b""), "/story": clock.route(hold=0.2)},
                     host=f"127.0.0.{n}") for n in range(2, 8)]
    async with PoliteFetcher(LOOPBACK.replace(fetch_hosts_at_once=2)) as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(srv.url("/story")) for srv in servers))
    assert all(p is not None for p in pages) and len(clock.arrivals) == 12
    assert clock.most == 2  # never more than two hosts, yet two at once (six hosts, each held 0.2 s)


ROBOTS = b"""# written by the test
User-agent: *
Disallow: /private/

User-agent: Backstory
Disallow: /private/
Disallow: /no-bots
"""


async def test_robots_txt_disallows_a_path_and_is_read_once(serve):
    srv = serve({"/robots.txt": page(ROBOTS, "text/plain"), "/public": page(), "/private/diary": page(),
                 "/no-bots": page()})
    async with PoliteFetcher(LOOPBACK) as fetcher:
        assert (await fetcher.fetch(srv.url("/public"))).body == PAGE
        with pytest.raises(errors.RobotsRefused) as refused:
            await fetcher.fetch(srv.url("/private/diary"))
        assert refused.value.status == 403 and "robots.txt disallows" in refused.value.detail
        assert refused.value.title == "Fetch refused by robots.txt"
        with pytest.raises(errors.RobotsRefused):  # the group naming Backstory applies to us
            await fetcher.fetch(srv.url("/no-bots"))
        assert (await fetcher.fetch(srv.url("/public?again"))).body == PAGE
    paths = [path for path, _ in srv.requests]
    assert paths == ["/robots.txt", "/public", "/public?again"]  # refused pages are never asked for


async def test_missing_robots_txt_allows_and_failing_one_refuses(serve):
    missing = serve({"/story": page()})  # /robots.txt: 404
    failing = serve({"/robots.txt": lambda h: send(h, 503, b"busy", "text/plain"), "/story": page()},
                    host="127.0.0.3")
    async with PoliteFetcher(LOOPBACK) as fetcher:
        assert (await fetcher.fetch(missing.url("/story"))).body == PAGE
        for _ in range(2):
            with pytest.raises(errors.UpstreamError, match="robots.txt could not be read"):
                await fetcher.fetch(failing.url("/story"))
    assert [path for path, _ in failing.requests] == ["/robots.txt"]  # remembered, the page never asked for


async def test_crawl_delay_in_robots_txt_is_honoured(serve):
    clock = Clock()
    srv = serve({"/robots.txt": page(b"User-agent: *\nCrawl-delay: 1\n", "text/plain"),
                 "/a": clock.route(), "/b": clock.route()})
    async with PoliteFetcher(LOOPBACK) as fetcher:
        await asyncio.gather(fetcher.fetch(srv.url("/a")), fetcher.fetch(srv.url("/b")))
    assert len(clock.arrivals) == 2 and clock.gaps()[0] >= 1.0


async def test_blocked_host_is_refused_for_its_address(serve):
    srv = serve({"/story": page()}, host="127.0.0.1")
    async with PoliteFetcher(LOOPBACK.replace(allowed_networks=["127.0.0.2/32"])) as fetcher:
        with pytest.raises(errors.BlockedAddress):
            await fetcher.fetch(srv.url("/story"))
    assert srv.requests == []


def conditional(requests: list):
    """ETag "v1" and a Last-Modified: 304 to a request that names either."""
    stamp = "Sat, 05 Dec 2026 10:00:00 GMT"

    def answer(h) -> None:
        requests.append(dict(h.headers))
        if h.headers.get("If-None-Match") == '"v1"' or h.headers.get("If-Modified-Since") == stamp:
            send(h, 304, b"", None, {"ETag": '"v1"'}, length=False)
        else:
            send(h, 200, PAGE, headers={"ETag": '"v1"', "Last-Modified": stamp})
    return answer


async def test_conditional_requests_get_none_on_304(serve):
    seen: list[dict] = []
    srv = serve({"/story": conditional(seen)})
    async with PoliteFetcher(LOOPBACK) as fetcher:
        first = await fetcher.fetch(srv.url("/story"))
        assert first is not None and first.body == PAGE
        assert (first.etag, first.last_modified) == ('"v1"', "Sat, 05 Dec 2026 10:00:00 GMT")
        assert await fetcher.fetch(srv.url("/story"), etag=first.etag) is None
        assert await fetcher.fetch(srv.url("/story"), last_modified=first.last_modified) is None
        changed = await fetcher.fetch(srv.url("/story"), etag='"v0"')
        assert changed is not None and changed.body == PAGE
    assert seen[1]["If-None-Match"] == '"v1"' and seen[2]["If-Modified-Since"] == first.last_modified


async def test_unasked_304_is_an_upstream_error(serve):
    srv = serve({"/story": lambda h: send(h, 304, b"", None, length=False)})
    with pytest.raises(errors.UpstreamError, match="304"):
        await fetch_page(srv.url("/story"), LOOPBACK)


async def test_media_types_widen_what_is_accepted(serve):
    srv = serve({"/feed": page(FEED, "application/rss+xml"), "/story": page()})
    feeds = frozenset({"application/rss+xml", "application/atom+xml"})
    async with PoliteFetcher(LOOPBACK) as fetcher:
        with pytest.raises(errors.UnsupportedContent):
            await fetcher.fetch(srv.url("/feed"))
        got = await fetcher.fetch(srv.url("/feed"), media_types=feeds)
        assert got is not None and got.body == FEED and got.media_type == "application/rss+xml"
        with pytest.raises(errors.UnsupportedContent, match="application/rss"):
            await fetcher.fetch(srv.url("/story"), media_types=feeds)
    accepts = [headers["accept"] for path, headers in srv.requests if path == "/feed"]
    assert accepts[0].startswith("text/html") and accepts[1].startswith("application/atom+xml,application/rss+xml")


async def test_closed_fetcher_refuses():
    fetcher = PoliteFetcher(LOOPBACK)
    await fetcher.aclose()
    with pytest.raises(RuntimeError):
        await fetcher.fetch("http://127.0.0.2/story")
