"""Finding 1 and 5 of the hardening review: no web page can touch the archive, and a server open
to the network without a token does not start.

A page in the reader's browser can send a "simple" request (a text/plain or form body, no
preflight) to the server on 127.0.0.1, and a DNS-rebinding page can make the browser treat the
server as its own origin. Each test shows the attack is refused AND that the same request from
an allowed caller goes through, so a refusal is not an accident of a broken request."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from backstory.api.guard import HostRule, OriginRule
from backstory.app import create_app
from backstory.config import CHROME_EXTENSION_ORIGIN, Settings, open_bind_refusal

from ..conftest import BASE_URL, assert_problem, story_count, wait_ready
from ..pages import AI_PARAGRAPHS, AI_TITLE, FIRE_A, news_page

ROOT = Path(__file__).resolve().parents[2]
STORY = {"url": "https://ledger.example/tech/open-models", "title": AI_TITLE, "text": "\n\n".join(AI_PARAGRAPHS)}
PLANTED = {"url": "https://planted.example/x", "title": FIRE_A[1][0], "text": FIRE_A[1][1]}




async def test_a_text_plain_body_is_refused_and_the_archive_is_unchanged(client: AsyncTestClient) -> None:
    before = await story_count(client)
    body = json.dumps(PLANTED).encode()
    for content_type in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", None):
        headers = {"content-type": content_type} if content_type else {}
        assert_problem(await client.post("/api/v1/analyze", content=body, headers=headers), 415)
    assert await story_count(client) == before
    # The same body as JSON is stored: the refusals above are the content type's doing.
    ok = await client.post("/api/v1/analyze", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200, ok.text
    assert await story_count(client) == before + 1


async def test_a_foreign_origin_can_neither_write_nor_delete(client: AsyncTestClient) -> None:
    stored = await client.post("/api/v1/analyze", json=STORY, headers={"origin": CHROME_EXTENSION_ORIGIN})
    assert stored.status_code == 200, stored.text
    story_id = stored.json()["story_id"]
    before = await story_count(client)
    for origin in ("https://evil.example", "null", "http://127.0.0.1:3000", "http://localhost:8000",
                   "chrome-extension://abcdefghijklmnopabcdefghijklmnop"):
        assert_problem(await client.post("/api/v1/analyze", json=PLANTED, headers={"origin": origin}), 403)
        assert_problem(await client.delete(f"/api/v1/stories/{story_id}", headers={"origin": origin}), 403)
        assert_problem(await client.get("/api/v1/stories", headers={"origin": origin}), 403)
    assert await story_count(client) == before
    assert (await client.get(f"/api/v1/stories/{story_id}")).status_code == 200


async def test_a_cross_site_request_without_origin_cannot_make_the_server_fetch_and_archive(
    client: AsyncTestClient, page_server
) -> None:
    """An <img src="http://127.0.0.1:8000/api/v1/analyze?url=…"> sends no Origin, only Sec-Fetch-Site."""
    url = page_server.add("/planted", news_page(FIRE_A[1][0], [FIRE_A[1][1]] * 3))
    before = await story_count(client)
    for site in ("cross-site", "same-site"):
        assert_problem(await client.get("/api/v1/analyze", params={"url": url}, headers={"sec-fetch-site": site}), 403)
    assert page_server.hits == [] and await story_count(client) == before
    # Reading stays possible for a link followed from another site; writing from curl too.
    assert (await client.get("/api/v1/stories", headers={"sec-fetch-site": "cross-site"})).status_code == 200
    fetched = await client.get("/api/v1/analyze", params={"url": url})
    assert fetched.status_code == 200, fetched.text
    assert page_server.hits == ["/planted"] and await story_count(client) == before + 1


async def test_a_rebinding_host_is_refused(client: AsyncTestClient) -> None:
    stored = await client.post("/api/v1/analyze", json=STORY)
    story_id = stored.json()["story_id"]
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example:8000"):
        body = assert_problem(await client.get("/api/v1/stories", headers={"host": host}), 400)
        assert "BACKSTORY_ALLOWED_HOSTS" in body["detail"]
        assert_problem(await client.delete(f"/api/v1/stories/{story_id}", headers={"host": host}), 400)
    assert (await client.get(f"/api/v1/stories/{story_id}")).status_code == 200
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        assert (await client.get("/api/v1/stories", headers={"host": host})).status_code == 200, host


async def test_allowed_callers_get_through(client: AsyncTestClient) -> None:
    callers = [CHROME_EXTENSION_ORIGIN, "moz-extension://0d5f2f8c-6f3b-4a43-9b5e-1f0c0ad2f0aa",
               BASE_URL]  # the last: the server's own API docs page
    for origin in callers:
        response = await client.post("/api/v1/analyze", json={**STORY, "archive": False}, headers={"origin": origin})
        assert response.status_code == 200, (origin, response.text)


async def test_cors_names_only_backstorys_own_extension(client: AsyncTestClient) -> None:
    def preflight(origin: str):
        return client.options("/api/v1/analyze", headers={"origin": origin, "access-control-request-method": "POST",
                                                           "access-control-request-headers": "content-type"})

    own = await preflight(CHROME_EXTENSION_ORIGIN)
    assert own.status_code == 204 and own.headers["access-control-allow-origin"] == CHROME_EXTENSION_ORIGIN
    for origin in ("chrome-extension://abcdefghijklmnopabcdefghijklmnop", "https://evil.example"):
        response = await preflight(origin)
        assert response.status_code >= 400 and "access-control-allow-origin" not in response.headers


async def test_configured_origins_and_hosts(tmp_path: Path, models) -> None:
    settings = Settings(archive=str(tmp_path / "a.sqlite3"), cors_origins=["https://intranet.example"],
                        allowed_hosts=["backstory.example.org"], extension_origins=[])
    async with AsyncTestClient(app=create_app(settings, models=models), base_url="http://backstory.example.org") as c:
        await wait_ready(c)
        assert (await c.get("/api/v1/stories", headers={"origin": "https://intranet.example"})).status_code == 200
        # With the extension origins emptied, even Backstory's own is refused.
        assert (await c.get("/api/v1/stories", headers={"origin": CHROME_EXTENSION_ORIGIN})).status_code == 403
        assert (await c.get("/api/v1/stories", headers={"host": "other.example.org"})).status_code == 400


def test_host_rule() -> None:
    loopback = HostRule("127.0.0.1", [])
    assert loopback.allows("127.0.0.1:8000") and loopback.allows("localhost") and loopback.allows("[::1]:80")
    assert not loopback.allows("evil.example") and not loopback.allows(None) and not loopback.allows("")
    assert HostRule("0.0.0.0", []).allows("anything.example")  # all addresses: a token is required
    one = HostRule("192.168.1.20", [])
    assert one.allows("192.168.1.20:8000") and one.allows("localhost") and not one.allows("nas.local")
    named = HostRule("0.0.0.0", ["backstory.example.org", "*.team.example"])
    assert named.allows("backstory.example.org:443") and named.allows("a.team.example")
    assert not named.allows("team.example.evil") and not named.allows("evil.example")


def test_origin_rule() -> None:
    rule = OriginRule([CHROME_EXTENSION_ORIGIN, "moz-extension://*"], ["https://intranet.example"])
    assert rule.allows(CHROME_EXTENSION_ORIGIN, None) and rule.allows("moz-extension://abc-123", None)
    assert rule.allows("https://intranet.example/", None)
    assert not rule.allows("moz-extension://a/b", None) and not rule.allows("null", None)
    assert not rule.allows("chrome-extension://other", None)
    assert rule.allows("http://127.0.0.1:8000", "127.0.0.1:8000") and not rule.allows("http://127.0.0.1:9", "127.0.0.1:8000")


def test_the_manifest_key_gives_the_allowed_extension_id() -> None:
    """Chrome derives an extension's id from its public key: the first 128 bits of its SHA-256,
    each hex digit written as a letter a-p."""
    manifest = json.loads((ROOT / "extension" / "manifest.json").read_text())
    digest = hashlib.sha256(base64.b64decode(manifest["key"])).hexdigest()[:32]
    assert "chrome-extension://" + "".join(chr(ord("a") + int(c, 16)) for c in digest) == CHROME_EXTENSION_ORIGIN
    assert CHROME_EXTENSION_ORIGIN in Settings().extension_origins


def test_a_public_bind_without_a_token_is_refused() -> None:
    assert open_bind_refusal(Settings(host="0.0.0.0"))
    assert open_bind_refusal(Settings(host="192.168.1.20"))
    assert open_bind_refusal(Settings(host="0.0.0.0", api_token="s3cret")) is None
    assert open_bind_refusal(Settings(host="0.0.0.0", insecure_no_auth=True)) is None
    for host in ("127.0.0.1", "::1", "localhost"):
        assert open_bind_refusal(Settings(host=host)) is None
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "backstory", "serve", "--host", "0.0.0.0", "--port", "9"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert done.returncode != 0 and "--insecure-no-auth" in done.stderr and "BACKSTORY_API_TOKEN" in done.stderr


@pytest.mark.parametrize("env_value, expected", [("1", True), ("true", True), ("0", False)])
def test_insecure_no_auth_reads_from_the_environment(env_value: str, expected: bool) -> None:
    from backstory.config import from_env

    assert from_env({"BACKSTORY_INSECURE_NO_AUTH": env_value}).insecure_no_auth is expected
