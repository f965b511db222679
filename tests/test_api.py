"""The HTTP API end to end: real models, a real SQLite file, a real page server on 127.0.0.1."""

from __future__ import annotations

import re

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from backstory.app import create_app
from backstory.config import CHROME_EXTENSION_ORIGIN, Settings
from backstory.keyphrases import phrase_key

from .conftest import BASE_URL, assert_problem, story_count, wait_ready
from .pages import (
    AI_PARAGRAPHS,
    AI_TITLE,
    CHIP_PARAGRAPHS,
    CHIP_TITLE,
    FIRE_A,
    FIRE_B,
    SPORT_PARAGRAPHS,
    SPORT_TITLE,
    news_page,
)

AI_URL = "https://ledger.example/tech/2026/11/17/openai-open-models?utm_source=feed&fbclid=abc"


def ai_page(**kwargs) -> str:
    return news_page(AI_TITLE, AI_PARAGRAPHS, **kwargs)




def entity(payload: dict, name: str) -> dict:
    for item in payload["entities"]:
        if item["name"] == name:
            return item
    raise AssertionError(f"{name!r} not among {[e['name'] for e in payload['entities']]}")


async def test_health_and_schema(client: AsyncTestClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/analyze" in schema["paths"] and "/api/v1/stories/{story_id}" in schema["paths"]
    # Keyphrases carry their mentions, as entities do (an older client ignores the field).
    keyphrase = schema["components"]["schemas"]["Keyphrase"]
    assert set(keyphrase["properties"]) == {"phrase", "score", "mentions"}
    assert "mentions" not in keyphrase.get("required", [])
    assert keyphrase["properties"]["mentions"]["items"] == {"$ref": "#/components/schemas/Mention"}
    # What the handlers are injected (api/deps.py) is no parameter of the API.
    parameters = {(path, method): sorted(p["name"] for p in operation.get("parameters", []))
                  for path, item in schema["paths"].items() for method, operation in item.items()}
    assert parameters == {
        ("/api/v1/analyze", "post"): [], ("/api/v1/analyze", "get"): ["archive", "url"],
        ("/api/v1/stories", "get"): ["limit", "offset", "q"],
        ("/api/v1/stories/{story_id}", "get"): ["story_id"], ("/api/v1/stories/{story_id}", "delete"): ["story_id"],
        ("/api/v1/stories/{story_id}/related", "get"): ["limit", "relation", "story_id"],
        ("/healthz", "get"): [], ("/readyz", "get"): [], ("/metrics", "get"): [], ("/api/v1/me", "get"): [],
        ("/api/v1/imports", "post"): ["format", "visibility"], ("/api/v1/imports", "get"): ["limit"],
        ("/api/v1/imports/{import_id}", "get"): ["import_id"],
        ("/api/v1/feeds", "get"): [], ("/api/v1/feeds", "post"): [], ("/api/v1/feeds", "delete"): ["url"],
    }
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE backstory_stories gauge\nbackstory_stories 0\n" in metrics.text
    assert "backstory_jobs_waiting" not in metrics.text  # SQLite: no job queue
    page = await client.get("/schema")
    assert page.status_code == 200
    # The browsable page loads its scripts from this server, never from a CDN.
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert srcs and all(s.startswith("/schema/assets/") for s in srcs), srcs
    for src in srcs:
        assert (await client.get(src)).status_code == 200, src


async def test_analyze_realistic_news_page(client: AsyncTestClient) -> None:
    response = await client.post("/api/v1/analyze", json={"url": AI_URL, "html": ai_page()})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["title"] == AI_TITLE
    assert payload["byline"] == "Jane Reporter"
    assert payload["site_name"] == "The Daily Ledger"
    assert payload["published"] == "2026-11-17"
    assert payload["language"] == "en"
    assert payload["canonical_url"] == "https://ledger.example/tech/2026/11/17/openai-open-models"
    assert payload["word_count"] > 250 and payload["reading_minutes"] == -(-payload["word_count"] // 230)
    text = payload["text"]
    assert "Sign up for our newsletter" not in text and "All rights reserved" not in text
    assert text.count("\n\n") >= 4  # paragraphs kept
    phrases = [k["phrase"].lower() for k in payload["keyphrases"]]
    assert 5 <= len(phrases) <= 10
    assert any("open" in p and "model" in p for p in phrases), phrases
    scores = [k["score"] for k in payload["keyphrases"]]
    assert scores == sorted(scores, reverse=True)
    for kp in payload["keyphrases"]:  # each occurrence, as offsets into the text
        assert kp["mentions"], kp
        for mention in kp["mentions"]:
            assert phrase_key(text[mention["start"]:mention["end"]]) == phrase_key(kp["phrase"]), kp
    assert entity(payload, "OpenAI")["label"] == "ORG"
    assert entity(payload, "Sam Altman")["label"] == "PERSON"
    assert entity(payload, "Meta")["label"] == "ORG"
    labels = {e["label"] for e in payload["entities"]}
    assert not labels & {"DATE", "CARDINAL", "PERCENT", "MONEY", "ORDINAL", "QUANTITY", "TIME"}
    for item in payload["entities"]:
        assert item["count"] == len(item["mentions"]) >= 1
        for mention in item["mentions"]:
            assert text[mention["start"]:mention["end"]].strip(), item
    altman = entity(payload, "Sam Altman")
    surfaces = {text[m["start"]:m["end"]] for m in altman["mentions"]}
    assert "Sam Altman" in surfaces and "Altman" in surfaces  # "Altman" alone joins the same person
    assert set(payload["timings_ms"]) >= {"fetch", "extract", "keyphrases", "entities", "related", "total"}
    assert payload["related"] == []  # the archive held nothing else
    assert re.fullmatch(r"[0-9a-f]{16}", payload["story_id"])


async def test_text_is_returned_unchanged_with_offsets(client: AsyncTestClient) -> None:
    text = "  " + "\n".join(AI_PARAGRAPHS[:3]) + "\n\n  trailing  "
    response = await client.post(
        "/api/v1/analyze", json={"url": "https://ledger.example/plain", "text": text, "title": AI_TITLE}
    )
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["text"] == text and payload["title"] == AI_TITLE
    for item in payload["entities"]:
        for mention in item["mentions"]:
            surface = text[mention["start"]:mention["end"]]
            assert surface and surface == surface.strip() and surface[0].isalnum(), (item, surface)
    assert entity(payload, "OpenAI")["mentions"][0] == {
        "start": text.index("OpenAI"), "end": text.index("OpenAI") + len("OpenAI")
    }
    assert payload["keyphrases"]
    for kp in payload["keyphrases"]:
        assert [phrase_key(text[m["start"]:m["end"]]) for m in kp["mentions"]] == [phrase_key(kp["phrase"])] * len(
            kp["mentions"]) != [], kp


async def test_duplicates_are_one_story(client: AsyncTestClient) -> None:
    first = (await client.post("/api/v1/analyze", json={"url": AI_URL, "html": ai_page()})).json()
    # Same canonical URL with other tracking parameters: same story, updated, not a second row.
    again = (await client.post(
        "/api/v1/analyze",
        json={"url": "https://ledger.example/tech/2026/11/17/openai-open-models?utm_medium=x&gclid=9",
              "html": ai_page(byline="Jane Q. Reporter")},
    )).json()
    assert again["story_id"] == first["story_id"]
    # The same story syndicated at another address, with one word changed: still one story.
    syndicated = list(AI_PARAGRAPHS)
    syndicated[-1] = syndicated[-1].replace("quickly", "rapidly")
    third = (await client.post(
        "/api/v1/analyze",
        json={"url": "https://syndication.example/wire/12345", "html": news_page(AI_TITLE, syndicated)},
    )).json()
    assert third["story_id"] == first["story_id"]
    assert await story_count(client) == 1
    stored = (await client.get(f"/api/v1/stories/{first['story_id']}")).json()
    # The page itself, re-read, updates its story; the syndicated copy only becomes another source.
    assert stored["byline"] == again["byline"] != first["byline"] and stored["url"] == again["url"]
    assert stored["canonical_url"] == first["canonical_url"] == "https://ledger.example/tech/2026/11/17/openai-open-models"
    assert third["archived"] is True and third["url"] == "https://syndication.example/wire/12345"


async def test_related_ranks_the_same_event_first(client: AsyncTestClient) -> None:
    ids = {}
    for group, stories in (("A", FIRE_A), ("B", FIRE_B)):
        for i, (title, text) in enumerate(stories):
            response = await client.post(
                "/api/v1/analyze",
                json={"url": f"https://news.example/{group}/{i}", "title": title, "text": text},
            )
            assert response.status_code == 200, response.text
            ids[response.json()["story_id"]] = group
    assert await story_count(client) == 5
    a_first = next(i for i, g in ids.items() if g == "A")
    related = (await client.get(f"/api/v1/stories/{a_first}/related?limit=4")).json()["related"]
    assert [ids[r["story_id"]] for r in related[:2]] == ["A", "A"], related
    assert a_first not in [r["story_id"] for r in related]
    top = related[0]
    reasons = set(top["shared_entities"]) | set(top["shared_keyphrases"])
    assert reasons & {"Paradise Valley", "Katie Hobbs", "Daniel Ortega", "Cactus Ridge", "Phoenix", "Hobbs",
                      "Ortega", "Cave Creek Road"}, top
    assert related[0]["score"] >= related[-1]["score"]
    # A new story on event B, not archived, gets B stories as its backstory.
    response = await client.post("/api/v1/analyze", json={
        "url": "https://news.example/B/new", "archive": False,
        "text": "Sheriff Joe Pelle said on Thursday that the Marshall Mesa fire in Boulder County was "
                "started by a downed power line near Superior; Governor Jared Polis promised aid.",
    })
    payload = response.json()
    assert [ids.get(r["story_id"]) for r in payload["related"][:2]] == ["B", "B"]
    assert payload["archived"] is False
    assert await story_count(client) == 5


async def test_fetch_path_and_stories_endpoints(client: AsyncTestClient, page_server) -> None:
    url = page_server.add("/tech/openai.html", ai_page())
    response = await client.get("/api/v1/analyze", params={"url": url})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["title"] == AI_TITLE and payload["timings_ms"]["fetch"] > 0
    story_id = payload["story_id"]
    other = (await client.post("/api/v1/analyze", json={
        "url": "https://ledger.example/sport/final", "html": news_page(SPORT_TITLE, SPORT_PARAGRAPHS)})).json()
    listing = (await client.get("/api/v1/stories")).json()
    assert listing["total"] == 2 and listing["stories"][0]["story_id"] == other["story_id"]  # newest first
    page = (await client.get("/api/v1/stories", params={"limit": 1, "offset": 1})).json()
    assert [s["story_id"] for s in page["stories"]] == [story_id]
    found = (await client.get("/api/v1/stories", params={"q": "Zuckerberg"})).json()
    assert [s["story_id"] for s in found["stories"]] == [story_id]
    stored = (await client.get(f"/api/v1/stories/{story_id}")).json()
    assert stored["text"] == payload["text"] and stored["keyphrases"] == payload["keyphrases"]
    related = [r["story_id"] for r in (await client.get(f"/api/v1/stories/{story_id}/related")).json()["related"]]
    assert story_id not in related and other["story_id"] not in related  # a cup final is no backstory of an AI story
    assert (await client.delete(f"/api/v1/stories/{story_id}")).status_code == 204
    assert_problem(await client.get(f"/api/v1/stories/{story_id}"), 404)
    assert_problem(await client.get(f"/api/v1/stories/{story_id}/related"), 404)
    assert_problem(await client.delete(f"/api/v1/stories/{story_id}"), 404)
    assert (await client.get("/api/v1/stories", params={"q": "Zuckerberg"})).json()["total"] == 0
    assert_problem(await client.get("/api/v1/stories/not-an-id"), 400)  # not 16 hex digits: no story id at all


async def test_related_story_between_two_pages(client: AsyncTestClient) -> None:
    await client.post("/api/v1/analyze", json={"url": "https://other.example/meta-llama",
                                               "html": news_page(CHIP_TITLE, CHIP_PARAGRAPHS, site="Other")})
    await client.post("/api/v1/analyze", json={"url": "https://ledger.example/sport/final",
                                               "html": news_page(SPORT_TITLE, SPORT_PARAGRAPHS)})
    payload = (await client.post("/api/v1/analyze", json={"url": AI_URL, "html": ai_page()})).json()
    assert payload["related"][0]["url"] == "https://other.example/meta-llama"
    assert {"OpenAI", "Meta"} <= set(payload["related"][0]["shared_entities"])


async def test_a_repeat_click_reuses_the_related_list_until_the_archive_changes(client: AsyncTestClient) -> None:
    archive = client.app.state.backstory.archive
    lookups = []
    real = archive.related

    async def counting(record, limit=10, viewer=None):
        lookups.append(record.story_id)
        return await real(record, limit, viewer)

    client.app.state.backstory.archive.related = counting
    chip = {"url": "https://other.example/meta-llama", "html": news_page(CHIP_TITLE, CHIP_PARAGRAPHS, site="Other")}
    await client.post("/api/v1/analyze", json=chip)
    body = {"url": AI_URL, "html": ai_page()}
    first = (await client.post("/api/v1/analyze", json=body)).json()
    second = (await client.post("/api/v1/analyze", json=body)).json()
    assert second["cached"] and second["related"] == first["related"]
    assert first["related"][0]["url"] == chip["url"]
    assert len(lookups) == 2  # the chip story's and the first AI request's; the repeat reused it
    # A write (another story) may change the answer: the next repeat looks it up again.
    await client.post("/api/v1/analyze", json={"url": "https://ledger.example/sport/final",
                                               "html": news_page(SPORT_TITLE, SPORT_PARAGRAPHS)})
    third = (await client.post("/api/v1/analyze", json=body)).json()
    assert third["cached"] and len(lookups) == 4
    assert third["related"][0]["url"] == chip["url"]
    # So does a delete: the deleted story leaves the repeat's related list.
    chip_id = first["related"][0]["story_id"]
    assert (await client.delete(f"/api/v1/stories/{chip_id}")).status_code == 204
    fourth = (await client.post("/api/v1/analyze", json=body)).json()
    assert fourth["cached"] and chip_id not in [r["story_id"] for r in fourth["related"]]


BAD_BODIES = [
    (b"{not json", 400),
    (b'{"url": "https://a.example/x", "colour": "red"}', 400),
    (b'{"html": "<p>x</p>"}', 400),
    (b'{"url": "ftp://a.example/x"}', 400),
    (b'{"url": "javascript:alert(1)"}', 400),
    (b'{"url": "https://a.example/' + b"x" * 2100 + b'"}', 400),
    (b'{"url": 42}', 400),
    (b'{"url": "https://user:secret@a.example/x", "text": "Sam Altman spoke."}', 400),
    (b'{"url": "https://a.example:99999/x", "text": "Sam Altman spoke."}', 400),
    (b"[]", 400),
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
async def test_bad_requests_are_4xx_problems(client: AsyncTestClient, body: bytes, status: int) -> None:
    response = await client.post("/api/v1/analyze", content=body, headers={"content-type": "application/json"})
    assert_problem(response, status)
    assert await story_count(client) == 0


async def test_no_article_and_both_inputs(client: AsyncTestClient) -> None:
    empty = "<html><head><title>Login</title></head><body><nav><a href='/'>Home</a></nav></body></html>"
    body = assert_problem(await client.post("/api/v1/analyze", json={"url": "https://a.example/", "html": empty}), 422)
    assert "article" in body["detail"].lower() or "text" in body["detail"].lower()
    assert_problem(await client.post("/api/v1/analyze", json={"url": "https://a.example/", "text": "   "}), 400)
    assert_problem(await client.post(
        "/api/v1/analyze", json={"url": "https://a.example/", "text": "x", "html": "<p>x</p>"}), 400)
    assert await story_count(client) == 0


HOSTILE = [
    "\x00\x01\x02\xff\xfe binary \x89PNG\r\n\x1a\n" * 500,
    "<div>" * 50_000 + "deep" + "</div>" * 50_000,
    "<html><head><meta charset='klingon-42'></head><body><p>" + "Caf\u00e9 \ufffd ok. " * 50 + "</p></body></html>",
    "<html><body><article>" + "<p>" + ("A long page about nothing in particular. " * 40) + "</p>" * 1 + "</article>"
    * 400 + "</body></html>",
    "<<<>>>&&&;;;<!-- unterminated",
]


@pytest.mark.parametrize("html", HOSTILE, ids=["binary", "deep", "charset", "huge", "broken"])
async def test_hostile_html_never_500(client: AsyncTestClient, html: str) -> None:
    body = msgspec.json.encode({"url": "https://a.example/x", "html": html})
    response = await client.post("/api/v1/analyze", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 413, 422), response.text
    if response.status_code != 200:
        assert_problem(response, response.status_code)


async def test_lone_surrogate_escapes_are_handled(client: AsyncTestClient) -> None:
    body = b'{"url": "https://a.example/x", "html": "<p>' + b"Caf\\u00e9 \\udcff broken escape. " * 40 + b'</p>"}'
    response = await client.post("/api/v1/analyze", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 422), response.text


async def test_body_over_limit_is_413(tmp_path, models) -> None:
    settings = Settings(archive=str(tmp_path / "a.sqlite3"), max_body_bytes=64 * 1024)
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        big = {"url": "https://a.example/x", "html": "<p>" + "x" * 100_000 + "</p>"}
        assert_problem(await client.post("/api/v1/analyze", json=big), 413)
        assert await story_count(client) == 0


async def test_fetch_errors_map_to_clear_statuses(client: AsyncTestClient, page_server) -> None:
    cases = [
        (page_server.add("/data.json", b'{"a": 1}', content_type="application/json"), 415),
        (page_server.add("/pdf", b"%PDF-1.7", content_type="application/pdf"), 415),
        (page_server.add("/boom", b"<p>err</p>", status=500), 502),
        (page_server.add("/gone", b"<p>gone</p>", status=404), 502),
        (page_server.add("/empty", "<html><body><nav>menu</nav></body></html>"), 422),
        ("http://127.0.0.1:9/closed-port", 502),
    ]
    for url, status in cases:
        body = assert_problem(await client.get("/api/v1/analyze", params={"url": url}), status)
        assert body["detail"]
    assert await story_count(client) == 0


async def test_fetch_timeout_is_504(tmp_path, models, page_server) -> None:
    settings = Settings(archive=str(tmp_path / "a.sqlite3"), allowed_networks=["127.0.0.0/8"], fetch_timeout=0.5)
    slow = page_server.add("/slow", ai_page(), delay=2.0)
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        assert_problem(await client.get("/api/v1/analyze", params={"url": slow}), 504)
        assert await story_count(client) == 0


async def test_loopback_is_refused_by_default(tmp_path, models, page_server) -> None:
    settings = Settings(archive=str(tmp_path / "a.sqlite3"))
    url = page_server.add("/a", ai_page())
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        for target in (url, url.replace("127.0.0.1", "localhost"), "http://169.254.169.254/latest/meta-data/",
                       "http://[::ffff:127.0.0.1]:%d/a" % page_server.port, "http://10.0.0.1/"):
            body = assert_problem(await client.get("/api/v1/analyze", params={"url": target}), 422)
            assert "not allowed" in body["title"].lower() or "address" in body["detail"].lower()
        assert page_server.hits == []


async def test_archive_survives_a_restart(tmp_path, models) -> None:
    settings = Settings(archive=str(tmp_path / "keep.sqlite3"))
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        story_id = (await client.post("/api/v1/analyze", json={"url": AI_URL, "html": ai_page()})).json()["story_id"]
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        stored = await client.get(f"/api/v1/stories/{story_id}")
        assert stored.status_code == 200 and stored.json()["title"] == AI_TITLE
        assert (await client.get("/api/v1/stories", params={"q": "Altman"})).json()["total"] == 1


async def test_token_guard_and_cors(tmp_path, models) -> None:
    settings = Settings(archive=str(tmp_path / "a.sqlite3"), api_token="s3cret")
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        assert_problem(await client.get("/api/v1/stories"), 401)
        assert_problem(await client.get("/api/v1/stories", headers={"Authorization": "Bearer nope"}), 401)
        ok = await client.get("/api/v1/stories", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        preflight = await client.options("/api/v1/analyze", headers={
            "Origin": CHROME_EXTENSION_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        })
        assert preflight.status_code in (200, 204)
        assert preflight.headers["access-control-allow-origin"] == CHROME_EXTENSION_ORIGIN
        evil = await client.options("/api/v1/analyze", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert evil.headers.get("access-control-allow-origin") != "https://evil.example"


async def test_repeat_request_is_served_from_cache(client: AsyncTestClient) -> None:
    body = {"url": AI_URL, "html": ai_page()}
    first = (await client.post("/api/v1/analyze", json=body)).json()
    second = (await client.post("/api/v1/analyze", json=body)).json()
    assert second["cached"] is True and first["cached"] is False
    assert second["story_id"] == first["story_id"] and second["keyphrases"] == first["keyphrases"]
    # Deleting the story drops the cached copy too: the next request re-archives it.
    assert (await client.delete(f"/api/v1/stories/{first['story_id']}")).status_code == 204
    third = (await client.post("/api/v1/analyze", json=body)).json()
    assert third["cached"] is False and await story_count(client) == 1
