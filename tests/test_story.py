"""story.py by itself: the one place a story's derived fields are computed. Ids and fingerprints
are stored and linked to, so they are checked against their definitions (hashlib here), and what a
record from an import already carries must be kept, not recomputed."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from backstory import schemas
from backstory.extract import Article
from backstory.story import (
    EMBEDDING_DIM,
    StoryRecord,
    derive,
    embedding_text,
    new_story,
    reading_minutes,
    story_id_for,
    to_sidebar,
    utc_now,
)

TEXT = "High water at noon"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_story_id_is_16_hex_digits_of_the_canonical_urls_sha256() -> None:
    story_id = story_id_for("https://news.example/a")
    assert story_id == sha("https://news.example/a")[:16]
    assert re.fullmatch(schemas.STORY_ID_PATTERN, story_id)


@pytest.fixture
def far_from_utc(monkeypatch):
    """The process's local time zone set 5:45 h away from UTC (restored afterwards)."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_utc_now_is_utc_in_iso_8601_seconds(far_from_utc) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = utc_now()
    after = datetime.now(timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), stamp
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before <= when <= after + timedelta(seconds=1)


def test_derive_fills_what_is_missing_from_the_canonical_url_and_the_text() -> None:
    record = derive(StoryRecord(url="https://m.example/a?utm_source=x", canonical_url="HTTPS://News.Example/a#top",
                                text=f" {TEXT} "))
    assert record.canonical_url == "https://news.example/a"
    assert record.story_id == sha("https://news.example/a")[:16]
    assert record.content_hash == sha(TEXT)
    assert record.word_count == 4 and record.simhash != 0
    assert record.first_seen == record.last_seen and record.first_seen.endswith("Z")
    assert record.url == "https://m.example/a?utm_source=x"  # the page's own URL is kept as it came


def test_without_a_canonical_url_the_page_url_is_the_identity() -> None:
    record = derive(StoryRecord(url="https://news.example/b?fbclid=1", canonical_url="", text=TEXT))
    assert record.canonical_url == "https://news.example/b"
    assert record.story_id == sha("https://news.example/b")[:16]


def test_derive_keeps_what_a_record_already_carries() -> None:
    given = StoryRecord(url="https://news.example/c", canonical_url="https://news.example/c", text=TEXT,
                        story_id="00000000000000aa", simhash=12345, content_hash="given", word_count=7,
                        first_seen="2025-01-02T03:04:05Z", last_seen="2025-06-07T08:09:10Z")
    assert derive(given) == given


def test_a_record_seen_once_before_was_first_seen_then() -> None:
    record = derive(StoryRecord(url="https://news.example/d", canonical_url="https://news.example/d", text=TEXT,
                                last_seen="2025-06-07T08:09:10Z"))
    assert record.first_seen == record.last_seen == "2025-06-07T08:09:10Z"


def test_an_empty_text_has_no_fingerprint_and_no_words() -> None:
    record = derive(StoryRecord(url="https://news.example/e", canonical_url="https://news.example/e", text=""))
    assert (record.simhash, record.word_count) == (0, 0)
    assert record.content_hash == sha("")


def test_an_embedding_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError) as info:
        derive(StoryRecord(url="https://news.example/f", canonical_url="", text=TEXT, embedding=[0.5] * 3))
    assert str(info.value) == f"embedding must have {EMBEDDING_DIM} dimensions, not 3"


@pytest.mark.parametrize(("words", "minutes"), [(0, 0), (1, 1), (230, 1), (231, 2), (460, 2), (461, 3)])
def test_reading_minutes_at_230_words_a_minute_rounded_up(words: int, minutes: int) -> None:
    assert reading_minutes(words) == minutes


def test_the_embedding_text_is_the_title_then_the_text() -> None:
    assert embedding_text("Tides", TEXT) == f"Tides\n\n{TEXT}"
    assert embedding_text(None, TEXT) == TEXT
    assert embedding_text("", TEXT) == TEXT


KEYPHRASE = schemas.Keyphrase(phrase="high water", score=0.5)
ENTITY = schemas.Entity(name="Lorrington", label="GPE", count=1, mentions=[])


def test_new_story_takes_the_articles_fields_and_derives_the_rest() -> None:
    article = Article(text=TEXT, title="Tides", byline="A. Writer", site_name="News", published="2025-01-02",
                      language="en")
    record = new_story(article, url="https://m.example/g?utm_source=x", canonical_url="https://news.example/g",
                       keyphrases=(KEYPHRASE,), entities=(ENTITY,), embedding=[0.0] * EMBEDDING_DIM, analysed=False)
    assert (record.url, record.canonical_url) == ("https://m.example/g?utm_source=x", "https://news.example/g")
    assert (record.title, record.byline, record.site_name, record.published, record.language, record.text) == (
        "Tides", "A. Writer", "News", "2025-01-02", "en", TEXT)
    assert record.keyphrases == [KEYPHRASE] and record.entities == [ENTITY]
    assert record.embedding == [0.0] * EMBEDDING_DIM and record.analysed is False
    assert record.story_id == sha("https://news.example/g")[:16] and record.word_count == 4
    plain = new_story(Article(text=TEXT), url="https://news.example/h", canonical_url="https://news.example/h")
    assert (plain.keyphrases, plain.entities, plain.embedding, plain.analysed) == ([], [], None, True)


def test_the_sidebar_shows_the_record_as_it_is() -> None:
    record = derive(StoryRecord(url="https://m.example/i", canonical_url="https://news.example/i", title="Tides",
                                byline="A. Writer", site_name="News", published="2025-01-02", language="en",
                                text=" ".join(["word"] * 300), keyphrases=[KEYPHRASE], entities=[ENTITY],
                                analysed=False))
    related = [schemas.RelatedStory(story_id="0" * 16, url="https://news.example/r", title=None, site_name=None,
                                    published=None, score=0.5)]
    timings = schemas.Timings(total=12.5)
    sidebar = to_sidebar(record, related, timings=timings, archived=True, cached=True, added_by=("ana",))
    assert sidebar == schemas.Sidebar(
        story_id=record.story_id, url="https://m.example/i", canonical_url="https://news.example/i", title="Tides",
        byline="A. Writer", site_name="News", published="2025-01-02", language="en", word_count=300,
        reading_minutes=2, text=record.text, keyphrases=[KEYPHRASE], entities=[ENTITY], related=related,
        timings_ms=timings, archived=True, cached=True, analysed=False, added_by=["ana"],
    )
    plain = to_sidebar(record, [])
    assert (plain.timings_ms, plain.archived, plain.cached, plain.added_by) == (schemas.Timings(), False, False, [])


def test_a_private_storys_id_is_of_its_owner_and_url() -> None:
    team = derive(StoryRecord(url="https://news.example/p", canonical_url="https://news.example/p", text=TEXT))
    mine = derive(StoryRecord(url="https://news.example/p", canonical_url="https://news.example/p", text=TEXT,
                              owner="token:ana"))
    assert team.story_id == sha("https://news.example/p")[:16]
    assert mine.story_id == sha("token:ana\x00https://news.example/p")[:16] != team.story_id


def test_new_story_keeps_the_tags_and_the_owner() -> None:
    record = new_story(Article(text=TEXT), url="https://news.example/t", canonical_url="https://news.example/t",
                       tags=("flood", "river"), owner="token:ana")
    assert (record.tags, record.owner) == (["flood", "river"], "token:ana")


def test_a_private_story_is_seen_by_its_owner_and_the_operator_only() -> None:
    from backstory.story import OPERATOR, sees

    assert sees("token:ben", "") and sees(None, "")  # a team story: everyone
    assert sees("token:ana", "token:ana") and sees(OPERATOR, "token:ana")
    assert not sees("token:ben", "token:ana") and not sees(None, "token:ana")


def test_the_sidebar_says_whether_the_story_is_private_and_shows_its_tags() -> None:
    mine = derive(StoryRecord(url="https://news.example/v", canonical_url="", text=TEXT, owner="token:ana",
                              tags=["flood"]))
    assert (to_sidebar(mine, []).visibility, to_sidebar(mine, []).tags) == ("private", ["flood"])
    team = derive(StoryRecord(url="https://news.example/v", canonical_url="", text=TEXT))
    assert to_sidebar(team, []).visibility == "team"
