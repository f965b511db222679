"""Related stories: the hybrid ranking on small archives written here, through the real SQLite backend."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from backstory import schemas
from backstory.archive import create_archive
from backstory.duplicates import simhash
from backstory.story import StoryRecord, derive
from backstory.archive.features import Features, compute_features
from backstory.archive.related import RelatedIndex
from backstory.archive.stories import FeatureMemo, StoryArchive

# Topic "bridge collapse": event A in Kelmarsh (three reports), event B in Dunhollow (two reports).
A = [
    ("Kelmarsh bridge collapses into the Arden river",
     "The Harwick road bridge in Kelmarsh collapsed into the Arden river on Friday morning during rush hour. "
     "Four cars fell into the water and rescuers pulled eleven people out alive, fire chief Nora Beltane said. "
     "Governor Lewis Tamm ordered an inspection of every bridge in the county.",
     [("Kelmarsh", "GPE", 3), ("Harwick", "FAC", 2), ("Nora Beltane", "PERSON", 1), ("Lewis Tamm", "PERSON", 1), ("Arden", "LOC", 1)]),
    ("Divers search the Arden after Kelmarsh collapse",
     "Divers searched the Arden river near Kelmarsh on Saturday for two people still missing after the Harwick "
     "bridge gave way. Fire chief Nora Beltane said the current made the search slow. Engineers blamed corroded "
     "steel in the span, which was built in 1962.",
     [("Kelmarsh", "GPE", 2), ("Harwick", "FAC", 1), ("Nora Beltane", "PERSON", 1), ("Arden", "LOC", 2)]),
    ("Tamm promises inquiry into Harwick bridge failure",
     "Governor Lewis Tamm promised a public inquiry into the failure of the Harwick bridge in Kelmarsh, where "
     "the death toll rose to three. Tamm said the state had known about rust on the 1962 span since an "
     "inspection two years ago.",
     [("Lewis Tamm", "PERSON", 2), ("Harwick", "FAC", 1), ("Kelmarsh", "GPE", 1)]),
]
B = [
    ("Footbridge gives way at Dunhollow festival",
     "A wooden footbridge collapsed at the Dunhollow summer festival on Sunday, dropping about thirty visitors "
     "into a shallow stream. Paramedics treated nine people for minor injuries, organiser Petra Lind said. "
     "The county will inspect every bridge used for the festival.",
     [("Dunhollow", "GPE", 2), ("Petra Lind", "PERSON", 1)]),
    ("Dunhollow festival bridge was overloaded, says organiser",
     "Petra Lind, who runs the Dunhollow festival, said the footbridge that collapsed on Sunday carried far more "
     "people than its limit. Nine visitors were hurt when the bridge gave way over the stream.",
     [("Petra Lind", "PERSON", 1), ("Dunhollow", "GPE", 2)]),
]
OTHER = ("Bakery wins award", "A small bakery in Penrow won the national sourdough award for its rye loaf, "
         "beating two hundred entries from across the country.", [("Penrow", "GPE", 1)])


def make(i: int, story: tuple, site: str = "news.example") -> StoryRecord:
    title, text, ents = story
    return StoryRecord(
        url=f"https://{site}/story/{i}", canonical_url=f"https://{site}/story/{i}", title=title, text=text,
        entities=[schemas.Entity(name=n, label=lab, count=c, mentions=[]) for n, lab, c in ents],
    )


@pytest.fixture
async def archive(new_archive):
    async with new_archive() as a:
        yield a


async def fill(archive: StoryArchive) -> tuple[list[StoryRecord], list[StoryRecord], StoryRecord]:
    a = [await archive.upsert(make(i, s)) for i, s in enumerate(A)]
    b = [await archive.upsert(make(10 + i, s)) for i, s in enumerate(B)]
    other = await archive.upsert(make(20, OTHER))
    return a, b, other


async def test_same_event_first_with_shared_entities_as_reasons(archive: StoryArchive) -> None:
    a, b, other = await fill(archive)
    for query in a:
        hits = await archive.related(query, limit=5)
        ids = [h.story_id for h in hits]
        assert query.story_id not in ids
        expected = {r.story_id for r in a} - {query.story_id}
        assert set(ids[:2]) == expected, [h.title for h in hits]
        assert other.story_id not in ids
        for h in hits[:2]:
            assert "Kelmarsh" in h.shared_entities or "Harwick" in h.shared_entities
            assert h.url.startswith("https://news.example/story/") and h.title
        assert hits[0].score >= hits[1].score > 0
    for query in b:
        hits = await archive.related(query, limit=3)
        assert hits[0].story_id == ({r.story_id for r in b} - {query.story_id}).pop()
        assert "Dunhollow" in hits[0].shared_entities and "Petra Lind" in hits[0].shared_entities


async def test_record_not_archived_and_duplicates_excluded(archive: StoryArchive) -> None:
    a, b, _ = await fill(archive)
    fresh = make(99, ("Harwick bridge: what we know",
                      "What we know about the Harwick bridge collapse in Kelmarsh: the span over the Arden river fell "
                      "on Friday, Governor Lewis Tamm ordered inspections and fire chief Nora Beltane led the rescue.",
                      [("Harwick", "FAC", 2), ("Kelmarsh", "GPE", 1), ("Lewis Tamm", "PERSON", 1), ("Nora Beltane", "PERSON", 1)]),
                 site="other.example")
    hits = await archive.related(fresh, limit=3)
    assert {h.story_id for h in hits} == {r.story_id for r in a}
    assert await archive.count() == 6  # asking did not archive it
    # the same story under another URL (a syndicated copy) is not "related" to itself
    copy = make(98, A[0], site="mirror.example")
    ids = [h.story_id for h in await archive.related(copy, limit=5)]
    assert a[0].story_id not in ids and a[1].story_id in ids


async def test_unrelated_story_gets_nothing(archive: StoryArchive) -> None:
    await fill(archive)
    lonely = make(50, ("Comet seen over Ostrava", "Astronomers in Ostrava photographed a faint green comet "
                       "low on the horizon before sunrise.", [("Ostrava", "GPE", 1)]))
    assert await archive.related(lonely) == []


async def test_delete_and_update_reach_the_index(archive: StoryArchive) -> None:
    a, _, _ = await fill(archive)
    assert await archive.delete(a[1].story_id)
    ids = [h.story_id for h in await archive.related(a[0], limit=5)]
    assert a[1].story_id not in ids and a[2].story_id in ids
    # re-analyzing a story with new text moves it in the index (no stale postings)
    moved = make(2, ("Bakery news", "The Penrow bakery opened a second shop selling sourdough rye loaves.",
                     [("Penrow", "GPE", 1)]))
    await archive.upsert(moved)
    ids = [h.story_id for h in await archive.related(a[0], limit=5)]
    assert a[2].story_id not in ids


def test_index_unit_fusion_and_refresh() -> None:
    """RelatedIndex alone: merging the delta and recomputing idf keeps the ranking; removals stick."""
    index = RelatedIndex()
    docs = {}
    for i, story in enumerate(A + B + [OTHER]):
        r = make(i, story)
        docs[str(i)] = compute_features(r.title, r.text, r.entities, [])
        index.add(str(i), docs[str(i)], None, None)
    before = [h.story_id for h in index.query(docs["0"], None, exclude_id="0", limit=4)]
    index.refresh()
    after = [h.story_id for h in index.query(docs["0"], None, exclude_id="0", limit=4,
                                             features_of=lambda ids: [docs[i] for i in ids])]
    assert set(before[:2]) == set(after[:2]) == {"1", "2"}
    index.remove("1")
    index.refresh()
    assert "1" not in [h.story_id for h in index.query(docs["0"], None, exclude_id="0")]
    assert len(index) == len(docs) - 1
    empty = Features(terms=[], ents=[], kps=[])
    assert index.query(empty, None) == []


def test_embedding_breaks_ties_without_dominating() -> None:
    index = RelatedIndex()
    base = [0.0] * 384
    e_same, e_other = list(base), list(base)
    e_same[0] = 1.0
    e_other[1] = 1.0
    f_a = compute_features("Harbor fire", "Fire destroyed the Velmo harbor warehouse on Monday.", [], [])
    f_b = compute_features("Harbor fire", "Fire destroyed the Velmo harbor warehouse on Monday night.", [], [])
    f_c = compute_features("Harbor fire", "Fire destroyed the Velmo harbor warehouse on Monday evening.", [], [])
    index.add("b", f_b, e_other, None)
    index.add("c", f_c, e_same, None)
    hits = index.query(f_a, e_same, limit=2)
    assert [h.story_id for h in hits] == ["c", "b"]
    assert hits[0].score - hits[1].score < 0.25  # words still carry most of the score


async def test_related_through_the_real_pipeline(models, tmp_path: Path) -> None:
    """spaCy entities, KeyBERT keyphrases and MiniLM embeddings from the product feed the ranking."""
    from backstory.archive import open_archive
    from backstory.config import Settings
    from backstory.pipeline import Pipeline
    from backstory.schemas import AnalyzeRequest

    settings = Settings(archive=str(tmp_path / "archive.sqlite3"), workers=1)
    archive = await open_archive(settings)
    pipeline = Pipeline(settings, models, archive)
    try:
        ids = []
        for i, (title, text, _ents) in enumerate(A + B + [OTHER]):
            sidebar = await pipeline.analyze(AnalyzeRequest(url=f"https://news.example/{i}", text=text, title=title))
            ids.append(sidebar.story_id)
        assert await archive.count() == 6
        record = await archive.get(ids[0])
        assert record.entities and record.embedding is not None and record.keyphrases
        hits = await archive.related(record, limit=5)
        assert {h.story_id for h in hits[:2]} == {ids[1], ids[2]}, [h.title for h in hits]
        assert "Kelmarsh" in hits[0].shared_entities
        assert ids[5] not in [h.story_id for h in hits[:4]]
    finally:
        pipeline.close()
        await archive.close()


def test_dates_named_in_a_text() -> None:
    from backstory.archive.features import dates_in

    years, months, days, weekdays = dates_in(
        "Posted Tuesday, 26 September 2013. The flood of Dec. 14, 2008 was worse; 2,013 people and "
        "1999.5 tonnes (12.2013) are no dates, nor is the verb in 'it may rain', but May 3 is.")
    assert years == [2008, 2013]
    assert months == [5, 9, 12]
    assert days == [503, 926, 1214]  # month x 100 + day
    assert weekdays == [1]           # Tuesday (0 = Monday)
    assert dates_in("No dates here, 300 homes flooded.") == ([], [], [], [])


def test_features_stored_before_dates_still_decode() -> None:
    import msgspec

    from backstory.archive.features import decode_features

    old = msgspec.msgpack.encode([[["flood", 1.0]], [["lisdorf", 1.0, "Lisdorf"]], []])  # FEATURES_VERSION 1
    f = decode_features(old)
    assert f.terms == [("flood", 1.0)] and f.years == [] and f.days == []


# Two floods of the same river in the same town, years apart: the same words, the same mayor.
FLOOD_2014 = ("Varna river floods Lisdorf",
              "Floodwaters from the Varna river swept through Lisdorf on Tuesday, March 4, 2014, forcing two hundred "
              "families from their homes and closing the old stone bridge, mayor Ida Brenner said.")
FLOOD_2014_LATER = ("Lisdorf counts the cost of the flood",
                    "Families in Lisdorf began returning home on Thursday after the Varna flood of March 4, 2014. "
                    "Mayor Ida Brenner said repairs to the stone bridge would take months.")
FLOOD_2008 = ("Varna river floods Lisdorf",
              "Floodwaters from the Varna river swept through Lisdorf on Sunday, October 12, 2008, forcing hundreds of "
              "families from their homes and closing the old stone bridge, mayor Ida Brenner said.")


def test_dates_keep_the_ranking_on_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """A story naming another year, month and weekday ranks below one naming the query's date, even
    though it shares more words with the query; without the date signal it would rank first."""
    import backstory.archive.related as related

    ents = [("Lisdorf", "GPE", 1), ("Varna", "LOC", 1), ("Ida Brenner", "PERSON", 1)]
    index = RelatedIndex()
    docs = {}
    for i, story in enumerate([*A, *B, OTHER, (*FLOOD_2014, ents), (*FLOOD_2014_LATER, ents), (*FLOOD_2008, ents)]):
        r = make(i, story)
        docs[str(i)] = compute_features(r.title, r.text, r.entities, [])
        index.add(str(i), docs[str(i)], None, None)
    query, same_event, other_event = "6", "7", "8"
    assert docs[query].years == [2014] and docs[other_event].years == [2008]

    def ranking() -> list[str]:
        return [h.story_id for h in index.query(docs[query], None, exclude_id=query, limit=3,
                                                features_of=lambda ids: [docs[i] for i in ids])]

    assert ranking()[:2] == [same_event, other_event]
    monkeypatch.setattr(related, "DATE_AGREE", {})
    monkeypatch.setattr(related, "DATE_CONFLICT", {})
    assert ranking()[:2] == [other_event, same_event]
    # shown scores are the plain similarity either way
    monkeypatch.undo()
    hits = {h.story_id: h.score for h in index.query(docs[query], None, exclude_id=query, limit=3)}
    assert hits[other_event] > hits[same_event]


def test_dates_named_by_one_side_only_change_nothing() -> None:
    index = RelatedIndex()
    plain = compute_features("Harbor fire", "Fire destroyed the Velmo harbor warehouse.", [], [])
    dated = compute_features("Harbor fire", "Fire destroyed the Velmo harbor warehouse on May 2, 2011.", [], [])
    index.add("plain", plain, None, None)
    index.add("dated", dated, None, None)
    undated_query = compute_features("Velmo fire", "A fire in the Velmo harbor warehouse.", [], [])
    cand = np.asarray([index.slot_of["plain"], index.slot_of["dated"]])
    assert index._dates(cand, undated_query).tolist() == [0.0, 0.0]
    assert index._dates(cand, dated).tolist()[0] == 0.0 and index._dates(cand, dated).tolist()[1] > 0


def test_stop_words_are_scikit_learns_list_plus_our_own() -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from backstory.archive.features import _OWN_STOPWORDS, STOPWORDS

    assert STOPWORDS == frozenset(ENGLISH_STOP_WORDS) | _OWN_STOPWORDS
    assert {"the", "and", "said", "according"} <= STOPWORDS


def test_bulk_load_and_one_by_one_give_the_same_ranking() -> None:
    texts = [
        ("Flood in Riverton", "The Lune river burst its banks in Riverton on Monday, flooding two hundred homes."),
        ("Riverton cleans up", "Riverton residents began clearing mud after the Lune flood damaged homes."),
        ("Chess final", "Anna Varnholt won the city chess championship final against Pavel Orsk."),
        ("Chess prize", "The chess championship prize fund was raised; Varnholt beat Orsk in the final."),
    ]
    feats = [compute_features(t, x, [], []) for t, x in texts]
    bulk, single = RelatedIndex(), RelatedIndex()
    with bulk.bulk():
        for i, f in enumerate(feats):
            bulk.add(f"s{i}", f, None, None)
    for i, f in enumerate(feats):
        single.add(f"s{i}", f, None, None)
    single.refresh()  # one by one, impacts use the idf of their time until a refresh
    for i, f in enumerate(feats):
        a = [(h.story_id, h.score) for h in bulk.query(f, None, exclude_id=f"s{i}", limit=3)]
        b = [(h.story_id, h.score) for h in single.query(f, None, exclude_id=f"s{i}", limit=3)]
        assert a == b and a
    assert [h.story_id for h in bulk.query(feats[0], None, exclude_id="s0", limit=1)] == ["s1"]


async def test_a_deleted_story_leaves_the_index(archive: StoryArchive) -> None:
    # related() reads what it ranks from the archive, so it hides a story the index kept: the
    # index's own count is what shows the delete reached it.
    a, _, _ = await fill(archive)
    before = len(archive.index)
    assert await archive.delete(a[1].story_id)
    assert len(archive.index) == before - 1
    assert not await archive.delete(a[1].story_id)  # gone already: nothing else leaves
    assert len(archive.index) == before - 1


TRANSCRIPT = ("Spokespeople answered questions for an hour on Monday; the full transcript follows below, "
              "with every question asked and every answer given, in the order they came.")


async def test_a_completed_pending_story_reaches_the_index(new_archive) -> None:
    async with new_archive() as archive:
        a, _, _ = await fill(archive)
        pending = await archive.upsert(StoryRecord(
            url="https://news.example/story/30", canonical_url="https://news.example/story/30",
            title="Briefing transcript", text=TRANSCRIPT, analysed=False))
        assert pending.story_id not in [h.story_id for h in await archive.related(a[0], limit=10)]
        done = msgspec.structs.replace(pending, analysed=True, entities=[
            schemas.Entity(name=n, label=lab, count=c, mentions=[]) for n, lab, c in A[0][2]])
        assert await archive.store_analysis(done)
        assert pending.story_id in [h.story_id for h in await archive.related(a[0], limit=10)]
        # its SimHash is still in the index: the same text at another URL is this story
        assert await archive.find_duplicate("https://mirror.example/t", pending.simhash, TRANSCRIPT) == pending.story_id
    async with new_archive() as archive:  # and the stored features bring it back after a restart
        assert pending.story_id in [h.story_id for h in await archive.related(a[0], limit=10)]


async def test_a_related_story_comes_with_its_site_date_and_shared_keyphrases(archive: StoryArchive) -> None:
    a, _, _ = await fill(archive)
    report = ("Harwick bridge: the Kelmarsh rescue", "Crews from three towns joined the rescue at the Harwick "
              "bridge in Kelmarsh, where fire chief Nora Beltane coordinated boats on the Arden until nightfall.",
              [("Harwick", "FAC", 1), ("Kelmarsh", "GPE", 1), ("Nora Beltane", "PERSON", 1), ("Arden", "LOC", 1)])
    dated = msgspec.structs.replace(
        make(40, report, site="daily.example"), site_name="The Daily", published="2025-03-14",
        keyphrases=[schemas.Keyphrase(phrase="harwick bridge", score=0.9)])
    stored = await archive.upsert(dated)
    query = msgspec.structs.replace(a[0], keyphrases=[schemas.Keyphrase(phrase="harwick bridge", score=0.9)])
    hit = next(h for h in await archive.related(query, limit=10) if h.story_id == stored.story_id)
    assert (hit.url, hit.site_name, hit.published) == ("https://daily.example/story/40", "The Daily", "2025-03-14")
    assert "harwick bridge" in hit.shared_keyphrases


async def test_a_page_at_a_stored_canonical_url_is_that_story_whatever_its_text(archive: StoryArchive) -> None:
    a, _, _ = await fill(archive)
    text = OTHER[1]
    assert await archive.find_duplicate("HTTPS://News.Example/story/0#top", simhash(text), text) == a[0].story_id


async def test_an_archive_opened_without_its_index_refuses_related_lookups(tmp_path: Path) -> None:
    async with create_archive(f"sqlite:///{tmp_path / 'plain.sqlite3'}", related_index=False) as archive:
        with pytest.raises(RuntimeError) as info:
            await archive.related(make(1, A[0]))
        assert str(info.value) == "this archive was opened without its related index"


def test_remembered_features_are_those_of_the_records_own_text() -> None:
    memo = FeatureMemo()
    first = derive(make(70, A[0]))
    second = derive(msgspec.structs.replace(first, text=B[0][1], content_hash="", simhash=0))  # the very same lists
    assert second.entities is first.entities and second.content_hash != first.content_hash
    assert memo.of(first) == compute_features(first.title, first.text, first.entities, first.keyphrases)
    assert memo.of(second) == compute_features(second.title, second.text, second.entities, second.keyphrases)


async def test_a_reopened_archive_answers_related_from_its_first_lookup(new_archive) -> None:
    async with new_archive() as archive:
        a, _, _ = await fill(archive)
    reopened = new_archive()  # not started: the first lookup must load the index
    try:
        assert a[1].story_id in [h.story_id for h in await reopened.related(a[0], limit=5)]
    finally:
        await reopened.close()
