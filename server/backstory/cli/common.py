"""What the commands share: their settings (with the archive checked), a pipeline, progress."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from ..archive import check_archive
from ..config import Settings, from_env, one_archive


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


async def _pipeline(settings: Settings, archive: Any, *, models: bool = True, jobs: Any = None) -> Any:
    """A pipeline on ``archive``; ``models=False`` gives a store-only one (no models loaded)."""
    from ..pipeline import Models, Pipeline

    loaded = await asyncio.to_thread(Models.load, settings.spacy_processes) if models else None
    return Pipeline(settings, loaded, archive, jobs)


def _progress() -> Any:
    """A rich progress bar on stderr, with the counts of what was done beside it."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=Console(stderr=True))


def _counts(imported: int, skipped: int, failed: int) -> str:
    return f"{imported} imported, {skipped} skipped, {failed} failed"
