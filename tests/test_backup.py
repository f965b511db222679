"""The backups docs/self-hosting.md tells a team to take, taken and restored: SQLite's `.backup`
while a server writes, PostgreSQL's pg_dump / pg_restore; the restored archive is the same,
story by story."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from backstory.archive import create_archive
from backstory.archive.transfer import compare
from backstory.story import StoryRecord

from .conftest import postgres_database
from .pages import FIRE_A, FIRE_B


async def fill(url: str) -> None:
    async with create_archive(url) as archive:
        for i, (title, text) in enumerate(FIRE_A + FIRE_B):
            await archive.upsert(StoryRecord(url=f"https://news.example/{i}", canonical_url=f"https://news.example/{i}",
                                             title=title, text=text))


async def same(first: str, second: str) -> bool:
    async with create_archive(first) as a, create_archive(second) as b:
        result = await compare(a, b)
        return result.identical and result.source == len(FIRE_A + FIRE_B)


async def test_a_sqlite_backup_taken_while_the_archive_is_written_restores_whole(tmp_path: Path) -> None:
    live, copy = tmp_path / "archive.sqlite3", tmp_path / "backup.sqlite3"
    await fill(f"sqlite:///{live}")
    async with create_archive(f"sqlite:///{live}") as archive:  # open and writing meanwhile
        title, text = FIRE_B[0]
        writing = asyncio.create_task(archive.upsert(StoryRecord(url="https://late.example/x",
                                                                 canonical_url="https://late.example/x",
                                                                 title=title, text=text + " Later.")))
        done = await asyncio.to_thread(subprocess.run, ["sqlite3", str(live), f".backup '{copy}'"],
                                       capture_output=True, text=True, timeout=60)
        await writing
    assert done.returncode == 0, done.stderr
    restored = tmp_path / "restored.sqlite3"
    shutil.copy(copy, restored)  # a restore is putting the file back
    async with create_archive(f"sqlite:///{restored}") as archive:
        assert await archive.count() >= len(FIRE_A + FIRE_B)  # the late story, if the backup began after it
        stories = [s.story_id async for s in archive.export()]
    async with create_archive(f"sqlite:///{live}") as archive:
        live_ids = [s.story_id async for s in archive.export()]
    assert stories == live_ids[: len(stories)]


async def test_a_postgresql_dump_restores_into_a_new_database_whole(postgres_url: str, tmp_path: Path) -> None:
    import pgserver

    bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"  # the server's own version of the tools
    name = "backup_" + tmp_path.name[-12:].lower().replace("-", "_")
    source, target = postgres_database(postgres_url, name + "_src"), postgres_database(postgres_url, name + "_dst")
    await fill(source)
    dump = tmp_path / "archive.dump"
    dumped = subprocess.run([str(bin_dir / "pg_dump"), "--format=custom", f"--file={dump}", f"--dbname={source}"],
                            capture_output=True, text=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr
    restored = subprocess.run([str(bin_dir / "pg_restore"), "--no-owner", f"--dbname={target}", str(dump)],
                              capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0, restored.stderr
    assert await same(source, target)
