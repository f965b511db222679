"""Pocket exports: the zip of ``part_*.csv`` files (or one CSV), read by column name — the
columns are ``title,url,time_added,tags,status`` and some exports add ``cursor`` — and Pocket's
older HTML export (``<h1>Unread</h1>`` / ``<h1>Read Archive</h1>`` lists of links). Pocket keeps
no article text: every entry is a URL to fetch."""

from __future__ import annotations

import csv
from typing import BinaryIO, Iterator

from .bookmarks import links
from .entry import BadEntry, Entry, Failure, entry, failure, tags
from .safezip import SafeZip, is_zip, members_matching
from .streams import BadFile, head, text

NAME = "pocket"


def read(fh: BinaryIO) -> Iterator[Entry | Failure]:
    start = head(fh)
    if is_zip(start):
        archive = SafeZip(fh)
        try:
            yield from archive.refusals()
            names = list(members_matching(archive, "part_*.csv", "*/part_*.csv")) or list(
                members_matching(archive, "*.csv"))
            if not names:
                raise BadFile("the zip holds no CSV file")
            for name in names:
                with archive.open(name) as member:
                    yield from read_csv(member, f" of {name}")
        finally:
            archive.close()
    elif start.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        yield from read_html(fh)
    else:
        yield from read_csv(fh, "")


def read_csv(fh: BinaryIO, of: str) -> Iterator[Entry | Failure]:
    with text(fh) as lines:
        rows = csv.DictReader(lines)
        if rows.fieldnames is None:
            return
        rows.fieldnames = [name.strip().lower() for name in rows.fieldnames]
        if "url" not in rows.fieldnames:
            raise BadFile(f"the CSV{of} has no url column (its columns: {', '.join(rows.fieldnames)})")
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                yield failure(f"line {rows.line_num}{of}", exc)
                continue
            where = f"line {rows.line_num}{of}"
            try:
                if None in row:
                    raise BadEntry(f"{len(row[None]) + len(rows.fieldnames)} fields where the header has "  # type: ignore[index]
                                   f"{len(rows.fieldnames)}")
                status = (row.get("status") or "").strip().lower()
                yield entry(url=row.get("url"), where=where, source=NAME, title=row.get("title"),
                            saved_at=row.get("time_added"), tag_list=tags(row.get("tags"), "|"),
                            archived={"archive": True, "unread": False}.get(status))
            except BadEntry as exc:
                yield failure(where, exc, row.get("url"))


def read_html(fh: BinaryIO) -> Iterator[Entry | Failure]:
    for link in links(fh):
        where = f"link {link.number}"
        href = link.attrs.get("href")
        try:
            yield entry(url=href, where=where, source=NAME, title="".join(link.text),
                        saved_at=link.attrs.get("time_added"), tag_list=tags(link.attrs.get("tags"), ","),
                        archived=(link.heading or "").lower().startswith("read archive"))
        except BadEntry as exc:
            yield failure(where, exc, href)
