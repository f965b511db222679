"""Related stories: the hybrid ranking on small archives written here, through the real SQLite backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from backstory import schemas
from backstory.archive import StoryRecord
from backstory.archive.related import Features, RelatedIndex, compute_features
from backstory.archive.sqlite import SQLiteArchive

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
async def archive(tmp_path: Path):
    async with SQLiteArchive(tmp_path / "archive.sqlite3") as a:
        yield a


async def fill(archive: SQLiteArchive) -> tuple[list[StoryRecord], list[StoryRecord], StoryRecord]:
    a = [await archive.upsert(make(i, s)) for i, s in enumerate(A)]
    b = [await archive.upsert(make(10 + i, s)) for i, s in enumerate(B)]
    other = await archive.upsert(make(20, OTHER))
    return a, b, other


async def test_same_event_first_with_shared_entities_as_reasons(archive: SQLiteArchive) -> None:
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


async def test_record_not_archived_and_duplicates_excluded(archive: SQLiteArchive) -> None:
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


async def test_unrelated_story_gets_nothing(archive: SQLiteArchive) -> None:
    await fill(archive)
    lonely = make(50, ("Comet seen over Ostrava", "Astronomers in Ostrava photographed a faint green comet "
                       "low on the horizon before sunrise.", [("Ostrava", "GPE", 1)]))
    assert await archive.related(lonely) == []


async def test_delete_and_update_reach_the_index(archive: SQLiteArchive) -> None:
    a, _, _ = await fill(archive)
    assert await archive.delete(a[1].story_id)
    ids = [h.story_id for h in await archive.related(a[0], limit=5)]
    assert a[1].story_id not in ids and a[2].story_id in ids
    # re-analysing a story with new text moves it in the index (no stale postings)
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

    settings = Settings(archive_path=str(tmp_path / "archive.sqlite3"), workers=1)
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
