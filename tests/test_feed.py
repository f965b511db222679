"""The change feed: a running server sees what other processes write to its archive within 2 s,
in its related stories, its duplicate detection and its cached related lists; a server that fell
behind a cut feed reloads its index."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from backstory.archive import threaded
from backstory.story import StoryRecord, story_id_for
from backstory.archive.feed import Follower
from backstory.archive.sqlite import archive_at
from backstory.config import Settings

from .pages import FIRE_A, FIRE_B
from .test_cli import write_jsonl

FOLLOW_WITHIN = 2.0  # seconds


@pytest.fixture
def settings(archive_urls) -> Settings:
    """The servers of these tests keep their archive on each backend in turn."""
    return Settings(archive=archive_urls("archive"), allowed_networks=["127.0.0.0/8"])


def in_another_process(*args: str) -> None:
    """Run ``python ARGS`` as a separate OS process, to its end."""
    env = {**os.environ, "BACKSTORY_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


async def exported_lines(models, tmp_path: Path, stories: list[tuple[str, str, str]]) -> tuple[Path, list[str]]:
    """``backstory export`` lines of these (url, title, text) stories, analysed here on a scratch
    archive: another process imports them whole, without loading models of its own."""
    from backstory.pipeline import Pipeline
    from backstory.schemas import AnalyzeRequest

    scratch = archive_at(tmp_path / "scratch.sqlite3")
    pipeline = Pipeline(Settings(archive=str(tmp_path / "scratch.sqlite3")), models, scratch)
    try:
        for url, title, text in stories:
            await pipeline.ingest(AnalyzeRequest(url=url, title=title, text=text))
        records = [r async for r in scratch.export()]
    finally:
        pipeline.close()
        await scratch.close()
    path = tmp_path / "stories.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in records))
    return path, [r.story_id for r in records]


async def within(seconds: float, check) -> float:
    """Seconds until ``await check()`` is true; fails past ``seconds``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, f"not seen within {seconds} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def related_ids(client: AsyncTestClient, story_id: str) -> list[str]:
    response = await client.get(f"/api/v1/stories/{story_id}/related")
    assert response.status_code == 200, response.text
    return [r["story_id"] for r in response.json()["related"]]


async def analyze(client: AsyncTestClient, url: str, title: str, text: str, **extra) -> dict:
    response = await client.post("/api/v1/analyze", json={"url": url, "title": title, "text": text, **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_story_another_process_imports_is_related_and_a_duplicate_within_2s(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    a = await analyze(client, "https://news.example/A/0", *FIRE_A[0])
    title, text = FIRE_A[1]
    source = write_jsonl(tmp_path / "new.jsonl", [{"url": "https://other.example/fire/1", "title": title, "text": text}])
    assert not await related_ids(client, a["story_id"])  # the archive held nothing else

    # A real import in another OS process, analysing with its own models.
    in_another_process("-m", "backstory", "import", str(source), "--analyse", "--archive", settings.archive)
    b_id = story_id_for("https://other.example/fire/1")

    async def related() -> bool:
        return b_id in await related_ids(client, a["story_id"])

    await within(FOLLOW_WITHIN, related)
    # The same text at another URL is that story (duplicate detection reads the same index).
    copy = await analyze(client, "https://copies.example/syndicated/fire", title, text, archive=False)
    assert copy["story_id"] == b_id


async def test_the_response_cache_does_not_serve_a_related_list_another_process_changed(
    client: AsyncTestClient, settings: Settings, models, tmp_path: Path
) -> None:
    lines, (b_id,) = await exported_lines(models, tmp_path, [("https://other.example/fire/1", *FIRE_A[1])])
    first = await analyze(client, "https://news.example/A/0", *FIRE_A[0])
    second = await analyze(client, "https://news.example/A/0", *FIRE_A[0])
    assert second["cached"] and second["related"] == first["related"] == []

    in_another_process("-m", "backstory", "import", str(lines), "--archive", settings.archive)

    async def repeat_lists_b() -> bool:
        repeat = await analyze(client, "https://news.example/A/0", *FIRE_A[0])
        assert repeat["cached"]
        return b_id in [r["story_id"] for r in repeat["related"]]

    await within(FOLLOW_WITHIN, repeat_lists_b)


DELETE = """
import asyncio, sys
from backstory.archive import create_archive
from backstory.config import archive_url

async def main():
    async with create_archive(archive_url(sys.argv[1])) as archive:
        assert await archive.delete(sys.argv[2])

asyncio.run(main())
"""


async def test_a_delete_by_another_process_leaves_the_related_lists_within_2s(
    client: AsyncTestClient, settings: Settings
) -> None:
    b = await analyze(client, "https://news.example/A/1", *FIRE_A[1])
    a = await analyze(client, "https://news.example/A/0", *FIRE_A[0])
    assert b["story_id"] in [r["story_id"] for r in a["related"]]
    assert (await analyze(client, "https://news.example/A/0", *FIRE_A[0]))["cached"]

    in_another_process("-c", DELETE, settings.archive, b["story_id"])

    # The lookup reads each hit's row, so an uncached list drops a deleted story at once; the
    # repeat's cached list, and the index that duplicate detection reads, need the feed.
    async def gone() -> bool:
        repeat = await analyze(client, "https://news.example/A/0", *FIRE_A[0])
        assert repeat["cached"]
        return b["story_id"] not in [r["story_id"] for r in repeat["related"]]

    await within(FOLLOW_WITHIN, gone)
    assert b["story_id"] not in client.app.state.backstory.archive.index.slot_of
    assert b["story_id"] not in await related_ids(client, a["story_id"])


def fire_record(i: int, title: str, text: str) -> StoryRecord:
    return StoryRecord(url=f"https://news.example/fire/{i}", canonical_url=f"https://news.example/fire/{i}",
                       title=title, text=text)


async def test_a_follower_behind_a_cut_feed_reloads_its_index(new_archive, monkeypatch) -> None:
    monkeypatch.setattr(threaded, "CHANGES_KEPT", 2)
    async with new_archive() as server, new_archive() as other:
        follower = Follower(server, interval=60)  # stepped by hand below
        await server.import_record(fire_record(0, *FIRE_A[0]))
        assert await follower.catch_up() == 0  # its own write: in its index already

        await other.import_record(fire_record(1, *FIRE_A[1]))
        before = server.generation
        assert await follower.catch_up() == 1
        assert len(server.index) == 2 and server.generation != before

        # Meanwhile the other writer stores more than the feed keeps, and deletes one.
        for i, (title, text) in enumerate(FIRE_A[2:] + FIRE_B, start=2):
            await other.import_record(fire_record(i, title, text))
        assert await other.delete(story_id_for("https://news.example/fire/1"))
        kept = await server.storage.read(lambda rows: rows.execute("SELECT count(*) FROM changes").fetchone()[0])
        assert kept <= 2 * threaded.CHANGES_KEPT  # cut once twice as many pile up

        index_before = server.index
        assert await follower.catch_up() == 1  # one full reload
        assert server.index is not index_before
        stored = {s.story_id for s in (await server.search(None, 50))[0]}
        assert set(server.index.slot_of) == stored and len(stored) == 4  # five stored, one deleted
        assert follower.seq == server.index_seq
        assert await follower.catch_up() == 0


async def test_every_write_is_in_the_feed_and_only_other_writers_changes_are_handed_on(new_archive) -> None:
    async with new_archive() as server, new_archive() as other:
        title, text = FIRE_A[0]
        pending = await other.upsert(StoryRecord(url="https://n.example/a", canonical_url="https://n.example/a",
                                                 title=title, text=text, analysed=False))
        assert await other.store_analysis(msgspec.structs.replace(pending, embedding=[1.0] + [0.0] * 383))
        imported = await other.import_record(fire_record(1, *FIRE_A[1]))
        # A copy at another URL joins the stored story: its index entry is unchanged, so no change.
        await other.upsert(StoryRecord(url="https://copies.example/a", canonical_url="https://copies.example/a",
                                       title=title, text=text))
        assert await other.delete(imported.story_id)
        expected = [(pending.story_id, "upsert"), (pending.story_id, "upsert"), (imported.story_id, "upsert"),
                    (imported.story_id, "delete")]
        seq, changes = await server.changes_since(0)
        assert [tuple(c) for c in changes] == expected
        assert (await other.changes_since(0)) == (seq, [])  # its own: in its index already
        assert await server.changes_since(seq) == (seq, [])


async def test_one_story_sent_to_two_processes_at_once_is_one_story(new_archive) -> None:
    """Neither index shows the other's write yet (no follower runs): the feed does."""
    title, text = FIRE_A[2]
    async with new_archive() as one, new_archive() as two:
        for attempt in range(3):  # either may commit first
            copy = text + f" This copy was syndicated, take {attempt}."
            a, b = await asyncio.gather(
                one.upsert(StoryRecord(url=f"https://one.example/{attempt}", canonical_url=f"https://one.example/{attempt}",
                                       title=title, text=text)),
                two.upsert(StoryRecord(url=f"https://two.example/{attempt}", canonical_url=f"https://two.example/{attempt}",
                                       title=title, text=copy)),
            )
            assert a.story_id == b.story_id
            assert await one.count() == 1 and await two.count() == 1


async def test_on_postgresql_a_follower_wakes_at_the_notification_not_the_poll(postgres_url: str, tmp_path: Path) -> None:
    from backstory.archive import create_archive

    from .conftest import postgres_database

    url = postgres_database(postgres_url, "notify_" + tmp_path.name[-12:].lower().replace("-", "_"))
    async with create_archive(url) as server, create_archive(url) as other:
        follower = Follower(server, interval=60)  # a poll would come far too late: only the notification can
        follower.start()
        try:
            await asyncio.sleep(0.3)  # listening
            stored = await other.import_record(fire_record(7, *FIRE_A[0]))
            # Far below the 60 s poll, so only the notification can have woken it; far above any
            # scheduling delay of a loaded machine (it takes milliseconds here).
            await within(30.0, lambda: asyncio.sleep(0, stored.story_id in server.index.slot_of))
        finally:
            await follower.stop()
