"""``backstory migrate-archive``: SQLite -> PostgreSQL -> SQLite gives back the very same archive
(every story, date, analysis and URL), checked story by story; a stopped migration resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backstory import schemas
from backstory.archive import create_archive
from backstory.archive.transfer import compare, copy_archive
from backstory.story import StoryRecord

from .pages import FIRE_A, FIRE_B


def story(i: int, title: str, text: str) -> StoryRecord:
    embedding = [0.0] * 384
    embedding[i % 384] = 1.0
    return StoryRecord(
        url=f"https://news.example/fire/{i}?utm_source=feed", canonical_url=f"https://news.example/fire/{i}",
        title=title, text=text, byline="A. Reporter", site_name="Example News", published=f"2026-0{1 + i % 9}-02",
        language="en", embedding=embedding, first_seen=f"2026-01-0{1 + i % 9}T08:00:00Z",
        last_seen=f"2026-02-0{1 + i % 9}T08:00:00Z", analysed=i % 4 != 3,
        entities=[schemas.Entity(name=f"Person {i}", label="PERSON", count=2,
                                 mentions=[schemas.Mention(start=0, end=5)])] if i % 4 != 3 else [],
        keyphrases=[schemas.Keyphrase(phrase=f"topic {i}", score=0.5)] if i % 4 != 3 else [],
    )


async def fill(url: str) -> None:
    async with create_archive(url) as archive:
        for i, (title, text) in enumerate(FIRE_A + FIRE_B):
            await archive.import_record(story(i, title, text))
        title, text = FIRE_A[0]  # a copy at another site: one more URL of story 0
        await archive.upsert(StoryRecord(url="https://mirror.example/copy", canonical_url="https://mirror.example/copy",
                                         title=title, text=text))


def migrate(source: str, target: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backstory", "migrate-archive", "--from", source, "--to", target],
                          env={**os.environ, "BACKSTORY_LOG_LEVEL": "WARNING"}, capture_output=True, text=True,
                          timeout=300)


async def snapshot(url: str) -> tuple[list[StoryRecord], list[tuple[str, str]]]:
    async with create_archive(url) as archive:
        return [r async for r in archive.export()], [a async for a in archive.aliases()]


async def test_a_round_trip_through_postgresql_gives_the_same_archive(tmp_path: Path, postgres_url: str) -> None:
    from .conftest import postgres_database

    first, back = f"sqlite:///{tmp_path / 'first.sqlite3'}", f"sqlite:///{tmp_path / 'back.sqlite3'}"
    middle = postgres_database(postgres_url, f"migrate_{os.getpid()}_{tmp_path.name[-20:]}".lower().replace("-", "_"))
    await fill(first)
    for source, target in ((first, middle), (middle, back)):
        done = migrate(source, target)
        assert done.returncode == 0, done.stderr
        assert "every story's checksum matches" in done.stderr
    assert (await snapshot(back)) == (await snapshot(first))
    stories, aliases = await snapshot(first)
    assert len(stories) == len(FIRE_A + FIRE_B) and ("https://mirror.example/copy", stories[0].story_id) in aliases


async def test_a_stopped_migration_resumes_and_a_difference_is_reported(new_archive) -> None:
    async with new_archive("source") as source, new_archive("target") as target:
        for i, (title, text) in enumerate(FIRE_A + FIRE_B):
            await source.import_record(story(i, title, text))

        def stop_after_three(skipped: bool, seen: list = []) -> None:  # noqa: B006 - counts calls
            seen.append(skipped)
            if len(seen) == 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await copy_archive(source, target, stop_after_three)
        assert await target.count() == 3
        await source.add_feed("https://ledger.example/rss.xml", title="Ledger", added_by="cli",
                              at="2026-11-01T00:00:00Z", interval_s=1800.0, due="2026-11-02T00:00:00Z")
        copied = await copy_archive(source, target)
        assert (copied.skipped, copied.stories, copied.feeds) == (3, len(FIRE_A + FIRE_B) - 3, 1)
        (feed,) = await target.feeds()
        assert (feed.url, feed.title, feed.added_by, feed.added, feed.next_poll) == (
            "https://ledger.example/rss.xml", "Ledger", "cli", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        assert (await copy_archive(source, target)).feeds == 0  # subscribed already
        assert (await compare(source, target)).identical

        await target.delete((await source.search(None, 1))[0][0].story_id)
        result = await compare(source, target)
        assert not result.identical and result.target == result.source - 1 and len(result.differing) == 1
