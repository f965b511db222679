"""Findings 4, 6, 7 and the 401 of 8: no 5xx from client input, every input limit held at the
boundary (nothing junk is archived), and an OpenAPI document that tells the truth.

Each test sends what the hostile-user review sent and checks the answer AND the archive."""

from __future__ import annotations

import re

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from backstory.app import create_app
from backstory.config import Settings
from backstory.schemas import MAX_TITLE_CHARS, NOT_BLANK_PATTERN, URL_PATTERN

from ..conftest import BASE_URL, assert_problem, story_count, wait_ready

TEXT = "Sam Altman spoke in Paris on Tuesday about open models and the people who build them."
ANALYZE = "/api/v1/analyze"




async def post_raw(client: AsyncTestClient, body: bytes):
    return await client.post(ANALYZE, content=body, headers={"content-type": "application/json"})


# --- Finding 4: decoding and depth errors are 400s, not 500s -------------------------------


async def test_invalid_utf8_in_the_body_is_400(client: AsyncTestClient) -> None:
    body = assert_problem(await post_raw(client, b'{"url":"https://a.example/x","text":"\xff"}'), 400)
    assert "UTF-8" in body["detail"]
    assert_problem(await post_raw(client, b'{"url":"https://a.example/x","text":"caf\xc3"}'), 400)  # cut short
    assert await story_count(client) == 0


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                                  b"[" * 33 + b"]" * 33], ids=["arrays", "objects", "just-past-the-limit"])
async def test_deep_nesting_is_400(client: AsyncTestClient, body: bytes) -> None:
    problem = assert_problem(await post_raw(client, body), 400)
    assert "nested" in problem["detail"]
    assert await story_count(client) == 0


async def test_duplicate_keys_are_400(client: AsyncTestClient) -> None:
    body = b'{"url":"https://a.example/x","text":"' + TEXT.encode() + b'","url":"https://b.example/y"}'
    problem = assert_problem(await post_raw(client, body), 400)
    assert "'url'" in problem["detail"]
    assert await story_count(client) == 0
    # The same body without the repeat is stored: the refusal was the repeat's doing.
    ok = await post_raw(client, b'{"url":"https://a.example/x","text":"' + TEXT.encode() + b'"}')
    assert ok.status_code == 200, ok.text


# --- Finding 6: junk is refused before anything is stored -----------------------------------


async def test_a_huge_title_is_refused_and_not_archived(client: AsyncTestClient) -> None:
    for title in ("T" * 1_000_000, "T" * (MAX_TITLE_CHARS + 1)):
        problem = assert_problem(await client.post(ANALYZE, json={"url": "https://a.example/x", "text": TEXT,
                                                                  "title": title}), 400)
        assert "title" in problem["detail"] and "1000" in problem["detail"]
    assert await story_count(client) == 0
    ok = await client.post(ANALYZE, json={"url": "https://a.example/x", "text": TEXT, "title": "T" * MAX_TITLE_CHARS})
    assert ok.status_code == 200, ok.text


JUNK_URLS = ["https://\u000e", "http://>", "https://a.example\u0000/x", "http://a<b.example/", "https://a\"b/",
             "https://{x}.example/", "http://a|b/", "https://a^b.example/", "https://a`b/", "http://a\\b/",
             "https://a.example/x\u0007y", "https://a.example/<script>", "https://a.example:0/",
             "https://a.example:65536/", "https://user:pw@a.example/", "https://a..example/", "https:///x"]


@pytest.mark.parametrize("url", JUNK_URLS)
async def test_junk_urls_are_refused_with_html_or_text(client: AsyncTestClient, url: str) -> None:
    for field, content in (("text", TEXT), ("html", f"<html><body><article><p>{TEXT * 5}</p></article></body></html>")):
        problem = assert_problem(await client.post(ANALYZE, json={"url": url, field: content}), 400)
        assert "url" in problem["detail"].lower()
    assert_problem(await client.get(ANALYZE, params={"url": url}), 400)
    assert await story_count(client) == 0


async def test_a_host_with_no_idna_form_is_422(client: AsyncTestClient) -> None:
    # Fits the pattern (labels of up to 63 characters) but its punycode label is too long.
    url = "https://" + "\u00e9" * 60 + ".example/x"
    problem = assert_problem(await client.post(ANALYZE, json={"url": url, "text": TEXT}), 422)
    assert "domain name" in problem["detail"]
    assert await story_count(client) == 0


async def test_usual_urls_still_work(client: AsyncTestClient) -> None:
    for url in ("https://a.example/x?q={1}|2#top", "HTTP://A.EXAMPLE:8080/p", "https://caf\u00e9.example/a",
                "http://[2001:db8::1]/x", "https://a.example."):
        response = await client.post(ANALYZE, json={"url": url, "text": TEXT, "archive": False})
        assert response.status_code == 200, (url, response.text)


async def test_blank_text_and_both_inputs_are_400(client: AsyncTestClient) -> None:
    for blank in (" \n\t ", "\x7f", "\x00\x1b \x0b"):  # control characters are removed before analysis
        body = assert_problem(await client.post(ANALYZE, json={"url": "https://a.example/x", "text": blank}), 400)
        assert "blank" in body["detail"]
    # The same rule is the document's, so a generated schema-valid text is never refused as blank.
    schema = (await client.get("/schema/openapi.json")).json()
    text_rule = schema["components"]["schemas"]["AnalyzeRequest"]["properties"]["text"]
    assert text_rule["pattern"] == NOT_BLANK_PATTERN and "x7f" in text_rule["pattern"], text_rule
    assert_problem(await client.post(ANALYZE, json={"url": "https://a.example/x", "text": "x", "html": "<p>x</p>"}), 400)
    too_long = {"url": "https://a.example/x", "text": "word " * 200_001}
    assert "1000000" in assert_problem(await client.post(ANALYZE, json=too_long), 400)["detail"]
    assert await story_count(client) == 0


# --- Finding 8 (part): a 401 says which scheme it wants -------------------------------------


async def test_401_carries_www_authenticate(tmp_path, models) -> None:
    settings = Settings(archive=str(tmp_path / "a.sqlite3"), api_token="s3cret")
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic czNjcmV0"}):
            for method, path in (("GET", "/api/v1/stories"), ("POST", ANALYZE), ("DELETE", "/api/v1/stories/0123456789abcdef")):
                response = await client.request(method, path, headers=headers, json={"url": "https://a.example/x", "text": TEXT})
                assert_problem(response, 401)
                assert response.headers["www-authenticate"] == "Bearer"
        schema = (await client.get("/schema/openapi.json")).json()
        assert schema["paths"]["/api/v1/stories"]["get"]["security"] == [{"bearerAuth": []}]


# --- Finding 7: the OpenAPI document tells the truth ----------------------------------------


async def test_405_carries_allow_and_options_lists_every_method(client: AsyncTestClient) -> None:
    for method, path, allowed in (("PUT", ANALYZE, "GET, OPTIONS, POST"), ("PATCH", "/api/v1/stories", "GET, OPTIONS"),
                                  ("POST", "/api/v1/stories/0123456789abcdef", "DELETE, GET, OPTIONS"),
                                  ("DELETE", "/healthz", "GET, OPTIONS")):
        response = await client.request(method, path)
        assert_problem(response, 405)
        methods = set(allowed.split(", "))
        assert set(response.headers["allow"].split(", ")) == methods
        options = await client.options(path)
        assert options.status_code == 204 and set(options.headers["allow"].split(", ")) == methods


async def test_the_document_matches_the_server(client: AsyncTestClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"]}
    request = schema["components"]["schemas"]["AnalyzeRequest"]
    assert request["additionalProperties"] is False
    assert request["properties"]["url"]["pattern"] == URL_PATTERN
    assert request["properties"]["title"]["maxLength"] == MAX_TITLE_CHARS
    assert request["properties"]["text"]["maxLength"] == 1_000_000
    assert request["not"]["required"] == ["html", "text"]
    paths = schema["paths"]
    expected = {
        ("/api/v1/analyze", "post"): {"400", "401", "403", "413", "415", "422", "502", "503", "504"},
        ("/api/v1/analyze", "get"): {"400", "401", "403", "413", "415", "422", "502", "503", "504"},
        ("/api/v1/stories", "get"): {"400", "401", "403"},
        ("/api/v1/stories/{story_id}", "get"): {"400", "401", "403", "404"},
        ("/api/v1/stories/{story_id}", "delete"): {"400", "401", "403", "404"},
        ("/api/v1/stories/{story_id}/related", "get"): {"400", "401", "403", "404"},
        ("/api/v1/feeds", "get"): {"400", "401", "403"},
        ("/api/v1/feeds", "post"): {"400", "401", "403", "404", "413", "415", "422"},
        ("/api/v1/feeds", "delete"): {"400", "401", "403", "404", "422"},
    }
    for (path, method), errors in expected.items():
        operation = paths[path][method]
        documented = {code for code in operation["responses"] if not code.startswith("2")}
        assert documented == errors, (path, method, documented)
        for code in errors:
            content = operation["responses"][code]["content"]
            assert list(content) == ["application/problem+json"], (path, method, code)
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        # No token configured: the scheme is offered but optional.
        assert operation["security"] == [{"bearerAuth": []}, {}]
        for parameter in operation.get("parameters", []):
            rules = parameter["schema"]
            assert rules.get("type") == "boolean" or {"pattern", "maxLength", "maximum", "enum"} & set(rules), parameter
    for path in ("/healthz", "/readyz"):
        assert "security" not in paths[path]["get"]
    assert paths["/api/v1/stories/{story_id}"]["get"]["parameters"][0]["schema"]["pattern"] == "^[0-9a-f]{16}$"
    assert schema["components"]["schemas"]["FeedRequest"]["additionalProperties"] is False
    assert set(paths["/api/v1/feeds"]["post"]["responses"]) >= {"200", "201"}  # subscribed already / newly
    url_param = next(p for p in paths["/api/v1/analyze"]["get"]["parameters"] if p["name"] == "url")
    assert url_param["schema"]["pattern"] == URL_PATTERN and url_param["schema"]["maxLength"] == 2048
    # The pattern refuses what the server refuses, and the server agrees with the document.
    assert not re.search(URL_PATTERN, "0") and not re.search(URL_PATTERN, "http://>")
    assert_problem(await client.get(ANALYZE, params={"url": "0"}), 400)
    assert_problem(await client.get("/api/v1/stories/xyz"), 400)
    # The documented Problem shape is what an error body is.
    problem = msgspec.json.decode((await client.get("/api/v1/stories/xyz")).content)
    assert set(problem) <= set(schema["components"]["schemas"]["Problem"]["properties"])


async def test_the_body_is_held_to_json_types(client: AsyncTestClient) -> None:
    # Found by schemathesis: Litestar's lenient conversion took 0 and "false" for a boolean.
    for archive in (0, 1, "false", "true"):
        problem = assert_problem(await client.post(ANALYZE, json={"url": "https://a.example/x", "text": TEXT,
                                                                  "archive": archive}), 400)
        assert "archive" in problem["detail"]
    assert await story_count(client) == 0


async def test_a_fragment_rooted_in_an_svg_is_a_4xx_not_a_server_error(client: AsyncTestClient) -> None:
    """Found by the hypothesis bodies: lxml made the <svg> the document's root, and a cleaner
    that drops <svg> elements from their parent failed on it (500)."""
    for html in ("<svg><p><p>Sam Altman a parlé à Paris mardi. </p></p></svg>", "<math><p>x</p></math>"):
        response = await client.post(ANALYZE, json={"url": "https://news.example/x", "html": html})
        assert_problem(response, 422)
