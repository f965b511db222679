"""The options page's "Import your reading history" end to end: a real export file chosen in the real
options page of the extension in Chromium, sent to the real server, its progress and failures shown."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from e2e_harness import API_TOKEN, ROOT, Browser, artifact, start_server
from e2e_pages import ALTMAN_OPEN_MODELS, LLAMA_PRESSURE

pytestmark = pytest.mark.e2e

WALLABAG = [
    {"id": 1, "title": "Altman weighs open models", "url": "https://ledger.example/ai", "content": ALTMAN_OPEN_MODELS,
     "created_at": "2026-11-18T10:00:00+0100", "published_at": "2026-11-16T23:00:00+0100"},
    {"id": 2, "title": "no url", "content": "<p>x</p>"},
    {"id": 3, "title": "Meta's Llama release", "url": "https://ledger.example/llama", "content": LLAMA_PRESSURE},
]


async def options_page(browser: Browser, server: str, token: str):
    page = await browser.context.new_page()
    await page.goto(browser.origin + "/options.html")
    await page.wait_for_selector("body[data-loaded=true]")
    await page.fill("#server", server)
    await page.fill("#token", token)
    return page


async def send(page, path: Path, expect: str) -> str:
    """Choose ``path`` in the file input, press Send; the status once it shows ``expect``."""
    await page.set_input_files("#import-file", str(path))
    await page.click("#import-send")
    status = page.locator("#import-status")
    await status.filter(has_text=expect).wait_for(timeout=120_000)
    await page.locator("#import-send:enabled").wait_for(timeout=30_000)
    return await status.inner_text()


def new_token(server, name: str, scope: str) -> str:
    """A member's token, made by the command line on the server's archive."""
    created = subprocess.run([sys.executable, "-m", "backstory", "tokens", "create", name, "--scope", scope,
                              "--archive", str(server.workdir / "archive.sqlite3")],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def stories(server: str, token: str) -> int:
    request = urllib.request.Request(server + "/api/v1/stories", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["total"]


async def test_an_export_is_imported_from_the_options_page(browser: Browser, backstory_server, tmp_path: Path):
    export = tmp_path / "wallabag-export.json"
    export.write_text(json.dumps(WALLABAG), encoding="utf-8")
    page = await options_page(browser, backstory_server.url, API_TOKEN)

    done = await send(page, export, "Import done")
    assert "(wallabag): 2 imported, 0 skipped, 1 failed" in done
    assert await page.locator("#import-status").get_attribute("data-kind") == "ok"
    assert await page.locator("#import-failures li").all_inner_texts() == ["entry 2: no URL"]
    assert await page.locator("#import-progress").is_hidden()
    assert stories(backstory_server.url, API_TOKEN) == 2
    await page.screenshot(path=str(artifact("options-import-done.png")), full_page=True)

    # Sent again: everything the archive has is skipped.
    again = await send(page, export, "Import done")
    assert "0 imported, 2 skipped, 1 failed" in again and stories(backstory_server.url, API_TOKEN) == 2

    # A file that is no export: the server's reason, in words.
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n", encoding="utf-8")
    refused = await send(page, notes, "cannot read this file as an export")
    assert "(422)" in refused and "cannot tell the export's format" in refused
    assert await page.locator("#import-status").get_attribute("data-kind") == "error"

    # A wrong token (401), and a member's read token (403): what to do about each.
    await page.fill("#token", "bsk_not-a-member")
    assert "needs your API token" in await send(page, export, "(401)")
    await page.fill("#token", new_token(backstory_server, "importer", "read"))
    assert "needs write access" in await send(page, export, "(403)")
    # OPML (feeds to subscribe to) is an admin's: a write token is told so.
    feeds = tmp_path / "feeds.opml"
    feeds.write_text('<?xml version="1.0"?><opml version="2.0"><body>'
                     '<outline type="rss" text="Ledger" xmlUrl="https://ledger.invalid/feed.xml"/></body></opml>')
    await page.fill("#token", new_token(backstory_server, "writer", "write"))
    assert "admin token" in await send(page, feeds, "(403)")


async def test_a_file_over_the_servers_limit_is_explained(browser: Browser, tmp_path: Path):
    server = start_server(tmp_path / "small", {"BACKSTORY_MAX_IMPORT_BYTES": "2048"})
    try:
        export = tmp_path / "wallabag-export.json"
        export.write_text(json.dumps(WALLABAG), encoding="utf-8")
        assert export.stat().st_size > 2048
        page = await options_page(browser, server.url, "")
        told = await send(page, export, "(413)")
        assert "too large for this server" in told and "BACKSTORY_MAX_IMPORT_BYTES" in told
    finally:
        server.stop()
