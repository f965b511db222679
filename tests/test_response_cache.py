"""The pipeline's response cache (no models, no archive): least recently used out first, related
lists only for the archive generation they were computed at, a story forgotten everywhere."""

from __future__ import annotations

from backstory.pipeline import ResponseCache
from backstory.schemas import RelatedStory
from backstory.story import StoryRecord


def record(story_id: str, content_hash: str = "h") -> StoryRecord:
    return StoryRecord(story_id=story_id, url=f"https://news.example/{story_id}",
                       canonical_url=f"https://news.example/{story_id}", content_hash=content_hash)


def related(story_id: str) -> list[RelatedStory]:
    return [RelatedStory(story_id=story_id, url="https://news.example/r", title=None, site_name=None,
                         published=None, score=0.5)]


def test_the_key_tells_html_from_text_and_includes_the_title() -> None:
    keys = {ResponseCache.key("https://a.example/", "<p>x</p>", None, None),
            ResponseCache.key("https://a.example/", None, "<p>x</p>", None),
            ResponseCache.key("https://a.example/", None, "<p>x</p>", "Title"),
            ResponseCache.key("https://b.example/", None, "<p>x</p>", "Title"),
            ResponseCache.key("https://b.example/", None, "<p>x</p>", "Title", "token:1"),  # a member's private analysis
            ResponseCache.key("https://b.example/", None, "<p>x</p>", "Title", "token:2")}
    assert len(keys) == 6


def test_the_least_recently_used_record_goes_first() -> None:
    cache = ResponseCache(size=2)
    cache.put("a", record("1"))
    cache.put("b", record("2"))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", record("3"))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None


def test_a_related_list_holds_only_for_its_generation() -> None:
    cache = ResponseCache()
    story = record("1")
    cache.put_related(story, 7, None, related("2"))
    assert cache.related(story, 7, None) == related("2")
    assert cache.related(story, 8, None) is None
    assert cache.related(record("1", content_hash="other"), 7, None) is None  # the text changed
    # A list computed for a member (it may show the member's private stories) is that member's only.
    cache.put_related(story, 7, "token:1", related("3"))
    assert cache.related(story, 7, "token:2") is None and cache.related(story, 7, "token:1") == related("3")
    assert cache.related(story, 7, None) == related("2")


def test_a_discarded_story_is_gone_and_the_order_of_the_rest_kept() -> None:
    cache = ResponseCache(size=4)
    cache.put("a", record("1"))
    cache.put("b", record("2"))
    cache.put("x", record("3"))
    cache.put("c", record("1"))  # another request that found the same story
    cache.put_related(record("1"), 1, None, related("2"))
    cache.put_related(record("1"), 1, "token:1", related("2"))
    cache.put_related(record("2"), 1, None, related("1"))
    cache.get("b")  # least recently used first: x, b
    cache.discard_story("1")
    assert cache.get("a") is None and cache.get("c") is None and cache.related(record("1"), 1, None) is None
    assert cache.related(record("1"), 1, "token:1") is None
    assert cache.related(record("2"), 1, None) == related("1")
    cache.put("d", record("4"))
    cache.put("e", record("5"))
    cache.put("f", record("6"))  # full: x goes, not b (reading the entries to discard used none)
    assert cache.get("x") is None and cache.get("b") is not None


def test_the_key_holds_the_whole_request() -> None:
    key = ResponseCache.key
    # the page's HTML, the client's text and the title each tell two requests apart
    assert key("https://a.example/", "<p>one</p>", None, None) != key("https://a.example/", "<p>two</p>", None, None)
    assert key("https://a.example/", None, "one", None) != key("https://a.example/", None, "two", None)
    assert key("https://a.example/", None, "one", "A") != key("https://a.example/", None, "one", "B")
    # ...and the same request is the same key, a missing title the same as an empty one
    assert key("https://a.example/", None, "one", None) == key("https://a.example/", None, "one", "")
    assert key("https://a.example/", "<p>x</p>", None, "T") == key("https://a.example/", "<p>x</p>", None, "T")


def test_any_python_text_has_a_key() -> None:
    # A lone surrogate cannot be encoded as UTF-8, yet a str may hold one: it still gets a key of its own.
    one = ResponseCache.key("https://a.example/", None, "half \ud800 a pair", None)
    other = ResponseCache.key("https://a.example/", None, "half \ud801 a pair", None)
    assert one != other


def test_the_default_cache_keeps_the_last_256_analyses() -> None:
    cache = ResponseCache()
    for i in range(257):
        cache.put(str(i), record(str(i)))
    assert cache.get("0") is None
    assert all(cache.get(str(i)) is not None for i in range(1, 257))


def test_the_key_tells_whose_story_it_is() -> None:
    key = ResponseCache.key
    team = key("https://a.example/", None, "one", None)
    assert key("https://a.example/", None, "one", None, owner="") == team
    assert key("https://a.example/", None, "one", None, owner="token:ana") != team
    assert key("https://a.example/", None, "one", None, owner="token:ana") != key(
        "https://a.example/", None, "one", None, owner="token:ben")
