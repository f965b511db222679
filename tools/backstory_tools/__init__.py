"""Backstory's development tools: the evaluation harness and the benchmarks' own code.

Not the product: the ``backstory`` wheel holds none of it. The dev environment (``uv sync``)
installs this package from ``tools/`` as a member of the repository's uv workspace (editable),
so scripts and tests import it like any package.
"""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    """The repository this package is installed from (editable): scripts, ``.venv`` and caches live there."""
    here = Path(__file__).resolve()
    # The repository is found by what it holds, not by counting parents: this package may move.
    for folder in here.parents:
        if (folder / "server" / "backstory").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError(f"{here} is not inside a Backstory repository (uv sync installs it editable from tools/)")


def default_data_dir() -> Path:
    """The evaluation sets: ``../shared/data`` beside the repository (never stored in it)."""
    return repo_root().parent / "shared" / "data"
