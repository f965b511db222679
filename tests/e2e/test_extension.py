"""The extension end to end: a real toolbar click in Chromium opens the side panel, which reads the rendered
page, asks the real Backstory server and shows the story's facts, keyphrases, entities and related stories."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from e2e_harness import API_TOKEN, PANEL_TIMEOUT, ROOT, Browser, PageServer, artifact, free_port
from e2e_pages import (
    ALTMAN_OPEN_MODELS,
    ALTMAN_SCRIPT_TITLE,
    HIGHLIGHT_STORY,
    LLAMA_PRESSURE,
    NOT_AN_ARTICLE,
)

pytestmark = pytest.mark.e2e

MARKS = "Array.from(document.querySelectorAll('mark[data-backstory-hl]'))"


async def entity_names(panel, group: str) -> list[str]:
    return await panel.eval(
        f"Array.from(document.querySelectorAll('[data-group={group}] .chip-label')).map(e => e.textContent)")


async def test_toolbar_click_shows_the_backstory(browser: Browser, backstory_server, news_server: PageServer):
    saved = await browser.configure(backstory_server.url, token=API_TOKEN)
    assert "Saved" in saved

    # First story, on an empty archive.
    first_url = news_server.add("altman-open-models.html", ALTMAN_OPEN_MODELS)
    first = await browser.open(first_url)
    assert await first.title() == ALTMAN_SCRIPT_TITLE  # the script ran in the browser
    panel = await browser.click_toolbar(first)
    assert await panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "result", \
        await panel.text()

    # The headline only exists after the page's script ran: the rendered HTML reached the server.
    assert await panel.text("#title") == ALTMAN_SCRIPT_TITLE
    assert "The Daily Ledger" in await panel.text("#site-byline")
    assert "Priya Raman" in await panel.text("#site-byline")
    date_time = await panel.text("#date-time")
    assert "2026" in date_time and "min read" in date_time
    keyphrases = await panel.eval("document.querySelectorAll('#keyphrases .chip').length")
    assert keyphrases >= 1
    people = await entity_names(panel, "people")
    organisations = await entity_names(panel, "organisations")
    assert "Sam Altman" in people
    assert "Satya Nadella" in people  # only in the paragraph the script added
    assert "OpenAI" in organisations
    assert await panel.eval("document.querySelector('[data-group=places]') !== null")
    altman_count = await panel.eval("""Array.from(document.querySelectorAll('[data-group=people] .chip'))
        .find(c => c.querySelector('.chip-label').textContent === 'Sam Altman').querySelector('.count').textContent""")
    assert int(altman_count) >= 2
    # Nothing archived before this story.
    assert await panel.eval("!document.getElementById('related-empty').hidden")
    assert "Nothing related yet" in await panel.text("#related-empty")
    assert "Kept in your archive" in await panel.text("#foot")

    # Second, related story: the first one shows up with the reason it is related.
    second_url = news_server.add("llama-pressure.html", LLAMA_PRESSURE)
    second = await browser.open(second_url)
    await panel.eval("""(() => {
        window.seen = [];
        const note = () => window.seen.push({state: document.body.dataset.state,
            title: document.getElementById('status-title').textContent,
            detail: document.getElementById('status-detail').textContent,
            skeletonTop: document.getElementById('skeleton').getBoundingClientRect().top});
        new MutationObserver(note).observe(document.body, {attributes: true, childList: true, subtree: true,
                                                          characterData: true});
    })()""")
    clicked = time.monotonic()
    again = await browser.click_toolbar(second)
    assert again is panel  # the same, already open side panel
    await panel.wait_for(
        f"document.body.dataset.state === 'result' && "
        f"document.getElementById('title').textContent === {json.dumps(await second.title())}", PANEL_TIMEOUT)
    took = time.monotonic() - clicked
    server_ms = await panel.eval("state.result.timings_ms.total")
    artifact("timings.json").write_text(json.dumps({"click_to_result_s": round(took, 3), "server_ms": server_ms}))
    # While it worked, the panel said what it was doing, and the placeholder did not move.
    loading = [step for step in await panel.eval("window.seen") if step["state"] == "loading"]
    assert any(step["title"] == "Reading this page…" for step in loading), loading
    assert any(step["title"] == "Analyzing the story…" and backstory_server.url in step["detail"] for step in loading)
    assert len({step["skeletonTop"] for step in loading}) == 1, loading
    related = await panel.eval("""Array.from(document.querySelectorAll('#related li')).map(li => ({
        title: li.querySelector('.related-title').textContent,
        href: li.querySelector('a') && li.querySelector('a').href,
        target: li.querySelector('a') && li.querySelector('a').target,
        why: (li.querySelector('.why') || {}).textContent || ''}))""")
    mine = [r for r in related if r["href"] == first_url]
    assert mine, related
    assert mine[0]["title"] == ALTMAN_SCRIPT_TITLE
    assert mine[0]["target"] == "_blank"
    assert mine[0]["why"].startswith("shares: ")
    assert any(name in mine[0]["why"] for name in ("Sam Altman", "OpenAI", "Meta", "Mark Zuckerberg")), mine[0]
    assert await panel.eval("document.getElementById('related-empty').hidden")

    # Readable in a narrow panel: nothing wider than the panel itself.
    assert await panel.eval("document.documentElement.clientWidth") <= 400
    assert await panel.eval("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert await panel.eval("document.querySelector('.bar').getBoundingClientRect().height") < 50  # one line
    assert await panel.eval("parseFloat(getComputedStyle(document.body).fontSize)") >= 13
    shot = await panel.screenshot(artifact("panel-related.png"))
    assert shot.stat().st_size > 1000
    await panel.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    assert await panel.eval("getComputedStyle(document.body).backgroundColor") != "rgb(255, 255, 255)"
    await panel.screenshot(artifact("panel-related-dark.png"))
    await panel.send("Emulation.setEmulatedMedia", {"features": []})

    # Only the browser ever asked for the pages: the server worked from the HTML the extension sent.
    asked = [agent for path, agent in news_server.requests if path.endswith((".html",))]
    assert asked and all("Chrome" in agent for agent in asked), asked


async def test_entity_click_highlights_its_mentions_and_clears_them(
        browser: Browser, backstory_server, news_server: PageServer):
    await browser.configure(backstory_server.url, token=API_TOKEN, archive=False)
    page = await browser.open(news_server.add("smaller-models.html", HIGHLIGHT_STORY))
    before = await page.evaluate("document.body.innerText")
    panel = await browser.click_toolbar(page)
    assert await panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "result", \
        await panel.text()
    assert "Not kept" in await panel.text("#foot")
    if await panel.eval("!document.getElementById('related-empty').hidden"):
        assert "Keep stories I read" in await panel.text("#related-empty")

    chip = "[data-group=people] .chip"
    index = await panel.eval(f"""Array.from(document.querySelectorAll('{chip}'))
        .findIndex(c => c.querySelector('.chip-label').textContent === 'Sam Altman')""")
    assert index >= 0, await panel.text()
    count = int(await panel.eval(f"document.querySelectorAll('{chip}')[{index}].querySelector('.count').textContent"))
    await panel.eval(f"document.querySelectorAll('{chip}')[{index}].id = 'altman-chip'")

    await panel.click("#altman-chip")
    await page.wait_for_function(f"{MARKS}.length > 0")
    marks = await page.evaluate(f"""{MARKS}.map(m => ({{text: m.textContent, inNav: !!m.closest('nav'),
        label: m.dataset.backstoryHl}}))""")
    assert all(not m["inNav"] for m in marks), marks  # the menu's "Sam Altman profile" is not the story
    assert all(m["label"] == "Sam Altman" for m in marks)
    assert "".join(m["text"] for m in marks).replace(" ", "") == "SamAltman" * count
    assert count >= 3  # the story's three (the server's text may also hold the headline's)
    assert await page.evaluate("document.querySelector('b mark[data-backstory-hl]')?.textContent") == "Sam"
    assert await panel.eval("document.getElementById('altman-chip').getAttribute('aria-pressed')") == "true"
    assert f"Highlighted {count} mentions" in await panel.text("#highlight-status")
    assert await page.evaluate("document.body.innerText") == before  # marks add no text

    await panel.click("#altman-chip")
    await page.wait_for_function(f"{MARKS}.length === 0")
    assert await panel.eval("document.getElementById('altman-chip').getAttribute('aria-pressed')") == "false"
    assert await page.evaluate("document.body.innerText") == before
    assert await page.evaluate("document.querySelector('b').textContent") == "Sam"

    # A keyphrase chip highlights its mentions by the server's offsets, here from the keyboard:
    # "smaller models" marks the story's "smaller model" too, which no search for the phrase finds.
    chosen = await panel.eval("""(() => {
        const kp = state.result.keyphrases.find(k => k.phrase === 'smaller models');
        if (!kp) return null;
        const chip = Array.from(document.querySelectorAll('#keyphrases .chip'))
            .find(c => c.querySelector('.chip-label').textContent === kp.phrase);
        chip.id = 'phrase-chip';
        return {needles: mentionItems(kp.mentions).map(i => i.needle), searched: phraseItems(kp.phrase).length};
    })()""")
    assert chosen, await panel.text("#keyphrases")
    assert "smaller model" in chosen["needles"] and chosen["searched"] < len(chosen["needles"]), chosen
    await panel.press_enter_on("#phrase-chip")
    await page.wait_for_function(f"{MARKS}.length > 0")
    texts = await page.evaluate(f"{MARKS}.map(m => m.textContent)")
    assert re.sub(r"\s+", "", "".join(texts)) == re.sub(r"\s+", "", "".join(chosen["needles"])), (texts, chosen)
    assert f"Highlighted {len(chosen['needles'])} mentions" in await panel.text("#highlight-status")
    assert await panel.eval("document.getElementById('altman-chip').getAttribute('aria-pressed')") == "false"
    await panel.press_enter_on("#phrase-chip")
    await page.wait_for_function(f"{MARKS}.length === 0")
    assert await page.evaluate("document.body.innerText") == before


async def test_not_an_article(browser: Browser, backstory_server, news_server: PageServer):
    await browser.configure(backstory_server.url, token=API_TOKEN, archive=False)
    page = await browser.open(news_server.add("sign-in.html", NOT_AN_ARTICLE))
    panel = await browser.click_toolbar(page)
    assert await panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "not-article", \
        await panel.text()
    assert "doesn't look like an article" in await panel.text("#status-title")
    assert await panel.text("#status-detail")  # the server's own explanation


async def test_server_down_shows_the_address_it_tried(browser: Browser, news_server: PageServer):
    nobody = f"http://127.0.0.1:{free_port()}"
    await browser.configure(nobody)
    page = await browser.open(news_server.add("altman.html", ALTMAN_OPEN_MODELS))
    panel = await browser.click_toolbar(page)
    assert await panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "unreachable"
    assert "Can't reach your Backstory server" in await panel.text("#status-title")
    assert f"{nobody}/api/v1/analyze" in await panel.text("#status-detail")
    assert "backstory serve" in await panel.text("#status-hint")
    assert await panel.eval("!document.getElementById('retry').closest('[hidden]')")
    await panel.screenshot(artifact("panel-unreachable.png"))


async def test_token_from_the_options_page_is_sent(browser: Browser, backstory_server, news_server: PageServer):
    # No token: the server refuses, and the panel shows the server's own detail.
    await browser.configure(backstory_server.url, token="", archive=False)
    page = await browser.open(news_server.add("altman.html", ALTMAN_OPEN_MODELS))
    panel = await browser.click_toolbar(page)
    assert await panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "error"
    assert "401" in await panel.text("#status-title")
    assert "Authorization: Bearer" in await panel.text("#status-detail")
    assert "API token in Options" in await panel.text("#status-hint")

    # The options page saves address and token; the next click carries the token and is accepted.
    await browser.configure(backstory_server.url, token=API_TOKEN, archive=False)
    stored = await browser.context.service_workers[0].evaluate(
        "Promise.all([chrome.storage.sync.get(null), chrome.storage.local.get(null)])")
    assert stored[0] == {"server": backstory_server.url, "archive": False}
    assert stored[1] == {"token": API_TOKEN}
    await browser.click_toolbar(page)
    assert await panel.wait_state("result") == "result", await panel.text()
    assert await panel.text("#title") == ALTMAN_SCRIPT_TITLE

    # "Check server" on the options page confirms the server is up and takes the token.
    options = await browser.context.new_page()
    await options.goto(browser.origin + "/options.html")
    await options.wait_for_selector("body[data-loaded=true]")
    await options.click("#check")
    await options.locator("#save-status").filter(has_text="The server is ready").wait_for(timeout=15000)
    await options.locator("#save-status").filter(has_text="You are api-token (admin access)").wait_for(timeout=15000)
    await options.fill("#token", "wrong")
    await options.click("#check")
    await options.locator("#save-status").filter(has_text="different API token").wait_for(timeout=15000)

    # A wrong token in the panel: its own state, with what to do.
    await browser.configure(backstory_server.url, token="bsk_not-a-member", archive=False)
    await page.bring_to_front()  # the story's tab, not the options page, is the one the button reads
    await browser.click_toolbar(page)
    assert await panel.wait_state("error") == "error"  # (the last result shows until the new state comes)
    assert "needs your API token" in await panel.text("#status-title")
    assert "Options" in await panel.text("#status-hint")

    # A member's named read token: the options page says who it is; keeping a story is refused (403).
    created = subprocess.run([sys.executable, "-m", "backstory", "tokens", "create", "reader", "--scope", "read",
                              "--archive", str(backstory_server.workdir / "archive.sqlite3")],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    reader = created.stdout.strip()
    await options.fill("#token", reader)
    await options.click("#check")
    await options.locator("#save-status").filter(has_text="You are reader (read access)").wait_for(timeout=15000)
    await browser.configure(backstory_server.url, token=reader, archive=True)
    await page.bring_to_front()
    await browser.click_toolbar(page)
    await panel.wait_for("document.querySelector('#status-title')?.innerText.includes('may not keep stories')")
    assert "write access" in await panel.text("#status-hint")
    await browser.configure(backstory_server.url, token=reader, archive=False)  # reading is a read token's right
    await page.bring_to_front()
    await browser.click_toolbar(page)
    assert await panel.wait_state("result") == "result", await panel.text()


async def test_options_page_rejects_a_bad_address(browser: Browser):
    page = await browser.context.new_page()
    await page.goto(browser.origin + "/options.html")
    await page.wait_for_selector("body[data-loaded=true]")
    assert await page.input_value("#server") == "http://127.0.0.1:8000"  # the default
    assert await page.is_checked("#archive")
    await page.fill("#server", "ftp://files.example.org")
    await page.click("#save")
    status = page.locator("#save-status")
    await status.filter(has_text="http:// or https://").wait_for(timeout=5000)
    assert await status.get_attribute("data-kind") == "error"
    stored = await browser.context.service_workers[0].evaluate("chrome.storage.sync.get(null)")
    assert "server" not in stored


async def test_browser_pages_are_declined_plainly(browser: Browser, news_server: PageServer):
    await browser.configure(f"http://127.0.0.1:{free_port()}")
    page = await browser.open("chrome://version/")
    panel = await browser.click_toolbar(page)
    assert await panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "cannot-read"
    assert "can't read this page" in await panel.text("#status-title")
    assert "Browser pages" in await panel.text("#status-detail")


MINIMAL_PDF = """%PDF-1.4
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj
trailer << /Root 1 0 R >>
%%EOF
"""


async def test_pdfs_are_declined_plainly(browser: Browser, news_server: PageServer):
    await browser.configure(f"http://127.0.0.1:{free_port()}")
    page = await browser.open(news_server.add("report.pdf", MINIMAL_PDF, "application/pdf"))
    panel = await browser.click_toolbar(page)
    assert await panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "cannot-read"
    assert "PDF" in await panel.text("#status-detail")


async def test_a_team_server_address_asks_for_that_origin_only(browser: Browser):
    page = await browser.context.new_page()
    await page.goto(browser.origin + "/options.html")
    await page.wait_for_selector("body[data-loaded=true]")
    await page.fill("#server", "https://backstory.example.org:8443/")
    await page.evaluate("""() => {  // watch the real call on its way to the browser
        const real = chrome.permissions.request.bind(chrome.permissions);
        window.asked = [];
        chrome.permissions.request = (what) => { window.asked.push(what); return real(what); };
    }""")
    await page.click("#save")
    # The browser's own permission prompt is now up (it cannot be answered from a test); the page says so.
    await page.locator("#save-status").filter(
        has_text="allow Backstory to contact https://backstory.example.org:8443").wait_for(timeout=5000)
    assert await page.evaluate("window.asked") == [{"origins": ["https://backstory.example.org/*"]}]
    granted = await browser.context.service_workers[0].evaluate("chrome.permissions.getAll()")
    assert granted["origins"] == ["http://127.0.0.1/*", "http://localhost/*"]  # nothing more until allowed
