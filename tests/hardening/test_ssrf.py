"""The SSRF table through the HTTP API: no spelling of a private address, and no redirect, makes
the server connect where it must not. Real servers listen on the refused addresses, so a guard
that let one through would show up as a request they received (tests/test_fetch.py covers
fetch_page itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from backstory.app import create_app
from backstory.config import Settings
from backstory.ssrf_guard import blocked_reason

from ..conftest import BASE_URL, story_count, wait_ready
from ..pages import AI_PARAGRAPHS, AI_TITLE, news_page
from ..test_fetch import Server, page, redirect

# Only this one address may be fetched: the narrowest allowance a team can configure.
ALLOWED = "127.0.0.2"


@pytest.fixture
def servers():
    started: list[Server] = []

    def start(routes: dict, host: str) -> Server:
        server = Server(host, routes)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
async def narrow_client(tmp_path: Path, models):
    settings = Settings(archive=str(tmp_path / "a.sqlite3"), allowed_networks=[f"{ALLOWED}/32"], fetch_timeout=5.0)
    async with AsyncTestClient(app=create_app(settings, models=models), base_url=BASE_URL) as client:
        await wait_ready(client)
        yield client



def spellings(port: int) -> list[str]:
    """127.0.0.1, where a server listens, written every way a URL parser might accept."""
    hosts = ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:7f00:1]",
             "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "017700000001", "127.1", "127.0.1",
             "127.000.000.001", "LOCALHOST", "localhost.", "127.0.0.1.", "[::127.0.0.1]", "%31%32%37.0.0.1"]
    return [f"http://{h}:{port}/story" for h in hosts]


async def test_no_spelling_of_a_refused_address_is_fetched(narrow_client: AsyncTestClient, servers) -> None:
    target = servers({"/story": page(news_page(AI_TITLE, AI_PARAGRAPHS).encode())}, "127.0.0.1")
    before = await story_count(narrow_client)
    for url in spellings(target.port):
        response = await narrow_client.get("/api/v1/analyze", params={"url": url})
        assert response.status_code in (400, 422), (url, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert target.requests == [] and await story_count(narrow_client) == before


async def test_a_redirect_out_of_the_one_allowed_address_is_refused(narrow_client: AsyncTestClient, servers) -> None:
    body = news_page(AI_TITLE, AI_PARAGRAPHS).encode()
    inside = servers({"/story": page(body)}, "127.0.0.3")  # loopback too, but not the allowed address
    routes: dict = {"/story": page(body)}
    outside = servers(routes, ALLOWED)
    routes.update({
        "/to-private": redirect(inside.url("/story")),
        "/to-private-by-number": redirect(f"http://2130706435:{inside.port}/story"),  # 127.0.0.3
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-self": redirect(outside.url("/story")),
    })
    before = await story_count(narrow_client)
    for path in ("/to-private", "/to-private-by-number", "/to-metadata"):
        response = await narrow_client.get("/api/v1/analyze", params={"url": outside.url(path)})
        assert response.status_code == 422, (path, response.text)
        assert "redirect" in response.json()["detail"]
    assert inside.requests == [] and await story_count(narrow_client) == before
    # A redirect that stays on the allowed address is followed: the refusals were the target's.
    response = await narrow_client.get("/api/v1/analyze", params={"url": outside.url("/to-self")})
    assert response.status_code == 200, response.text
    assert await story_count(narrow_client) == before + 1


@pytest.mark.parametrize("address", [
    # Not private by Python's table, refused only because they are not globally reachable.
    "2001:2::1", "2001:10::1", "2001:20::1", "192.0.0.8", "100.127.255.254", "::", "::1",
    "::ffff:10.0.0.1", "64:ff9b:1::a00:1", "fc00::1", "ff05::2",
])
def test_addresses_that_are_not_global_are_refused(address: str) -> None:
    assert blocked_reason(address, Settings()), address
