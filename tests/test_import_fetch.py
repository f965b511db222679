"""URL-only import entries fetched politely: a Pocket CSV, a bookmarks file and an Omnivore zip
whose pages a server on 127.0.0.x (written here) serves, imported through the command line into a
real SQLite archive. Its robots.txt disallows one path; one URL is gone (404), one is no article,
one redirects to the story's real address."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import msgspec
import pytest

from backstory.story import StoryRecord, to_sidebar

from .pages import (AI_PARAGRAPHS, AI_TITLE, CHIP_PARAGRAPHS, CHIP_TITLE, FIRE_B, SPORT_PARAGRAPHS, SPORT_TITLE,
                    news_page)
from .fetch_server import page, redirect, send, serve  # noqa: F401  (serve is a fixture)
from .test_import_formats import exported, run_import, write_zip

ROBOTS = b"User-agent: *\nDisallow: /private/\n"
NOTHING = b"<!doctype html><html><head><title>Menu</title></head><body><nav><a href='/'>Home</a></nav></body></html>"


def plain_page(title: str, paragraphs: list[str]) -> bytes:
    """An article that names neither its date nor its author."""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (f"<!doctype html><html><head><title>{escape(title)}</title></head><body><article>"
            f"<h1>{escape(title)}</h1>{body}</article></body></html>").encode()


def html(text: str):
    return page(text.encode())


@pytest.fixture
def sites(serve, monkeypatch):
    """Two hosts: the Ledger (127.0.0.2) with its robots.txt, and the Sports Desk (127.0.0.3)."""
    ledger = serve({
        "/robots.txt": page(ROBOTS, "text/plain"),
        "/ai": html(news_page(AI_TITLE, AI_PARAGRAPHS, byline="Jane Reporter", date="2026-11-17")),
        "/moved": redirect("/llama", 301),
        "/llama": html(news_page(CHIP_TITLE, CHIP_PARAGRAPHS, byline="Sam Writer", date="2026-11-18")),
        "/private/diary": html(news_page("Diary", AI_PARAGRAPHS)),
        "/menu": page(NOTHING),
        "/brochure.pdf": page(b"%PDF-1.4", "application/pdf"),
    })
    desk = serve({
        "/cup": page(plain_page(SPORT_TITLE, SPORT_PARAGRAPHS)),
        "/quiet": page(plain_page(FIRE_B[0][0], [text for _, text in FIRE_B])),
    }, host="127.0.0.3")
    monkeypatch.setenv("BACKSTORY_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("BACKSTORY_FETCH_HOST_DELAY", "0.05")
    return ledger, desk


def pocket_csv(tmp_path: Path, ledger, desk) -> Path:
    rows = [("AI story", ledger.url("/ai"), "ai|open"), ("Moved", ledger.url("/moved"), "ai"),
            ("Secret", ledger.url("/private/diary"), ""), ("Gone", ledger.url("/gone"), ""),
            ("Menu", ledger.url("/menu"), ""), ("Brochure", ledger.url("/brochure.pdf"), ""),
            ("Cup", desk.url("/cup"), "football|cup"), ("AI again", ledger.url("/ai"), "")]
    path = tmp_path / "part_000000.csv"
    path.write_text("title,url,time_added,tags,status\n"
                    + "".join(f"{t},{u},1700000000,{g},unread\n" for t, u, g in rows), encoding="utf-8")
    return path


def bookmarks_html(tmp_path: Path, ledger, desk) -> Path:
    path = tmp_path / "bookmarks.html"
    path.write_text(
        "<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<TITLE>Bookmarks</TITLE><H1>Bookmarks</H1>\n<DL><p>\n"
        f'<DT><A HREF="{desk.url("/quiet")}" ADD_DATE="1700000000" TAGS="sport,later">Quiet</A>\n'
        f'<DT><A HREF="{ledger.url("/ai")}" ADD_DATE="1700000000">AI again</A>\n'
        f'<DT><A HREF="{ledger.url("/private/diary")}" ADD_DATE="1700000000">Secret</A>\n'
        "</DL><p>\n", encoding="utf-8")
    return path


def stories_by_url(tmp_path: Path, archive: Path) -> dict[str, dict]:
    return exported(tmp_path, archive)


def test_pocket_and_bookmarks_entries_are_fetched_politely(sites, tmp_path: Path, capsys) -> None:
    ledger, desk = sites
    archive = tmp_path / "a.sqlite3"
    code, err = run_import(pocket_csv(tmp_path, ledger, desk), archive, capsys)
    assert code == 1 and "3 imported, 1 skipped, 4 failed" in err
    failures = {line.split(": ", 1)[0].strip(): line for line in err.splitlines() if line.startswith("  line ")}
    assert f"Fetch refused by robots.txt: {ledger.url('/robots.txt')} disallows" in failures["line 4"]
    assert "Upstream error:" in failures["line 5"] and "404" in failures["line 5"]
    assert "No article found:" in failures["line 6"]
    assert "Unsupported content type:" in failures["line 7"] and "application/pdf" in failures["line 7"]
    assert "/private/diary" not in [p for p, _ in ledger.requests]  # never asked for

    stories = stories_by_url(tmp_path, archive)
    assert set(stories) == {ledger.url("/ai"), ledger.url("/moved"), desk.url("/cup")}
    ai, moved, cup = stories[ledger.url("/ai")], stories[ledger.url("/moved")], stories[desk.url("/cup")]
    assert (ai["title"], ai["published"], ai["byline"], ai["tags"]) == (AI_TITLE, "2026-11-17", "Jane Reporter",
                                                                        ["ai", "open"])
    assert AI_PARAGRAPHS[1][:60] in ai["text"] and ai["analysed"] is False  # stored; analysed in the background
    assert moved["canonical_url"] == ledger.url("/llama") and moved["title"] == CHIP_TITLE  # the redirect's end
    assert cup["tags"] == ["football", "cup"] and cup["published"] is None and cup["title"] == SPORT_TITLE
    sidebar = to_sidebar(msgspec.convert(ai, StoryRecord), [])
    assert json.loads(msgspec.json.encode(sidebar))["tags"] == ["ai", "open"]  # the story's JSON shows them

    # Every request named Backstory; robots.txt was read once per host.
    agents = {headers["user-agent"] for _, headers in ledger.requests + desk.requests}
    assert len(agents) == 1 and agents.pop().startswith("Backstory/")
    assert [p for p, _ in ledger.requests].count("/robots.txt") == 1

    # The bookmarks: one new story (the rest is stored already, or refused again).
    asked = len(ledger.requests)
    code, err = run_import(bookmarks_html(tmp_path, ledger, desk), archive, capsys)
    assert code == 1 and "1 imported, 1 skipped, 1 failed" in err and "robots.txt" in err
    quiet = stories_by_url(tmp_path, archive)[desk.url("/quiet")]
    assert quiet["tags"] == ["sport", "later"] and quiet["byline"] is None
    assert [p for p, _ in ledger.requests[asked:]] == ["/robots.txt"]  # the stored /ai was not fetched again

    # Resumable: importing the CSV again fetches nothing it has, and retries only the failures.
    asked = len(ledger.requests), len(desk.requests)
    code, err = run_import(pocket_csv(tmp_path, ledger, desk), archive, capsys)
    assert "0 imported, 4 skipped, 4 failed" in err
    again = sorted(p for p, _ in ledger.requests[asked[0]:])
    assert again == ["/brochure.pdf", "/gone", "/menu", "/robots.txt"] and len(desk.requests) == asked[1]


def test_an_exports_date_and_author_fill_in_what_the_page_does_not_say(sites, tmp_path: Path, capsys) -> None:
    ledger, desk = sites
    metadata = [
        # The page says its own date and author: they win over the export's.
        {"id": "1", "slug": "ai", "title": "AI", "url": ledger.url("/ai"), "author": "Someone Else",
         "publishedAt": "2026-01-01T10:00:00Z", "labels": ["ai"]},
        # The page says neither: the export's fill in.
        {"id": "2", "slug": "quiet", "title": "Quiet", "url": desk.url("/quiet"), "author": "Omni Author",
         "publishedAt": "2026-10-01T10:00:00Z", "labels": [{"name": "sport"}]},
        # The article in the export (no fetch), naming no date: the export's is kept.
        {"id": "3", "slug": "inline", "title": SPORT_TITLE, "url": "https://desk.example/inline",
         "publishedAt": "2026-09-09T10:00:00Z", "author": "Inline Author"},
    ]
    path = write_zip(tmp_path / "omnivore.zip", {
        "metadata_0_to_3.json": json.dumps(metadata),
        "content/inline.html": plain_page(SPORT_TITLE, SPORT_PARAGRAPHS).decode(),
    })
    archive = tmp_path / "o.sqlite3"
    code, err = run_import(path, archive, capsys)
    assert code == 0 and "3 imported, 0 skipped, 0 failed" in err
    stories = stories_by_url(tmp_path, archive)
    ai, quiet, inline = stories[ledger.url("/ai")], stories[desk.url("/quiet")], stories["https://desk.example/inline"]
    assert (ai["published"], ai["byline"], ai["tags"]) == ("2026-11-17", "Jane Reporter", ["ai"])
    assert (quiet["published"], quiet["byline"], quiet["tags"]) == ("2026-10-01", "Omni Author", ["sport"])
    assert (inline["published"], inline["byline"]) == ("2026-09-09", "Inline Author")


def test_one_sites_many_entries_do_not_hold_back_the_others(serve, tmp_path: Path, capsys, monkeypatch) -> None:
    """Ten entries of a slow-to-take site (its delay) first in the file, then three of another: those
    three are fetched while the first site's wait their turns, even with few fetches at once."""
    from backstory.imports import store as store_module

    order: list[str] = []

    def story(name: str, i: int):
        paragraphs = [f"{p} ({name} report {i})" for p in (AI_PARAGRAPHS if name == "busy" else SPORT_PARAGRAPHS)]
        body = plain_page(f"{name} story {i}", paragraphs)

        def answer(h) -> None:
            order.append(f"{name}{i}")
            send(h, 200, body)
        return answer

    busy = serve({f"/s{i}": story("busy", i) for i in range(10)})
    other = serve({f"/s{i}": story("other", i) for i in range(3)}, host="127.0.0.3")
    monkeypatch.setenv("BACKSTORY_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("BACKSTORY_FETCH_HOST_DELAY", "0.2")
    monkeypatch.setattr(store_module, "FETCHES_AT_ONCE", 4)
    urls = [busy.url(f"/s{i}") for i in range(10)] + [other.url(f"/s{i}") for i in range(3)]
    path = tmp_path / "part_000000.csv"
    path.write_text("title,url,time_added,tags,status\n" + "".join(f"t,{u},1700000000,,unread\n" for u in urls))
    code, err = run_import(path, tmp_path / "a.sqlite3", capsys)
    assert code == 0 and "13 imported, 0 skipped, 0 failed" in err, err
    assert order.index("other2") < order.index("busy4")  # the other site did not wait for the busy one
    assert [name for name in order if name.startswith("busy")] == [f"busy{i}" for i in range(10)]  # file order
