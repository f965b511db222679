"""The model cache: files prepared once from the shipped models (the quantised embedding model,
the compact language identifier) and read on every later start.

Entries are named ``<kind>-<16 hex key>.<ext>``, the key changing with the source model, the
library version or the recipe, so an upgrade writes a new entry and the old one is pruned.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import PREFIX, from_env

_SETTING = PREFIX + "MODEL_CACHE"


def model_cache_dir() -> Path:
    """The cache folder: the ``model_cache`` setting, else the user's cache directory.

    Read from the environment here, in this one place, rather than passed down from the server's
    ``Settings``: the models are process-wide and load wherever they are first used (the server,
    the CLI, scripts and tests, most with no ``Settings`` at hand), and the setting has no flag, so
    the environment is where every one of them finds the value the server's ``Settings`` holds.
    Only this variable is read, so that a bad unrelated setting never stops a model from loading.
    """
    setting = from_env({_SETTING: os.environ[_SETTING]} if _SETTING in os.environ else {}).model_cache
    if setting:
        return Path(setting).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("backstory", appauthor=False))


def prune_model_cache(kept: Path) -> list[Path]:
    """Delete the entries of ``kept``'s kind that an earlier version left in its cache folder.

    After an upgrade the old file is never read again. Called right after a new entry was
    written. Never fails: what cannot be deleted stays."""
    kind, _, key = kept.stem.rpartition("-")
    removed = []
    try:
        others = list(kept.parent.glob(f"{kind}-*{kept.suffix}"))
    except OSError:
        return removed
    for other in others:
        other_kind, _, other_key = other.stem.rpartition("-")
        if other == kept or other_kind != kind or len(other_key) != len(key):
            continue
        if not all(c in "0123456789abcdef" for c in other_key):
            continue
        try:
            other.unlink()
        except OSError:
            continue
        removed.append(other)
    return removed
