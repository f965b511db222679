"""Story identity cannot be hijacked: a page's canonical URL counts only on the page's own site
(registrable domain by the Public Suffix List), and a copy of a stored story found by its text is
recorded as another source of that story, never a rewrite of it.

Real parts: the app through AsyncTestClient, real models, a real SQLite file, a real page server."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from backstory.duplicates import hamming, simhash
from backstory.urls import identity_url

from ..conftest import story_count
from ..pages import news_page

CRANE_TITLE = "Storm topples container crane at Port Kelvary"
CRANE = [
    "A container crane collapsed onto the quay at Port Kelvary early on Thursday after gusts of more than "
    "ninety miles an hour swept across the estuary, the harbour authority said.",
    "Nobody was hurt, because the night shift had been sent home at midnight when the storm warning was "
    "raised. Harbour master Ottilie Brann said the crane's boom struck two empty vessels moored at berth six.",
    "Dockers' union official Ruben Castaign said members had warned for months that the crane's anchoring "
    "pins were corroded, and called for an independent inspection of every crane on the Kelvary quays.",
    "The operator, Meridale Shipping, said the crane had passed its annual survey in March and that engineers "
    "from the manufacturer would arrive on Friday. Ferries to the islands kept running from the north pier.",
    "Container traffic is expected to move to the smaller terminal at Dunmarsh while the wreck is cleared, "
    "which the harbour authority said could take three weeks and would delay deliveries to local shops.",
]
LIBRARY_TITLE = "Ashcombe library reopens after two-year restoration"
LIBRARY = [
    "The Victorian library in Ashcombe reopened to readers on Saturday after a restoration that took two "
    "years and uncovered a painted ceiling hidden under layers of plaster since the nineteen-fifties.",
    "Head librarian Lorna Tefft said more than six hundred people queued before the doors opened, and the "
    "children's room ran out of library cards by noon. Volunteers served tea in the old reading room.",
    "The restoration was paid for by the town council and a grant from the Wexholt Heritage Fund, whose "
    "director, Amos Pridell, said the ceiling was among the finest surviving examples in the county.",
    "The library will now open on Sundays for the first time, and its local history archive, closed since "
    "the works began, will take appointments again from next month, the council said.",
]
TRAM_TITLE = "Tram drivers in Velsbridge vote to strike over rosters"
TRAM = [
    "Tram drivers in Velsbridge voted by a large majority to strike for three days next month in a dispute "
    "over new rosters that the operator, Velsbridge Light Rail, introduced without consulting staff.",
    "Union organiser Petra Olund said drivers were being asked to work split shifts of up to thirteen hours "
    "and that two depots had lost their rest rooms to make space for new trams.",
    "The operator's chief executive, Conrad Imbery, said the rosters were needed to run a tram every five "
    "minutes on the airport line and that talks could resume at any time if the union called off the vote.",
    "City councillors urged both sides to meet at the conciliation service before the first strike day, "
    "when about ninety thousand passengers a day would have to find another way to work.",
]


def page(title: str, paragraphs: list[str], **kwargs) -> str:
    return news_page(title, paragraphs, **kwargs)


async def analyze(client: AsyncTestClient, **body) -> dict:
    response = await client.post("/api/v1/analyze", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def stored(client: AsyncTestClient, story_id: str) -> dict:
    response = await client.get(f"/api/v1/stories/{story_id}")
    assert response.status_code == 200, response.text
    return response.json()



async def story_at(client: AsyncTestClient, url: str) -> str | None:
    """The id of the story the archive files this URL under (its canonical URL or an alias)."""
    return await client.app.state.backstory.archive.story_at(url)


@pytest.mark.parametrize(
    ("canonical", "page_url", "identity"),
    [
        # Same registrable domain: the canonical counts (subdomain, scheme, tracking parameters).
        ("https://news.example/a", "https://www.news.example/a?utm_source=x", "https://news.example/a"),
        ("http://www.example.co.uk/a", "https://example.co.uk/b", "http://www.example.co.uk/a"),
        ("https://shop.example.com.au/x", "https://example.com.au/y", "https://shop.example.com.au/x"),
        # Another site: the page's own URL counts, even under the same multi-part public suffix.
        ("https://news2.example.org/story", "https://attacker.example/x", "https://attacker.example/x"),
        ("https://example.co.uk/a", "https://other.co.uk/a", "https://other.co.uk/a"),
        ("https://alice.github.io/a", "https://mallory.github.io/a", "https://mallory.github.io/a"),
        # IP addresses and one-label hosts: only the very same host.
        ("http://127.0.0.1:9000/a", "http://127.0.0.1:8000/b", "http://127.0.0.1:9000/a"),
        ("http://127.0.0.2/a", "http://127.0.0.1/b", "http://127.0.0.1/b"),
        ("http://[::1]/a", "http://[0:0::1]/b", "http://[::1]/a"),
        ("http://localhost/a", "http://localhost:8000/b", "http://localhost/a"),
        ("http://intranet/a", "http://localhost/b", "http://localhost/b"),
        # No canonical, or one that is no URL: the page's own.
        (None, "https://news.example/a#top", "https://news.example/a"),
        ("not a url", "https://news.example/a", "https://news.example/a"),
    ],
)
def test_a_canonical_counts_only_on_the_pages_own_site(canonical, page_url, identity) -> None:
    assert identity_url(canonical, page_url) == identity


async def test_a_canonical_on_another_site_cannot_replace_a_stored_story(client: AsyncTestClient) -> None:
    victim_url = "https://news2.example.org/2026/03/kelvary-crane"
    victim = await analyze(client, url=victim_url, html=page(CRANE_TITLE, CRANE, site="Estuary News"))
    attacker = await analyze(client, url="https://attacker.example/x", html=page(
        "Hijacked title", LIBRARY, site="Attacker", canonical=victim_url))
    assert attacker["story_id"] != victim["story_id"]
    assert attacker["canonical_url"] == "https://attacker.example/x"
    kept = await stored(client, victim["story_id"])
    assert (kept["title"], kept["url"], kept["text"]) == (CRANE_TITLE, victim_url, victim["text"])
    assert (await stored(client, attacker["story_id"]))["title"] == "Hijacked title"
    assert await story_count(client) == 2
    assert await story_at(client, victim_url) == victim["story_id"]


async def test_a_canonical_on_the_same_site_still_unifies(client: AsyncTestClient) -> None:
    first = await analyze(client, url="https://www.news.example/a?x=1", html=page(
        CRANE_TITLE, CRANE, canonical="https://news.example/a"))
    assert first["canonical_url"] == "https://news.example/a"
    # The same page at its canonical address, updated: the same story, updated in place.
    updated = await analyze(client, url="https://news.example/a", html=page(
        CRANE_TITLE + " (updated)", CRANE + ["Update: the harbour reopened berth six on Saturday morning."]))
    assert updated["story_id"] == first["story_id"]
    assert (await stored(client, first["story_id"]))["title"] == CRANE_TITLE + " (updated)"
    # A page on another site naming that canonical is a story of its own.
    other = await analyze(client, url="https://elsewhere.example/a", html=page(
        TRAM_TITLE, TRAM, canonical="https://news.example/a"))
    assert other["story_id"] != first["story_id"] and other["canonical_url"] == "https://elsewhere.example/a"
    assert (await stored(client, first["story_id"]))["title"] == CRANE_TITLE + " (updated)"
    assert await story_count(client) == 2


async def test_a_canonical_under_a_multi_part_public_suffix(client: AsyncTestClient) -> None:
    home = "https://kelvarygazette.co.uk/news/crane"
    first = await analyze(client, url="https://www.kelvarygazette.co.uk/news/crane?ref=home", html=page(
        CRANE_TITLE, CRANE, canonical=home))
    assert first["canonical_url"] == home
    # other.co.uk shares only the public suffix co.uk with it: another site.
    other = await analyze(client, url="https://othergazette.co.uk/x", html=page(
        "Hijacked title", LIBRARY, canonical=home))
    assert other["story_id"] != first["story_id"] and other["canonical_url"] == "https://othergazette.co.uk/x"
    kept = await stored(client, first["story_id"])
    assert (kept["title"], kept["text"]) == (CRANE_TITLE, first["text"])


async def test_the_same_text_at_a_second_url_does_not_rewrite_the_first(client: AsyncTestClient) -> None:
    first_url = "https://estuary.example/2026/03/crane"
    first = await analyze(client, url=first_url, html=page(CRANE_TITLE, CRANE, byline="Mira Castell"))
    copy_url = "https://copycat.example/p/1"
    copy = await analyze(client, url=copy_url, html=page(
        "Hijacked title", CRANE, byline="Someone Else", site="Copycat"))
    assert copy["story_id"] == first["story_id"] and copy["archived"] is True
    assert copy["title"] == "Hijacked title" and copy["url"] == copy_url  # the reader sees their own page
    kept = await stored(client, first["story_id"])
    assert (kept["title"], kept["url"], kept["byline"], kept["canonical_url"]) == (
        CRANE_TITLE, first_url, "Mira Castell", first_url)
    assert kept["text"] == first["text"]
    assert await story_count(client) == 1
    assert await story_at(client, copy_url) == first["story_id"]  # the copy's URL is an alias of the story


async def test_an_alias_posted_again_with_other_text_does_not_rewrite_the_story(client: AsyncTestClient) -> None:
    victim_url = "https://news2.example.org/2026/03/kelvary-crane"
    victim = await analyze(client, url=victim_url, html=page(CRANE_TITLE, CRANE))
    alias = "https://attacker.example/x"
    copy = await analyze(client, url=alias, html=page(CRANE_TITLE, CRANE, site="Attacker"))
    assert copy["story_id"] == victim["story_id"] and await story_at(client, alias) == victim["story_id"]
    # The alias now says something else: a story of its own, and the alias goes with it.
    later = await analyze(client, url=alias, html=page("Hijacked title", LIBRARY, site="Attacker"))
    assert later["story_id"] != victim["story_id"]
    kept = await stored(client, victim["story_id"])
    assert (kept["title"], kept["url"], kept["text"]) == (CRANE_TITLE, victim_url, victim["text"])
    assert (await stored(client, later["story_id"]))["title"] == "Hijacked title"
    assert await story_at(client, alias) == later["story_id"]
    assert await story_at(client, victim_url) == victim["story_id"]
    assert await story_count(client) == 2


async def test_a_copy_not_kept_is_the_stored_story_and_not_its_own_related(client: AsyncTestClient) -> None:
    original = "\n\n".join(CRANE)
    first = await analyze(client, url="https://estuary.example/2026/03/crane", title=CRANE_TITLE, text=original)
    await analyze(client, url="https://estuary.example/2026/03/library", title=LIBRARY_TITLE, text="\n\n".join(LIBRARY))
    # A syndicated copy with one word changed: too far for the SimHash alone, a copy by its text.
    copy = original.replace("collapsed onto", "crashed onto")
    assert hamming(simhash(original), simhash(copy)) > 3  # too far for a match by the hash alone
    for keep in (False, True):
        payload = await analyze(client, url=f"https://wire.example/kelvary/{keep}", title=CRANE_TITLE, text=copy,
                                archive=keep)
        assert payload["story_id"] == first["story_id"], keep
        assert first["story_id"] not in [r["story_id"] for r in payload["related"]], keep
        assert payload["archived"] is True, keep  # the story is in the archive either way
        # What the reader sees is the page they sent: its text, and names at its offsets.
        assert payload["text"] == copy
        assert payload["entities"], keep
        for item in payload["entities"]:
            for mention in item["mentions"]:
                assert copy[mention["start"]:mention["end"]].strip(), item
    assert await story_count(client) == 2
    assert (await stored(client, first["story_id"]))["text"] == original


async def test_a_fetched_page_counts_its_canonical_only_on_its_own_site(
    client: AsyncTestClient, page_server
) -> None:
    victim_url = "https://news2.example.org/2026/03/velsbridge-trams"
    victim = await analyze(client, url=victim_url, html=page(TRAM_TITLE, TRAM))
    # The server fetches the page itself (through a redirect); its canonical names another site.
    final = page_server.add("/story", page("Hijacked title", LIBRARY, canonical=victim_url))
    start = page_server.add("/go", b"", status=302, headers={"Location": "/story"})
    response = await client.get("/api/v1/analyze", params={"url": start})
    assert response.status_code == 200, response.text
    fetched = response.json()
    assert fetched["story_id"] != victim["story_id"] and fetched["canonical_url"] == final
    assert (await stored(client, victim["story_id"]))["title"] == TRAM_TITLE
    # A canonical on the fetched page's own host counts.
    own = page_server.add("/crane?from=feed", page(CRANE_TITLE, CRANE, canonical=page_server.url("/crane")))
    response = await client.get("/api/v1/analyze", params={"url": own})
    assert response.status_code == 200, response.text
    assert response.json()["canonical_url"] == page_server.url("/crane")
