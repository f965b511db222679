"""The related stories' relation: same event (another outlet, a copy, an update) or background.

The rule on hits made by hand; the index's neighbourhoods on two events written here; the archive
and the API (``relation`` on each item, ``?relation=`` filtering) on both backends.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from backstory import schemas
from backstory.archive import neighbours, related
from backstory.archive.features import compute_features
from backstory.archive.related import NEIGHBOURS, Hit, RelatedIndex
from backstory.archive.relation import MAX_GAP_DAYS, THRESHOLDS, Thresholds, days_apart, relation_of
from backstory.config import Settings
from backstory.story import StoryRecord, utc_now

from .conftest import assert_problem

# --- the rule --------------------------------------------------------------------------------


def test_a_copy_is_the_same_event_and_a_story_published_weeks_apart_is_background() -> None:
    copy = Hit("c", score=0.05, copy_distance=2, shared_neighbours=0.0)
    assert relation_of(copy, "2026-03-10", "2026-03-10") == "same_event"
    close_but_late = Hit("l", score=0.9, shared_neighbours=1.0)
    assert relation_of(close_but_late, "2026-03-10T08:00:00Z", "2026-01-02") == "background"
    assert relation_of(close_but_late, "2026-03-10", f"2026-03-{10 + MAX_GAP_DAYS:02d}") == "same_event"
    assert relation_of(close_but_late, "2026-03-10", None) == "same_event"  # a missing date decides nothing


def test_neighbourhoods_decide_and_the_score_only_without_them() -> None:
    limit = THRESHOLDS.shared_neighbours
    assert relation_of(Hit("a", score=0.05, shared_neighbours=limit)) == "same_event"
    # very similar words, but its own nearest stories are another event's
    assert relation_of(Hit("b", score=0.95, shared_neighbours=limit - 0.01)) == "background"
    assert relation_of(Hit("c", score=THRESHOLDS.same_event_score)) == "same_event"
    assert relation_of(Hit("d", score=THRESHOLDS.same_event_score - 0.01)) == "background"
    score_only = Thresholds(shared_neighbours=None, same_event_score=0.5)
    assert relation_of(Hit("e", score=0.4, shared_neighbours=1.0), thresholds=score_only) == "background"


def test_days_apart() -> None:
    assert days_apart("2026-03-10T23:30:00+00:00", "2026-03-12") == 2
    assert days_apart("2026-03-12", "2026-03-10T01:00:00Z") == 2
    assert days_apart("2026-03-10", "last Tuesday") is None
    assert days_apart(None, "2026-03-10") is None


# --- the index's neighbourhoods ----------------------------------------------------------------

# Two bridge collapses: the same kind of event, so they share the topic's words; each has its own
# places and people. Event A has few reports, event B many: a B report's own neighbours are B's.
TOPIC = ["The county ordered an inspection of every bridge after the collapse.",
         "Engineers said corroded steel and heavy traffic weaken old spans.",
         "Rescuers pulled people from the water and paramedics treated the injured."]
EVENT_A = ["The Harwick bridge in Kelmarsh collapsed into the Arden river.",
           "Fire chief Nora Beltane said eleven people were pulled out alive near Kelmarsh.",
           "Governor Lewis Tamm promised an inquiry into the Harwick failure.",
           "Divers searched the Arden for two people missing after the Kelmarsh collapse.",
           "Tamm said rust on the Harwick span had been known since 1962 inspections."]
EVENT_B = ["A wooden footbridge at the Dunhollow festival gave way over the Corran stream.",
           "Organiser Petra Lind said the Dunhollow footbridge carried far too many visitors.",
           "Nine festival visitors were hurt when the Corran footbridge collapsed, Lind said.",
           "Mayor Ivo Strand closed the Dunhollow festival grounds after the footbridge fell.",
           "Strand said the Corran crossing would be rebuilt in steel before next summer."]


def _reports(event: list[str], n: int, tag: str) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        picked = [event[(i + k) % len(event)] for k in range(3)] + [TOPIC[i % 3], TOPIC[(i + 1) % 3]]
        out.append((f"{tag}{i}", " ".join(picked)))
    return out


def _two_events(*more: tuple[str, str]) -> tuple[RelatedIndex, dict]:
    """An index of event A's 5 reports and event B's 14 (and ``more``), and their features."""
    index = RelatedIndex()
    stories = _reports(EVENT_A, 5, "a") + _reports(EVENT_B, 14, "b") + list(more)
    features = {sid: compute_features(None, text, [], []) for sid, text in stories}
    for sid, f in features.items():
        index.add(sid, f, None, None)
    return index, features


def test_reports_of_one_event_share_neighbourhoods_and_another_events_do_not() -> None:
    index, features = _two_events()
    hits = index.query(features["a0"], None, exclude_id="a0", limit=NEIGHBOURS,
                       features_of=lambda ids: [features[i] for i in ids])
    got = {h.story_id: relation_of(h) for h in hits}
    assert {sid for sid in got if sid.startswith("a")} == {"a1", "a2", "a3", "a4"}, got
    assert any(sid.startswith("b") for sid in got), got  # the list holds the other event too ...
    assert {got[sid] for sid in got if sid.startswith("a")} == {"same_event"}, hits
    assert {got[sid] for sid in got if sid.startswith("b")} == {"background"}, hits  # ... as background
    # without the stored features of the hits there is no neighbourhood: the score decides
    bare = index.query(features["a0"], None, exclude_id="a0", limit=NEIGHBOURS)
    assert bare and all(h.shared_neighbours is None for h in bare)


# A report of event A that says little (one of A's sentences), and a report of event B that names
# A's governor and town: by shared words B's report is nearer A's stories than A's own short one.
SHORT_A = ("a5", " ".join([EVENT_A[4], TOPIC[2], "Officials said the crossing stays closed."]))
B_NAMING_A = ("y", " ".join([TOPIC[0], TOPIC[1], EVENT_B[0], EVENT_B[2],
                             "Governor Lewis Tamm of Kelmarsh sent his own engineers to the Dunhollow footbridge."]))


def test_the_querys_event_comes_before_another_event_that_shares_more_words(monkeypatch) -> None:
    """The first hits are ordered with their neighbourhoods: the short A report (whose own nearest
    stories are A's) passes B's report (whose nearest are B's), also when only 5 are asked for."""
    index, features = _two_events(SHORT_A, B_NAMING_A)

    def top(limit: int) -> list[str]:
        hits = index.query(features["a0"], None, exclude_id="a0", limit=limit,
                           features_of=lambda ids: [features[i] for i in ids])
        assert len(hits) == limit
        return [h.story_id for h in hits]

    monkeypatch.setattr(related, "NEIGHBOURHOOD_WEIGHT", 0.0)  # by the ranking score alone
    assert "y" in top(5) and "a5" not in top(5), top(5)
    monkeypatch.setattr(related, "NEIGHBOURHOOD_WEIGHT", 0.5)
    assert sorted(top(5)) == ["a1", "a2", "a3", "a4", "a5"], top(5)
    assert top(NEIGHBOURS)[:5] == top(5)  # the same first five, whatever the limit


def test_the_order_by_neighbourhood_moves_only_known_neighbourhoods_within_the_window(monkeypatch) -> None:
    monkeypatch.setattr(related, "NEIGHBOURHOOD_WEIGHT", 0.5)
    monkeypatch.setattr(related, "RERANK_DEPTH", 4)
    hits = [Hit("lone", 0.9, shared_neighbours=0.0),   # 0.90
            Hit("unknown", 0.8),                        # no neighbourhood: keeps its place
            Hit("copy", 0.6, copy_distance=1),          # a near copy counts as all of it: 1.10
            Hit("shared", 0.5, shared_neighbours=0.9),  # 0.95
            Hit("late", 0.48, shared_neighbours=1.0)]   # 0.98, but beyond the window: stays last
    ranked = [h.score for h in hits]
    assert [hits[i].story_id for i in related._by_neighbourhood(hits, ranked)] == ["copy", "unknown", "shared", "lone", "late"]
    monkeypatch.setattr(related, "NEIGHBOURHOOD_WEIGHT", 0.0)
    assert related._by_neighbourhood(hits, ranked) == [0, 1, 2, 3, 4]


def test_all_hits_neighbourhoods_at_once_match_one_first_pass_per_hit() -> None:
    """The batch of :mod:`backstory.archive.neighbours` is each hit's own first pass (the index's
    ``_score``, the query's story and the hit left out); a near copy is not looked up."""
    index, features = _two_events()
    found = index.query(features["b0"], None, exclude_id="b0", limit=NEIGHBOURS,
                        features_of=lambda ids: [features[i] for i in ids])
    assert len(found) == NEIGHBOURS and all(h.shared_neighbours is not None for h in found), found
    n, query = len(index.ids), index.slot_of["b0"]
    nearest = [(index.slot_of[h.story_id], h.score) for h in found]
    hits = [Hit(h.story_id, h.score, copy_distance=0 if i % 3 == 2 else None) for i, h in enumerate(found)]
    neighbours.shared_neighbours(index, hits, [features[h.story_id] for h in hits], nearest, n,
                                 np.arange(n) == query)
    for i, hit in enumerate(hits):
        if i % 3 == 2:  # a near copy is the same event whatever its neighbourhood
            assert hit.shared_neighbours is None, hit
            continue
        slot = index.slot_of[hit.story_id]
        own = np.isin(np.arange(n), [query, slot])
        queries = {name: index._channel_query(name, getattr(features[hit.story_id], name)) for name in ("terms", "ents", "kps")}
        cand, total = index._score(queries, None, n, 0, own, neighbours.NEIGHBOUR_BUDGET)
        mine = set(cand[np.argsort(-total)[:NEIGHBOURS]].tolist())
        whole = sum(w for s, w in nearest if s != slot)
        assert hit.shared_neighbours == round(sum(w for s, w in nearest if s in mine) / whole, 4), (hit, mine)


def test_a_hit_whose_words_the_index_does_not_know_has_no_neighbourhood() -> None:
    # Found by the hostile-bodies fuzz test: a hit with no key that can match anything (its stored
    # features name only words no story has) once made the batch index an empty array.
    index, features = _two_events()
    found = index.query(features["b0"], None, exclude_id="b0", limit=NEIGHBOURS,
                        features_of=lambda ids: [features[i] for i in ids])
    n = len(index.ids)
    hit = Hit(found[0].story_id, found[0].score)
    unknown = compute_features(None, "Qwzx vrrbl kzzt ploomf.", [], [])
    neighbours.shared_neighbours(index, [hit], [unknown], [(index.slot_of[h.story_id], h.score) for h in found],
                                 n, np.arange(n) == index.slot_of["b0"])
    assert hit.shared_neighbours is None


# --- the archive, on both backends -------------------------------------------------------------

SPILL = ("Orlan Shipping fined over Tessaly harbour oil spill",
         "The harbour authority of Tessaly fined Orlan Shipping 4.2 million euros on Tuesday for the oil spill "
         "that blackened the Marrow beaches last week. Harbour master Ilse Varga said the tanker Bright Meridian "
         "had pumped its bilge inside the breakwater. Orlan Shipping chief executive Tomas Greer said the "
         "company would appeal and had already paid for the clean-up of the Marrow beaches.")
SPILL_WIRE = ("Tessaly fines tanker owner Orlan for Marrow beach spill",
              "The harbour authority of Tessaly fined Orlan Shipping 4.2 million euros on Tuesday for the oil spill "
              "that blackened the Marrow beaches last week. Harbour master Ilse Varga said the Bright Meridian "
              "had pumped its bilge inside the breakwater. Greer, the chief executive of Orlan Shipping, told "
              "reporters in Tessaly the company would appeal the fine.")
EARLIER = ("Orlan Shipping names Tomas Greer chief executive",
           "Orlan Shipping appointed Tomas Greer as chief executive on Monday, the Tessaly company said. Greer "
           "ran the tanker fleet for six years and takes over as the company orders four new tankers for its "
           "Tessaly routes; Orlan Shipping's shares rose two percent in Tessaly trading.")


def _story(i: int, story: tuple[str, str], site: str, published: str | None, ents: list) -> StoryRecord:
    title, text = story
    return StoryRecord(url=f"https://{site}/story/{i}", canonical_url=f"https://{site}/story/{i}", title=title,
                       text=text, site_name=site, published=published,
                       entities=[schemas.Entity(name=n, label=lab, count=c, mentions=[]) for n, lab, c in ents])


@pytest.fixture
async def archive(new_archive):
    async with new_archive() as a:
        yield a


async def test_a_copy_elsewhere_is_the_same_event_and_an_earlier_story_on_the_same_people_background(archive) -> None:
    people = [("Orlan Shipping", "ORG", 2), ("Tomas Greer", "PERSON", 1), ("Tessaly", "GPE", 1)]
    read = await archive.upsert(_story(1, SPILL, "harbour.example", "2026-03-10", people + [("Ilse Varga", "PERSON", 1)]))
    wire = await archive.upsert(_story(2, SPILL_WIRE, "wire.example", "2026-03-10", people + [("Ilse Varga", "PERSON", 1)]))
    earlier = await archive.upsert(_story(3, EARLIER, "business.example", "2025-06-02", people))
    assert len({read.story_id, wire.story_id, earlier.story_id}) == 3  # the wire copy was not merged
    related = await archive.related(read, limit=10)
    by_id = {r.story_id: r for r in related}
    assert by_id[wire.story_id].relation == "same_event", related
    assert by_id[earlier.story_id].relation == "background", related
    assert "Tomas Greer" in by_id[earlier.story_id].shared_entities  # backstory, and why
    # each related story was first seen when it was stored
    assert by_id[wire.story_id].first_seen == wire.first_seen and by_id[earlier.story_id].first_seen == earlier.first_seen
    # the filter is a view of the same list
    only = await archive.related(read, limit=10, relation="background")
    assert [r.story_id for r in only] == [r.story_id for r in related if r.relation == "background"]
    # A story not published weeks apart but undated: the score decides in so small an archive.
    undated = msgspec.structs.replace(read, published=None)
    again = {r.story_id: r.relation for r in await archive.related(undated, limit=10)}
    assert again[wire.story_id] == "same_event"


async def test_the_same_report_published_weeks_apart_is_background_whichever_date_is_the_querys(archive) -> None:
    people = [("Orlan Shipping", "ORG", 2), ("Tomas Greer", "PERSON", 1), ("Tessaly", "GPE", 1), ("Ilse Varga", "PERSON", 1)]
    before = utc_now()
    read = await archive.upsert(_story(1, SPILL, "harbour.example", "2026-03-10", people))
    later = await archive.upsert(_story(2, SPILL_WIRE, "wire.example", "2026-04-20", people))
    assert days_apart(read.published, later.published) > MAX_GAP_DAYS
    assert before <= later.first_seen <= utc_now()
    for query, other in ((read, later), (later, read)):
        related = await archive.related(query, limit=10)
        assert [(r.story_id, r.relation) for r in related] == [(other.story_id, "background")]
        assert [r.story_id for r in await archive.related(query, limit=10, relation="same_event")] == []
    # the query undated: the score decides, as for the same report on the same day
    undated = msgspec.structs.replace(read, published=None)
    assert [r.relation for r in await archive.related(undated, limit=10)] == ["same_event"]


# --- the API, on both backends -----------------------------------------------------------------


@pytest.fixture
def settings(archive_urls) -> Settings:
    return Settings(archive=archive_urls("archive"), allowed_networks=["127.0.0.0/8"])


async def test_the_api_gives_each_related_story_its_relation_and_filters_by_it(client: AsyncTestClient) -> None:
    ids = {}
    for name, (title, text) in (("read", SPILL), ("wire", SPILL_WIRE), ("earlier", EARLIER)):
        response = await client.post("/api/v1/analyze", json={
            "url": f"https://{name}.example/story", "title": title, "text": text})
        assert response.status_code == 200, response.text
        ids[name] = response.json()
    read = ids["read"]["story_id"]
    # the sidebar of the last story analysed carries the relation too
    assert {r["relation"] for r in ids["earlier"]["related"]} <= {"same_event", "background"}
    assert ids["earlier"]["related"] and all(r["first_seen"] for r in ids["earlier"]["related"])
    full = (await client.get(f"/api/v1/stories/{read}/related")).json()["related"]
    relation = {r["story_id"]: r["relation"] for r in full}
    assert relation[ids["wire"]["story_id"]] == "same_event", full
    for kind in ("same_event", "background"):
        response = await client.get(f"/api/v1/stories/{read}/related", params={"relation": kind})
        assert response.status_code == 200, response.text
        assert [r["story_id"] for r in response.json()["related"]] == [r["story_id"] for r in full if r["relation"] == kind]
    assert ids["wire"]["story_id"] in [r["story_id"] for r in (await client.get(
        f"/api/v1/stories/{read}/related?relation=same_event")).json()["related"]]
    problem = assert_problem(await client.get(f"/api/v1/stories/{read}/related?relation=sequel"), 400)
    assert "relation" in problem["detail"]
    stored = (await client.get(f"/api/v1/stories/{read}")).json()
    assert [r["relation"] for r in stored["related"]] == [r["relation"] for r in full]
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["components"]["schemas"]["RelatedStory"]["properties"]["relation"]["enum"] == ["same_event", "background"]


# --- the measurement (tools/backstory_tools/quality/relation.py) -------------------------------


def test_relation_figures_judge_the_topics_items_and_the_same_event_section() -> None:
    from backstory_tools.quality.relation import Observed, figures, held_back

    rows = [{"id": "q", "topic": 1, "event": "1a"}, {"id": "s1", "topic": 1, "event": "1a"},
            {"id": "s2", "topic": 1, "event": "1a"}, {"id": "b1", "topic": 1, "event": "1b"},
            {"id": "o1", "topic": 2, "event": "2a"}]
    hits = [("s1", Hit("s1", 0.5, shared_neighbours=0.9), None),
            ("b1", Hit("b1", 0.4, shared_neighbours=0.8), None),   # called the same event: wrong
            ("s2", Hit("s2", 0.3, shared_neighbours=0.1), None),   # called background: wrong
            ("o1", Hit("o1", 0.1, shared_neighbours=0.0), None)]   # another topic: not judged
    got = figures(rows, [Observed("q", None, hits)], Thresholds(0.5, 0.2))
    assert got["judged"] == 3 and got["relation_acc"] == round(1 / 3, 4)
    assert got["other_topic_share"] == 0.25 and got["other_topic_same_event"] == 0
    assert got["same_event_p@5"] == 0.5  # the section shows s1 and b1
    assert got["same_event_recall@10"] == 0.5  # of s1 and s2 in the top 10
    everything_same = figures(rows, [Observed("q", None, hits)], Thresholds(0.0, 0.0))
    assert everything_same["relation_acc"] == round(2 / 3, 4) and everything_same["other_topic_same_event"] == 1
    # folds: thresholds chosen on one topic's queries are measured on the other's only
    rows2 = rows + [{"id": "r", "topic": 2, "event": "2a"}]
    folds = held_back(rows2, [Observed("q", None, hits), Observed("r", None, [("o1", Hit("o1", 0.9, shared_neighbours=1.0), None)])])
    assert [f["tuned_on_topics"] for f in folds["folds"]] == [[1], [2]]
    assert folds["folds"][0]["neighbours"]["held_back"]["judged"] == 1
    assert folds["shipped_held_back"]["judged"] == 1
