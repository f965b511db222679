"""The archive suite: dedup, persistence, search, delete, export/import, concurrency — on every
backend of ``conftest.ARCHIVE_BACKENDS`` through the ``Archive`` protocol (the ``archive`` and
``new_archive`` fixtures); then the SQLite file's own guarantees (schema, WAL, a killed process)."""

from __future__ import annotations

import asyncio
import inspect
import re
import sqlite3
from pathlib import Path

import msgspec
import pytest

from backstory import schemas
from backstory.archive import Archive, create_archive, open_archive
from backstory.duplicates import hamming, simhash
from backstory.story import StoryRecord, story_id_for
from backstory.urls import normalize_url
from backstory.archive.stories import StoryArchive
from backstory.archive.sqlite import SCHEMA_VERSION, SchemaTooNew, archive_at
from backstory.config import Settings

RIVER = (
    "The river Vell burst its banks in Lorrington on Tuesday night after three days of rain, "
    "flooding the old market square and forcing two hundred families from their homes. Mayor Ada "
    "Quenby opened the town hall as a shelter and said the pumps of the Lorrington fire brigade "
    "worked until dawn. The county engineer, Tomas Reyvik, warned that the embankment near the "
    "mill could fail again if the rain returned at the weekend. Shops on Bridge Street stayed shut "
    "on Wednesday while volunteers carried sandbags from the depot to the square. Insurers expect "
    "claims to run into millions, and the council asked residents to boil tap water until tests "
    "of the treatment works are complete."
)
CHESS = (
    "Grandmaster Ilse Varnholt won the Corvin Open chess tournament in Tesbury on Sunday, beating "
    "the defending champion Pavel Orsk in a tense final game that lasted six hours. Varnholt, who "
    "is nineteen, sacrificed a rook on move thirty and converted the endgame with two connected "
    "pawns. The organisers said a record four hundred players entered this year, and the prize "
    "fund was raised by a local software company. Orsk congratulated his opponent and said he "
    "would return next spring to win the title back."
)


def distinct(i: int, extra: str = "") -> str:
    """A text of its own (no near-duplicate of any other i)."""
    return f"Bulletin {i}. {extra} " + " ".join(f"word{i}n{j}" for j in range(60)) + "."


def entity(name: str, label: str, count: int = 1) -> schemas.Entity:
    return schemas.Entity(name=name, label=label, count=count, mentions=[])


def record(url: str, text: str, title: str = "A story", **kw) -> StoryRecord:
    return StoryRecord(url=url, canonical_url=kw.pop("canonical_url", url), title=title, text=text, **kw)


@pytest.fixture
async def archive(new_archive):
    async with new_archive() as a:
        yield a


async def test_create_and_migrate(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "archive.sqlite3"
    a = await open_archive(Settings(archive=str(path)))
    assert isinstance(a, Archive)
    assert await a.count() == 0
    await a.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"stories", "aliases", "stories_fts"} <= names
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    newer = archive_at(path)
    with pytest.raises(SchemaTooNew):
        await newer.start()
    await newer.close()


async def test_older_schema_is_migrated_in_place(tmp_path: Path) -> None:
    from backstory.archive.sqlite.schema import MIGRATIONS, _split_sql

    path = tmp_path / "archive.sqlite3"
    conn = sqlite3.connect(path)
    for statement in _split_sql(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO stories (story_id, url, canonical_url, text, word_count, keyphrases, entities, simhash, simhash_ok, "
        "sh0, sh1, sh2, sh3, content_hash, first_seen, last_seen, features) VALUES "
        "('00000000000000aa', 'https://old.example/', 'https://old.example/', 'kept from version one', 4, '[]', '[]', "
        "0, 0, 0, 0, 0, 0, '', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z', x'')"
    )
    conn.execute("INSERT INTO aliases VALUES ('https://old.example/', '00000000000000aa')")
    conn.commit()
    conn.close()
    async with archive_at(path) as a:
        old = await a.get("00000000000000aa")
        assert old is not None and old.text == "kept from version one" and old.first_seen.startswith("2020")
        assert old.analysed is True and await a.count_pending() == 0  # v3: stories of before were analysed
        assert await a.story_at("https://old.example/") is not None
        hits, total = await a.search("version", 5, 0)
        assert total == 1
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'stories_sh0'").fetchall()
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'stories_pending'").fetchall()
    conn.close()


async def test_pending_stories_are_completed_in_place(archive: StoryArchive) -> None:
    text = distinct(1, "Governor Katie Hobbs ordered the evacuation of Paradise Valley.")
    stored = await archive.upsert(record("https://n.example/a", text, analysed=False))
    other = await archive.upsert(record("https://n.example/b", distinct(2), title="Other"))
    assert [r.story_id for r in await archive.pending()] == [stored.story_id]
    assert await archive.count_pending() == 1
    done = msgspec.structs.replace(
        stored, entities=[entity("Katie Hobbs", "PERSON")], embedding=[1.0] + [0.0] * 383, analysed=True
    )
    assert await archive.store_analysis(done) is True
    assert await archive.store_analysis(done) is False  # already analysed: nothing written twice
    got = await archive.get(stored.story_id)
    assert got.analysed and got.entities[0].name == "Katie Hobbs" and got.embedding[0] == 1.0
    assert (got.first_seen, got.last_seen) == (stored.first_seen, stored.last_seen)
    assert await archive.count_pending() == 0 and await archive.get(other.story_id) is not None


async def test_a_deleted_pending_story_stays_deleted(archive: StoryArchive) -> None:
    stored = await archive.upsert(record("https://n.example/gone", distinct(3), analysed=False))
    assert await archive.delete(stored.story_id)
    assert await archive.store_analysis(msgspec.structs.replace(stored, analysed=True)) is False
    assert await archive.get(stored.story_id) is None and await archive.count() == 0


async def test_an_unanalysed_copy_never_replaces_an_analysed_story(archive: StoryArchive) -> None:
    text = distinct(4, "The harbour bridge reopened after repairs.")
    analysed = await archive.upsert(record("https://n.example/bridge", text, entities=[entity("Harbour Bridge", "FAC")]))
    copy = await archive.upsert(record("https://mirror.example/bridge", text, analysed=False))
    assert copy.story_id == analysed.story_id and copy.analysed and copy.entities
    assert (await archive.get(analysed.story_id)).entities[0].name == "Harbour Bridge"
    assert await archive.story_at("https://mirror.example/bridge") is not None  # its URL now leads here
    assert await archive.count_pending() == 0


async def test_upsert_same_canonical_url_is_one_story(archive: StoryArchive) -> None:
    first = await archive.upsert(record("https://news.example/flood?utm_source=feed", RIVER, canonical_url="https://news.example/flood"))
    assert first.story_id == story_id_for("https://news.example/flood")
    await asyncio.sleep(1.1)
    again = await archive.upsert(record("https://NEWS.example/flood#top", RIVER + " Updated: the water is falling.",
                                        title="Flood update"))
    assert again.story_id == first.story_id
    assert again.first_seen == first.first_seen
    assert again.last_seen > first.last_seen
    assert await archive.count() == 1
    stored = await archive.get(first.story_id)
    assert stored is not None and stored.title == "Flood update" and stored.text.endswith("falling.")
    assert await archive.story_at("https://news.example/flood") is not None
    assert await archive.story_at("https://news.example/other") is None


async def test_near_identical_text_is_one_story(archive: StoryArchive) -> None:
    syndicated = RIVER.replace("on Tuesday night", "late on Tuesday night")
    assert 3 < hamming(simhash(RIVER), simhash(syndicated)) <= 10  # too far for the hash alone
    a = await archive.upsert(record("https://one.example/vell-flood", RIVER))
    b = await archive.upsert(record("https://two.example/news/123", syndicated))
    assert b.story_id == a.story_id and await archive.count() == 1
    assert await archive.story_at("https://two.example/news/123") is not None
    stored = await archive.get(a.story_id)  # the copy is another source of the story, not its new text
    assert (stored.url, stored.text) == ("https://one.example/vell-flood", RIVER) and b == stored
    assert await archive.find_duplicate("https://three.example/x", simhash(RIVER), RIVER) == a.story_id
    assert await archive.find_duplicate("https://three.example/x", simhash(syndicated), syndicated) == a.story_id
    assert await archive.story_at("https://two.example/news/123") == a.story_id
    assert await archive.find_duplicate("https://three.example/x", simhash(CHESS), CHESS) is None
    c = await archive.upsert(record("https://three.example/chess", CHESS))
    assert c.story_id != a.story_id and await archive.count() == 2


async def test_short_texts_are_not_merged_by_simhash(archive: StoryArchive) -> None:
    await archive.upsert(record("https://a.example/1", "Subscribe to continue reading."))
    await archive.upsert(record("https://a.example/2", "Subscribe to continue reading."))
    assert await archive.count() == 2


async def test_survives_close_and_reopen(new_archive) -> None:
    emb = [0.0] * 384
    emb[3] = 1.0
    original = record("https://news.example/flood", RIVER, byline="J. Doe", site_name="Example News",
                      published="2026-03-01", language="en", embedding=emb,
                      entities=[entity("Lorrington", "GPE", 2), entity("Ada Quenby", "PERSON")],
                      keyphrases=[schemas.Keyphrase(phrase="river flood", score=0.61)],
                      tags=["rivers", "to read"])  # the reader's, from an import
    async with new_archive() as a:
        stored = await a.upsert(original)
        await a.upsert(record("https://news.example/chess", CHESS))
    async with new_archive() as b:
        again = await b.get(stored.story_id)
        assert again == stored
        assert again.embedding == emb and again.entities[0].name == "Lorrington"
        assert again.tags == ["rivers", "to read"]
        assert await b.count() == 2
        # the related index is rebuilt from the file
        query = record("https://elsewhere.example/q", "Flood waters in Lorrington rose again, Mayor Ada Quenby said.",
                       entities=[entity("Lorrington", "GPE")])
        hits = await b.related(query)
        assert [h.story_id for h in hits][:1] == [stored.story_id]


async def test_search_full_text_newest_first_and_paging(archive: StoryArchive) -> None:
    ids = []
    for i in range(5):
        text = distinct(i, "The embankment held." if i % 2 == 0 else "The grandmaster resigned.")
        r = await archive.upsert(record(f"https://news.example/{i}", text, title=f"Story {i}",
                                        last_seen=f"2026-01-0{i + 1}T00:00:00Z"))
        ids.append(r.story_id)
    page, total = await archive.search(None, limit=2, offset=0)
    assert total == 5 and [s.story_id for s in page] == [ids[4], ids[3]]
    page, _ = await archive.search(None, limit=2, offset=4)
    assert [s.story_id for s in page] == [ids[0]]
    hits, total = await archive.search("embankment", limit=10, offset=0)
    assert total == 3 and {h.story_id for h in hits} == {ids[0], ids[2], ids[4]}
    assert all(h.snippet and "embankment" in h.snippet for h in hits)
    hits, total = await archive.search("word3n5", limit=10, offset=0)
    assert total == 1 and hits[0].story_id == ids[3] and hits[0].title == "Story 3"
    hits, total = await archive.search("grandmast", limit=1, offset=1)  # prefix of the last word
    assert total == 2 and len(hits) == 1
    hits, total = await archive.search('chess AND ("unbalanced', limit=5, offset=0)
    assert total == 0 and hits == []
    assert await archive.search("   ", limit=5, offset=0) == ([], 0)


async def test_delete_removes_row_search_and_related(archive: StoryArchive) -> None:
    a = await archive.upsert(record("https://news.example/flood", RIVER, entities=[entity("Lorrington", "GPE")]))
    probe = record("https://q.example/", "More rain is due in Lorrington, where the river Vell flooded the market "
                   "square and the embankment near the mill is weak.", entities=[entity("Lorrington", "GPE")])
    assert [h.story_id for h in await archive.related(probe)] == [a.story_id]
    assert await archive.delete(a.story_id)
    assert not await archive.delete(a.story_id)
    assert await archive.get(a.story_id) is None
    assert await archive.search("embankment", 10, 0) == ([], 0)
    assert await archive.story_at("https://news.example/flood") is None
    assert await archive.related(probe) == []
    assert await archive.count() == 0


async def test_generation_changes_with_every_write_and_only_then(archive: StoryArchive) -> None:
    g0 = archive.generation
    a = await archive.upsert(record("https://news.example/flood", RIVER, entities=[entity("Lorrington", "GPE")]))
    g1 = archive.generation
    assert g1 > g0
    probe = record("https://q.example/", "Rain again in Lorrington by the river Vell.", entities=[entity("Lorrington", "GPE")])
    await archive.related(probe)
    await archive.get(a.story_id)
    await archive.search("river", 10, 0)
    assert archive.generation == g1  # reads change nothing
    assert await archive.delete(a.story_id)
    assert archive.generation > g1
    g2 = archive.generation
    assert not await archive.delete(a.story_id)  # a write that finds nothing still counts: harmless
    assert archive.generation == g2 + 1


async def test_export_import_round_trip(new_archive) -> None:
    async with new_archive("a") as a:
        for i in range(7):
            await a.upsert(record(f"https://news.example/{i}", distinct(i),
                                  entities=[entity(f"Person {i}", "PERSON")],
                                  keyphrases=[schemas.Keyphrase(phrase=f"topic {i}", score=0.5)],
                                  first_seen="2025-01-01T00:00:00Z", last_seen=f"2025-02-0{i + 1}T00:00:00Z"))
        exported = [r async for r in a.export()]
        await a.upsert(record("https://news.example/copy", distinct(3) + " Syndicated."))  # merged into 3
        exported = [r async for r in a.export()]
    assert len(exported) == 7
    async with new_archive("b") as b:
        for r in exported:
            await b.import_record(r)
        await b.import_record(exported[0])  # importing twice changes nothing
        again = [r async for r in b.export()]
        assert await b.count() == len(exported)
    assert msgspec.json.encode(again) == msgspec.json.encode(exported)


async def test_concurrent_reads_while_writing(archive: StoryArchive) -> None:
    n = 60

    async def write(i: int):
        text = f"Dispatch {i}: " + " ".join(f"w{i}x{j}" for j in range(40))
        return await archive.upsert(record(f"https://news.example/d/{i}", text, entities=[entity(f"Town{i}", "GPE")]))

    async def read(i: int):
        await archive.search(None, 5, 0)
        await archive.search(f"w{i}x1", 5, 0)
        await archive.related(record("https://q.example/", f"w{i}x1 w{i}x2 w{i}x3"))
        return await archive.count()

    results = await asyncio.gather(*(write(i) for i in range(n)), *(read(i) for i in range(n)))
    written = results[:n]
    assert len({r.story_id for r in written}) == n
    assert await archive.count() == n
    for i in (0, n // 2, n - 1):
        hits, total = await archive.search(f"w{i}x7", 5, 0)
        assert total == 1 and hits[0].story_id == written[i].story_id
    assert len(archive.index) == n


async def test_url_normalisation() -> None:
    assert normalize_url("HTTPS://Example.COM:443/a?utm_source=x&id=3#frag") == "https://example.com/a?id=3"
    assert story_id_for(normalize_url("https://example.com/a?fbclid=1")) == story_id_for("https://example.com/a")


async def test_committed_stories_survive_a_killed_process(tmp_path: Path) -> None:
    """A process that dies without closing loses nothing it was told was stored."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "archive.sqlite3"
    script = textwrap.dedent(f"""
        import asyncio, os
        from backstory.archive.sqlite import archive_at
        from backstory.story import StoryRecord
        async def main():
            a = archive_at({str(path)!r})
            for i in range(20):
                await a.upsert(StoryRecord(url=f"https://k.example/{{i}}", canonical_url=f"https://k.example/{{i}}",
                                           text=f"Item {{i}} " + " ".join(f"t{{i}}x{{j}}" for j in range(40))))
            print("stored", flush=True)
            os._exit(0)  # no close(), no checkpoint
        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "stored" in done.stdout, done.stderr
    async with archive_at(path) as a:
        assert await a.count() == 20
        hits, total = await a.search("t7x3", 5, 0)
        assert total == 1 and hits[0].url == "https://k.example/7"


async def test_stale_features_are_recomputed_on_start(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    async with archive_at(path) as a:
        flood = await a.upsert(record("https://news.example/flood", RIVER, entities=[entity("Lorrington", "GPE")]))
        await a.upsert(record("https://news.example/chess", CHESS))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE stories SET features = x''")
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'features_version'")
    conn.commit()
    conn.close()
    async with archive_at(path) as a:
        probe = record("https://q.example/", "Lorrington flood: the river Vell and the embankment near the mill.",
                       entities=[entity("Lorrington", "GPE")])
        assert [h.story_id for h in await a.related(probe)] == [flood.story_id]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM stories WHERE features = x''").fetchone()[0] == 0
    conn.close()


async def test_features_are_computed_once_for_a_store_and_the_lookup_after_it(
    archive: StoryArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backstory.archive.stories as stories_module

    calls: list[str | None] = []
    real = stories_module.compute_features

    def counting(title, text, entities, keyphrases):
        calls.append(title)
        return real(title, text, entities, keyphrases)

    monkeypatch.setattr(stories_module, "compute_features", counting)
    await archive.upsert(record("https://news.example/chess", CHESS, title="Chess"))
    stored = await archive.upsert(
        record("https://news.example/river", RIVER, title="Flood", entities=[entity("Lorrington", "GPE", 3)])
    )
    assert calls == ["Chess", "Flood"]
    first = await archive.related(stored, limit=5)
    assert calls == ["Chess", "Flood"]  # the stored record's features are reused
    changed = msgspec.structs.replace(stored, entities=[entity("Ada Quenby", "PERSON", 2)])
    again = await archive.related(changed, limit=5)
    assert calls == ["Chess", "Flood", "Flood"]  # other entities: computed anew
    retitled = msgspec.structs.replace(stored, title="Floods")
    await archive.related(retitled, limit=5)
    assert calls[-1] == "Floods"
    # And the answer is the one computed from scratch.
    archive._features._items.clear()
    assert await archive.related(stored, limit=5) == first
    assert [r.story_id for r in again] == [r.story_id for r in await archive.related(changed, limit=5)]


async def test_pending_takes_the_protocols_default_limit(archive: StoryArchive) -> None:
    for i in range(10):
        await archive.upsert(record(f"https://n.example/p{i}", distinct(100 + i), analysed=False))
    default = inspect.signature(Archive.pending).parameters["limit"].default
    assert len(await archive.pending()) == default < 10


async def test_claims_decide_who_deletes_a_story(archive: StoryArchive) -> None:
    story = await archive.upsert(record("https://n.example/claimed", distinct(120)), added_by="token:ana")
    assert await archive.claim(story.story_id, "token:ben") is True
    assert await archive.claim("0123456789abcdef", "token:ben") is False  # no such story
    assert sorted(await archive.added_by(story.story_id)) == ["token:ana", "token:ben"]
    assert await archive.delete_claimed(story.story_id, "token:cy") == "forbidden"
    assert await archive.delete_claimed(story.story_id, "token:ana") == "unclaimed"  # Ben still has it
    assert await archive.added_by(story.story_id) == ["token:ben"]
    assert await archive.get(story.story_id) is not None and len(archive.index) == 1
    assert await archive.delete_claimed(story.story_id, "token:ben") == "deleted"
    assert await archive.get(story.story_id) is None and len(archive.index) == 0
    assert await archive.delete_claimed(story.story_id, "token:ben") == "missing"


async def test_an_alias_files_a_url_under_a_stored_story(archive: StoryArchive) -> None:
    story = await archive.upsert(record("https://n.example/own", distinct(121)))
    assert await archive.add_alias("https://mirror.example/copy", story.story_id) is True
    assert await archive.add_alias("https://mirror.example/none", "0123456789abcdef") is False
    assert await archive.story_at("https://mirror.example/copy") == story.story_id
    assert await archive.story_at("https://mirror.example/none") is None
    aliases = [alias async for alias in archive.aliases()]
    assert sorted(aliases) == [("https://mirror.example/copy", story.story_id), ("https://n.example/own", story.story_id)]


async def test_following_another_writer_and_reloading_bring_the_index_to_the_archive(new_archive) -> None:
    async with new_archive() as ours, new_archive() as theirs:
        story = await theirs.upsert(record("https://n.example/theirs", distinct(122)))
        assert len(ours.index) == 0  # written by the other: not in our index yet
        await ours.follow([story.story_id])
        assert len(ours.index) == 1 and story.story_id in ours.index.slot_of
        assert await theirs.delete(story.story_id)
        await ours.follow([story.story_id])  # a story gone there leaves our index too
        assert len(ours.index) == 0
        kept = await theirs.upsert(record("https://n.example/kept", distinct(123)))
        assert await ours.reload_index() > 0
        assert list(ours.index.slot_of) == [kept.story_id] and len(ours.index) == 1


async def test_a_url_filed_under_a_story_by_its_copy_stays_a_copy_only_while_its_text_is(archive: StoryArchive) -> None:
    original = await archive.upsert(record("https://one.example/vell", RIVER))
    syndicated = RIVER.replace("on Tuesday night", "late on Tuesday night")
    copy = await archive.upsert(record("https://two.example/vell", syndicated, title="Syndicated"))
    assert copy.story_id == original.story_id
    # the copy's URL, sent again with a copy's text, is that story; it does not take it over
    again = await archive.upsert(record("https://two.example/vell", syndicated, title="Syndicated"))
    assert again.story_id == original.story_id
    stored = await archive.get(original.story_id)
    assert (stored.canonical_url, stored.title) == ("https://one.example/vell", "A story")
    # the same URL now saying something else is a story of its own
    other = await archive.upsert(record("https://two.example/vell", CHESS))
    assert other.story_id != original.story_id and await archive.count() == 2
    assert (await archive.get(original.story_id)).text == RIVER


async def test_a_copy_stored_by_another_process_is_found_before_the_index_shows_it(new_archive) -> None:
    async with new_archive() as ours, new_archive() as theirs:
        original = await theirs.upsert(record("https://one.example/vell", RIVER))
        assert len(ours.index) == 0  # our index has not followed their write
        syndicated = RIVER.replace("on Tuesday night", "late on Tuesday night")
        copy = await ours.upsert(record("https://two.example/vell", syndicated))
        assert copy.story_id == original.story_id and await ours.count() == 1


async def test_an_archive_starts_on_first_use(archive_urls) -> None:
    archive = create_archive(archive_urls())
    try:
        story = await archive.upsert(record("https://n.example/first", distinct(124)))
        assert (await archive.get(story.story_id)).story_id == story.story_id
    finally:
        await archive.close()


async def test_an_import_is_claimed_by_who_imported_it(archive: StoryArchive) -> None:
    story = await archive.import_record(record("https://n.example/imported", distinct(125)), added_by="cli")
    assert await archive.added_by(story.story_id) == ["cli"]


async def test_search_lists_20_newest_first_by_default_and_counts_all(archive: StoryArchive) -> None:
    ids = [(await archive.upsert(record(f"https://n.example/s{i}", distinct(130 + i, "The sluice gate opened."),
                                        last_seen=f"2026-02-{i + 1:02d}T00:00:00Z"))).story_id for i in range(21)]
    hits, total = await archive.search("sluice")
    assert total == 21 and [h.story_id for h in hits] == ids[::-1][:20]
    hits, total = await archive.search("sluice", limit=0)  # a count without a list
    assert (hits, total) == ([], 21)


ISO_SECOND = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


async def test_seeing_a_story_again_moves_its_last_seen_to_now(archive: StoryArchive) -> None:
    first = await archive.upsert(record("https://one.example/seen", RIVER, last_seen="2020-01-01T00:00:00Z",
                                        first_seen="2020-01-01T00:00:00Z"))
    updated = await archive.upsert(record("https://one.example/seen", RIVER + " The water fell."))
    assert re.fullmatch(ISO_SECOND, updated.last_seen) and updated.last_seen > "2026"
    assert updated.first_seen == first.first_seen == "2020-01-01T00:00:00Z"
    # a copy at another URL is a sighting of the story too
    await archive.upsert(record("https://two.example/seen", RIVER.replace("on Tuesday night", "late on Tuesday night"),
                                last_seen="2020-01-01T00:00:00Z"))
    stored = await archive.get(first.story_id)
    assert re.fullmatch(ISO_SECOND, stored.last_seen) and stored.last_seen > "2026"


async def test_an_import_keeps_the_earliest_and_latest_sightings(archive: StoryArchive) -> None:
    stored = await archive.upsert(record("https://one.example/imp", RIVER))
    older = record("https://one.example/imp", RIVER, first_seen="2020-01-01T00:00:00Z",
                   last_seen="2020-02-01T00:00:00Z")
    merged = await archive.import_record(older)
    assert merged.story_id == stored.story_id
    assert (merged.first_seen, merged.last_seen) == ("2020-01-01T00:00:00Z", stored.last_seen)


async def test_an_unanalysed_record_of_an_analysed_story_only_adds_its_page_url(archive: StoryArchive) -> None:
    analysed = await archive.upsert(record("https://n.example/gate", distinct(126), title="Analysed",
                                           entities=[entity("Sluice Gate", "FAC")]))
    # the same canonical URL, from a page at another address, sent unanalysed (an import, say)
    again = await archive.upsert(record("https://m.example/gate-copy", distinct(127), title="Unanalysed",
                                        canonical_url="https://n.example/gate", analysed=False))
    stored = await archive.get(analysed.story_id)
    assert again == stored and (stored.title, stored.analysed) == ("Analysed", True)
    assert stored.entities[0].name == "Sluice Gate" and stored.text == distinct(126)
    assert await archive.story_at("https://m.example/gate-copy") == analysed.story_id
    assert await archive.count_pending() == 0
