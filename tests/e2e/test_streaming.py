"""The streamed sidebar in the panel: the facts render before the names, keyphrases and related
stories arrive, a stall says "still working" while showing what came, and nothing jumps.

The server is slowed on purpose by a reverse proxy in front of the real one: it relays the first
line of a streamed analyze answer (the facts) at once and holds the rest until the test lets it go."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from e2e_harness import API_TOKEN, Browser, PageServer, QuietHandler, artifact, serve_on_loopback
from e2e_pages import ALTMAN_OPEN_MODELS, ALTMAN_SCRIPT_TITLE

pytestmark = pytest.mark.e2e

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class HoldingProxy:
    """Passes every request to ``upstream``; of a streamed answer, the first line at once and the
    rest once ``release`` is set (or ``instead``, when the test sets it: a stream that fails).
    ``streamed`` counts the streamed answers it relayed."""

    def __init__(self, upstream: str) -> None:
        self.release = threading.Event()
        self.instead: bytes | None = None
        self.first_line_sent = threading.Event()
        self.streamed = 0
        target = urlsplit(upstream)
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes: no length needed

            def relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                response = upstream_conn.getresponse()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.end_headers()
                if response.getheader("Content-Type", "").startswith("application/x-ndjson"):
                    owner.streamed += 1
                    self.wfile.write(response.readline())  # the facts
                    self.wfile.flush()
                    owner.first_line_sent.set()
                    owner.release.wait(120)
                rest = response.read()
                self.wfile.write(rest if owner.instead is None else owner.instead)
                upstream_conn.close()

        self.httpd, _ = serve_on_loopback(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy(backstory_server) -> Iterator[HoldingProxy]:
    made = HoldingProxy(backstory_server.url)
    yield made
    made.close()


TOP = "document.getElementById({!r}).getBoundingClientRect().top"


async def test_facts_render_before_the_rest_and_a_stall_says_still_working(
        browser: Browser, proxy: HoldingProxy, news_server: PageServer):
    await browser.configure(proxy.url, token=API_TOKEN, archive=False)
    page = await browser.open(news_server.add("altman.html", ALTMAN_OPEN_MODELS))
    panel = await browser.click_toolbar(page)

    # The facts line is through, the rest held: the story's facts show, the chips do not yet.
    await panel.wait_for("document.body.dataset.state === 'partial'")
    assert proxy.first_line_sent.is_set() and not proxy.release.is_set()
    assert await panel.text("#title") == ALTMAN_SCRIPT_TITLE
    assert "The Daily Ledger" in await panel.text("#site-byline")
    assert "min read" in await panel.text("#date-time")
    assert await panel.eval("document.querySelectorAll('#result .chip').length") == 0
    assert await panel.eval("document.querySelectorAll('#keyphrases .sk, #entities .sk, #related .sk').length") > 0
    assert await panel.eval("state.result.text.includes('Sam Altman')")  # the text came with the facts
    assert await panel.eval("!document.getElementById('progress').hidden")
    assert "Still working" in await panel.text("#progress")
    assert await panel.eval("document.getElementById('main').getAttribute('aria-busy')") == "true"
    before = {name: await panel.eval(TOP.format(name)) for name in ("title", "keyphrases-heading")}

    # Nothing more for a while: the panel says the server is slow, and keeps what it has.
    await panel.wait_for("document.body.dataset.stalled === 'true'", timeout=60)
    assert "taking longer than usual" in await panel.text("#progress")
    assert await panel.text("#title") == ALTMAN_SCRIPT_TITLE
    await panel.screenshot(artifact("panel-streaming.png"))

    # The rest arrives: chips, related section and footer, and the facts did not move.
    proxy.release.set()
    await panel.wait_for("document.body.dataset.state === 'result'")
    assert await panel.eval("document.querySelectorAll('#result .sk').length") == 0
    people = await panel.eval(
        "Array.from(document.querySelectorAll('[data-group=people] .chip-label')).map(e => e.textContent)")
    assert "Sam Altman" in people
    assert await panel.eval("document.querySelectorAll('#keyphrases .chip').length") >= 1
    assert await panel.eval("document.getElementById('progress').hidden")
    assert await panel.eval("document.getElementById('main').getAttribute('aria-busy')") == "false"
    assert "Not kept" in await panel.text("#foot")
    assert await panel.eval("state.result.timings_ms.total") > 0 and await panel.eval("state.result.story_id")
    after = {name: await panel.eval(TOP.format(name)) for name in ("title", "keyphrases-heading")}
    assert after == before
    assert proxy.streamed == 1  # the panel asked for the stream, and got it


def test_firefox_renders_the_facts_before_the_rest(firefox, proxy: HoldingProxy, news_server: PageServer):
    """The same in Debian's firefox-esr (the sidebar opened by the toolbar widget's click, as in
    test_firefox.py): the facts while the rest is held, then everything."""
    firefox.configure(proxy.url, token=API_TOKEN, archive=False)
    firefox.open(news_server.add("altman.html", ALTMAN_OPEN_MODELS))
    panel = firefox.click_toolbar()
    panel.wait_for("document.body.dataset.state === 'partial'")
    assert proxy.first_line_sent.is_set() and not proxy.release.is_set()
    assert panel.text("#title") == ALTMAN_SCRIPT_TITLE
    assert panel.eval("document.querySelectorAll('#result .chip').length") == 0
    assert "Still working" in panel.text("#progress")
    proxy.release.set()
    panel.wait_for("document.body.dataset.state === 'result'")
    people = panel.eval(
        "Array.from(document.querySelectorAll('[data-group=people] .chip-label')).map(e => e.textContent)")
    assert "Sam Altman" in people and panel.eval("document.getElementById('progress').hidden")
    assert proxy.streamed == 1


async def test_a_stream_that_fails_after_the_facts_keeps_them_under_the_error(
        browser: Browser, proxy: HoldingProxy, news_server: PageServer):
    await browser.configure(proxy.url, token=API_TOKEN, archive=False)
    page = await browser.open(news_server.add("altman.html", ALTMAN_OPEN_MODELS))
    panel = await browser.click_toolbar(page)
    await panel.wait_for("document.body.dataset.state === 'partial'")
    proxy.instead = json.dumps({"event": "error", "status": 503, "title": "Service unavailable",
                                "detail": "the analysis took longer than its 20 s deadline"}).encode() + b"\n"
    proxy.release.set()
    await panel.wait_for("document.body.dataset.state === 'error'")
    assert "503 Service unavailable" in await panel.text("#status-title")
    assert "20 s deadline" in await panel.text("#status-detail")
    assert await panel.eval("!document.getElementById('retry').closest('[hidden]')")  # Retry is offered
    # What had arrived stays on screen, without the placeholders of what will not come.
    assert await panel.eval("!document.getElementById('result').hidden")
    assert await panel.text("#title") == ALTMAN_SCRIPT_TITLE
    assert await panel.eval("document.querySelectorAll('#result .sk').length") == 0
    assert await panel.eval("document.getElementById('progress').hidden")
