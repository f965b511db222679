"""Commands on the archive: import, export, migrate-archive, tokens."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from ..archive import check_archive
from ..config import Settings, archive_url, masked_url
from .common import _counts, _pipeline, _progress, _settings


def cmd_import(args: argparse.Namespace) -> int:
    from ..imports import UnknownFormat, detect, read
    from ..imports.store import store

    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"backstory: no such file: {path}")
    settings = _settings(args)
    with path.open("rb") as fh:
        try:
            fmt = args.format or detect(fh)
        except UnknownFormat as exc:
            raise SystemExit(f"backstory: {path}: {exc}") from None
        size = path.stat().st_size

        async def run() -> Any:
            from ..archive import open_archive
            from ..jobs import job_queue
            from ..polite import PoliteFetcher
            from ..tokens import TokenStore

            if args.visibility == "private" and not args.as_name:
                raise SystemExit("backstory: a private import needs --as NAME: the member whose private stories they are")
            archive = await open_archive(settings)
            try:  # who the stories are added by: the command line, or the member named by --as
                added_by = await TokenStore(archive.storage).who(args.as_name) if args.as_name else "cli"
            except ValueError as exc:
                await archive.close()
                raise SystemExit(f"backstory: --as: {exc}") from None
            jobs = job_queue(settings)  # a PostgreSQL archive: stories stored for later become jobs for workers
            pipeline = None

            async def make_pipeline() -> Any:
                nonlocal pipeline
                if jobs is not None:
                    await jobs.__aenter__()
                pipeline = await _pipeline(settings, archive, models=args.analyze, jobs=jobs)
                return pipeline

            with _progress() as bar:
                task = bar.add_task(f"import {path.name} ({fmt})", total=size or None, counts=_counts(0, 0, 0))
                read_to, plain, shown = 0, not bar.console.is_terminal, time.monotonic()

                def step(tally: Any) -> None:
                    nonlocal read_to, shown
                    read_to = max(read_to, fh.tell())  # a zip's members are read by seeking: never back
                    counts = _counts(tally.imported, tally.skipped, tally.failed)
                    bar.update(task, completed=read_to, counts=counts)
                    if plain and time.monotonic() - shown >= 1:  # a log or a pipe: a line a second
                        shown = time.monotonic()
                        print(f"import {path.name}: {counts}", file=sys.stderr, flush=True)

                try:
                    async with PoliteFetcher(settings) as fetcher:  # for the entries that carry only a URL
                        tally = await store(read(fh, fmt), archive, make_pipeline, analyze=args.analyze,
                                            window=settings.workers * 2, step=step, added_by=added_by,
                                            fetcher=fetcher, visibility=args.visibility)
                    bar.update(task, completed=size)
                finally:
                    if pipeline is not None:
                        pipeline.close(models=args.analyze)
                        if jobs is not None:
                            await jobs.__aexit__()
                    await archive.close()
            return tally

        tally = asyncio.run(run())
    _report(tally)
    return 1 if tally.failed else 0


def _report(tally: Any) -> None:
    """The summary: the counts, each failure with its reason, the feeds found."""
    from collections import Counter

    out = sys.stderr
    print(_counts(tally.imported, tally.skipped, tally.failed), file=out)
    for failure in tally.failures:
        print(f"  {failure.where}: {failure.reason}" + (f" ({failure.url})" if failure.url else ""), file=out)
    if tally.failed > 10:  # a long list: what it comes to
        reasons = Counter(failure.reason for failure in tally.failures).most_common()
        print("failures by reason: " + "; ".join(f"{reason}: {n}" for reason, n in reasons), file=out)
    if tally.feeds:
        print(f"{len(tally.feeds)} feeds found; subscribing to feeds is not supported yet, nothing was subscribed:",
              file=out)
        for feed in tally.feeds:
            print(f"  {feed.url}" + (f"  {feed.title}" if feed.title else ""), file=out)
    if tally.stored_for_later:
        print("stored; the server computes names, keyphrases and embeddings of the new stories in the "
              "background (they are searchable and related by their words already)", file=out)


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    target = Path(args.file)

    async def run() -> int:
        from ..archive import open_archive
        from ..story import OPERATOR
        from ..tokens import TokenStore

        archive = await open_archive(settings, related_index=False)  # records only: no index to load
        try:  # the operator's backup holds every story; --as: only what that member sees
            viewer = await TokenStore(archive.storage).who(args.as_name) if args.as_name else OPERATOR
        except ValueError as exc:
            await archive.close()
            raise SystemExit(f"backstory: --as: {exc}") from None
        count = 0
        tmp = target.with_name(target.name + ".partial")
        encoder = msgspec.json.Encoder()
        try:
            with tmp.open("wb") as fh:
                async for record in archive.export(viewer):
                    fh.write(encoder.encode(record) + b"\n")
                    count += 1
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
            await archive.close()
        return count

    count = asyncio.run(run())
    print(f"exported {count} stories to {target}", file=sys.stderr)
    return 0


def cmd_migrate_archive(args: argparse.Namespace) -> int:
    try:
        source_url, target_url = archive_url(args.source), archive_url(args.target)
    except ValueError as exc:
        raise SystemExit(f"backstory: {exc}") from None
    if source_url == target_url:
        raise SystemExit("backstory: --from and --to name the same archive")
    for url in (source_url, target_url):
        try:
            check_archive(Settings(archive=url))
        except ValueError as exc:
            raise SystemExit(f"backstory: {exc}") from None

    async def run() -> int:
        from ..archive import create_archive
        from ..archive.transfer import compare, copy_archive

        async with create_archive(source_url) as source, create_archive(target_url) as target:
            label, done = f"migrate to {masked_url(target_url)}", {"copied": 0, "skipped": 0}

            def step(skipped: bool) -> None:
                done["skipped" if skipped else "copied"] += 1
                bar.update(task, advance=1, counts=f"{done['copied']} copied, {done['skipped']} skipped")

            with _progress() as bar:
                task = bar.add_task(label, total=await source.count(), counts="")
                try:
                    copied = await copy_archive(source, target, step)
                except ValueError as exc:
                    raise SystemExit(f"backstory: {exc}") from None
            result = await compare(source, target)
        print(f"copied {copied.stories} stories ({copied.skipped} already there), {copied.aliases} URLs, "
              f"{copied.tokens} tokens and {copied.claims} claims; "
              f"source {result.source} stories, target {result.target}", file=sys.stderr)
        if not result.identical:
            print(f"backstory: {len(result.differing)} stories differ or are missing in the target, e.g. "
                  f"{', '.join(result.differing[:5])}", file=sys.stderr)
            return 1
        print("every story's checksum matches", file=sys.stderr)
        return 0

    return asyncio.run(run())


def cmd_tokens(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        from ..archive import open_archive
        from ..tokens import TokenStore

        archive = await open_archive(settings, related_index=False)  # tokens only: no index to load
        try:
            store = TokenStore(archive.storage)
            if args.action == "create":
                try:
                    secret = await store.create(args.name, args.scope, args.expires, args.visibility)
                except ValueError as exc:
                    raise SystemExit(f"backstory: {exc}") from None
                print(secret)
                print(f"token {args.name!r} ({args.scope}, {args.visibility} by default) created: the line above "
                      "is its secret, shown only now", file=sys.stderr)
            elif args.action == "list":
                print(f"{'name':<24} {'scope':<6} {'visibility':<10} {'created':<21} {'last used':<21} expires")
                for token in await store.list():
                    print(f"{token.name:<24} {token.scope:<6} {token.visibility:<10} {token.created:<21} "
                          f"{token.last_used or '-':<21} {token.expires or 'never'}")
            elif not await store.revoke(args.name):
                raise SystemExit(f"backstory: there is no token named {args.name!r}")
            else:
                print(f"token {args.name!r} revoked: servers refuse it within seconds", file=sys.stderr)
        finally:
            await archive.close()
        return 0

    return asyncio.run(run())


def _import_formats() -> list[str]:
    from ..imports import FORMATS

    return list(FORMATS)
