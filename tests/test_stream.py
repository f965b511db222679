"""The streamed analysis (``Accept: application/x-ndjson``) end to end: real models, a real SQLite
file, the real app (through the test client, and under uvicorn on 127.0.0.1 where lines must
really arrive apart or a client must really go away)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from backstory.config import Settings
from backstory.schemas import Sidebar
from backstory.stream import (
    EVENTS,
    NDJSON,
    DoneEvent,
    ErrorEvent,
    FactsEvent,
    decode_event,
    merged,
)

from .conftest import BASE_URL, assert_problem, story_count, wait_ready
from .hardening.test_bounded import LiveServer, prose
from .pages import AI_PARAGRAPHS, AI_TITLE, news_page

ANALYZE = "/api/v1/analyze"
AI_URL = "https://ledger.example/tech/2026/11/17/openai-open-models"
STREAMED = {"Accept": NDJSON}
PARTS = {"keyphrases", "entities", "related"}  # between facts and done, in the order they are ready
WAIT = 120.0  # seconds: a generous bound for anything this machine does


def ai_page() -> str:
    return news_page(AI_TITLE, AI_PARAGRAPHS)


def event_name(event) -> str:
    return type(event).__struct_config__.tag


async def stream(client: httpx.AsyncClient, method: str, body: dict | None = None, **kwargs) -> tuple[httpx.Response, list]:
    """The response and its lines, each decoded by its own type (unknown or missing fields fail)."""
    async with client.stream(method, ANALYZE, json=body, headers=STREAMED, **kwargs) as response:
        if not response.headers["content-type"].startswith(NDJSON):
            await response.aread()
            return response, []
        raw = [line async for line in response.aiter_lines() if line]
    assert all(next(iter(json.loads(line))) == "event" for line in raw), raw  # the name first, then the part
    return response, [decode_event(line) for line in raw]


def assert_complete(lines: list) -> None:
    """facts first, the three parts in some order, done last: each once."""
    names = [event_name(e) for e in lines]
    assert names[0] == "facts" and names[-1] == "done", names
    assert sorted(names[1:-1]) == sorted(PARTS), names


def without_timings(sidebar: Sidebar) -> dict:
    fields = msgspec.to_builtins(sidebar)
    fields.pop("timings_ms")
    fields.pop("cached")
    return fields


async def test_lines_come_in_order_and_merge_into_the_sidebar(client: AsyncTestClient) -> None:
    response, lines = await stream(client, "POST", {"url": AI_URL, "html": ai_page()})
    assert response.status_code == 200 and response.headers["content-type"] == NDJSON
    assert_complete(lines)
    facts, done = lines[0], lines[-1]
    assert facts.title == AI_TITLE and "Sam Altman" in facts.text and facts.word_count > 100
    assert facts.reading_minutes >= 1 and facts.canonical_url == AI_URL
    assert done.story_id == facts.story_id and done.archived and not done.cached
    assert done.timings_ms.extract > 0 and done.timings_ms.total >= done.timings_ms.extract
    streamed = merged(lines)
    assert any(e.name == "Sam Altman" for e in streamed.entities) and streamed.keyphrases
    assert await story_count(client) == 1

    # The same request without the header: today's answer, the same sidebar (a cache hit now).
    whole = await client.post(ANALYZE, json={"url": AI_URL, "html": ai_page()})
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/json"
    sidebar = msgspec.json.decode(whole.content, type=Sidebar)
    assert sidebar.cached and without_timings(sidebar) == without_timings(streamed)

    # A cache hit streams too: every line, the same sidebar.
    response, again = await stream(client, "POST", {"url": AI_URL, "html": ai_page()})
    assert_complete(again)
    assert again[-1].cached and merged(again) == msgspec.structs.replace(sidebar, timings_ms=again[-1].timings_ms)
    assert await story_count(client) == 1


async def test_get_streams_a_fetched_page(client: AsyncTestClient, page_server) -> None:
    url = page_server.add("/tech/openai.html", ai_page())
    response, lines = await stream(client, "GET", params={"url": url, "archive": "false"})
    assert response.status_code == 200, response.text
    assert_complete(lines)
    assert lines[0].url == url and lines[-1].timings_ms.fetch > 0 and not lines[-1].archived
    assert await story_count(client) == 0


async def test_a_copy_of_a_stored_story_ends_with_the_stored_id(client: AsyncTestClient) -> None:
    first = (await client.post(ANALYZE, json={"url": AI_URL, "html": ai_page()})).json()
    copy = list(AI_PARAGRAPHS)
    copy[-1] = copy[-1].replace("quickly", "rapidly")
    _, lines = await stream(client, "POST", {"url": "https://syndication.example/wire/12345",
                                             "html": news_page(AI_TITLE, copy)})
    assert_complete(lines)
    # The first line names the id the page would have on its own; done, the story it joined.
    assert lines[0].story_id != first["story_id"] == lines[-1].story_id
    assert merged(lines).story_id == first["story_id"] and await story_count(client) == 1


async def test_a_failure_before_the_first_line_is_an_ordinary_problem(client: AsyncTestClient) -> None:
    # No article in the page (422), a body that breaks its rules (400): no stream at all.
    response, lines = await stream(client, "POST", {"url": AI_URL, "html": "<html><body></body></html>"})
    assert lines == [] and assert_problem(response, 422)
    response, lines = await stream(client, "POST", {"url": AI_URL, "html": "<p>x</p>", "text": "x"})
    assert lines == [] and assert_problem(response, 400)
    response, lines = await stream(client, "GET", params={"url": "ftp://example.org/"})
    assert lines == [] and assert_problem(response, 400)
    assert await story_count(client) == 0


@pytest.mark.parametrize("accept", [None, "application/json", f"{NDJSON};q=0", "text/html, */*"])
async def test_without_the_stream_type_the_answer_is_whole(client: AsyncTestClient, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    response = await client.post(ANALYZE, json={"url": AI_URL, "html": ai_page()}, headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    sidebar = msgspec.json.decode(response.content, type=Sidebar)
    assert sidebar.title == AI_TITLE and sidebar.entities and sidebar.keyphrases


async def test_the_events_cover_the_sidebar_and_are_in_the_openapi_document(client: AsyncTestClient) -> None:
    # Every Sidebar field is carried by exactly one line but story_id (facts, then done's final one).
    carried = [name for event in EVENTS if event is not ErrorEvent for name in event.__struct_fields__]
    assert sorted(set(carried)) == sorted(Sidebar.__struct_fields__)
    assert [n for n in carried if carried.count(n) > 1] == ["story_id", "story_id"]
    assert set(ErrorEvent.__struct_fields__) == {"status", "title", "detail", "type"}
    schema = (await client.get("/schema/openapi.json")).json()
    for path, method in ((ANALYZE, "post"), (ANALYZE, "get")):
        ok = schema["paths"][path][method]["responses"]["200"]
        assert set(ok["content"]) == {"application/json", NDJSON}
        line = ok["content"][NDJSON]["schema"]
        assert line["discriminator"]["propertyName"] == "event"
        assert set(line["discriminator"]["mapping"]) == {"facts", "keyphrases", "entities", "related", "done", "error"}
    for event in EVENTS:
        document = schema["components"]["schemas"][event.__name__]
        assert set(document["properties"]) == {"event", *event.__struct_fields__}
    assert schema["components"]["schemas"]["EntitiesEvent"]["properties"]["entities"]["items"] == {
        "$ref": "#/components/schemas/Entity"}


# An analysis deadline that extraction of this text keeps easily and its language stages cannot
# (extraction: a few ms; entities and keyphrases of 10,000 tokens: seconds, measured on 2 cores).
TIGHT_DEADLINE = 0.4
LONG_TEXT = prose(60_000, seed=5)


async def test_a_failure_after_the_first_line_ends_the_stream_with_an_error_line(settings: Settings, models) -> None:
    from backstory.app import create_app

    app = create_app(settings.replace(analysis_deadline=TIGHT_DEADLINE), models=models)
    async with AsyncTestClient(app=app, base_url=BASE_URL, timeout=WAIT) as client:
        await wait_ready(client)
        response, lines = await stream(client, "POST", {"url": "https://late.example/long", "text": LONG_TEXT})
        assert response.status_code == 200
        assert [event_name(e) for e in lines] == ["facts", "error"]
        assert lines[0].text == LONG_TEXT
        error = lines[1]
        assert error.status == 503 and error.title == "Service unavailable" and error.type == "about:blank"
        assert "deadline" in error.detail and "nothing was stored" in error.detail
        with pytest.raises(ValueError, match="deadline"):
            merged(lines)
        # The same request not streamed: the same failure, as a problem.
        assert_problem(await client.post(ANALYZE, json={"url": "https://late.example/long", "text": LONG_TEXT}), 503)
        pipeline = app.state.backstory.pipeline
        end = time.monotonic() + WAIT
        while pipeline.workers.active and time.monotonic() < end:  # the language stages end in the background
            await asyncio.sleep(0.05)
        assert await story_count(client) == 0


@pytest.fixture
def live(settings: Settings, models):
    server = LiveServer(settings.replace(workers=1), models)
    yield server
    server.close()


async def first_line(response: httpx.Response) -> FactsEvent:
    lines = response.aiter_lines()
    line = await anext(lines)
    event = decode_event(line)
    assert isinstance(event, FactsEvent), line
    return event


async def test_facts_come_while_every_analysis_slot_is_busy(live: LiveServer) -> None:
    """One worker slot, held by a long analysis: a second page's facts still come at once (the
    extraction takes no slot), and its other lines once the slot is free."""
    async with live.client() as http:
        busy = asyncio.ensure_future(http.post(ANALYZE, json={"url": "https://long.example/", "text": LONG_TEXT,
                                                              "archive": False}))
        end = time.monotonic() + WAIT
        while live.pipeline.analyzer.analyzed == 0:  # the long one holds the slot
            assert time.monotonic() < end and not busy.done(), "the long analysis never started"
            await asyncio.sleep(0.01)
        async with http.stream("POST", ANALYZE, json={"url": AI_URL, "html": ai_page()}, headers=STREAMED) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            facts = decode_event(await anext(lines))
            assert isinstance(facts, FactsEvent) and facts.title == AI_TITLE
            assert not busy.done(), "the facts waited for the long analysis"
            rest = [decode_event(line) async for line in lines if line]
        assert (await busy).status_code == 200
        assert_complete([facts, *rest])


async def test_a_client_that_goes_away_mid_stream_leaves_the_story_archived_once(live: LiveServer) -> None:
    async with live.client() as http:
        async with http.stream("POST", ANALYZE, json={"url": "https://gone.example/story", "text": LONG_TEXT},
                               headers=STREAMED) as response:
            facts = await first_line(response)
        # The connection is closed: the analysis goes on and stores the story, once.
        end = time.monotonic() + WAIT
        while (await http.get("/api/v1/stories")).json()["total"] == 0:
            assert time.monotonic() < end, "the story was never archived"
            await asyncio.sleep(0.1)
        while live.pipeline.workers.active or live.app.state.backstory.streams:
            assert time.monotonic() < end, "the analysis never ended"
            await asyncio.sleep(0.05)
        listing = (await http.get("/api/v1/stories")).json()
        assert listing["total"] == 1 and listing["stories"][0]["story_id"] == facts.story_id
        # Healthy: it answers, streams and analyzes as before, and counted no failure.
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        async with http.stream("POST", ANALYZE, json={"url": AI_URL, "html": ai_page()}, headers=STREAMED) as again:
            lines = [decode_event(line) async for line in again.aiter_lines() if line]
        assert_complete(lines)
        assert isinstance(lines[-1], DoneEvent) and lines[-1].archived
        metrics = (await http.get("/metrics")).text
        assert "backstory_analysis_errors_total 0\n" in metrics and "backstory_stories 2\n" in metrics


async def test_the_language_stages_start_once_no_extraction_waits() -> None:
    """Extractions first (a unit test of Workers): under load the queue forms before the language
    stages, not before the facts."""
    import threading

    from backstory.pipeline import Workers

    workers = Workers(2)
    try:
        release = threading.Event()
        extraction = asyncio.ensure_future(workers.extract(release.wait, 60))
        while not workers.extracting:
            await asyncio.sleep(0.01)
        waiting = asyncio.ensure_future(workers.extractions_first())
        await asyncio.sleep(0.3)
        assert not waiting.done() and workers.extracting == 1
        release.set()
        assert await asyncio.wait_for(extraction, WAIT) is True
        await asyncio.wait_for(waiting, WAIT)
        assert workers.extracting == 0
        await asyncio.wait_for(workers.extractions_first(), 1)  # nothing extracting: no wait at all
    finally:
        release.set()
        workers.close()


async def test_a_server_stopped_right_after_a_client_went_away_still_stores_its_story(
        settings: Settings, models) -> None:
    from backstory.archive import open_archive

    server = LiveServer(settings.replace(workers=1), models)
    try:
        async with server.client() as http:
            async with http.stream("POST", ANALYZE, json={"url": "https://gone.example/late", "text": LONG_TEXT},
                                   headers=STREAMED) as response:
                facts = await first_line(response)
    finally:
        server.server.should_exit = True  # at once: the analysis is still running
        await asyncio.to_thread(server.thread.join, WAIT)
    assert not server.thread.is_alive()
    archive = await open_archive(settings)
    try:
        assert await archive.count() == 1 and await archive.get(facts.story_id) is not None
    finally:
        await archive.close()
