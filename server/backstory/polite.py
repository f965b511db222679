"""Polite fetching, for pages no reader asked for just now (imports' URL-only entries, feeds).

A reader's own analysis fetches one page at once (:func:`backstory.fetch.fetch_page`); an import
or a feed poller may ask one site for hundreds. :class:`PoliteFetcher` wraps ``fetch_page``
(so every request, robots.txt included, still passes the SSRF guard) with the usual manners:

* one request at a time to a host, and ``settings.fetch_host_delay`` seconds between the end of
  one and the start of the next (a longer ``Crawl-delay`` for Backstory or ``*`` wins, up to
  :data:`MAX_CRAWL_DELAY`); a host is its name, whatever the scheme or port;
* at most ``settings.fetch_hosts_at_once`` requests (so hosts) at the same time;
* robots.txt honoured, read once per origin (scheme, host, port) and kept :data:`ROBOTS_TTL`;
  the rules are RFC 9309's: a robots.txt that is missing or answers any 4xx allows everything;
  one that answers 5xx, cannot be reached or read disallows everything for :data:`ROBOTS_RETRY`,
  then it is asked again (a server in trouble is not the moment to crawl it): its pages get an
  ``errors.UpstreamError`` saying so, a path robots.txt disallows ``errors.RobotsRefused``;
* the User-Agent names Backstory and its version (``fetch.USER_AGENT``; robots.txt groups for
  ``Backstory`` apply);
* conditional requests: give the ``etag`` / ``last_modified`` of the copy you hold and a
  304 Not Modified comes back as None.

The rules are read by ``urllib.robotparser``, which takes a group's first matching line where
RFC 9309 takes the longest: ``Disallow: /`` before ``Allow: /news/`` refuses /news/ too (it errs
towards asking less). Robots.txt is checked for the URL asked for; the redirects ``fetch_page`` follows from there
(to the canonical story) are checked by the SSRF guard, not against the target's robots.txt.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Awaitable, Callable
from urllib.robotparser import RobotFileParser

from cachetools import TLRUCache

from . import errors
from .config import Settings
from .fetch import ANY_TYPE, HTML_TYPES, USER_AGENT, FetchedPage, fetch_page
from .ssrf_guard import Resolver, parse_target

ROBOTS_TTL = 3600.0  #: seconds a robots.txt read (or found missing) is kept
ROBOTS_RETRY = 600.0  #: seconds an unreadable robots.txt (5xx, unreachable) keeps its host disallowed
MAX_CRAWL_DELAY = 60.0  #: a robots.txt asking for more is held to this
_MAX_ORIGINS = 4096  #: robots.txt files kept at once
_MAX_IDLE_HOSTS = 1024  #: past this many known hosts, idle ones are forgotten


class _Rules:
    """What one origin's robots.txt says: a parser, or allow-all, or an error every fetch gets."""

    __slots__ = ("parser", "refusal", "ttl")

    def __init__(self, parser: RobotFileParser | None = None, refusal: errors.BackstoryError | None = None,
                 ttl: float = ROBOTS_TTL) -> None:
        self.parser, self.refusal, self.ttl = parser, refusal, ttl

    def check(self, url: str, origin: str) -> None:
        if self.refusal is not None:
            raise type(self.refusal)(self.refusal.detail)
        if self.parser is not None and not self.parser.can_fetch(USER_AGENT, url):
            raise errors.RobotsRefused(f"{origin}/robots.txt disallows {url} for Backstory")

    def delay(self, settings: Settings) -> float:
        asked = self.parser.crawl_delay(USER_AGENT) if self.parser is not None else None
        return max(settings.fetch_host_delay, min(float(asked or 0), MAX_CRAWL_DELAY))


class _Host:
    """One host's turn: its lock (one request at a time) and when its next request may start."""

    __slots__ = ("lock", "ready_at", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.ready_at = 0.0  # time.monotonic()
        self.users = 0  # fetches holding or waiting for the lock: a host in use is never forgotten


class PoliteFetcher:
    """Fetches pages politely (see the module docstring); one per import or feed poller, so that
    its hosts' turns and robots.txt files are shared by all its fetches. Use it in one event loop."""

    def __init__(self, settings: Settings, *, resolver: Resolver | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._slots = asyncio.Semaphore(settings.fetch_hosts_at_once)
        self._hosts: dict[str, _Host] = {}
        self._robots: TLRUCache[str, _Rules] = TLRUCache(
            maxsize=_MAX_ORIGINS, ttu=lambda _origin, rules, now: now + rules.ttl, timer=time.monotonic)
        self._closed = False

    async def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
                    media_types: frozenset[str] | None = None) -> FetchedPage | None:
        """The page at ``url``, or None when the server says the copy named by ``etag`` /
        ``last_modified`` is current (304). ``media_types``: the Content-Types accepted, instead
        of HTML's. Raises ``errors.RobotsRefused`` and every error ``fetch_page`` raises."""
        if self._closed:
            raise RuntimeError("PoliteFetcher is closed")
        target = parse_target(url)  # errors.InvalidUrl before any waiting
        origin = f"{target.url.scheme}://{target.url.netloc.decode('ascii')}"
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = self._host(target.host.rstrip(".").lower())
        host.users += 1
        try:
            async with host.lock:
                rules = self._robots.get(origin)
                if rules is None:
                    rules = await self._read_robots(origin, host)
                    self._robots[origin] = rules
                rules.check(url, origin)
                page = await self._turn(host, rules.delay(self.settings), lambda: fetch_page(
                    url, self.settings, resolver=self._resolver, ssl_context=self._ssl_context,
                    headers=headers, media_types=media_types or HTML_TYPES))
        finally:
            host.users -= 1
        return None if page.not_modified else page

    async def _turn(self, host: _Host, delay: float, request: Callable[[], Awaitable[FetchedPage]]) -> FetchedPage:
        """Make ``request`` when the host's delay has passed and a slot is free; the host lock is held."""
        wait = host.ready_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            async with self._slots:
                return await request()
        finally:
            host.ready_at = time.monotonic() + delay  # counted from the end: a slow host gets more rest

    async def _read_robots(self, origin: str, host: _Host) -> _Rules:
        url = origin + "/robots.txt"
        try:
            page = await self._turn(host, self.settings.fetch_host_delay, lambda: fetch_page(
                url, self.settings, resolver=self._resolver, ssl_context=self._ssl_context, media_types=ANY_TYPE))
        except errors.UpstreamStatus as exc:
            if 400 <= exc.upstream_status < 500:
                return _Rules()  # no robots.txt (or none for us to read): everything allowed
            return self._unreadable(url, exc)
        except (errors.BlockedAddress, errors.InvalidUrl) as exc:
            # The host (or where its robots.txt leads) is refused: so are its pages, for that reason.
            return _Rules(refusal=exc, ttl=ROBOTS_RETRY)
        except errors.BackstoryError as exc:  # 5xx, unreachable, too slow, too large
            return self._unreadable(url, exc)
        parser = RobotFileParser(url)
        parser.parse(page.body.decode("utf-8", "replace").splitlines())  # RFC 9309: robots.txt is UTF-8
        return _Rules(parser=parser)

    @staticmethod
    def _unreadable(url: str, exc: errors.BackstoryError) -> _Rules:
        # Refused as the upstream failure it is (the host is down or in trouble), not as a robots.txt rule.
        return _Rules(refusal=errors.UpstreamError(
            f"{url} could not be read ({exc.detail}), so nothing is fetched from its site for "
            f"{ROBOTS_RETRY / 60:g} minutes"), ttl=ROBOTS_RETRY)

    def _host(self, name: str) -> _Host:
        host = self._hosts.get(name)
        if host is None:
            if len(self._hosts) >= _MAX_IDLE_HOSTS:
                now = time.monotonic()
                for key in [key for key, h in self._hosts.items() if not h.users and h.ready_at <= now]:
                    del self._hosts[key]
            host = self._hosts[name] = _Host()
        return host

    async def aclose(self) -> None:
        """Refuse further fetches (each fetch opens and closes its own connection: nothing to release)."""
        self._closed = True
        self._robots.clear()

    async def __aenter__(self) -> "PoliteFetcher":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
