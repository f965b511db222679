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
from typing import Any, Iterator

import msgspec

from . import errors
from .archive import check_archive
from .config import Settings, archive_url, from_env, masked_url, one_archive, open_bind_refusal


def _settings(args: argparse.Namespace) -> Settings:
    return _checked_settings(args)[0]


def _checked_settings(args: argparse.Namespace) -> tuple[Settings, int]:
    """The settings, with the archive checked (reachable, not newer than this code), and how
    many API tokens it holds."""
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
        tokens = check_archive(settings)  # an archive this version cannot open or reach stops every command here
    except ValueError as exc:
        raise SystemExit(f"backstory: {exc}") from None
    return settings, tokens


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
    settings, tokens = _checked_settings(args)
    refusal = open_bind_refusal(settings, tokens)
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


class ImportLine(msgspec.Struct, kw_only=True):
    """One line of an import file: a page or a text to analyze (unknown keys are ignored)."""

    url: str
    title: str | None = None
    text: str | None = None
    html: str | None = None
    published: str | None = None


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


class Progress:
    """A one-line progress bar on stderr (redrawn at most 10 times a second)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done, self.skipped, self.failed = total, label, 0, 0, 0
        self.started = self._last = time.monotonic()

    def step(self, *, skipped: bool = False, failed: bool = False) -> None:
        self.done += 1
        self.skipped += skipped
        self.failed += failed
        now = time.monotonic()
        if now - self._last > 0.1 or self.done == self.total:
            self._last = now
            self.draw()

    def draw(self, end: str = "") -> None:
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"({self.skipped} skipped, {self.failed} failed, {rate:.1f}/s){end}"
        )
        sys.stderr.flush()


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, line


def cmd_import(args: argparse.Namespace) -> int:
    from .story import StoryRecord
    from .schemas import AnalyzeRequest

    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"backstory: no such file: {path}")
    total = sum(1 for _ in _lines(path))
    settings = _settings(args)
    record_decoder = msgspec.json.Decoder(StoryRecord)
    line_decoder = msgspec.json.Decoder(ImportLine)

    async def run() -> Progress:
        from .archive import open_archive
        from .jobs import job_queue

        archive = await open_archive(settings)
        jobs = job_queue(settings)  # a PostgreSQL archive: stories stored for later become jobs for workers
        pipeline = None
        progress = Progress(total, f"import {path.name}")
        # Stories to analyze run a few at a time (the pipeline's workers keep both cores busy);
        # exported records are stored in file order, so an export re-imports identically.
        running: set[asyncio.Task] = set()
        window = settings.workers * 2

        def failed(number: int, exc: Exception) -> None:
            progress.step(failed=True)
            print(f"\nline {number}: {exc}", file=sys.stderr)

        async def analyze(number: int, request: AnalyzeRequest, published: str | None) -> None:
            try:
                await pipeline.ingest(request, published=published, analyze=args.analyze)
                progress.step()
            except Exception as exc:  # one bad story must not stop the import
                failed(number, exc)

        try:
            for number, line in _lines(path):
                try:
                    if b'"story_id"' in line and b'"content_hash"' in line:
                        record = record_decoder.decode(line)  # a line of `backstory export`: lossless
                        if await archive.get(record.story_id) is not None:
                            progress.step(skipped=True)
                            continue
                        await archive.import_record(record)
                        progress.step()
                        continue
                    item = line_decoder.decode(line)
                    if await archive.story_at(item.url) is not None:
                        progress.step(skipped=True)
                        continue
                    if item.text is None and item.html is None:
                        raise errors.InvalidInput("line has neither text nor html")
                    request = AnalyzeRequest(url=item.url, title=item.title, text=item.text, html=item.html)
                except (msgspec.ValidationError, msgspec.DecodeError, errors.BackstoryError) as exc:
                    failed(number, exc)
                    continue
                if pipeline is None:
                    if jobs is not None:
                        await jobs.__aenter__()
                    pipeline = await _pipeline(settings, archive, models=args.analyze, jobs=jobs)
                if len(running) >= window:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                running.add(asyncio.create_task(analyze(number, request, item.published)))
            if running:
                await asyncio.wait(running)
            progress.draw(end="\n")
            if not args.analyze and pipeline is not None:
                print(
                    "stored; the server computes names, keyphrases and embeddings of the new stories in the "
                    "background (they are searchable and related by their words already)",
                    file=sys.stderr,
                )
            return progress
        finally:
            for task in running:
                task.cancel()
            if pipeline is not None:
                pipeline.close(models=args.analyze)
                if jobs is not None:
                    await jobs.__aexit__()
            await archive.close()

    progress = asyncio.run(run())
    return 1 if progress.failed else 0


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
            progress = Progress(await source.count(), f"migrate to {masked_url(target_url)}")
            copied = await copy_archive(source, target, lambda skipped: progress.step(skipped=skipped))
            progress.draw(end="\n")
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


def cmd_tokens(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        from .archive import open_archive
        from .tokens import TokenStore

        archive = await open_archive(settings, related_index=False)  # tokens only: no index to load
        try:
            store = TokenStore(archive.storage)
            if args.action == "create":
                try:
                    secret = await store.create(args.name, args.scope, args.expires)
                except ValueError as exc:
                    raise SystemExit(f"backstory: {exc}") from None
                print(secret)
                print(f"token {args.name!r} ({args.scope}) created: the line above is its secret, shown only now",
                      file=sys.stderr)
            elif args.action == "list":
                print(f"{'name':<24} {'scope':<6} {'created':<21} {'last used':<21} expires")
                for token in await store.list():
                    print(f"{token.name:<24} {token.scope:<6} {token.created:<21} {token.last_used or '-':<21} "
                          f"{token.expires or 'never'}")
            elif not await store.revoke(args.name):
                raise SystemExit(f"backstory: there is no token named {args.name!r}")
            else:
                print(f"token {args.name!r} revoked: servers refuse it within seconds", file=sys.stderr)
        finally:
            await archive.close()
        return 0

    return asyncio.run(run())


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

    imp = sub.add_parser("import", help="import stories from JSON lines ({url, title?, text?|html?, published?}, "
                                        "or the lines of an export)")
    imp.add_argument("file", metavar="FILE.jsonl")
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

    tokens = sub.add_parser("tokens", help="named API tokens: create (the secret is shown once), list, revoke")
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new token (printed once)")
    create.add_argument("name")
    create.add_argument("--scope", choices=["read", "write", "admin"], default="write",
                        help="read: search, get, related, analyze without keeping; write: also keep and delete; "
                             "admin: also manage tokens (default write)")
    create.add_argument("--expires", type=float, metavar="DAYS", help="valid for this many days (default: no end)")
    listing = actions.add_parser("list", help="every token: name, scope, created, last used, expires (no secret)")
    revoke = actions.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    for action in (create, listing, revoke):
        archive_flag(action)
    tokens.set_defaults(func=cmd_tokens)

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
