"""Claims of the story archive (archive/stories.py) that its mutation run showed no test made:
what reaches the related index on every path (a store, a completed pending story, a load at
start, another process's write followed, a reload), the worker archive that keeps no index,
imports that name a stored id, copies among many recent changes, and alias paging. Each on every
backend, through the Archive protocol, on a real archive."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import msgspec
import pytest

from backstory.archive import create_archive
from backstory.archive.features import FEATURES_VERSION
from backstory.archive.feed import Follower
from backstory.archive.sqlite import archive_at
from backstory.archive.stories import StoryArchive
from backstory.duplicates import SIMHASH_CANDIDATE_DISTANCE, hamming, is_copy, simhash
from backstory.story import StoryRecord, story_id_for

from .test_archive import CHESS, RIVER, distinct, entity, record

ALICE, BOB = "token:1", "token:2"
# A copy of RIVER as a syndicator prints it: one phrase changed, the same story.
COPY = RIVER.replace("on Tuesday night", "late on Tuesday night")
FLOOD = [entity("Lorrington", "GPE"), entity("Ada Quenby", "PERSON")]
# Two reports that share the query's names and as many of its words: the embedding decides between them.
LEFT = ("Lorrington flood: Mayor Ada Quenby visits the shelter in the town hall where families from the "
        "market square slept after the river rose in the night and the pumps ran until morning.")
RIGHT = ("Lorrington flood: Mayor Ada Quenby thanks the volunteers at the depot where sandbags for the "
         "market square were filled after the river rose in the night and the streets stayed shut.")
QUERY = record("https://q.example/probe", "Lorrington flood: Mayor Ada Quenby and the market square after the river rose.",
               entities=FLOOD)


def unit(sign: float) -> list[float]:
    return [sign] + [0.0] * 383


def first_of(hits) -> str:
    return hits[0].story_id


async def ranked_first(archive: StoryArchive, embedding: list[float]) -> str:
    return first_of(await archive.related(msgspec.structs.replace(QUERY, embedding=embedding), limit=5))


async def store_pair(archive: StoryArchive, left: list[float], right: list[float]) -> tuple[str, str]:
    a = await archive.upsert(record("https://one.example/left", LEFT, entities=FLOOD, embedding=left))
    b = await archive.upsert(record("https://two.example/right", RIGHT, entities=FLOOD, embedding=right))
    return a.story_id, b.story_id


# ---- the embedding reaches the index on every path --------------------------------------------
@pytest.mark.parametrize("left_sign", [1.0, -1.0])
async def test_a_stored_storys_embedding_ranks_it(new_archive, left_sign: float) -> None:
    async with new_archive() as archive:
        left, right = await store_pair(archive, unit(left_sign), unit(-left_sign))
        assert await ranked_first(archive, unit(1.0)) == (left if left_sign > 0 else right)
    async with new_archive() as archive:  # loaded from storage at start
        assert await ranked_first(archive, unit(1.0)) == (left if left_sign > 0 else right)


@pytest.mark.parametrize("left_sign", [1.0, -1.0])
async def test_another_processs_embedding_ranks_its_story_once_followed(new_archive, left_sign: float) -> None:
    async with new_archive() as ours, new_archive() as theirs:
        left, right = await store_pair(theirs, unit(left_sign), unit(-left_sign))
        await ours.follow([left, right])
        assert await ranked_first(ours, unit(1.0)) == (left if left_sign > 0 else right)


@pytest.mark.parametrize("left_sign", [1.0, -1.0])
async def test_a_completed_pending_storys_embedding_ranks_it(new_archive, left_sign: float) -> None:
    async with new_archive() as archive:
        ids = []
        for url, text, sign in (("https://one.example/left", LEFT, left_sign), ("https://two.example/right", RIGHT, -left_sign)):
            pending = await archive.upsert(record(url, text, analysed=False))
            done = msgspec.structs.replace(pending, entities=FLOOD, embedding=unit(sign), analysed=True)
            assert await archive.store_analysis(done) is True
            ids.append(pending.story_id)
        assert await ranked_first(archive, unit(1.0)) == (ids[0] if left_sign > 0 else ids[1])


# ---- the SimHash reaches the index on every path ----------------------------------------------
# Once a follower has caught up (index_seq at the feed's head), a copy is found through the
# index's SimHash alone: the feed's recent changes no longer list the original.
async def caught_up(archive: StoryArchive) -> None:
    await Follower(archive, interval=0.1).catch_up()


async def test_a_copy_of_a_stored_story_is_found_through_the_index(new_archive) -> None:
    async with new_archive() as archive:
        original = await archive.upsert(record("https://one.example/vell", RIVER))
        await caught_up(archive)
        assert await archive.find_duplicate("https://two.example/vell", simhash(COPY), COPY) == original.story_id
    async with new_archive() as archive:  # loaded at start
        assert await archive.find_duplicate("https://two.example/vell", simhash(COPY), COPY) == original.story_id


async def test_a_copy_of_a_completed_pending_story_is_found_through_the_index(new_archive) -> None:
    async with new_archive() as archive:
        pending = await archive.upsert(record("https://one.example/vell", RIVER, analysed=False))
        assert await archive.store_analysis(msgspec.structs.replace(pending, analysed=True, entities=FLOOD))
        await caught_up(archive)
        assert await archive.find_duplicate("https://two.example/vell", simhash(COPY), COPY) == pending.story_id


async def test_a_copy_of_another_processs_story_is_found_once_followed(new_archive) -> None:
    async with new_archive() as ours, new_archive() as theirs:
        original = await theirs.upsert(record("https://one.example/vell", RIVER))
        await caught_up(ours)
        assert await ours.find_duplicate("https://two.example/vell", simhash(COPY), COPY) == original.story_id


async def test_a_copy_is_found_among_many_newer_changes_of_other_stories(new_archive) -> None:
    async with new_archive() as ours, new_archive() as theirs:
        original = await theirs.upsert(record("https://one.example/vell", RIVER))
        for i in range(21):  # more than the near-duplicate candidates whose texts are compared
            await theirs.upsert(record(f"https://n.example/other{i}", distinct(300 + i)))
        copy = await ours.upsert(record("https://two.example/vell", COPY))
        assert copy.story_id == original.story_id and await ours.count() == 22


# ---- owners reach the index -------------------------------------------------------------------
async def test_a_private_story_is_related_only_for_its_owner_as_soon_as_stored(new_archive) -> None:
    async with new_archive() as archive:
        mine = await archive.upsert(record("https://one.example/left", LEFT, entities=FLOOD, owner=ALICE), ALICE)
        pending = await archive.upsert(record("https://two.example/right", RIGHT, owner=ALICE, analysed=False), ALICE)
        done = msgspec.structs.replace(pending, entities=FLOOD, analysed=True)
        assert await archive.store_analysis(done) is True
        for_alice = {h.story_id for h in await archive.related(QUERY, viewer=ALICE)}
        assert for_alice == {mine.story_id, pending.story_id}
        assert await archive.related(QUERY, viewer=BOB) == []
        assert await archive.related(QUERY, viewer=None) == []


# ---- a worker's archive keeps no index ---------------------------------------------------------
async def test_an_archive_without_its_index_loads_and_keeps_none(new_archive, archive_urls) -> None:
    async with new_archive() as full:
        await full.upsert(record("https://one.example/vell", RIVER))
    worker = create_archive(archive_urls(), related_index=False)
    async with worker:
        await worker.upsert(record("https://n.example/chess", CHESS))
        assert len(worker.index) == 0 and await worker.count() == 2
        with pytest.raises(RuntimeError, match="without its related index"):
            await worker.related(QUERY)


async def test_an_archive_without_its_index_finds_a_copy_of_the_first_story_written(
        new_archive, archive_urls) -> None:
    async with new_archive() as full:
        original = await full.upsert(record("https://one.example/vell", RIVER))  # the feed's first change
    async with create_archive(archive_urls(), related_index=False) as worker:
        copy = await worker.upsert(record("https://two.example/vell", COPY))
        assert copy.story_id == original.story_id and await worker.count() == 1


# ---- start and reload -------------------------------------------------------------------------
async def test_a_started_archive_reads_without_reloading_its_index(new_archive) -> None:
    async with new_archive() as ours, new_archive() as theirs:
        await ours.count()
        theirs_story = await theirs.upsert(record("https://n.example/theirs", distinct(310)))
        await ours.count()
        await ours.upsert(record("https://n.example/ours", distinct(311)))
        assert theirs_story.story_id not in ours.index.slot_of and len(ours.index) == 1


async def test_the_first_use_being_a_write_loads_the_stored_stories_first(new_archive) -> None:
    async with new_archive() as archive:
        stored = await archive.upsert(record("https://n.example/stored", distinct(312)))
    archive = new_archive()
    try:
        added = await archive.upsert(record("https://n.example/added", distinct(313)))
        assert set(archive.index.slot_of) == {stored.story_id, added.story_id} and len(archive.index) == 2
    finally:
        await archive.close()


async def test_a_reload_shows_the_feeds_head_and_stores_stale_features_again(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    async with archive_at(path) as archive:
        await archive.upsert(record("https://n.example/a", RIVER, entities=FLOOD))
        conn = sqlite3.connect(path)
        conn.execute("UPDATE stories SET features = x''")
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'features_version'")
        conn.commit()
        head = conn.execute("SELECT max(seq) FROM changes").fetchone()[0]
        conn.close()
        assert await archive.reload_index() == head and archive.index_seq == head
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'features_version'").fetchone()[0] == str(FEATURES_VERSION)
    assert conn.execute("SELECT count(*) FROM stories WHERE features = x''").fetchone()[0] == 0
    conn.close()


async def test_a_start_stores_the_current_features_version(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    async with archive_at(path) as archive:
        await archive.upsert(record("https://n.example/a", RIVER))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'features_version'")
    conn.commit()
    conn.close()
    async with archive_at(path) as archive:
        await archive.count()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'features_version'").fetchone()[0] == str(FEATURES_VERSION)
    conn.close()


# ---- imports that name a stored id, and copies ------------------------------------------------
async def test_an_import_naming_a_stored_id_at_another_url_updates_that_story(new_archive) -> None:
    async with new_archive() as archive:
        stored = await archive.upsert(record("https://one.example/vell", RIVER))
        imported = await archive.import_record(StoryRecord(story_id=stored.story_id, url="https://two.example/chess",
                                                           canonical_url="https://two.example/chess", text=CHESS))
        assert imported.story_id == stored.story_id and await archive.count() == 1
        got = await archive.get(stored.story_id)
        assert got.text == CHESS  # the imported fields
        assert got.canonical_url == "https://one.example/vell"  # under the story's own URL


async def test_an_import_of_a_copy_updates_the_original_under_its_own_id_and_url(new_archive) -> None:
    async with new_archive() as archive:
        original = await archive.upsert(record("https://one.example/vell", RIVER))
        merged = await archive.import_record(record("https://two.example/vell", COPY, title="Syndicated"))
        assert merged.story_id == original.story_id and await archive.count() == 1
        got = await archive.get(original.story_id)
        assert got.canonical_url == "https://one.example/vell"
        assert got.title == "Syndicated"  # an import takes the imported fields


async def test_an_import_naming_another_owners_id_is_filed_under_its_own(new_archive) -> None:
    async with new_archive() as archive:
        team = await archive.upsert(record("https://one.example/vell", RIVER))
        url = "https://six.example/chess"
        forged = await archive.import_record(StoryRecord(story_id=team.story_id, url=url, canonical_url=url,
                                                         text=CHESS, owner=BOB))
        assert forged.story_id == story_id_for(url, BOB) and forged.owner == BOB
        assert (await archive.get(team.story_id)).text == RIVER


async def test_an_import_whose_own_id_is_another_owners_too_is_refused(new_archive) -> None:
    async with new_archive() as archive:
        team = await archive.upsert(record("https://one.example/vell", RIVER))
        url = "https://seven.example/chess"
        # A hand-made import gave Alice's story the id Bob's story at this URL would have.
        taken = await archive.import_record(StoryRecord(story_id=story_id_for(url, BOB), url="https://eight.example/",
                                                        canonical_url="https://eight.example/", text=distinct(320),
                                                        owner=ALICE))
        assert taken.story_id == story_id_for(url, BOB) and taken.owner == ALICE
        with pytest.raises(ValueError, match=f"story {story_id_for(url, BOB)} belongs to another owner"):
            await archive.import_record(StoryRecord(story_id=team.story_id, url=url, canonical_url=url, text=CHESS,
                                                    owner=BOB))
        assert await archive.count() == 2 and (await archive.get(taken.story_id, ALICE)).text == distinct(320)


async def test_a_copy_at_another_url_is_a_sighting_of_the_story(new_archive) -> None:
    async with new_archive() as archive:
        original = await archive.upsert(record("https://one.example/vell", RIVER, first_seen="2020-01-01T00:00:00Z",
                                               last_seen="2020-01-01T00:00:00Z"))
        await archive.upsert(record("https://two.example/vell", COPY))
        got = await archive.get(original.story_id)
        assert got.last_seen > "2026" and got.first_seen == "2020-01-01T00:00:00Z"


# ---- deletes ----------------------------------------------------------------------------------
async def test_an_admin_deletes_their_own_private_story(new_archive) -> None:
    async with new_archive() as archive:
        mine = await archive.upsert(record("https://one.example/vell", RIVER, owner=ALICE), ALICE)
        assert await archive.delete(mine.story_id, viewer=ALICE) is True
        assert await archive.get(mine.story_id, ALICE) is None


async def test_a_story_another_process_deleted_is_never_related_nor_there(new_archive) -> None:
    async with new_archive() as ours, new_archive() as theirs:
        left, right = await store_pair(theirs, unit(1.0), unit(-1.0))
        await ours.follow([left, right])
        assert {h.story_id for h in await ours.related(QUERY)} == {left, right}
        assert await theirs.delete(left)  # our index has not followed it yet
        assert [h.story_id for h in await ours.related(QUERY)] == [right]
        assert await ours.get(left) is None


async def test_waiting_for_changes_ends_at_its_timeout_or_at_another_processs_write(new_archive) -> None:
    async with new_archive() as ours, new_archive() as theirs:
        # The timeout asked for is the one waited (a wait of an hour would fail the bound).
        await asyncio.wait_for(ours.wait_for_changes(0.01), 60)
        if "postgres" not in type(ours.storage).__module__:
            return  # SQLite has no notifications: its feed is polled every timeout
        waiting = asyncio.create_task(ours.wait_for_changes(3600))
        await theirs.upsert(record("https://n.example/wake", distinct(380)))
        await asyncio.wait_for(waiting, 60)  # woken by the write's notification, not the hour


# ---- paging -----------------------------------------------------------------------------------
async def test_every_alias_is_listed_once(new_archive) -> None:
    async with new_archive() as archive:
        story = await archive.upsert(record("https://n.example/own", distinct(330)))
        for i in range(3):
            assert await archive.add_alias(f"https://mirror{i}.example/copy", story.story_id)
        aliases = [alias async for alias in archive.aliases()]
        assert len(aliases) == 4 and len(set(aliases)) == 4
        assert {url for url, _ in aliases} == {"https://n.example/own", *(f"https://mirror{i}.example/copy" for i in range(3))}


async def test_related_lists_ten_by_default_and_at_most_the_limit(new_archive) -> None:
    async with new_archive() as archive:
        for i in range(12):
            await archive.upsert(record(f"https://n.example/flood{i}", distinct(340 + i, "Lorrington flood, Mayor Ada Quenby."),
                                        entities=FLOOD))
        assert len(await archive.related(QUERY)) == 10
        assert len(await archive.related(QUERY, limit=3)) == 3


# ---- the duplicate rule at its edges ----------------------------------------------------------
def rewritten(step: int, start: int, n: int) -> str:
    """RIVER with n words, every step-th from start, rewritten."""
    words = RIVER.split()
    for j in range(n):
        words[start + j * step] = "rewritten"
    return " ".join(words)


async def test_a_text_near_by_simhash_but_no_copy_is_a_story_of_its_own(new_archive) -> None:
    near = rewritten(3, 0, 5)
    assert hamming(simhash(RIVER), simhash(near)) <= SIMHASH_CANDIDATE_DISTANCE and not is_copy(near, RIVER)
    async with new_archive() as archive:
        original = await archive.upsert(record("https://one.example/vell", RIVER))
        other = await archive.upsert(record("https://two.example/vell", near))
        assert other.story_id != original.story_id and await archive.count() == 2


async def test_a_copy_at_exactly_the_candidate_distance_written_elsewhere_is_found(new_archive) -> None:
    copy = rewritten(3, 9, 2)
    assert hamming(simhash(RIVER), simhash(copy)) == SIMHASH_CANDIDATE_DISTANCE and is_copy(copy, RIVER)
    async with new_archive() as ours, new_archive() as theirs:
        original = await theirs.upsert(record("https://one.example/vell", RIVER))
        assert (await ours.upsert(record("https://two.example/vell", copy))).story_id == original.story_id


# ---- related: the story itself, in each owner's space the viewer sees --------------------------
async def test_a_members_private_version_of_a_page_is_not_related_to_the_page(new_archive) -> None:
    async with new_archive() as archive:
        # the same URL: the team's story, and Alice's private one saying something else (no copy by text)
        team = await archive.upsert(record("https://one.example/flood", LEFT, entities=FLOOD))
        hers = await archive.upsert(record("https://one.example/flood", RIGHT, entities=FLOOD, owner=ALICE), ALICE)
        other = await archive.upsert(record("https://three.example/flood", distinct(350, "Lorrington flood, Mayor Ada Quenby."),
                                            entities=FLOOD))
        assert hers.story_id != team.story_id
        assert {h.story_id for h in await archive.related(team, viewer=ALICE)} == {other.story_id}
        assert {h.story_id for h in await archive.related(hers, viewer=ALICE)} == {other.story_id}
        assert {h.story_id for h in await archive.related(team, viewer=BOB)} == {other.story_id}


async def test_a_members_private_copy_of_a_team_story_is_not_related_to_it(new_archive) -> None:
    async with new_archive() as archive:
        team = await archive.upsert(record("https://one.example/vell", RIVER, entities=FLOOD))
        hers = await archive.upsert(record("https://two.example/vell", COPY, entities=FLOOD, owner=ALICE), ALICE)
        assert hers.story_id != team.story_id  # copies never merge across owners
        assert await archive.related(team, viewer=ALICE) == []
        assert await archive.related(hers, viewer=ALICE) == []


# ---- related: the copy distance, only from a text SimHash can speak for ------------------------
async def test_each_hit_carries_its_simhash_distance_to_a_text_long_enough(new_archive) -> None:
    near = rewritten(3, 0, 5)  # near by SimHash, no copy: a story of its own, related
    async with new_archive() as archive:
        original = await archive.upsert(record("https://one.example/vell", RIVER, entities=FLOOD))
        query = record("https://two.example/vell", near, entities=FLOOD)
        hits = {h.story_id: h for h, _card in await archive.related_hits(query, 5)}
        assert hits[original.story_id].copy_distance == hamming(simhash(RIVER), simhash(near))


@pytest.mark.parametrize("text", ["", " ".join(RIVER.split()[:20])], ids=["empty", "lead"])
async def test_a_text_too_short_for_a_simhash_is_no_near_copy_of_any_story(new_archive, text: str) -> None:
    async with new_archive() as archive:
        original = await archive.upsert(record("https://one.example/vell", RIVER, entities=FLOOD))
        query = record("https://two.example/vell", text, title="Lorrington flood: the river Vell", entities=FLOOD)
        hits = await archive.related_hits(query, 5)
        assert [h.story_id for h, _card in hits] == [original.story_id]  # found by its names
        assert hits[0][0].copy_distance is None
