"""The wheel is exactly the product: Backstory's own modules, no evaluation or benchmark code,
nothing that needs the dev-only packages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEV_ONLY = ("nltk", "yake")
DEV_CODE = ("backstory/quality/", "backstory/archive/bench.py", "backstory_tools")


def _uv() -> list[str] | None:
    """How to run uv, as scripts/_uv.sh finds it: ``uv`` on PATH, else the base interpreter's module."""
    if shutil.which("uv"):
        return ["uv"]
    # The venv's own interpreter has no uv; the one it was made from may have it (pip install uv).
    base = [getattr(sys, "_base_executable", sys.executable), "-m", "uv"]
    try:
        found = subprocess.run([*base, "--version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        found = False
    return base if found else None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    uv = _uv()
    if uv is None:
        pytest.skip("uv is neither on PATH nor a module of the base interpreter")
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([*uv, "build", "--wheel", "--out-dir", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [path] = out.glob("backstory-*.whl")  # the root project only, not the tools workspace member
    with zipfile.ZipFile(path) as wheel:
        yield wheel


def test_the_wheel_holds_only_the_product(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "backstory/app.py" in names and "backstory/archive/related.py" in names
    strays = [n for n in names if not n.startswith("backstory/") and not re.match(r"backstory-[^/]+\.dist-info/", n)]
    assert strays == []
    assert [n for n in names if n.startswith(DEV_CODE)] == []


def test_nothing_in_the_wheel_needs_dev_only_packages(wheel: zipfile.ZipFile) -> None:
    imports = re.compile(rf"^\s*(?:import|from)\s+(?:{'|'.join(DEV_ONLY)}|backstory_tools)\b", re.M)
    users = [n for n in wheel.namelist() if n.endswith(".py") and imports.search(wheel.read(n).decode("utf-8"))]
    assert users == []
    [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line.split(":", 1)[1].strip() for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    assert requires and not [r for r in requires if re.match(rf"(?:{'|'.join(DEV_ONLY)})\b", r, re.I)]
