"""backstory feeds add|list|remove: the news feeds that fill the archive by themselves."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from .. import errors
from .common import _pipeline, _settings


def cmd_feeds(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        from ..archive import open_archive

        # Adding polls at once (stories stored, their duplicates found through the index).
        archive = await open_archive(settings, related_index=args.action == "add")
        try:
            if args.action == "add":
                return await _add(settings, archive, args)
            if args.action == "list":
                _list(await archive.feeds())
                return 0
            from ..urls import check_url

            failed = 0
            for url in args.urls:
                try:
                    gone = await archive.remove_feed(check_url(url))
                except errors.InvalidUrl as exc:
                    gone, failed = False, failed + 1
                    print(f"{url}: {exc.detail}", file=sys.stderr)
                    continue
                if not gone:
                    failed += 1
                print(f"{url}: " + ("unsubscribed (its stories stay in the archive)" if gone else "not subscribed"),
                      file=sys.stderr)
            return 1 if failed else 0
        finally:
            await archive.close()

    return asyncio.run(run())


async def _add(settings: Any, archive: Any, args: argparse.Namespace) -> int:
    from ..feeds import subscribe
    from ..jobs import job_queue
    from ..tokens import TokenStore

    try:  # who subscribed: the command line, or the member named by --as
        added_by = await TokenStore(archive.storage).who(args.as_name) if args.as_name else "cli"
    except ValueError as exc:
        raise SystemExit(f"backstory: --as: {exc}") from None
    jobs = job_queue(settings)  # PostgreSQL: the new stories' analyses become jobs for workers
    if jobs is not None:
        await jobs.__aenter__()
    pipeline = await _pipeline(settings, archive, models=False, jobs=jobs)
    failed = 0
    try:
        for given in args.urls:
            try:
                url, new = await subscribe(archive, settings, given, title=args.title, added_by=added_by,
                                           polled_here=not args.no_poll)
            except errors.InvalidUrl as exc:
                failed += 1
                print(f"{given}: {exc.detail}", file=sys.stderr)
                continue
            if not new:
                print(f"{url}: subscribed already", file=sys.stderr)
                continue
            if args.no_poll:
                print(f"{url}: subscribed; the server polls it", file=sys.stderr)
                continue
            print(f"{url}: subscribed; polling it…", file=sys.stderr, flush=True)
            result = await pipeline.feeds.poll(url)
            if result.error is not None:
                failed += 1
                print(f"  the first poll failed (the subscription stays; it is tried again later): {result.error}",
                      file=sys.stderr)
            else:
                print(f"  {result.new} new stories stored" + (f", {result.failed} entries failed (see the log)"
                                                             if result.failed else ""), file=sys.stderr)
    finally:
        await pipeline.feeds.aclose()
        pipeline.close()
        if jobs is not None:
            await jobs.__aexit__()
    if not args.no_poll:
        print("the server analyses the new stories in the background and polls the feeds from now on",
              file=sys.stderr)
    return 1 if failed else 0


def _list(feeds: list[Any]) -> None:
    print(f"{'url':<50} {'last poll':<21} {'next poll':<21} {'entries':>7}  last error")
    for feed in feeds:
        error = feed.last_error or "-"
        if feed.last_error and feed.failures > 1:
            error += f" ({feed.failures} failures in a row)"
        print(f"{feed.url:<50} {feed.last_poll or 'never':<21} {feed.next_poll:<21} {feed.entries:>7}  {error}")
        if feed.title:
            print(f"  {feed.title}")


def add_parser(sub: Any, archive_flag: Any) -> None:
    feeds = sub.add_parser("feeds", help="news feeds (RSS, Atom, JSON Feed) whose new stories are archived by "
                                         "themselves: add, list, remove")
    actions = feeds.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="subscribe to feeds and poll each at once (its new stories are stored; the "
                                         "server analyses them and polls the feed from then on)")
    add.add_argument("urls", nargs="+", metavar="URL")
    add.add_argument("--title", help="a title for the feed (default: the feed's own)")
    add.add_argument("--as", dest="as_name", metavar="NAME",
                     help="subscribed (and its stories added) by this member's token (default: by 'cli')")
    add.add_argument("--no-poll", action="store_true", help="only subscribe: the server polls it within a minute")
    listing = actions.add_parser("list", help="every feed: last poll, next poll, entries taken, last error")
    remove = actions.add_parser("remove", help="unsubscribe (the stories taken from the feed stay)")
    remove.add_argument("urls", nargs="+", metavar="URL")
    for action in (add, listing, remove):
        archive_flag(action)
    feeds.set_defaults(func=cmd_feeds)
