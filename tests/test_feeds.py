"""News feeds: RSS, Atom and JSON Feed parsed; feeds polled from a real site on 127.0.0.1 into a
real archive (SQLite and PostgreSQL): conditional requests, whole articles from the feed, links
fetched, failures backed off and shown, hostile feeds (entities, HTML, an endless body) refused."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import feedparser
import msgspec
import pytest

from backstory.config import Settings
from backstory.feeds import subscribe
from backstory.feeds.parse import NotAFeed, parse_feed
from backstory.feeds.poller import FULL_ARTICLE_WORDS
from backstory.pipeline import Pipeline

from .feedsite import FeedSite, article_page, http_date, rss, site  # noqa: F401 - site is a fixture
from .pages import AI_PARAGRAPHS, AI_TITLE, CHIP_PARAGRAPHS, CHIP_TITLE, SPORT_PARAGRAPHS, SPORT_TITLE

RSS_TYPE = "application/rss+xml"
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
<!ENTITY lol "lol">
<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>Laughs</title>
<item><title>&lol9;</title><link>https://ledger.example/lol</link></item></channel></rss>"""


def feed_settings(archive: str, **changes) -> Settings:
    return Settings(archive=archive, allowed_networks=["127.0.0.0/8"], fetch_host_delay=0.0,
                    feeds_interval=600.0, feeds_min_interval=60.0, feeds_max_backoff=3000.0, **changes)


def seconds_between(earlier: str, later: str) -> float:
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(later) - parse(earlier)).total_seconds()


# ---- parsing --------------------------------------------------------------------------------

def test_rss_2_with_content_author_date_and_ttl() -> None:
    body = rss("The Harbour Ledger", [
        {"guid": "a-1", "link": "https://ledger.example/a", "title": "Strike", "description": "Short.",
         "content": "<p>The whole story.</p>", "author": "Ana Souza", "date": "Tue, 17 Nov 2026 22:30:00 -0500"},
        {"guid": "a-2", "link": "https://ledger.example/b", "title": "Talks", "description": "Only a summary."},
    ], ttl=90)
    feed = parse_feed(body.encode(), RSS_TYPE, "https://ledger.example/feed")
    assert feed.title == "The Harbour Ledger" and feed.ttl_s == 90 * 60
    first, second = feed.entries
    assert (first.link, first.title, first.author, first.content) == (
        "https://ledger.example/a", "Strike", "Ana Souza", "<p>The whole story.</p>")
    assert first.published == "2026-11-18"  # 22:30 at -05:00 is the 18th in UTC
    assert second.content == "Only a summary." and second.published is None and second.author is None
    assert first.key != second.key and len(first.key) == 32


def test_rss_091_and_atom() -> None:
    old = (b'<?xml version="1.0"?><rss version="0.91"><channel><title>Old wire</title><link>https://wire.example/'
           b'</link><description>d</description><item><title>Quay reopens</title><link>https://wire.example/q</link>'
           b'<description>The quay reopened.</description></item></channel></rss>')
    feed = parse_feed(old, "text/xml", "https://wire.example/rss")
    assert feed.title == "Old wire" and [(e.link, e.title) for e in feed.entries] == [("https://wire.example/q",
                                                                                        "Quay reopens")]
    atom = (b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Atom wire</title>'
            b'<id>urn:wire</id><updated>2026-11-17T10:00:00Z</updated><entry><title>Cranes idle</title>'
            b'<id>urn:wire:1</id><link href="/cranes" rel="alternate"/><updated>2026-11-17T10:00:00Z</updated>'
            b'<author><name>Pieter Bakker</name></author><content type="html">&lt;p&gt;Cranes stood idle.&lt;/p&gt;'
            b'</content></entry></feed>')
    feed = parse_feed(atom, "application/atom+xml", "https://wire.example/atom.xml")
    (entry,) = feed.entries
    assert feed.title == "Atom wire"
    assert (entry.link, entry.author, entry.published) == ("https://wire.example/cranes", "Pieter Bakker", "2026-11-17")
    assert entry.content == "<p>Cranes stood idle.</p>"


def test_json_feed_1_and_1_1() -> None:
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "JSON wire", "items": [
        {"id": "1", "url": "https://wire.example/j1", "title": "Ships wait", "content_html": "<p>Ships wait.</p>",
         "date_published": "2026-11-17T08:00:00+01:00", "authors": [{"name": "Lotte Jansen"}]},
        {"id": 2, "url": "https://wire.example/j2", "content_text": "First paragraph.\n\nSecond <one>."},
        {"id": "3", "title": "no url, no article"},
    ]}
    feed = parse_feed(msgspec.json.encode(doc), "application/feed+json", "https://wire.example/feed.json")
    first, second, third = feed.entries
    assert feed.title == "JSON wire"
    assert (first.link, first.author, first.published, first.content) == (
        "https://wire.example/j1", "Lotte Jansen", "2026-11-17", "<p>Ships wait.</p>")
    assert second.content == "<p>First paragraph.</p><p>Second &lt;one&gt;.</p>"
    assert third.link is None
    v1 = {"version": "https://jsonfeed.org/version/1", "items": [
        {"id": "x", "url": "https://wire.example/x", "author": {"name": "Old Style"}}]}
    assert parse_feed(msgspec.json.encode(v1), "application/json", "u").entries[0].author == "Old Style"
    with pytest.raises(NotAFeed, match="no JSON Feed"):
        parse_feed(b'{"hello": "world"}', "application/json", "https://wire.example/x.json")


def test_billion_laughs_is_never_expanded() -> None:
    # feedparser on its own: the entities are not expanded (it drops the declarations) ...
    parsed = feedparser.parse(io.BytesIO(BILLION_LAUGHS))
    assert all(len(entry.get("title", "")) < 100 for entry in parsed.entries)
    # ... and Backstory refuses the document at its declaration, with the reason.
    with pytest.raises(NotAFeed, match="declares XML entities"):
        parse_feed(BILLION_LAUGHS, "application/rss+xml", "https://ledger.example/lol.xml")
    external = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<rss version="2.0"><channel><title>&x;</title></channel></rss>')
    with pytest.raises(NotAFeed, match="declares XML entities"):
        parse_feed(external, "application/rss+xml", "https://ledger.example/x.xml")


def test_html_and_junk_are_not_feeds() -> None:
    page = article_page(AI_TITLE, AI_PARAGRAPHS).encode()
    for media_type in ("text/html", "application/octet-stream"):
        with pytest.raises(NotAFeed, match="is an HTML page, not a feed"):
            parse_feed(page, media_type, "https://ledger.example/")
    with pytest.raises(NotAFeed, match="is an HTML page, not a feed"):  # an error page, whatever it is served as
        parse_feed(page, RSS_TYPE, "https://ledger.example/feed.xml")
    with pytest.raises(NotAFeed, match="no RSS or Atom feed"):
        parse_feed(b"just some words", "text/plain", "https://ledger.example/words")
    # A feed served as text/html is still read as the feed it is.
    feed = parse_feed(rss("Mislabelled", [{"guid": "1", "link": "https://ledger.example/1", "title": "One"}]).encode(),
                      "text/html", "https://ledger.example/rss")
    assert [e.title for e in feed.entries] == ["One"]


# ---- polling into a real archive (both backends) --------------------------------------------

@pytest.fixture
async def polling(new_archive, archive_urls):
    """(settings, archive, poller): a store-only pipeline's poller on a new archive."""
    settings = feed_settings(archive_urls("archive"))
    async with new_archive() as archive:
        pipeline = Pipeline(settings, None, archive)
        try:
            yield settings, archive, pipeline.feeds
        finally:
            await pipeline.feeds.aclose()
            pipeline.close()


def long_article(paragraphs: list[str]) -> str:
    html = "".join(f"<p>{p}</p>" for p in paragraphs)
    while len(html.split()) < FULL_ARTICLE_WORDS:
        html += html
    return html


async def test_etag_304_adds_nothing_and_whole_articles_come_from_the_feed(site: FeedSite, polling) -> None:
    settings, archive, poller = polling
    link_whole = site.url("/ai")  # never served: the feed carries the whole article
    link_short = site.put("/chips", article_page(CHIP_TITLE, CHIP_PARAGRAPHS, author="Ana Souza"), "text/html")
    feed_url = site.put("/feed.xml", rss("Ledger", [
        {"guid": "ai", "link": link_whole, "title": AI_TITLE, "content": long_article(AI_PARAGRAPHS),
         "author": "Jo Reporter", "date": "Tue, 17 Nov 2026 10:00:00 GMT"},
        {"guid": "chips", "link": link_short, "title": CHIP_TITLE, "description": "Meta released Llama.",
         "author": "Feed Author", "date": "Wed, 18 Nov 2026 10:00:00 GMT"},
    ]), RSS_TYPE, etag='"v1"')
    url, new = await subscribe(archive, settings, feed_url, added_by="cli")
    assert new and url == feed_url
    result = await poller.poll(feed_url)
    assert (result.new, result.failed, result.error) == (2, 0, None)
    assert site.hits("/ai") == 0 and site.hits("/chips") == 1  # the whole article was not fetched again
    whole = await archive.get(await archive.story_at(link_whole))
    fetched = await archive.get(await archive.story_at(link_short))
    assert whole.title == AI_TITLE and "Sam Altman" in whole.text and not whole.analysed
    assert (whole.published, whole.byline) == ("2026-11-17", "Jo Reporter")  # the entry's: the content has none
    assert fetched.byline == "Ana Souza"  # the page's own author wins over the entry's
    assert fetched.published == "2026-11-18"  # the page has no date: the entry's
    assert await archive.added_by(whole.story_id) == ["cli"]

    feed = await archive.feed(feed_url)
    assert (feed.etag, feed.entries, feed.failures, feed.last_error, feed.title) == ('"v1"', 2, 0, None, "Ledger")
    assert seconds_between(feed.last_poll, feed.next_poll) == 600
    again = await poller.poll(feed_url)
    assert again.not_modified and again.new == 0
    assert site.requests[-1][1].get("if-none-match") == '"v1"'
    assert await archive.count() == 2 and site.hits("/chips") == 1

    # A new version of the feed: only its new entry is taken.
    link_sport = site.put("/sport", article_page(SPORT_TITLE, SPORT_PARAGRAPHS), "text/html")
    site.put("/feed.xml", rss("Ledger", [
        {"guid": "sport", "link": link_sport, "title": SPORT_TITLE},
        {"guid": "chips", "link": link_short, "title": CHIP_TITLE},
        {"guid": "ai", "link": link_whole, "title": AI_TITLE, "content": long_article(AI_PARAGRAPHS)},
    ]), RSS_TYPE, etag='"v2"')
    third = await poller.poll(feed_url)
    assert (third.new, third.not_modified) == (1, False)
    assert await archive.count() == 3 and site.hits("/chips") == 1
    assert (await archive.feed(feed_url)).entries == 3


async def test_last_modified_is_honoured_and_the_ttl_lengthens_the_interval(site: FeedSite, polling) -> None:
    settings, archive, poller = polling
    stamp = http_date(1_763_000_000)
    feed_url = site.put("/lm.xml", rss("Slow wire", [], ttl=120), RSS_TYPE, last_modified=stamp)
    await subscribe(archive, settings, feed_url)
    assert (await poller.poll(feed_url)).error is None
    feed = await archive.feed(feed_url)
    assert feed.last_modified == stamp and feed.interval_s == 120 * 60
    assert seconds_between(feed.last_poll, feed.next_poll) == 7200
    assert (await poller.poll(feed_url)).not_modified
    assert site.requests[-1][1].get("if-modified-since") == stamp


async def test_a_failing_feed_backs_off_keeps_its_subscription_and_recovers(site: FeedSite, polling) -> None:
    settings, archive, poller = polling
    feed_url = site.put("/broken.xml", b"oops", "text/plain", status=500)
    await subscribe(archive, settings, feed_url)
    waits = []
    for failures in (1, 2, 3, 4):
        result = await poller.poll(feed_url)
        feed = await archive.feed(feed_url)
        assert "500" in result.error and feed.last_error == result.error and feed.failures == failures
        waits.append(seconds_between(feed.last_poll, feed.next_poll))
    assert waits == [1200, 2400, 3000, 3000]  # twice as long each time, capped by feeds_max_backoff
    assert [f.url for f in await archive.feeds()] == [feed_url]  # still subscribed
    stats = await archive.feed_stats()
    assert (stats.count, stats.failing) == (1, 1)

    site.put("/broken.xml", rss("Back", []), RSS_TYPE)
    assert (await poller.poll(feed_url)).error is None
    feed = await archive.feed(feed_url)
    assert (feed.failures, feed.last_error) == (0, None)
    assert (await archive.feed_stats()).failing == 0


async def test_html_an_endless_body_and_entities_are_refused_with_their_reason(site: FeedSite, polling) -> None:
    settings, archive, poller = polling
    cases = {
        site.put("/page", article_page(AI_TITLE, AI_PARAGRAPHS), "text/html"): "is an HTML page, not a feed",
        site.put("/huge.xml", b"", RSS_TYPE, endless=True): "larger than",
        site.put("/lol.xml", BILLION_LAUGHS, RSS_TYPE): "declares XML entities",
        site.put("/pdf", b"%PDF-1.7", "application/pdf"): "application/pdf",
    }
    for url, reason in cases.items():
        await subscribe(archive, settings, url)
        result = await poller.poll(url)
        assert reason in result.error, result.error
        assert reason in (await archive.feed(url)).last_error
    assert await archive.count() == 0


async def test_due_feeds_are_leased_and_removing_keeps_the_stories(site: FeedSite, polling) -> None:
    settings, archive, poller = polling
    link = site.put("/chips", article_page(CHIP_TITLE, CHIP_PARAGRAPHS), "text/html")
    first = site.put("/one.xml", rss("One", [{"guid": "c", "link": link, "title": CHIP_TITLE}]), RSS_TYPE)
    second = site.put("/two.xml", rss("Two", []), RSS_TYPE)
    await subscribe(archive, settings, first)
    await subscribe(archive, settings, second)
    assert not (await subscribe(archive, settings, first))[1]  # subscribed already
    assert sorted(await poller.take_due()) == sorted([first, second])
    assert await poller.take_due() == []  # leased: nobody else takes them meanwhile
    assert await poller.poll_due() == 0
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    stamp = future.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sorted(await archive.take_due_feeds(stamp, stamp)) == sorted([first, second])  # the lease runs out
    await poller.poll(first)
    assert await archive.count() == 1
    assert await archive.remove_feed(first) and not await archive.remove_feed(first)
    assert [f.url for f in await archive.feeds()] == [second] and await archive.count() == 1


async def test_an_entry_the_site_fails_is_tried_again_one_it_refuses_is_not(site: FeedSite, polling) -> None:
    settings, archive, poller = polling
    flaky = site.put("/flaky", b"busy", "text/plain", status=503)
    missing = site.url("/missing")  # 404
    feed_url = site.put("/f.xml", rss("F", [{"guid": "flaky", "link": flaky, "title": CHIP_TITLE},
                                            {"guid": "missing", "link": missing, "title": "Gone"}]),
                        RSS_TYPE, etag='"f1"')
    await subscribe(archive, settings, feed_url)
    first = await poller.poll(feed_url)
    assert (first.new, first.failed, first.error) == (0, 2, None)
    feed = await archive.feed(feed_url)
    assert feed.entries == 1 and feed.etag is None  # only the refused one is taken; the feed is read whole next time
    site.put("/flaky", article_page(CHIP_TITLE, CHIP_PARAGRAPHS), "text/html")
    second = await poller.poll(feed_url)
    assert (second.new, second.failed, second.not_modified) == (1, 0, False)
    assert site.hits("/missing") == 1 and site.hits("/flaky") == 2
    assert (await archive.feed(feed_url)).etag == '"f1"'
