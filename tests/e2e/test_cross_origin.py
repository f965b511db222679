"""Finding 1 of the hardening review, in a real browser: a page on another origin cannot write to
or delete from the archive of a default server (no token), whatever request it tries.

The server runs with no token (the default a single reader uses) and with the fetcher allowed
to reach the page server, so every refused request below would otherwise have written."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from e2e_harness import BackstoryServer, Browser, PageServer, start_server
from e2e_pages import ALTMAN_OPEN_MODELS

pytestmark = pytest.mark.e2e

PLANTED = {"url": "https://planted.example/story", "title": "Planted story",
           "text": "Planted text about a wildfire near a town that forced an evacuation. " * 6}


@pytest.fixture(scope="module")
def open_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackstoryServer]:
    server = start_server(tmp_path_factory.mktemp("open-backstory"), {"BACKSTORY_ALLOWED_NETWORKS": "127.0.0.0/8"})
    yield server
    server.stop()


def api(server: BackstoryServer, path: str, body: dict | None = None, method: str | None = None) -> tuple[int, dict]:
    """A call as curl makes it: no Origin, JSON."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=120) as response:
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}


def total(server: BackstoryServer) -> int:
    return api(server, "/api/v1/stories")[1]["total"]


ATTACK = """async ({api, planted, victim, fetchUrl}) => {
  const outcome = {};
  const attempt = async (name, url, init) => {
    try { const r = await fetch(url, init); outcome[name] = r.type === "opaque" ? "sent" : r.status; }
    catch (e) { outcome[name] = "blocked"; }
  };
  const body = JSON.stringify(planted);
  await attempt("text/plain", api + "/api/v1/analyze", {method: "POST", body});
  await attempt("text/plain no-cors", api + "/api/v1/analyze", {method: "POST", body, mode: "no-cors"});
  await attempt("form no-cors", api + "/api/v1/analyze",
                {method: "POST", mode: "no-cors", body: new URLSearchParams({data: body})});
  await attempt("application/json", api + "/api/v1/analyze",
                {method: "POST", body, headers: {"Content-Type": "application/json"}});
  await attempt("delete", api + "/api/v1/stories/" + victim, {method: "DELETE"});
  await attempt("get analyze no-cors", api + "/api/v1/analyze?url=" + encodeURIComponent(fetchUrl), {mode: "no-cors"});
  await new Promise((done) => {
    const img = new Image();
    img.onload = img.onerror = done;
    img.src = api + "/api/v1/analyze?url=" + encodeURIComponent(fetchUrl);
  });
  return outcome;
}"""


async def test_a_page_on_another_origin_cannot_change_the_archive(
    browser: Browser, open_server: BackstoryServer, news_server: PageServer
):
    status, victim = api(open_server, "/api/v1/analyze",
                         {"url": "https://ledger.example/victim", "title": "Council approves the new bridge",
                          "text": "The city council approved the new river bridge on Monday after a long debate. " * 6})
    assert status == 200
    before = total(open_server)
    bait = news_server.add("bait.html", ALTMAN_OPEN_MODELS)  # what the server would fetch and archive
    attacker = await browser.open(news_server.add("attacker.html", "<!doctype html><title>Attacker</title><p>hi</p>"))
    outcome = await attacker.evaluate(ATTACK, {"api": open_server.url, "planted": PLANTED,
                                               "victim": victim["story_id"], "fetchUrl": bait})
    # The preflighted ones never reach the handler; the "simple" ones arrive and are refused.
    assert outcome["application/json"] == "blocked" and outcome["delete"] == "blocked", outcome
    assert outcome["text/plain"] == "blocked", outcome  # refused, so the browser shows the page nothing
    assert total(open_server) == before, outcome
    assert api(open_server, f"/api/v1/stories/{victim['story_id']}")[0] == 200
    assert not [p for p, _ in news_server.requests if p.endswith("/bait.html")], "the server fetched the bait"
    # The same planted story sent as curl sends it is stored: the refusals were the origin's doing.
    assert api(open_server, "/api/v1/analyze", PLANTED)[0] == 200
    assert total(open_server) == before + 1
