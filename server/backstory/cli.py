"""Command line: serve, analyze, import, export."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from . import errors
from .archive import check_archive
from .config import Settings, archive_url, from_env, masked_url, one_archive, open_bind_refusal


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "insecure_no_auth", "analysis"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        overrides["archive"] = one_archive(
            {flag: value for flag, value in (("--archive", args.archive), ("--database-url", args.database_url))
             if value is not None}
        )
        settings = from_env(**overrides)
        check_archive(settings)  # an archive this version cannot open or reach stops every command here, with why
    except ValueError as exc:
        raise SystemExit(f"backstory: {exc}") from None
    return settings


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every thread its own malloc arena, and the pools' many threads would hold
    memory there that the server never uses again; two arenas cost no latency."""
    if sys.platform.startswith("linux") and "MALLOC_ARENA_MAX" not in os.environ:
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
        except (OSError, AttributeError):
            pass


def cmd_serve(args: argparse.Namespace) -> int:
    _limit_malloc_arenas()
    settings = _settings(args)
    refusal = open_bind_refusal(settings)
    if refusal:
        raise SystemExit(f"backstory: {refusal}")
    if settings.analysis == "remote":
        from .jobs import REMOTE_NEEDS_POSTGRESQL, job_queue

        if job_queue(settings) is None:
            raise SystemExit(f"backstory: {REMOTE_NEEDS_POSTGRESQL}")
    else:
        from .nlp_worker import prestart

        prestart(settings.spacy_processes)  # first: forked before any thread or heavy import
    import uvicorn

    from .app import create_app

    print(f"Backstory on http://{settings.host}:{settings.port}  archive: {masked_url(archive_url(settings.archive))}",
          file=sys.stderr)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the handler
    # that was there before it started: make that a normal exit, so supervisors see status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    return 0


async def _pipeline(settings: Settings, archive: Any, *, models: bool = True, jobs: Any = None) -> Any:
    """A pipeline on ``archive``; ``models=False`` gives a store-only one (no models loaded)."""
    from .pipeline import Models, Pipeline

    loaded = await asyncio.to_thread(Models.load, settings.spacy_processes) if models else None
    return Pipeline(settings, loaded, archive, jobs)


def cmd_worker(args: argparse.Namespace) -> int:
    from .jobs import job_queue

    settings = _settings(args)
    jobs = job_queue(settings)
    if jobs is None:
        raise SystemExit("backstory: workers take their jobs from a PostgreSQL archive (--archive postgresql://…); "
                         "with a SQLite archive the server analyzes its backlog itself")
    _limit_malloc_arenas()
    from .nlp_worker import prestart

    prestart(settings.spacy_processes)  # first: forked before any thread or heavy import

    async def run() -> None:
        from .archive import open_archive

        # A worker completes stories in place: it never looks up related stories, so it keeps no index.
        archive = await open_archive(settings, related_index=False)
        try:
            async with jobs:
                pipeline = await _pipeline(settings, archive, jobs=jobs)
                try:
                    print(f"Backstory worker on {masked_url(archive_url(settings.archive))}, "
                          f"{args.concurrency} at once, queues {', '.join(args.queue or ['analysis'])}", file=sys.stderr)
                    await jobs.work(pipeline, concurrency=args.concurrency, queues=args.queue, signals=True)
                finally:
                    pipeline.close(models=True)
        finally:
            await archive.close()

    asyncio.run(run())
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .schemas import AnalyzeRequest

    target: str = args.target
    path = Path(target)
    if path.is_file():
        content = path.read_text(encoding="utf-8", errors="replace")
        url = args.url or f"https://file.invalid/{path.name}"
        is_text = path.suffix.lower() in (".txt", ".text", ".md")
        request = AnalyzeRequest(url=url, text=content if is_text else None, html=None if is_text else content,
                                 archive=not args.no_archive)
    else:
        request = AnalyzeRequest(url=target, archive=not args.no_archive)
    settings = _settings(args)

    async def run() -> bytes:
        from .archive import open_archive

        archive = await open_archive(settings)
        pipeline = await _pipeline(settings, archive)
        try:
            return msgspec.json.encode(await pipeline.analyze(request))
        finally:
            pipeline.close(models=True)
            await archive.close()

    try:
        out = asyncio.run(run())
    except errors.BackstoryError as exc:
        print(f"backstory: {exc.title}: {exc.detail}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(msgspec.json.format(out, indent=2) + b"\n")
    return 0


def _progress() -> Any:
    """A rich progress bar on stderr, with the counts of what was done beside it."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=Console(stderr=True))


def _counts(imported: int, skipped: int, failed: int) -> str:
    return f"{imported} imported, {skipped} skipped, {failed} failed"


def cmd_import(args: argparse.Namespace) -> int:
    from .imports import UnknownFormat, detect, read
    from .imports.store import store

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
            from .archive import open_archive
            from .jobs import job_queue

            archive = await open_archive(settings)
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
                    tally = await store(read(fh, fmt), archive, make_pipeline, analyze=args.analyze,
                                        window=settings.workers * 2, step=step)
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
        from .archive import open_archive

        archive = await open_archive(settings)
        count = 0
        tmp = target.with_name(target.name + ".partial")
        encoder = msgspec.json.Encoder()
        try:
            with tmp.open("wb") as fh:
                async for record in archive.export():
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
        from .archive import create_archive
        from .archive.transfer import compare, copy_archive

        async with create_archive(source_url) as source, create_archive(target_url) as target:
            label, done = f"migrate to {masked_url(target_url)}", {"copied": 0, "skipped": 0}

            def step(skipped: bool) -> None:
                done["skipped" if skipped else "copied"] += 1
                bar.update(task, advance=1, counts=f"{done['copied']} copied, {done['skipped']} skipped")

            with _progress() as bar:
                task = bar.add_task(label, total=await source.count(), counts="")
                copied = await copy_archive(source, target, step)
            result = await compare(source, target)
        print(f"copied {copied.stories} stories ({copied.skipped} already there) and {copied.aliases} URLs; "
              f"source {result.source} stories, target {result.target}", file=sys.stderr)
        if not result.identical:
            print(f"backstory: {len(result.differing)} stories differ or are missing in the target, e.g. "
                  f"{', '.join(result.differing[:5])}", file=sys.stderr)
            return 1
        print("every story's checksum matches", file=sys.stderr)
        return 0

    return asyncio.run(run())


def _import_formats() -> list[str]:
    from .imports import FORMATS

    return list(FORMATS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backstory", description="Self-hosted reading assistant.")
    sub = parser.add_subparsers(dest="command", required=True)

    def archive_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--archive", metavar="URL",
                       help="the archive: sqlite:///PATH or a file path (SQLite), postgresql://... "
                            "(default: BACKSTORY_ARCHIVE, else archive.sqlite3 in the user's data directory)")
        p.add_argument("--database-url", metavar="URL", help="the same as --archive (its older name)")

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8000)")
    serve.add_argument("--analysis", choices=["local", "remote"],
                       help="where readers' analyses run: here (local, the default) or in workers (remote; "
                            "needs a PostgreSQL archive)")
    serve.add_argument("--insecure-no-auth", action="store_true", default=None,
                       help="serve a non-loopback address without an API token (refused otherwise)")
    archive_flag(serve)
    serve.set_defaults(func=cmd_serve)

    analyze = sub.add_parser("analyze", help="analyze a URL or a local .html/.txt file and print the JSON payload")
    analyze.add_argument("target", metavar="URL_OR_FILE")
    analyze.add_argument("--url", help="the URL to file a local file under")
    analyze.add_argument("--no-archive", action="store_true", help="do not keep the story")
    archive_flag(analyze)
    analyze.set_defaults(func=cmd_analyze)

    imp = sub.add_parser("import", help="import stories from an export: JSON lines ({url, title?, text?|html?, "
                                        "published?}, or the lines of an export), Pocket, Omnivore, Wallabag, "
                                        "bookmarks (HTML), OPML; resumable")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--format", choices=list(_import_formats()),
                     help="the export's format (default: told from its content)")
    imp.add_argument(
        "--analyze", "--analyse", action="store_true",  # --analyse: its first spelling, kept for existing scripts
        help="analyze every story now (entities, keyphrases, embedding; ~5 stories/s on 2 cores) "
             "instead of storing it at once and leaving that to the running server's background",
    )
    archive_flag(imp)
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser("export", help="write every archived story to a JSON-lines file (lossless)")
    exp.add_argument("file", metavar="FILE.jsonl")
    archive_flag(exp)
    exp.set_defaults(func=cmd_export)

    work = sub.add_parser("worker", help="analyze the stories imports left pending, as jobs from a PostgreSQL "
                                         "archive's queue (run any number, on any machine with the URL)")
    work.add_argument("--concurrency", type=int, default=2, help="jobs at once (default 2)")
    work.add_argument("--queue", action="append", metavar="NAME", help="take jobs of this queue only (repeatable; "
                                                                        "default: analysis)")
    archive_flag(work)
    work.set_defaults(func=cmd_worker)

    mig = sub.add_parser("migrate-archive", help="copy every story of one archive into another (SQLite <-> "
                                                 "PostgreSQL), then compare them story by story; resumable")
    mig.add_argument("--from", dest="source", required=True, metavar="URL", help="the archive to copy")
    mig.add_argument("--to", dest="target", required=True, metavar="URL", help="the archive to copy into")
    mig.set_defaults(func=cmd_migrate_archive)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Handlers are the program's business, not the app's: tests and embedders keep their own.
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s:     %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
