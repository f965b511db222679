"""Commands that run Backstory: serve (the HTTP server), worker (the job queue's), analyze (one page)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import msgspec

from .. import errors
from ..config import archive_url, masked_url, open_bind_refusal
from .common import _checked_settings, _limit_malloc_arenas, _pipeline, _settings


def cmd_serve(args: argparse.Namespace) -> int:
    _limit_malloc_arenas()
    settings, tokens = _checked_settings(args)
    refusal = open_bind_refusal(settings, tokens)
    if refusal:
        raise SystemExit(f"backstory: {refusal}")
    if settings.analysis == "remote":
        from ..jobs import REMOTE_NEEDS_POSTGRESQL, job_queue

        if job_queue(settings) is None:
            raise SystemExit(f"backstory: {REMOTE_NEEDS_POSTGRESQL}")
    else:
        from ..nlp_worker import prestart

        prestart(settings.spacy_processes)  # first: forked before any thread or heavy import
    import uvicorn

    from ..app import create_app

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


def cmd_worker(args: argparse.Namespace) -> int:
    from ..jobs import DEFAULT_QUEUES, job_queue

    settings = _settings(args)
    jobs = job_queue(settings)
    if jobs is None:
        raise SystemExit("backstory: workers take their jobs from a PostgreSQL archive (--archive postgresql://…); "
                         "with a SQLite archive the server analyzes its backlog itself")
    _limit_malloc_arenas()
    from ..nlp_worker import prestart

    prestart(settings.spacy_processes)  # first: forked before any thread or heavy import

    async def run() -> None:
        from ..archive import open_archive

        # A worker completes stories in place: it never looks up related stories, so it keeps no index.
        archive = await open_archive(settings, related_index=False)
        try:
            async with jobs:
                pipeline = await _pipeline(settings, archive, jobs=jobs)
                try:
                    print(f"Backstory worker on {masked_url(archive_url(settings.archive))}, "
                          f"{args.concurrency} at once, queues {', '.join(args.queue or DEFAULT_QUEUES)}", file=sys.stderr)
                    await jobs.work(pipeline, concurrency=args.concurrency, queues=args.queue, signals=True)
                finally:
                    pipeline.close(models=True)
        finally:
            await archive.close()

    asyncio.run(run())
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..schemas import AnalyzeRequest

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
        from ..archive import open_archive

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
