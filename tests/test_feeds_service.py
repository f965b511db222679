"""Feeds through the server and the command line, on both archive backends: /api/v1/feeds with
its scopes, /readyz and /metrics, ``backstory feeds`` and OPML imports, and the end-to-end run
the empty-archive issue asks for: a fresh server subscribed to a local feed of 20 related stories
polls it (in-process on SQLite, as procrastinate jobs on PostgreSQL), analyses them in the
background, and then shows them, with reasons, as the backstory of a new story on the event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from backstory.cli import main
from backstory.config import Settings
from backstory.tokens import CHECK_EVERY

from .conftest import BASE_URL, assert_problem, wait_ready
from .feed_stories import NEW_STORY_TEXT, NEW_STORY_TITLE, STRIKE_STORIES
from .feedsite import FeedSite, article_page, rss, site  # noqa: F401 - site is a fixture
from .pages import CHIP_PARAGRAPHS, CHIP_TITLE

FEEDS = "/api/v1/feeds"
RSS_TYPE = "application/rss+xml"


@pytest.fixture
def settings(archive_urls) -> Settings:
    return Settings(archive=archive_urls("archive"), allowed_networks=["127.0.0.0/8"], fetch_host_delay=0.0)


@pytest.fixture
async def client(settings: Settings, models):
    from backstory.app import create_app

    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as c:
        await wait_ready(c)
        yield c


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def eventually(check, timeout: float = 180.0, what: str = "the condition"):
    """``await check()`` until it returns something true (bounded, generous: the machine is shared)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"{what} never came true"
        await asyncio.sleep(0.2)


async def test_feeds_api_scopes_and_errors(client: AsyncTestClient, site: FeedSite) -> None:
    tokens = client.app.state.backstory.tokens
    reader, writer, admin = [await tokens.create(name, name_scope) for name, name_scope in
                             (("reader", "read"), ("writer", "write"), ("boss", "admin"))]
    await asyncio.sleep(CHECK_EVERY + 0.2)  # the server notices new tokens within this
    feed_url = site.put("/feed.xml", rss("Ledger", []), RSS_TYPE)

    assert_problem(await client.get(FEEDS), 401)
    assert_problem(await client.post(FEEDS, json={"url": feed_url}), 401)
    assert (await client.get(FEEDS, headers=bearer(reader))).json() == {"feeds": []}
    for secret in (reader, writer):  # subscribing makes the server fetch from a site: admin only
        refused = await client.post(FEEDS, json={"url": feed_url}, headers=bearer(secret))
        assert "needs admin" in assert_problem(refused, 403)["detail"]

    added = await client.post(FEEDS, json={"url": feed_url, "title": "The Ledger"}, headers=bearer(admin))
    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["url"], body["title"], body["added_by"], body["failures"]) == (feed_url, "The Ledger", "boss", 0)
    again = await client.post(FEEDS, json={"url": feed_url}, headers=bearer(admin))
    assert again.status_code == 200 and again.json()["added"] == body["added"]

    # Polled at once, by this server (SQLite) or as a job (PostgreSQL).
    async def polled():
        feeds = (await client.get(FEEDS, headers=bearer(reader))).json()["feeds"]
        return feeds[0] if feeds and feeds[0]["last_poll"] else None

    shown = await eventually(polled, what="the first poll")
    assert shown["last_error"] is None and shown["next_poll"] > shown["last_poll"]
    ready = (await client.get("/readyz")).json()
    assert ready["feeds"]["count"] == 1 and ready["feeds"]["failing"] == 0 and ready["feeds"]["last_poll"]
    metrics = (await client.get("/metrics")).text
    assert "backstory_feeds 1\n" in metrics and "backstory_feeds_failing 0\n" in metrics
    assert "backstory_feeds_last_poll_timestamp_seconds 17" in metrics  # Unix seconds, not rounded away

    for bad in ({"url": "file:///etc/passwd"}, {"url": feed_url, "extra": 1}, {"title": "no url"}):
        assert_problem(await client.post(FEEDS, json=bad, headers=bearer(admin)), 400)
    assert_problem(await client.post(FEEDS, json={"url": "http://exa mple/"}, headers=bearer(admin)), 400)

    assert_problem(await client.delete(FEEDS, params={"url": feed_url}, headers=bearer(writer)), 403)
    assert_problem(await client.delete(FEEDS, params={"url": site.url("/other.xml")}, headers=bearer(admin)), 404)
    assert_problem(await client.delete(FEEDS, params={"url": "nope"}, headers=bearer(admin)), 400)
    assert (await client.delete(FEEDS, params={"url": feed_url}, headers=bearer(admin))).status_code == 204
    assert (await client.get(FEEDS, headers=bearer(reader))).json() == {"feeds": []}


async def test_a_failing_feed_shows_its_error_in_the_api(client: AsyncTestClient, site: FeedSite) -> None:
    page = site.put("/not-a-feed", article_page(CHIP_TITLE, CHIP_PARAGRAPHS), "text/html")
    assert (await client.post(FEEDS, json={"url": page})).status_code == 201

    async def failed():
        feeds = (await client.get(FEEDS)).json()["feeds"]
        return feeds[0] if feeds[0]["last_error"] else None

    shown = await eventually(failed, what="the failed poll")
    assert "is an HTML page, not a feed" in shown["last_error"] and shown["failures"] == 1
    assert (await client.get("/readyz")).json()["feeds"]["failing"] == 1
    assert "backstory_feeds_failing 1\n" in (await client.get("/metrics")).text


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_line_adds_polls_lists_and_removes(archive_urls, site: FeedSite, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTORY_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("BACKSTORY_FETCH_HOST_DELAY", "0")
    archive = archive_urls("cli")
    link = site.put("/chips", article_page(CHIP_TITLE, CHIP_PARAGRAPHS), "text/html")
    good = site.put("/feed.xml", rss("Ledger", [{"guid": "c", "link": link, "title": CHIP_TITLE}]), RSS_TYPE)
    bad = site.put("/gone.xml", b"gone", "text/plain", status=410)

    code, _, err = run(capsys, "feeds", "add", good, bad, "ftp://nope", "--archive", archive)
    assert code == 1
    assert f"{good}: subscribed; polling it" in err and "1 new stories stored" in err
    assert f"{bad}: subscribed" in err and "the first poll failed" in err and "410" in err
    assert "ftp://nope: the URL" in err
    code, _, err = run(capsys, "feeds", "add", good, "--archive", archive)
    assert code == 0 and "subscribed already" in err

    code, out, _ = run(capsys, "feeds", "list", "--archive", archive)
    assert code == 0
    good_line = next(line for line in out.splitlines() if line.startswith(good))
    bad_line = next(line for line in out.splitlines() if line.startswith(bad))
    assert "never" not in good_line and good_line.split()[3] == "1"  # last poll shown, one entry taken
    assert "410" in bad_line and "never" not in bad_line
    assert "  Ledger" in out  # the feed's own title

    code, _, err = run(capsys, "feeds", "remove", good, site.url("/never.xml"), "--archive", archive)
    assert code == 1 and "unsubscribed" in err and "not subscribed" in err
    code, out, _ = run(capsys, "feeds", "list", "--archive", archive)
    assert good not in out and bad in out


def test_an_opml_import_subscribes_once(archive_urls, tmp_path: Path, capsys) -> None:
    archive = archive_urls("opml")
    path = tmp_path / "subs.opml"
    path.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>subs</title></head><body>'
        '<outline text="Ledger" xmlUrl="https://ledger.example/feed.xml"/>'
        '<outline text="Wire" xmlUrl="https://wire.example/atom"/></body></opml>', encoding="utf-8")
    code, _, err = run(capsys, "import", str(path), "--archive", archive)
    assert code == 0 and "2 feeds found, 2 newly subscribed" in err
    code, _, err = run(capsys, "import", str(path), "--archive", archive)
    assert code == 0 and "2 feeds found, 0 newly subscribed" in err and "0 imported, 2 skipped" in err
    code, out, _ = run(capsys, "feeds", "list", "--archive", archive)
    assert "https://ledger.example/feed.xml" in out and "https://wire.example/atom" in out and "  Ledger" in out


async def test_a_fresh_server_fills_its_archive_from_a_feed(client: AsyncTestClient, site: FeedSite) -> None:
    """The issue's end-to-end run: one poll of a feed of 20 stories on a developing event, the
    background analysis, then a new story on the event has them as its backstory, with reasons."""
    items = []
    for i, (title, paragraphs) in enumerate(STRIKE_STORIES):
        link = site.put(f"/2026/11/strike-{i}", article_page(title, paragraphs, author="Harbour Ledger staff"),
                        "text/html; charset=utf-8")
        items.append({"guid": f"strike-{i}", "link": link, "title": title, "description": paragraphs[0],
                      "date": f"{['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][i % 7]}, {2 + i:02d} Nov 2026 09:00:00 GMT"})
    feed_url = site.put("/rss.xml", rss("The Harbour Ledger", items), RSS_TYPE, etag='"strike"')
    first = await client.post("/api/v1/analyze", json={"url": "https://ledger.example/new", "title": NEW_STORY_TITLE,
                                                        "text": NEW_STORY_TEXT, "archive": False})
    assert first.json()["related"] == []  # the empty archive the issue starts from

    assert (await client.post(FEEDS, json={"url": feed_url})).status_code == 201

    async def done():
        ready = (await client.get("/readyz")).json()
        stories = (await client.get("/api/v1/stories")).json()["total"]
        return ready["feeds"]["last_poll"] and stories == len(STRIKE_STORIES) and ready["pending_analysis"] == 0

    await eventually(done, timeout=300, what="the poll and the background analysis of 20 stories")
    services = client.app.state.backstory  # polled in-process on SQLite, as a procrastinate job on PostgreSQL
    assert (services.feed_polling is None) == (services.jobs is not None)
    assert site.hits("/rss.xml") == 1 and all(site.hits(f"/2026/11/strike-{i}") == 1 for i in range(20))

    answer = await client.post("/api/v1/analyze", json={"url": "https://ledger.example/new", "title": NEW_STORY_TITLE,
                                                         "text": NEW_STORY_TEXT, "archive": False})
    assert answer.status_code == 200, answer.text
    related = answer.json()["related"]
    assert len(related) >= 5, related
    titles = {title for title, _ in STRIKE_STORIES}
    assert all(r["title"] in titles for r in related)
    for story in related:  # each with its reasons: the names and phrases it shares with the new story
        assert story["shared_entities"] or story["shared_keyphrases"], story
    print(f"{len(related)} related stories; first: {related[0]['title']!r}, sharing "
          f"{related[0]['shared_entities']} and {related[0]['shared_keyphrases']}")
    shared = {name for story in related for name in story["shared_entities"]}
    assert {"Rotterdam", "FNV Havens"} & shared, shared
    stored = (await client.get(f"/api/v1/stories/{related[0]['story_id']}")).json()
    assert stored["analysed"] and stored["byline"] == "Harbour Ledger staff" and stored["published"]


async def test_due_feeds_become_one_queued_poll_each(postgres_url: str, site: FeedSite) -> None:
    """PostgreSQL: the periodic job's work queues one poll per due feed, never two for one feed."""
    from backstory.archive import create_archive
    from backstory.jobs import JobQueue
    from backstory.pipeline import Pipeline

    from .conftest import postgres_database

    url = postgres_database(postgres_url, "feeds_queue")
    settings = Settings(archive=url, allowed_networks=["127.0.0.0/8"])
    async with create_archive(url) as archive, JobQueue(url) as jobs:
        pipeline = Pipeline(settings, None, archive, jobs)
        try:
            feeds = [site.put(f"/q{i}.xml", rss(f"Q{i}", []), RSS_TYPE) for i in range(3)]
            for feed in feeds:
                await archive.add_feed(feed, title=None, added_by=None, at="2026-01-01T00:00:00Z", interval_s=1800)
            assert await jobs.defer_due_polls(pipeline) == 3
            assert await jobs.defer_due_polls(pipeline) == 0  # leased by the first: not due again meanwhile
            assert not await jobs.defer_poll(feeds[0])  # a poll of it is waiting already
            rows = await jobs.app.connector.execute_query_all_async(
                "SELECT args->>'url' AS url FROM procrastinate_jobs WHERE task_name = 'poll_feed' AND status = 'todo'")
            assert sorted(row["url"] for row in rows) == sorted(feeds)
        finally:
            pipeline.close()
