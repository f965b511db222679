"""POST /api/v1/imports and GET /api/v1/imports/{id}: exports sent over HTTP to the real app (real
models, a real archive), imported in the background through the same path as ``backstory
import``, their progress and failures read back; the limits, scopes and origin rules of a write;
the imports table on both archive backends."""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
import zipfile
from pathlib import Path
from typing import AsyncIterator, Iterator

import httpx
import pytest
from litestar.testing import AsyncTestClient

from backstory.app import create_app
from backstory_tools.fuzz import live_server
from backstory.archive.storage import ImportRow
from backstory.config import CHROME_EXTENSION_ORIGIN, Settings
from backstory.imports.runs import AT_ONCE, INTERRUPTED, STALE_AFTER, ImportLog
from backstory.tokens import CHECK_EVERY

from .conftest import BASE_URL, assert_problem, story_count, wait_ready
from .pages import (
    AI_PARAGRAPHS,
    AI_TITLE,
    CHIP_PARAGRAPHS,
    CHIP_TITLE,
    FIRE_A,
    FIRE_B,
    SPORT_PARAGRAPHS,
    SPORT_TITLE,
    news_page,
)

IMPORTS = "/api/v1/imports"


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def zipped(members: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return out.getvalue()


FIRE_ROWS = [{"url": f"https://wire.example/fire/{i}", "title": title, "text": text}
             for i, (title, text) in enumerate([*FIRE_A, *FIRE_B])]
WALLABAG = json.dumps([
    {"id": 1, "title": AI_TITLE, "url": "https://ledger.example/ai", "content": news_page(AI_TITLE, AI_PARAGRAPHS),
     "created_at": "2026-11-18T10:00:00+0100", "published_at": "2026-11-16T23:00:00+0100", "tags": ["ai"]},
    {"id": 2, "title": "no url", "content": "<p>x</p>"},
    {"id": 3, "title": SPORT_TITLE, "url": "https://ledger.example/sport",
     "content": news_page(SPORT_TITLE, SPORT_PARAGRAPHS)},
]).encode()
OMNIVORE = zipped({
    "metadata_0_to_2.json": json.dumps([
        {"id": "1", "slug": "meta-llama", "title": CHIP_TITLE, "url": "https://ledger.example/llama",
         "savedAt": "2026-11-19T09:30:00.000Z", "publishedAt": "2026-11-18T08:00:00.000Z"},
        {"id": "2", "slug": "broken", "title": "No URL"},
    ]),
    "content/meta-llama.html": news_page(CHIP_TITLE, CHIP_PARAGRAPHS),
    "../escape.json": json.dumps([{"url": "https://evil.example/x", "slug": "x"}]),
})
OPML = (b'<?xml version="1.0"?>\n<opml version="2.0"><head><title>subs</title></head><body>\n'
        b'<outline type="rss" text="Ledger" xmlUrl="https://ledger.invalid/feed.xml"/>\n'
        b'<outline type="rss" text="Wire" xmlUrl="https://wire.invalid/atom"/>\n</body></opml>\n')
POCKET = b"title,url,time_added,tags,status\nOne,https://pocket.invalid/one,1700000000,a|b,unread\nNo URL,,1700000000,,unread\n"
BOOKMARKS = (b"<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<DL><p>\n"
             b'<DT><A HREF="https://bookmarks.invalid/a" ADD_DATE="1700000000">A</A>\n</DL><p>\n')


async def send(client: AsyncTestClient, body: bytes | AsyncIterator[bytes], content_type: str | None, *,
               token: str | None = None, params: dict | None = None, headers: dict | None = None):
    sent = {**({"content-type": content_type} if content_type else {}), **(headers or {})}
    if token:
        sent["authorization"] = f"Bearer {token}"
    return await client.post(IMPORTS, content=body, headers=sent, params=params)


async def finished(client: AsyncTestClient, started, token: str | None = None, timeout: float = 180.0) -> dict:
    """The import's report once it is no longer running (polled as the extension polls it)."""
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    assert location == f"{IMPORTS}/{started.json()['import_id']}"
    headers = {"authorization": f"Bearer {token}"} if token else {}
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        report = await client.get(location, headers=headers)
        assert report.status_code == 200, report.text
        body = report.json()
        if body["status"] != "running":
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


async def test_each_format_and_type_is_imported_and_reported(client: AsyncTestClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    documented = set(schema["paths"][IMPORTS]["post"]["requestBody"]["content"])
    assert {"application/zip", "application/json", "text/csv", "text/html", "text/x-opml", "application/x-ndjson",
            "application/jsonl", "application/octet-stream"} <= documented

    # JSON lines: stored as stories; a bad line and a line without its page are failures with reasons.
    body = jsonl(FIRE_ROWS[:3]) + b"{broken\n" + jsonl([{"url": "https://wire.example/only-url"}])
    report = await finished(client, await send(client, body, "application/x-ndjson"))
    assert (report["status"], report["format"], report["imported"], report["skipped"], report["failed"]) == (
        "done", "jsonl", 3, 0, 2)
    assert report["size"] == len(body) and report["read_bytes"] == len(body)
    assert {f["where"]: f["reason"] for f in report["failures"]}["line 5"] == "line has neither text nor html"
    assert report["failures"][0]["where"] == "line 4" and report["started"] and report["finished"]
    assert await story_count(client) == 3

    # Wallabag (application/json), Omnivore (a zip, whose ../ member is never read): articles, no fetching.
    report = await finished(client, await send(client, WALLABAG, "application/json"))
    assert (report["status"], report["format"], report["imported"], report["failed"]) == ("done", "wallabag", 2, 1)
    report = await finished(client, await send(client, OMNIVORE, "application/zip"))
    assert (report["status"], report["format"], report["imported"], report["failed"]) == ("done", "omnivore", 1, 2)
    reasons = {f["where"]: f["reason"] for f in report["failures"]}
    assert reasons["../escape.json"] == "a zip member named outside the archive: never read"
    titles = {s["title"] for s in (await client.get("/api/v1/stories", params={"limit": 50})).json()["stories"]}
    assert {AI_TITLE, SPORT_TITLE, CHIP_TITLE} <= titles and await story_count(client) == 6
    wallabag_ai = (await client.get("/api/v1/stories", params={"q": "Altman weighs"})).json()["stories"][0]
    assert wallabag_ai["published"] == "2026-11-17"  # the page's own date (news_page's) wins over the export's

    # Pocket (text/csv), bookmarks (text/html): URLs only; every entry is accounted for.
    for data, content_type, fmt in ((POCKET, "text/csv", "pocket"), (BOOKMARKS, "text/html", "bookmarks")):
        report = await finished(client, await send(client, data, content_type))
        assert report["format"] == fmt and report["status"] == "done", report
        assert report["imported"] + report["skipped"] + report["failed"] == (2 if fmt == "pocket" else 1)
        assert all(f["reason"] for f in report["failures"])

    # OPML (text/x-opml): the feeds it lists are found and reported.
    report = await finished(client, await send(client, OPML, "text/x-opml"))
    assert (report["format"], report["feeds_found"]) == ("opml", 2)
    assert report["feeds"] == ["https://ledger.invalid/feed.xml", "https://wire.invalid/atom"]

    # application/octet-stream: told from the content; ?format= forces a format.
    report = await finished(client, await send(client, jsonl(FIRE_ROWS[3:4]), "application/octet-stream"))
    assert (report["format"], report["imported"]) == ("jsonl", 1)
    forced = await finished(client, await send(client, jsonl(FIRE_ROWS[:1]), "application/octet-stream",
                                               params={"format": "wallabag"}))
    assert (forced["format"], forced["imported"]) == ("wallabag", 0)  # a JSON line is no Wallabag array

    listed = (await client.get(IMPORTS)).json()["imports"]
    assert len(listed) == 8 and listed[0]["import_id"] == forced["import_id"]  # newest first
    assert [i["format"] for i in (await client.get(IMPORTS, params={"limit": 2})).json()["imports"]] == [
        "wallabag", "jsonl"]


async def test_sending_again_skips_everything_and_nothing_is_duplicated(client: AsyncTestClient) -> None:
    body = jsonl(FIRE_ROWS)
    first = await finished(client, await send(client, body, "application/jsonl"))
    assert (first["imported"], first["skipped"]) == (len(FIRE_ROWS), 0)
    again = await finished(client, await send(client, body, "application/jsonl"))
    assert (again["status"], again["imported"], again["skipped"], again["failed"]) == ("done", 0, len(FIRE_ROWS), 0)
    assert await story_count(client) == len(FIRE_ROWS)


async def test_bad_files_are_refused_or_reported(client: AsyncTestClient) -> None:
    # A format that cannot be told: refused at once, nothing started.
    body = assert_problem(await send(client, b"just some notes\n", "text/csv"), 422)
    assert "cannot tell the export's format" in body["detail"] and "?format=" in body["detail"]
    assert_problem(await send(client, b"PK\x03\x04 not really a zip", "application/zip"), 422)
    assert "body is empty" in assert_problem(await send(client, b"", "text/csv", params={"format": "pocket"}), 422)["detail"]
    assert_problem(await send(client, b"", None), 422)  # no type, no body: nothing to import
    assert (await client.get(IMPORTS)).json()["imports"] == []
    # Types that are not an export's (and those a browser sends cross-site unasked): 415.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                         "image/png", None):
        detail = assert_problem(await send(client, jsonl(FIRE_ROWS[:1]), content_type), 415)["detail"]
        assert "text/csv" in detail
    assert_problem(await send(client, jsonl(FIRE_ROWS[:1]), "application/x-ndjson", params={"format": "docx"}), 400)

    # A zip bomb: refused before it is inflated; the import says so.
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("part_000000.csv", "w") as member:
            member.write(b"title,url,time_added,tags,status\n")
            for _ in range(50):
                member.write(b"0" * (1024 * 1024))
    report = await finished(client, await send(client, bomb.getvalue(), "application/zip"))
    assert report["status"] == "failed" and "zip bomb" in report["error"]
    assert report["failures"] == [{"where": "the file", "reason": report["error"], "url": None}]

    # Broken JSON part-way: what came before is stored, the import says where it broke.
    broken = WALLABAG[: WALLABAG.index(b'{"id": 3')] + b'{"id": 3, "url": '
    report = await finished(client, await send(client, broken, "application/json"))
    assert (report["status"], report["imported"]) == ("failed", 1) and "broken JSON after entry 2" in report["error"]
    assert await story_count(client) == 1


async def test_failures_are_listed_up_to_a_bound_and_counted_in_full(client: AsyncTestClient) -> None:
    body = b"".join(b'{"url": "ftp://x.example/%d", "text": "t"}\n' % i for i in range(150)) + jsonl(FIRE_ROWS[:1])
    report = await finished(client, await send(client, body, "application/x-ndjson"))
    assert (report["status"], report["imported"], report["failed"]) == ("done", 1, 150)
    assert len(report["failures"]) == 100 and report["failures"][0]["where"] == "line 1"


async def test_a_file_past_the_limit_gets_413_from_a_real_server(tmp_path: Path, models) -> None:
    settings = Settings(archive=str(tmp_path / "a.sqlite3"), max_import_bytes=8192, max_body_bytes=2048)
    small = jsonl(FIRE_ROWS) + b"\n" * 2048  # blank lines are skipped
    assert 2048 < len(small) < 8192

    def chunked(size: int) -> Iterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(size // 1024):
            yield b"\n" * 1024

    with live_server(settings, models) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            body = assert_problem(await send(client, small + b" " * 8192, "application/x-ndjson"), 413)
            assert "BACKSTORY_MAX_IMPORT_BYTES" in body["detail"]
            assert_problem(await send(client, _async(chunked(9 * 1024)), "application/x-ndjson"), 413)
            assert (await client.get(IMPORTS)).json()["imports"] == []
            # Under the import limit, though past the limit of a JSON body: accepted, chunked or not.
            report = await finished(client, await send(client, small, "application/x-ndjson"))
            assert report["imported"] == len(FIRE_ROWS)
            report = await finished(client, await send(client, _async(iter([small[:3000], small[3000:]])),
                                                        "application/x-ndjson"))
            assert (report["skipped"], report["size"]) == (len(FIRE_ROWS), len(small))
            assert_problem(await client.post("/api/v1/analyze", json={**FIRE_ROWS[0], "text": "x " * 1024}), 413)


async def _async(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_cross_origin_imports_are_refused_like_every_write(client: AsyncTestClient) -> None:
    body = jsonl(FIRE_ROWS[:1])
    for origin in ("https://evil.example", "null", "chrome-extension://abcdefghijklmnopabcdefghijklmnop"):
        assert_problem(await send(client, body, "application/x-ndjson", headers={"origin": origin}), 403)
    for site in ("cross-site", "same-site"):
        assert_problem(await send(client, body, "application/x-ndjson", headers={"sec-fetch-site": site}), 403)
    assert (await client.get(IMPORTS)).json()["imports"] == []
    preflight = await client.options(IMPORTS, headers={"origin": "https://evil.example",
                                                       "access-control-request-method": "POST",
                                                       "access-control-request-headers": "content-type"})
    assert "access-control-allow-origin" not in preflight.headers
    # The extension may.
    report = await finished(client, await send(client, body, "application/x-ndjson",
                                               headers={"origin": CHROME_EXTENSION_ORIGIN}))
    assert report["imported"] == 1


def many_rows(count: int, prefix: str = "many") -> list[dict]:
    """Stories with texts of their own (texts alike are one story to the archive: its duplicates rule)."""
    words = sorted({w.strip(".,;:'\"—") for text in AI_PARAGRAPHS + SPORT_PARAGRAPHS for w in text.split()} - {""})
    return [{"url": f"https://wire.example/{prefix}/{i}", "title": f"Story {i}",
             "text": " ".join(random.Random(f"{prefix}{i}").choices(words, k=120)) + "."} for i in range(count)]


async def test_a_server_runs_a_few_imports_at_once(client: AsyncTestClient) -> None:
    for n in range(AT_ONCE):
        started = await send(client, jsonl(many_rows(300, f"batch{n}")), "application/x-ndjson")
        assert started.status_code == 202, started.text
    busy = assert_problem(await send(client, jsonl(FIRE_ROWS), "application/x-ndjson"), 429)
    assert busy["detail"].startswith(f"this server is receiving or running {AT_ONCE} imports")
    assert int((await send(client, jsonl(FIRE_ROWS), "application/x-ndjson")).headers["retry-after"]) > 0
    statuses = [i["status"] for i in (await client.get(IMPORTS)).json()["imports"]]
    assert statuses == ["running"] * AT_ONCE


async def test_an_import_cut_short_by_a_stopping_server_is_interrupted_and_resumes(tmp_path: Path, models) -> None:
    settings = Settings(archive=str(tmp_path / "a.sqlite3"))
    rows = many_rows(400)
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        started = await send(client, jsonl(rows), "application/x-ndjson")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        assert started.json()["status"] == "running"
        # Progress shows while it runs (written every half second).
        deadline = asyncio.get_running_loop().time() + 120
        while (report := (await client.get(location)).json())["imported"] == 0:
            assert report["status"] == "running" and asyncio.get_running_loop().time() < deadline, report
            await asyncio.sleep(0.05)
        assert report["status"] == "running" and report["read_bytes"] > 0
    # The server stopped mid-import: another start of it (or another server) says so.
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        stopped = (await client.get(location)).json()
        assert (stopped["status"], stopped["error"]) == ("interrupted", INTERRUPTED)
        assert 0 < stopped["imported"] < len(rows) and stopped["finished"]
        stored = await story_count(client)
        # The stories being stored at the moment it stopped (at most the import's window) may be
        # in the archive without being counted yet.
        assert stopped["imported"] <= stored <= stopped["imported"] + settings.workers * 2
        # Sent again, it resumes: what was stored is skipped, the rest imported, nothing twice.
        again = await finished(client, await send(client, jsonl(rows), "application/x-ndjson"))
        assert (again["status"], again["skipped"], again["imported"]) == ("done", stored, len(rows) - stored)
        assert await story_count(client) == len(rows)


# ---- on both archive backends: scopes, ownership, and the table itself --------------------------------

@pytest.fixture
def backend_settings(archive_urls) -> Settings:
    return Settings(archive=archive_urls("archive"), allowed_networks=["127.0.0.0/8"])


async def test_scopes_and_owners_on_both_backends(backend_settings: Settings, models) -> None:
    async with AsyncTestClient(app=create_app(backend_settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        tokens = client.app.state.backstory.tokens
        reader, writer, other, admin = (await tokens.create("reader", "read"), await tokens.create("writer", "write"),
                                        await tokens.create("other", "write"), await tokens.create("admin", "admin"))
        await asyncio.sleep(CHECK_EVERY + 0.2)  # the server notices new tokens within this
        body = jsonl(FIRE_ROWS[:2])
        missing = assert_problem(await send(client, body, "application/x-ndjson"), 401)
        assert "Bearer" in missing["detail"]
        assert_problem(await send(client, b"", None), 401)  # an empty request: the token first
        assert "read scope" in assert_problem(await send(client, body, "application/x-ndjson", token=reader), 403)["detail"]
        # OPML lists feeds to subscribe to: an admin's; told from the content, or asked for by ?format=.
        assert "admin" in assert_problem(await send(client, OPML, "text/x-opml", token=writer), 403)["detail"]
        assert_problem(await send(client, OPML, "application/octet-stream", token=writer, params={"format": "opml"}), 403)
        assert (await client.get(IMPORTS, headers={"authorization": f"Bearer {admin}"})).json()["imports"] == []

        report = await finished(client, await send(client, body, "application/x-ndjson", token=writer), token=writer)
        assert (report["status"], report["imported"]) == ("done", 2)
        story = (await client.get("/api/v1/stories", headers={"authorization": f"Bearer {writer}"})).json()["stories"][0]
        detail = (await client.get(f"/api/v1/stories/{story['story_id']}",
                                   headers={"authorization": f"Bearer {writer}"})).json()
        assert detail["added_by"] == ["writer"]  # the stories are claimed by the token that sent them
        feeds = await finished(client, await send(client, OPML, "text/x-opml", token=admin), token=admin)
        assert feeds["feeds_found"] == 2

        # A member sees their own imports; an admin everyone's.
        location = f"{IMPORTS}/{report['import_id']}"
        assert_problem(await client.get(location, headers={"authorization": f"Bearer {other}"}), 404)
        assert (await client.get(IMPORTS, headers={"authorization": f"Bearer {other}"})).json()["imports"] == []
        assert (await client.get(location, headers={"authorization": f"Bearer {admin}"})).json()["imported"] == 2
        mine = (await client.get(IMPORTS, headers={"authorization": f"Bearer {writer}"})).json()["imports"]
        assert [i["import_id"] for i in mine] == [report["import_id"]]
        everyone = (await client.get(IMPORTS, headers={"authorization": f"Bearer {admin}"})).json()["imports"]
        assert [i["import_id"] for i in everyone] == [feeds["import_id"], report["import_id"]]
        assert_problem(await client.get(f"{IMPORTS}/0123456789abcdef", headers={"authorization": f"Bearer {admin}"}), 404)
        assert_problem(await client.get(f"{IMPORTS}/not-an-id", headers={"authorization": f"Bearer {admin}"}), 400)


async def test_the_imports_table_on_both_backends(new_archive) -> None:
    async with new_archive() as archive:
        log = ImportLog(archive.storage, stale_after=2.0)
        row = ImportRow(import_id="00112233445566aa", format="pocket", status="running", added_by="token:7", size=10,
                        read_bytes=4, imported=1, skipped=2, failed=1,
                        failures='[{"where":"line 3","reason":"no URL","url":null}]', feeds_found=0, feeds="[]",
                        error=None, started="2026-01-01T00:00:00Z", updated="2099-01-01T00:00:00Z", finished=None)
        await log.save(row)
        status = await log.get(row.import_id, "token:7")
        assert (status.status, status.imported, status.skipped, status.failed) == ("running", 1, 2, 1)
        assert status.failures[0].reason == "no URL"
        assert await log.get(row.import_id, "token:8") is None and (await log.get(row.import_id, None)) == status
        # A running import whose heartbeat stopped (its server died) reads as interrupted.
        await log.save(row._replace(updated="2026-01-01T00:00:05Z", imported=3))
        stale = await log.get(row.import_id, None)
        assert (stale.status, stale.error, stale.imported) == ("interrupted", INTERRUPTED, 3)
        await log.save(row._replace(import_id="00112233445566bb", started="2026-01-02T00:00:00Z", added_by=None))
        assert [s.import_id for s in await log.recent(None, 10)] == ["00112233445566bb", "00112233445566aa"]
        assert [s.import_id for s in await log.recent("token:7", 10)] == ["00112233445566aa"]
        await archive.storage.write(lambda w: (w.prune_imports("2026-01-02T00:00:00Z"), None))
        assert [s.import_id for s in await log.recent(None, 10)] == ["00112233445566bb"]


def test_a_killed_servers_import_reads_as_interrupted_on_another_server(tmp_path: Path) -> None:
    """Two real servers on one archive: the import runs on the first, the second reports its progress;
    the first is killed (SIGKILL, nothing recorded); the second then says the import was interrupted,
    and the file sent again to it completes the archive without a story lost or stored twice."""
    from backstory_tools.bench.server import Server

    archive = tmp_path / "team.sqlite3"
    runner, other = Server(archive, tmp_path / "a.log"), Server(archive, tmp_path / "b.log")
    rows = many_rows(600, "killed")
    try:
        runner.start()
        other.start()
        with httpx.Client(timeout=60) as http:
            started = http.post(runner.base + IMPORTS, content=jsonl(rows), headers={"content-type": "application/jsonl"})
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            deadline = time.monotonic() + 120
            while (seen := http.get(other.base + location).json())["imported"] == 0:  # the other server's view
                assert seen["status"] == "running" and time.monotonic() < deadline, seen
                time.sleep(0.05)
            runner.proc.kill()
            runner.proc.wait(30)
            deadline = time.monotonic() + STALE_AFTER + 90
            while (report := http.get(other.base + location).json())["status"] == "running":
                assert time.monotonic() < deadline, report
                time.sleep(0.5)
            assert (report["status"], report["error"], report["finished"]) == ("interrupted", INTERRUPTED, None)
            assert 0 < report["imported"] < len(rows)
            stored = http.get(other.base + "/api/v1/stories").json()["total"]
            again = http.post(other.base + IMPORTS, content=jsonl(rows), headers={"content-type": "application/jsonl"})
            deadline = time.monotonic() + 300
            while (done := http.get(other.base + again.headers["location"]).json())["status"] == "running":
                assert time.monotonic() < deadline, done
                time.sleep(0.2)
            assert (done["status"], done["skipped"], done["imported"]) == ("done", stored, len(rows) - stored)
            assert http.get(other.base + "/api/v1/stories").json()["total"] == len(rows)
    finally:
        runner.stop()
        other.stop()
