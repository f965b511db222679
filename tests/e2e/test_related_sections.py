"""The related stories in the panel as two sections: "Same story elsewhere" (the sources side by side) and
"Backstory" (a timeline, oldest first, each step with its reason), from a real server, in Chromium's side panel
and in Firefox's sidebar."""

from __future__ import annotations

import json
import urllib.request
from html import escape

import pytest
from e2e_harness import API_TOKEN, Browser, PageServer, artifact
from firefox_harness import Firefox

pytestmark = pytest.mark.e2e

READ = ("Orlan Shipping fined over Tessaly harbour oil spill", "Harbour Gazette", "2026-03-10", [
    "The harbour authority of Tessaly fined Orlan Shipping 4.2 million euros on Tuesday for the oil spill that "
    "blackened the Marrow beaches last week.",
    "Harbour master Ilse Varga said the tanker Bright Meridian had pumped its bilge inside the breakwater, and "
    "that samples taken by her inspectors matched the oil found on the sand.",
    "Orlan Shipping chief executive Tomas Greer said the company would appeal and had already paid for the "
    "clean-up of the Marrow beaches, where volunteers worked through the weekend."])
WIRE = ("Tessaly fines tanker owner Orlan for Marrow beach spill", "Coastal Wire", "2026-03-10", [
    "The harbour authority of Tessaly fined Orlan Shipping 4.2 million euros on Tuesday for the oil spill that "
    "blackened the Marrow beaches last week.",
    "Harbour master Ilse Varga said the Bright Meridian had pumped its bilge inside the breakwater; her "
    "inspectors matched samples to the oil on the sand.",
    "Greer, the chief executive of Orlan Shipping, told reporters in Tessaly the company would appeal the fine."])
# Earlier stories on the same company and people, each another event: the backstory, oldest first.
HIRED = ("Orlan Shipping names Tomas Greer chief executive", "Business Daily", "2025-06-02", [
    "Orlan Shipping appointed Tomas Greer as chief executive on Monday, the Tessaly company said.",
    "Greer ran the tanker fleet for six years and takes over as Orlan Shipping orders four new tankers for its "
    "Tessaly routes; the company's shares rose two percent in Tessaly trading."])
AGROUND = ("Orlan tanker Bright Meridian runs aground off Tessaly", "Tessaly Times", "2024-11-20", [
    "The Orlan Shipping tanker Bright Meridian ran aground on a sandbank off Tessaly on Wednesday night; no oil "
    "leaked, harbour master Ilse Varga said.",
    "Tugs refloated the Bright Meridian at high tide and Orlan Shipping said the tanker would be inspected "
    "in Tessaly before it sails again."])


def page(story: tuple[str, str, str, list[str]]) -> str:
    title, site, date, paragraphs = story
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta property="og:title" content="{escape(title)}"><meta property="og:site_name" content="{escape(site)}">
<meta property="article:published_time" content="{date}T08:00:00Z"></head>
<body><article><h1>{escape(title)}</h1><time datetime="{date}">{date}</time>
{body}</article></body></html>"""


def archive_story(server_url: str, url: str, html: str) -> dict:
    """Store a story through the API (what another reader's click would have done)."""
    request = urllib.request.Request(
        server_url + "/api/v1/analyze", data=json.dumps({"url": url, "html": html}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def stored(backstory_server, news_server: PageServer) -> tuple[dict[str, str], str]:
    """The wire copy and the two earlier stories, stored once for the module's server, and the URL of the
    story the reader opens."""
    urls = {}
    for name, story in (("wire", WIRE), ("hired", HIRED), ("aground", AGROUND)):
        urls[name] = news_server.add(f"{name}.html", page(story))
        answer = archive_story(backstory_server.url, urls[name], page(story))
        assert answer["archived"], answer
    return urls, news_server.add("read.html", page(READ))


SOURCES = """Array.from(document.querySelectorAll('#same-event li')).map(li => ({
    site: li.querySelector('.source-site').textContent, href: li.querySelector('a').href}))"""
STEPS = """Array.from(document.querySelectorAll('#backstory li')).map(li => ({
    href: li.querySelector('a').href, date: li.dataset.date, shown: li.querySelector('.step-date').textContent,
    why: (li.querySelector('.why') || {}).textContent || ''}))"""
HEADINGS = """[document.getElementById('same-event-section').hidden, document.getElementById('backstory-section').hidden,
    document.getElementById('same-event-heading').textContent, document.getElementById('backstory-heading').textContent]"""


def check_sections(headings: list, sources: list[dict], steps: list[dict], urls: dict[str, str]) -> None:
    assert headings == [False, False, "Same story elsewhere", "Backstory"], headings
    assert [s["href"] for s in sources] == [urls["wire"]], sources
    assert sources[0]["site"] == "Coastal Wire"
    assert [s["href"] for s in steps] == [urls["aground"], urls["hired"]], steps  # oldest first
    assert [s["date"][:10] for s in steps] == ["2024-11-20", "2025-06-02"]
    assert "2024" in steps[0]["shown"] and "2025" in steps[1]["shown"]
    assert all(s["why"].startswith("shares: ") for s in steps), steps
    assert any(name in steps[1]["why"] for name in ("Tomas Greer", "Orlan Shipping")), steps


async def test_the_panel_shows_the_same_story_elsewhere_and_the_backstory_in_date_order(
        browser: Browser, backstory_server, stored):
    await browser.configure(backstory_server.url, token=API_TOKEN)
    urls, read_url = stored
    panel = await browser.click_toolbar(await browser.open(read_url))
    assert await panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "result", \
        await panel.text()
    check_sections(await panel.eval(HEADINGS), await panel.eval(SOURCES), await panel.eval(STEPS), urls)
    # the sources sit in a grid, side by side when there are several; nothing wider than the panel
    assert await panel.eval("getComputedStyle(document.getElementById('same-event')).display") == "grid"
    assert await panel.eval("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    shot = await panel.screenshot(artifact("panel-sections.png"))
    assert shot.stat().st_size > 1000


def test_firefox_shows_the_same_sections(firefox: Firefox, backstory_server, stored):
    assert "Saved" in firefox.configure(backstory_server.url, token=API_TOKEN)
    urls, read_url = stored
    firefox.open(read_url)
    panel = firefox.click_toolbar()  # the toolbar button's own click (see test_firefox.py)
    assert panel.wait_state("result", "error", "unreachable", "not-article", "cannot-read") == "result", panel.text()
    check_sections(panel.eval(HEADINGS), panel.eval(SOURCES), panel.eval(STEPS), urls)
    assert panel.eval("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert panel.screenshot(artifact("firefox-panel-sections.png")).stat().st_size > 1000
