"""The backlog by itself: a real SQLite archive, the real worker slots and response cache, and in
place of the language models an analyzer that records what it is asked (the models are tested in
their own suites; here only what the backlog does with their answers counts)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import msgspec
import pytest

from backstory import schemas
from backstory.archive import open_archive
from backstory.config import Settings
from backstory.pipeline import ResponseCache
from backstory.pipeline.analyzer import Analysis
from backstory.pipeline.backlog import Backlog
from backstory.pipeline.workers import Workers
from backstory.story import StoryRecord

WAIT = 60.0  # generous: a loaded machine is slow, a missing wake-up is still caught


class ScriptedAnalyzer:
    """Answers every text with a keyphrase and an entity named after the title; raises for titles
    in ``fail``; keeps the texts it was given. While ``release`` is clear, the titles in ``hold``
    (all when None) wait for it."""

    def __init__(self, fail: tuple[str, ...] = (), hold: tuple[str, ...] | None = None) -> None:
        self.fail = fail
        self.hold = hold
        self.calls: list[str | None] = []
        self.texts: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def analyze(self, title: str | None, text: str) -> Analysis:
        with self._lock:
            self.calls.append(title)
            self.texts.append(text)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.hold is None or title in self.hold:
                self.release.wait(WAIT)
            if title in self.fail:
                raise RuntimeError(f"cannot analyze {title}")
            return Analysis(keyphrases=[schemas.Keyphrase(phrase=f"{title} phrase", score=0.5)], entities=[schemas.Entity(name=f"{title} person", label="PERSON", count=1,
                                                                     mentions=[])],
                            embedding=[1.0] + [0.0] * 383, timings={})
        finally:
            with self._lock:
                self.running -= 1


class RecordingJobs:
    def __init__(self) -> None:
        self.deferred: list[str] = []

    async def defer_analysis(self, story_id: str) -> None:
        self.deferred.append(story_id)


def pending(i: int, title: str | None = None) -> StoryRecord:
    text = f"Bulletin {i}. " + " ".join(f"word{i}n{j}" for j in range(40)) + "."
    return StoryRecord(url=f"https://n.example/{i}", canonical_url=f"https://n.example/{i}", title=title or f"T{i}",
                       text=text, analysed=False)


@pytest.fixture
async def parts(tmp_path: Path):
    archive = await open_archive(Settings(archive=str(tmp_path / "archive.sqlite3")))
    workers = Workers(4)  # slots to spare: the backlog's own bound on stories in flight must hold
    try:
        yield archive, workers
    finally:
        workers.close()
        await archive.close()


@contextlib.asynccontextmanager
async def running(backlog: Backlog, **options):
    """``backlog.run(**options)`` in the background for the body of the ``async with``."""
    task = asyncio.create_task(backlog.run(**{"idle_poll": 0.01, "wait": WAIT * 10, **options}))
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(condition, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def test_complete_analyses_a_pending_story_once_and_forgets_its_cached_answer(parts) -> None:
    archive, workers = parts
    analyzer, cache = ScriptedAnalyzer(), ResponseCache()
    backlog = Backlog(analyzer, archive, cache, workers)
    stored = await archive.upsert(pending(1))
    cache.put("request", stored)

    assert await backlog.complete(stored.story_id) is True
    assert analyzer.texts == [stored.text]
    done = await archive.get(stored.story_id)
    assert done.analysed and [e.name for e in done.entities] == ["T1 person"] and done.embedding[0] == 1.0
    assert [k.phrase for k in done.keyphrases] == ["T1 phrase"]
    assert cache.get("request") is None  # a repeat click must not be answered with the pending record
    # complete already, or gone: nothing to do, and the analyzer is not asked again
    assert await backlog.complete(stored.story_id) is False
    assert await backlog.complete("0123456789abcdef") is False
    assert analyzer.calls == ["T1"]


async def test_complete_analyses_a_members_private_story_too(parts) -> None:
    archive, workers = parts
    backlog = Backlog(ScriptedAnalyzer(), archive, ResponseCache(), workers)
    private = await archive.upsert(msgspec.structs.replace(pending(5), owner="token:ana"))
    assert await backlog.complete(private.story_id) is True
    assert (await archive.get(private.story_id, "token:ana")).analysed


async def test_analyze_stored_returns_the_completed_record(parts) -> None:
    archive, workers = parts
    backlog = Backlog(ScriptedAnalyzer(), archive, ResponseCache(), workers)
    stored = await archive.upsert(pending(4))
    done = await backlog.analyze_stored(stored)
    assert done.analysed is True and done.story_id == stored.story_id and done.text == stored.text
    assert [k.phrase for k in done.keyphrases] == ["T4 phrase"] and [e.name for e in done.entities] == ["T4 person"]
    assert done == await archive.get(stored.story_id)


async def test_a_story_deleted_during_its_analysis_stays_deleted(parts) -> None:
    archive, workers = parts
    analyzer = ScriptedAnalyzer()
    analyzer.release.clear()
    backlog = Backlog(analyzer, archive, ResponseCache(), workers)
    stored = await archive.upsert(pending(2))
    work = asyncio.create_task(backlog.analyze_stored(stored))
    await until(lambda: _true(analyzer.calls), "the analysis never started")
    assert await archive.delete(stored.story_id)
    analyzer.release.set()
    assert await asyncio.wait_for(work, WAIT) is None
    assert await archive.get(stored.story_id) is None


async def test_complete_waits_for_readers_to_be_gone(parts) -> None:
    archive, workers = parts
    analyzer = ScriptedAnalyzer()
    backlog = Backlog(analyzer, archive, ResponseCache(), workers)
    stored = await archive.upsert(pending(3))
    await workers.reader_slot()  # a reader's analysis is running
    reader = asyncio.get_running_loop().create_future()
    work = asyncio.create_task(backlog.complete(stored.story_id))
    await asyncio.sleep(0.5)  # several of its 0.1 s polls
    assert analyzer.calls == [] and not work.done()
    reader.set_result(None)
    workers.reader_done(reader)
    assert await asyncio.wait_for(work, WAIT) is True and analyzer.calls == ["T3"]


async def test_run_completes_the_backlog_skips_a_failing_story_and_wakes_when_told(parts, caplog) -> None:
    archive, workers = parts
    analyzer = ScriptedAnalyzer(fail=("bad",))
    backlog = Backlog(analyzer, archive, ResponseCache(), workers)
    bad = await archive.upsert(pending(10, "bad"))
    good = [await archive.upsert(pending(i)) for i in range(11, 16)]
    async with running(backlog, batch=2, parallel=2):
        async def only_the_bad_one_left() -> bool:
            return [r.story_id for r in await archive.pending(limit=10)] == [bad.story_id]

        await until(only_the_bad_one_left, "the good stories were not all completed")
        assert analyzer.most_at_once <= 2
        # a story stored later is picked up on stored(), long before the next poll
        late = await archive.upsert(pending(20))
        await backlog.stored(late.story_id)

        async def late_done() -> bool:
            return (await archive.get(late.story_id)).analysed

        await until(late_done, "stored() did not wake the backlog")
        # the failing story was tried once, not again and again, and the log says which it was
        assert analyzer.calls.count("bad") == 1
        failures = [r for r in caplog.records if r.name == "backstory.pipeline.backlog"]
        assert [r.getMessage() for r in failures] == [
            f"analyzing stored story {bad.story_id} failed; skipped until restart"]
        assert str(failures[0].exc_info[1]) == "cannot analyze bad"
        assert sorted(c for c in analyzer.calls if c != "bad") == sorted(["T20"] + [f"T{i}" for i in range(11, 16)])


async def test_run_finds_a_story_another_process_stored_at_its_next_poll(parts) -> None:
    archive, workers = parts
    analyzer = ScriptedAnalyzer()
    backlog = Backlog(analyzer, archive, ResponseCache(), workers)
    async with running(backlog, wait=0.2):
        await asyncio.sleep(0.3)  # the backlog is idle, waiting
        stored = await archive.upsert(pending(50))  # no stored(): as if another process had imported it

        async def done() -> bool:
            return (await archive.get(stored.story_id)).analysed

        await until(done, "the poll never found the story")


async def test_run_yields_to_readers(parts) -> None:
    archive, workers = parts
    analyzer = ScriptedAnalyzer()
    backlog = Backlog(analyzer, archive, ResponseCache(), workers)
    await archive.upsert(pending(30))
    await workers.reader_slot()
    reader = asyncio.get_running_loop().create_future()
    async with running(backlog):
        await asyncio.sleep(0.5)
        assert analyzer.calls == []
        reader.set_result(None)
        workers.reader_done(reader)
        await until(lambda: _true(analyzer.calls), "the backlog did not start once the reader was gone")


async def test_by_default_two_stories_are_analysed_at_once(parts) -> None:
    archive, workers = parts
    analyzer = ScriptedAnalyzer()
    analyzer.release.clear()
    backlog = Backlog(analyzer, archive, ResponseCache(), workers)
    for i in range(40, 45):
        await archive.upsert(pending(i))
    try:
        async with running(backlog):
            await until(lambda: _true(analyzer.running == 2), "two analyses never started")
            await asyncio.sleep(0.5)  # time for a third to start, were it allowed
            assert analyzer.running == 2 and len(analyzer.calls) == 2
            analyzer.release.set()
            await until(lambda: _true(len(analyzer.calls) == 5), "the rest were not analysed")
            assert analyzer.most_at_once == 2
    finally:
        analyzer.release.set()  # no worker thread left waiting


async def test_one_slow_story_does_not_hold_up_the_rest(parts) -> None:
    archive, workers = parts
    analyzer = ScriptedAnalyzer(hold=("slow",))
    analyzer.release.clear()
    backlog = Backlog(analyzer, archive, ResponseCache(), workers)
    slow = await archive.upsert(pending(60, "slow"))
    rest = [await archive.upsert(pending(i)) for i in range(61, 66)]
    try:
        async with running(backlog):
            async def rest_done() -> bool:
                return all([(await archive.get(r.story_id)).analysed for r in rest])

            await until(rest_done, "the other stories waited for the slow one")
            assert analyzer.calls[0] == "slow" and not (await archive.get(slow.story_id)).analysed
    finally:
        analyzer.release.set()


async def test_with_a_job_queue_a_stored_story_becomes_a_job(parts) -> None:
    archive, workers = parts
    jobs = RecordingJobs()
    backlog = Backlog(ScriptedAnalyzer(), archive, ResponseCache(), workers, jobs=jobs)
    await backlog.stored("0123456789abcdef")
    assert jobs.deferred == ["0123456789abcdef"]


async def _true(value) -> bool:
    return bool(value)
