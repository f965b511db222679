"""Command line: serve, worker, analyze, import, export, migrate-archive, tokens."""

from __future__ import annotations

import argparse
import logging
import sys

from .manage import _import_formats, cmd_export, cmd_import, cmd_migrate_archive, cmd_tokens
from .serve import cmd_analyze, cmd_serve, cmd_worker

__all__ = ["build_parser", "main"]


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
    imp.add_argument("--as", dest="as_name", metavar="NAME",
                     help="the stories are added by this member's token (default: by 'cli')")
    shown = imp.add_mutually_exclusive_group()
    shown.add_argument("--visibility", choices=["team", "private"],
                       help="store every story as a team story or as the --as member's private one (default: "
                            "articles as team stories, the lines of an export as they were exported)")
    shown.add_argument("--private", dest="visibility", action="store_const", const="private",
                       help="the same as --visibility private (needs --as NAME)")
    imp.add_argument(
        "--analyze", "--analyse", action="store_true",  # --analyse: its first spelling, kept for existing scripts
        help="analyze every story now (entities, keyphrases, embedding; ~5 stories/s on 2 cores) "
             "instead of storing it at once and leaving that to the running server's background",
    )
    archive_flag(imp)
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser("export", help="write every archived story, members' private ones included, to a "
                                        "JSON-lines file (lossless)")
    exp.add_argument("file", metavar="FILE.jsonl")
    exp.add_argument("--as", dest="as_name", metavar="NAME",
                     help="only the stories this member sees: the team's and its own private ones")
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
    create.add_argument("--visibility", choices=["team", "private"], default="team",
                        help="what the token's analyses and imports are stored as when a request does not say: "
                             "team stories every member reads, or private ones only this token sees (default team)")
    listing = actions.add_parser("list", help="every token: name, scope, visibility, created, last used, expires "
                                              "(no secret)")
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
