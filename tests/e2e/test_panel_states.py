"""The panel's failure states end to end: a reverse proxy in front of the real server (as a team's
Caddy or nginx is) fails on command — a 5xx, a 413, a gateway's 502/504 without problem+json, an
answer from something that is not Backstory, a request that never returns — and the panel must
say plainly what happened, offer a Retry that really asks again, and drop an answer that arrives
after the reader moved on. Highlighting on a page that changed, or a tab that closed, says so."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
from e2e_harness import API_TOKEN, Browser, PageServer, QuietHandler, serve_on_loopback
from e2e_pages import ALTMAN_OPEN_MODELS, ALTMAN_SCRIPT_TITLE, HIGHLIGHT_STORY, LLAMA_PRESSURE

pytestmark = pytest.mark.e2e

STATES = ("result", "error", "unreachable", "not-article", "cannot-read")


class Plan:
    """What the proxy does with one analyze request instead of passing it on at once."""

    def __init__(self, status: int = 0, body: bytes = b"", content_type: str = "text/plain",
                 hold: threading.Event | None = None) -> None:
        self.status, self.body, self.content_type, self.hold = status, body, content_type, hold
        self.answered = threading.Event()  # set once the proxy has written its answer


class FailingProxy:
    """Passes every request to ``upstream`` unchanged, except analyze requests that meet a plan."""

    def __init__(self, upstream: str) -> None:
        self.plans: list[Plan] = []
        self.analyze_requests = 0
        target = urlsplit(upstream)
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                plan = None
                if self.command == "POST" and self.path.startswith("/api/v1/analyze"):
                    owner.analyze_requests += 1
                    plan = owner.plans.pop(0) if owner.plans else None
                try:
                    if plan is not None and plan.hold is not None:
                        plan.hold.wait(120)  # a request the upstream takes its time over
                    if plan is not None and plan.status:
                        self._answer(plan.status, plan.content_type, plan.body)
                        return
                    upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    upstream_conn.request(self.command, self.path, body=body, headers=headers)
                    response = upstream_conn.getresponse()
                    self._answer(response.status, response.getheader("Content-Type", ""), response.read())
                    upstream_conn.close()
                finally:
                    if plan is not None:
                        plan.answered.set()

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd, _ = serve_on_loopback(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy(backstory_server) -> Any:
    made = FailingProxy(backstory_server.url)
    yield made
    for plan in made.plans:  # let a held request go, so the proxy's thread ends
        if plan.hold is not None:
            plan.hold.set()
    made.close()


def problem(status: int, title: str, detail: str) -> Plan:
    return Plan(status, json.dumps({"status": status, "title": title, "detail": detail}).encode(),
                "application/problem+json")


async def test_each_failure_is_said_plainly_and_retry_asks_again(
        browser: Browser, proxy: FailingProxy, news_server: PageServer):
    await browser.configure(proxy.url, token=API_TOKEN, archive=False)
    page = await browser.open(news_server.add("altman.html", ALTMAN_OPEN_MODELS))

    cases = [
        # (what the proxy answers, the state, words the title must hold, words the detail must hold)
        (problem(500, "Internal Server Error", "the archive is locked"), "error", "500 Internal Server Error",
         "the archive is locked"),
        (problem(413, "Payload Too Large", "the page is 12,000,000 bytes"), "error", "413 Payload Too Large",
         "12,000,000 bytes"),
        (Plan(502, b"<html><body>Bad Gateway</body></html>", "text/html"), "error", "502", "answered 502"),
        (Plan(504, b""), "error", "504", "answered 504 without an explanation"),
        (Plan(200, b'{"hello": "world"}', "application/json"), "error", "Unexpected answer",
         "did not answer like a Backstory server"),
        (Plan(200, b"<html>a captive portal</html>", "text/html"), "error", "Unexpected answer",
         "did not answer like a Backstory server"),
    ]
    panel = None
    for plan, state, title, detail in cases:
        proxy.plans.append(plan)
        asked = proxy.analyze_requests
        panel = await browser.click_toolbar(page)
        assert await asyncio.to_thread(plan.answered.wait, 60)  # so the state below is this answer's
        await panel.wait_for(f"document.getElementById('status-title').innerText.includes({json.dumps(title)})")
        assert await panel.wait_state(*STATES) == state
        assert detail in await panel.text("#status-detail"), await panel.text()
        assert await panel.eval("!document.getElementById('retry').closest('[hidden]')")  # Retry is offered
        assert proxy.analyze_requests == asked + 1

    # Retry sends the page again (no plan left: the proxy passes it to the real server).
    asked = proxy.analyze_requests
    await panel.click("#retry")
    await panel.wait_for("document.body.dataset.state === 'result'")
    assert proxy.analyze_requests == asked + 1
    assert await panel.text("#title") == ALTMAN_SCRIPT_TITLE


async def test_an_answer_for_a_page_the_reader_left_is_dropped(
        browser: Browser, proxy: FailingProxy, news_server: PageServer):
    await browser.configure(proxy.url, token=API_TOKEN, archive=False)
    slow = Plan(hold=threading.Event())
    proxy.plans.append(slow)
    first = await browser.open(news_server.add("altman.html", ALTMAN_OPEN_MODELS))
    panel = await browser.click_toolbar(first)
    await panel.wait_for("document.body.dataset.state === 'loading'")
    while proxy.analyze_requests < 1:  # the first story's request is at the proxy, held
        await asyncio.sleep(0.05)

    # The reader moves to another story and clicks again; its answer comes first.
    second = await browser.context.new_page()
    await second.goto(news_server.add("llama.html", LLAMA_PRESSURE))
    await second.bring_to_front()
    await browser.click_toolbar(second)
    await panel.wait_for("document.body.dataset.state === 'result'")
    assert await panel.text("#title") == "Meta's open Llama push puts pressure on OpenAI"

    # Now the first story's answer arrives: the panel keeps showing the story the reader is on.
    slow.hold.set()
    assert await asyncio.to_thread(slow.answered.wait, 60)
    await asyncio.sleep(1.5)  # time for the panel to have rendered it, had it not dropped it
    assert await panel.text("#title") == "Meta's open Llama push puts pressure on OpenAI"
    assert await panel.eval("document.body.dataset.state") == "result"


async def test_no_answer_within_the_panels_deadline(browser: Browser, proxy: FailingProxy, news_server: PageServer):
    await browser.configure(proxy.url, token=API_TOKEN, archive=False)
    page = await browser.open(news_server.add("altman.html", ALTMAN_OPEN_MODELS))
    panel = await browser.click_toolbar(page)  # a first, ordinary click opens the panel
    assert await panel.wait_state(*STATES) == "result"

    # The panel gives a request 90 s; its timers run 200 times faster here, so the real
    # deadline path (the abort, the message naming the endpoint and the limit) runs in a moment.
    await panel.eval("""(() => { const real = window.setTimeout;
        window.setTimeout = (fn, ms, ...args) => real(fn, (ms || 0) / 200, ...args); })()""")
    hung = Plan(hold=threading.Event())
    proxy.plans.append(hung)
    await browser.click_toolbar(page)
    await panel.wait_for("document.body.dataset.state === 'unreachable'")
    assert "Can't reach your Backstory server" in await panel.text("#status-title")
    assert f"No answer from {proxy.url}/api/v1/analyze within 90 seconds" in await panel.text("#status-detail")
    hung.hold.set()


async def test_highlighting_a_page_that_changed_or_closed_says_so(
        browser: Browser, proxy: FailingProxy, news_server: PageServer):
    await browser.configure(proxy.url, token=API_TOKEN, archive=False)
    page = await browser.open(news_server.add("smaller-models.html", HIGHLIGHT_STORY))
    panel = await browser.click_toolbar(page)
    assert await panel.wait_state(*STATES) == "result", await panel.text()
    chip = "[data-group=people] .chip"
    index = await panel.eval(f"""Array.from(document.querySelectorAll('{chip}'))
        .findIndex(c => c.querySelector('.chip-label').textContent === 'Sam Altman')""")
    assert index >= 0, await panel.text()
    await panel.eval(f"document.querySelectorAll('{chip}')[{index}].id = 'altman-chip'")

    # The page's text changed since it was read: nothing to mark, and the panel says why.
    await page.evaluate("document.body.innerHTML = '<p>This page was replaced.</p>'")
    await panel.click("#altman-chip")
    await panel.wait_for("document.getElementById('highlight-status').innerText.includes('Couldn')")
    assert "it may have changed since it was read" in await panel.text("#highlight-status")
    assert await panel.eval("document.getElementById('altman-chip').getAttribute('aria-pressed')") == "false"

    # The tab is gone: the panel says it cannot highlight there any more.
    keep = await browser.context.new_page()  # the window stays open
    await page.close()
    await panel.click("#altman-chip")
    await panel.wait_for("document.getElementById('highlight-status').innerText.includes('any more')")
    assert "Click the Backstory button on it again" in await panel.text("#highlight-status")
    await keep.close()
