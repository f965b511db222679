"""Importing exports: every format written here by hand (a few entries, malformed ones and
repeats among them), read by the readers and imported through the command line into a real
SQLite archive; hostile files (a zip bomb, ``../`` members, the billion laughs) are refused."""

from __future__ import annotations

import json
import re
import resource
import time
import zipfile
from pathlib import Path

import pytest

from backstory.cli import main
from backstory.imports import Entry, Failure, Feed, detect, read
from backstory.imports.opml import read_opml
from backstory.imports.safezip import SafeZip, UnsafeZip

from .pages import AI_PARAGRAPHS, AI_TITLE, CHIP_PARAGRAPHS, CHIP_TITLE, SPORT_PARAGRAPHS, SPORT_TITLE, news_page


def items(path: Path, format: str | None = None) -> list:
    with path.open("rb") as fh:
        return list(read(fh, format))


def detected(path: Path, format: str) -> list:
    """The items of ``path``, whose format must be told as ``format``."""
    with path.open("rb") as fh:
        assert detect(fh) == format
    return items(path)


def exported(tmp_path: Path, archive: Path) -> dict[str, dict]:
    out = tmp_path / "out.jsonl"
    assert main(["export", str(out), "--archive", str(archive)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["url"]: row for row in rows}


def run_import(path: Path, archive: Path, capsys, *args: str) -> tuple[int, str]:
    code = main(["import", str(path), "--archive", str(archive), *args])
    return code, capsys.readouterr().err


def write_zip(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return path


POCKET_CSV = (
    "title,url,time_added,cursor,tags,status\n"
    "First story,https://news.example/one,1700000000,abc,politics|world,unread\n"
    '"A title, with a comma",https://news.example/two,1700086400,abd,,archive\n'
    "No URL here,,1700000000,abe,,unread\n"
    "Bad scheme,javascript:alert(1),1700000000,abf,,unread\n"
    "Bad date,https://news.example/three,yesterday,abg,,unread\n"
    "First story again,https://news.example/one,1700000000,abh,,unread\n"
)


def test_pocket_csv_by_header_name_with_a_cursor_column(tmp_path: Path) -> None:
    path = tmp_path / "part_000000.csv"
    path.write_text(POCKET_CSV, encoding="utf-8")
    found = detected(path, "pocket")
    entries = [i for i in found if isinstance(i, Entry)]
    failures = {f.where: f.reason for f in found if isinstance(f, Failure)}
    assert [e.url for e in entries] == ["https://news.example/one", "https://news.example/two",
                                        "https://news.example/one"]
    first, second = entries[0], entries[1]
    assert first.tags == ("politics", "world") and first.saved_at == "2023-11-14T22:13:20Z"
    assert first.archived is False and second.archived is True and second.title == "A title, with a comma"
    assert all(e.needs_fetch and e.published is None for e in entries)  # Pocket keeps no article
    assert failures["line 4"] == "no URL"
    assert "http or https" in failures["line 5"]
    assert "not a date" in failures["line 6"]


def test_pocket_zip_and_html_exports(tmp_path: Path, capsys) -> None:
    zipped = write_zip(tmp_path / "pocket.zip", {
        "part_000000.csv": POCKET_CSV,
        "part_000001.csv": "url,title,status,time_added,tags\nhttps://news.example/four,Four,unread,1700000000,a\n",
    })
    found = detected(zipped, "pocket")
    assert [i.where for i in found if isinstance(i, Failure)] == [
        "line 4 of part_000000.csv", "line 5 of part_000000.csv", "line 6 of part_000000.csv"]
    assert [i.url for i in found if isinstance(i, Entry)][-1] == "https://news.example/four"

    html = tmp_path / "ril_export.html"
    html.write_text(
        "<!DOCTYPE html><html><head><title>Pocket Export</title></head><body>\n<h1>Unread</h1>\n<ul>\n"
        '<li><a href="https://news.example/u1" time_added="1700000000" tags="a,b">Unread one</a></li>\n'
        '<li><a href="mailto:x@example.com" time_added="1700000000" tags="">Mail</a></li>\n'
        "</ul>\n<h1>Read Archive</h1>\n<ul>\n"
        '<li><a href="https://news.example/r1" time_added="1600000000" tags="">Read &amp; done</a></li>\n'
        "</ul></body></html>\n", encoding="utf-8")
    found = detected(html, "pocket")
    u1, r1 = (i for i in found if isinstance(i, Entry))
    assert (u1.title, u1.tags, u1.archived) == ("Unread one", ("a", "b"), False)
    assert (r1.title, r1.archived, r1.saved_at) == ("Read & done", True, "2020-09-13T12:26:40Z")
    assert [f.where for f in found if isinstance(f, Failure)] == ["link 2"]

    # Through the command line: Pocket's entries are URLs only, fetched (test_import_fetch.py);
    # these hosts do not resolve, so their robots.txt cannot be read and nothing is fetched.
    code, err = run_import(zipped, tmp_path / "a.sqlite3", capsys)
    assert code == 1
    counts = re.search(r"(\d+) imported, (\d+) skipped, (\d+) failed", err)
    assert counts and int(counts[1]) == 0 and int(counts[2]) + int(counts[3]) == 7  # the repeat: skipped or failed
    assert ("line 2 of part_000000.csv: Upstream error: https://news.example/robots.txt could not be read" in err
            and "(https://news.example/one)" in err)
    assert "line 4 of part_000000.csv: no URL" in err


def omnivore_zip(tmp_path: Path) -> Path:
    metadata = [
        {"id": "1", "slug": "altman-open", "title": AI_TITLE, "description": "Open weights", "author": "Jane Reporter",
         "url": "https://ledger.example/ai", "state": "Archived", "labels": ["ai", "tech"],
         "savedAt": "2026-11-18T09:30:00.000Z", "publishedAt": "2026-11-17T22:30:00.000-05:00"},
        {"id": "2", "slug": "meta-llama", "title": CHIP_TITLE, "url": "https://ledger.example/llama",
         "state": "Succeeded", "labels": [{"name": "ai"}], "savedAt": "2026-11-19T09:30:00.000Z",
         "publishedAt": None},
        {"id": "3", "slug": "no-content", "title": "Only a link", "url": "https://ledger.example/link",
         "savedAt": "2026-11-19T09:30:00.000Z"},
        {"id": "4", "slug": "broken", "title": "No URL"},
        "not an object",
    ]
    more = [{"id": "5", "slug": "sport", "title": SPORT_TITLE, "url": "https://ledger.example/sport",
             "savedAt": 1763000000000, "publishedAt": "not a date"},
            {"id": "1", "slug": "altman-open", "url": "https://ledger.example/ai"}]  # a repeat
    return write_zip(tmp_path / "omnivore.zip", {
        "metadata_0_to_5.json": json.dumps(metadata),
        "metadata_5_to_7.json": json.dumps(more),
        "content/altman-open.html": news_page(AI_TITLE, AI_PARAGRAPHS),
        "content/meta-llama.html": news_page(CHIP_TITLE, CHIP_PARAGRAPHS, date="2026-11-18"),
        "highlights/altman-open.md": "> weighing whether to release the weights\n\nworth following\n",
        "../escape.json": json.dumps([{"url": "https://evil.example/x", "slug": "x"}]),
    })


def test_omnivore_zip(tmp_path: Path, capsys) -> None:
    path = omnivore_zip(tmp_path)
    found = detected(path, "omnivore")
    entries: dict[str, Entry] = {}
    for item in found:
        if isinstance(item, Entry):
            entries.setdefault(item.url, item)
    assert "https://evil.example/x" not in entries  # the ../ member is never read
    ai = entries["https://ledger.example/ai"]
    assert ai.html and AI_PARAGRAPHS[0][:40] in ai.html
    assert (ai.published, ai.saved_at, ai.byline, ai.tags, ai.archived) == (
        "2026-11-17", "2026-11-18T09:30:00Z", "Jane Reporter", ("ai", "tech"), True)
    assert ai.highlights and "worth following" in ai.highlights
    assert entries["https://ledger.example/llama"].tags == ("ai",)
    assert entries["https://ledger.example/link"].needs_fetch
    failures = {f.where: f.reason for f in found if isinstance(f, Failure)}
    assert failures["entry 4 of metadata_0_to_5.json"] == "no URL"
    assert "expected an object" in failures["entry 5 of metadata_0_to_5.json"]
    assert "not a date" in failures["entry 1 of metadata_5_to_7.json"]

    archive = tmp_path / "o.sqlite3"
    code, err = run_import(path, archive, capsys)
    assert code == 1 and "2 imported, 1 skipped, 5 failed" in err
    assert "../escape.json: a zip member named outside the archive: never read" in err
    assert "entry 3 of metadata_0_to_5.json: Upstream error: https://ledger.example/robots.txt could not be read" in err
    stories = exported(tmp_path, archive)
    assert set(stories) == {"https://ledger.example/ai", "https://ledger.example/llama"}
    assert stories["https://ledger.example/ai"]["published"] == "2026-11-17"  # the page's and the export's date
    assert stories["https://ledger.example/llama"]["published"] == "2026-11-18"  # the page's, none exported
    assert stories["https://ledger.example/ai"]["title"] == AI_TITLE
    # Resumable: a second run stores nothing again.
    code, err = run_import(path, archive, capsys)
    assert "0 imported, 3 skipped, 5 failed" in err


def test_wallabag_json(tmp_path: Path, capsys) -> None:
    entries = [
        {"id": 1, "title": AI_TITLE, "url": "https://ledger.example/ai", "content": news_page(AI_TITLE, AI_PARAGRAPHS),
         "created_at": "2026-11-18T10:00:00+0100", "published_at": "2026-11-16T23:00:00+0100",
         "published_by": ["Jane Reporter"], "tags": ["ai", "ai", "open"], "language": "en", "is_archived": 1,
         "domain_name": "ledger.example", "annotations": [{"quote": "release the weights", "text": "big if true"}]},
        {"id": 2, "title": "no url", "content": "<p>x</p>", "created_at": "2026-11-18T10:00:00+0100"},
        {"id": 3, "title": "ftp", "url": "ftp://files.example/x", "content": "<p>x</p>"},
        {"id": 4, "title": SPORT_TITLE, "url": "https://ledger.example/sport",
         "content": news_page(SPORT_TITLE, SPORT_PARAGRAPHS), "created_at": "2026-11-18T10:00:00+0100",
         "published_at": None, "tags": [], "is_archived": 0},
        {"id": 5, "title": "a repeat", "url": "https://ledger.example/ai", "content": "<p>again</p>"},
        {"id": 6, "title": "tags wrong", "url": "https://ledger.example/t", "content": "<p>x</p>", "tags": 7},
    ]
    path = tmp_path / "wallabag.json"
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    found = detected(path, "wallabag")
    ai = next(i for i in found if isinstance(i, Entry))
    assert (ai.published, ai.saved_at, ai.byline, ai.tags, ai.archived) == (
        "2026-11-16", "2026-11-18T09:00:00Z", "Jane Reporter", ("ai", "open"), True)
    assert ai.highlights == "> release the weights\nbig if true"
    assert {f.where for f in found if isinstance(f, Failure)} == {"entry 2", "entry 3", "entry 6"}

    archive = tmp_path / "w.sqlite3"
    code, err = run_import(path, archive, capsys)
    assert code == 1 and "2 imported, 1 skipped, 3 failed" in err
    stories = exported(tmp_path, archive)
    assert stories["https://ledger.example/ai"]["published"] == "2026-11-17"  # the page's own date wins
    assert stories["https://ledger.example/ai"]["tags"] == ["ai", "open"]
    assert stories["https://ledger.example/sport"]["title"] == SPORT_TITLE


def test_netscape_bookmarks(tmp_path: Path) -> None:
    path = tmp_path / "bookmarks.html"
    path.write_text(
        "<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=UTF-8\">\n"
        "<TITLE>Bookmarks</TITLE>\n<H1>Bookmarks</H1>\n<DL><p>\n"
        "<DT><H3 ADD_DATE=\"1700000000\">News</H3>\n<DL><p>\n"
        "<DT><A HREF=\"https://news.example/a\" ADD_DATE=\"1700000000\" TAGS=\"world,politics\">A &amp; B</A>\n"
        "<DD>What happened next\n"
        "<DT><A HREF=\"place:sort=8\">Recent tags</A>\n"
        "<DT><A HREF=\"https://news.example/b\" ADD_DATE=\"1700000000000000\">B</A>\n"
        "</DL><p>\n<DT><A>no href</A>\n</DL><p>\n", encoding="utf-8")
    found = detected(path, "bookmarks")
    a, b = (i for i in found if isinstance(i, Entry))
    assert (a.title, a.tags, a.description, a.saved_at) == ("A & B", ("world", "politics"), "What happened next",
                                                            "2023-11-14T22:13:20Z")
    assert b.saved_at == "2023-11-14T22:13:20Z" and b.needs_fetch  # microseconds read as such
    assert [(f.where, f.reason) for f in found if isinstance(f, Failure)][1] == ("link 4", "no URL")


def test_opml_feeds(tmp_path: Path, capsys) -> None:
    path = tmp_path / "feeds.opml"
    path.write_text(
        '<?xml version="1.0"?>\n<opml version="2.0"><head><title>subs</title></head><body>\n'
        '<outline text="News">\n'
        '  <outline type="rss" text="Ledger" xmlUrl="https://ledger.example/feed.xml" htmlUrl="https://ledger.example/"/>\n'
        '  <outline type="rss" text="Bad" xmlUrl="file:///etc/passwd"/>\n'
        '</outline>\n<outline type="rss" title="Wire &amp; Co" xmlUrl="https://wire.example/atom"/>\n'
        "</body></opml>\n", encoding="utf-8")
    with path.open("rb") as fh:
        assert detect(fh) == "opml"
        feeds = read_opml(fh)
    assert feeds == [Feed(url="https://ledger.example/feed.xml", where="feed 1 (line 4)", title="Ledger",
                          site_url="https://ledger.example/"),
                     Feed(url="https://wire.example/atom", where="feed 3 (line 7)", title="Wire & Co")]
    code, err = run_import(path, tmp_path / "f.sqlite3", capsys)
    assert code == 1  # the bad feed
    assert "2 feeds found; subscribing to feeds is not supported yet" in err and "https://wire.example/atom" in err
    assert "feed 2 (line 5)" in err


def test_jsonl_keeps_its_behaviour_and_format_can_be_forced(tmp_path: Path, capsys) -> None:
    path = tmp_path / "in.txt"
    rows = [{"url": "https://ledger.example/ai", "text": " ".join(AI_PARAGRAPHS), "published": "2026-01-02"},
            {"url": "https://ledger.example/only-url"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    archive = tmp_path / "j.sqlite3"
    code, err = run_import(path, archive, capsys, "--format", "jsonl")
    assert code == 1 and "1 imported, 0 skipped, 2 failed" in err
    assert "line 2: line has neither text nor html" in err and "line 3: " in err
    assert exported(tmp_path, archive)["https://ledger.example/ai"]["published"] == "2026-01-02"  # a text has no date

    # Forcing the wrong format reads nothing as stories, and says why for the file.
    code, err = run_import(path, archive, capsys, "--format", "wallabag")
    assert code == 1 and "the file: broken JSON" in err


def test_a_file_of_unknown_format_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="cannot tell the export's format"):
        main(["import", str(path), "--archive", str(tmp_path / "x.sqlite3")])


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("part_000000.csv", "w") as member:  # 200 MB of one byte: about 200 KB deflated
            member.write(b"title,url,time_added,tags,status\n")
            zeros = b"0" * (1024 * 1024)
            for _ in range(200):
                member.write(zeros)
    assert path.stat().st_size < 1024 * 1024
    before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
    with path.open("rb") as fh, pytest.raises(UnsafeZip, match="zip bomb"):
        SafeZip(fh)
    code, err = run_import(path, tmp_path / "b.sqlite3", capsys)
    assert code == 1 and "the file: part_000000.csv inflates" in err
    assert time.process_time() - started < 10  # CPU seconds: nothing was inflated
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: nothing was inflated

    # The total is held to its limit too, whatever each member's ratio.
    with path.open("rb") as fh, pytest.raises(UnsafeZip, match="inflates to"):
        SafeZip(fh, max_bytes=10 * 1024 * 1024, max_ratio=10**6)


def test_a_zip_whose_headers_lie_stops_at_the_limit(tmp_path: Path, capsys) -> None:
    body = b"title,url,time_added,tags,status\n" + b"x,https://news.example/a,1700000000,,unread\n" * 50_000
    path = write_zip(tmp_path / "lies.zip", {"part_000000.csv": body})
    # Declare 1,000 bytes where the member inflates to 2 MB: in its local header and the central directory.
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 22:local + 26] = data[central + 24:central + 28] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    found = items(path)
    assert found[-1].where == "the file" and "broken zip member" in found[-1].reason
    assert len(found) < 30  # what the declared size let through, and no more
    code, err = run_import(path, tmp_path / "l.sqlite3", capsys)
    assert code == 1 and "the file: a broken zip member" in err

    # The bytes inflated are counted against the limit too, whatever the headers say.
    path = write_zip(tmp_path / "many.zip", {"part_000000.csv": body})
    with path.open("rb") as fh:
        archive = SafeZip(fh, max_bytes=len(body), max_ratio=10**6)
        archive.max_bytes = 100_000
        with archive.open("part_000000.csv") as member, pytest.raises(UnsafeZip, match="inflated past"):
            while member.read(65536):
                pass


def test_billion_laughs_in_opml_is_refused(tmp_path: Path) -> None:
    lol = "".join(f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">\n' for i in range(1, 10))
    path = tmp_path / "laughs.opml"
    path.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE opml [\n<!ENTITY lol0 "lol">\n{lol}]>\n'
                    '<opml><body><outline text="&lol9;" xmlUrl="https://x.example/feed"/></body></opml>\n')
    started = time.process_time()
    found = items(path)
    assert time.process_time() - started < 2  # CPU seconds: nothing was expanded
    assert found == [Failure(where="the file", reason="the OPML declares XML entities: refused (entity expansion is off)")]
    external = tmp_path / "external.opml"
    external.write_text('<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                        '<opml><body><outline text="&x;" xmlUrl="https://x.example/feed"/></body></opml>\n')
    assert [f.reason for f in items(external, "opml")] == [found[0].reason]


def test_a_large_export_is_streamed(tmp_path: Path) -> None:
    """50,000 Wallabag entries (~20 MB) read in constant memory: never the whole file at once."""
    path = tmp_path / "big.json"
    article = "<p>" + "word " * 60 + "</p>"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("[")
        for i in range(50_000):
            fh.write(("," if i else "") + json.dumps({"url": f"https://news.example/{i}", "content": article * 5}))
        fh.write("]")
    assert path.stat().st_size > 15 * 1024 * 1024
    import tracemalloc

    tracemalloc.start()
    try:
        with path.open("rb") as fh:
            count = sum(1 for item in read(fh) if isinstance(item, Entry))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < 2 * 1024 * 1024


def test_members_outside_the_archive_are_never_read(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "slip.zip", {"part_000000.csv": "url\nhttps://news.example/a\n",
                                              "../../part_000001.csv": "url\nhttps://evil.example/a\n",
                                              "/abs/part_000002.csv": "url\nhttps://evil.example/b\n"})
    with path.open("rb") as fh:
        archive = SafeZip(fh)
        assert archive.names() == ["part_000000.csv"]
        assert sorted(archive.refused) == ["../../part_000001.csv", "/abs/part_000002.csv"]
    found = items(path)
    assert [i.url for i in found if isinstance(i, Entry)] == ["https://news.example/a"]
    assert sorted(f.where for f in found if isinstance(f, Failure)) == ["../../part_000001.csv", "/abs/part_000002.csv"]
