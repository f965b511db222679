"""The phases measured in child processes: the related lookup alone (4) and the floor
(``scripts/floor.py``)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from backstory_tools.bench.common import CACHE_DIR, ROOT, loadavg, python


_SPEED = (
    "import json, resource, sys\n"
    "cap = int(float(sys.argv[3]) * 2**30)\n"
    "resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # a MemoryError here, not the OOM killer elsewhere\n"
    "from backstory_tools.related_bench import speed\n"
    "r = speed(int(sys.argv[1]), queries=int(sys.argv[2]))\n"
    "r['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)\n"
    "print(json.dumps(r))\n"
)


def related_code_key() -> str:
    """Hash of the code the lookup-only figure depends on (the index and its synthetic bench)."""
    h = hashlib.sha256()
    archive = ROOT / "server" / "backstory" / "archive"
    for path in (archive / "related.py", archive / "neighbours.py", archive / "relation.py", archive / "postings.py",
                 archive / "features.py", archive / "base.py", ROOT / "tools" / "backstory_tools" / "related_bench.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def measure_related_cached(n: int, queries: int, timeout: float, fresh: bool, mem_gb: float = 12.0) -> dict:
    """:func:`measure_related`, reusing a result measured earlier on the same index code.

    Building a synthetic 1M-story index with ``speed()`` takes tens of minutes on 2 cores, and the
    figure depends only on the index code, so it is kept in ``.bench-cache`` by code hash."""
    path = CACHE_DIR / f"related-{n}-q{queries}-{related_code_key()}.json"
    if path.exists() and not fresh:
        return {**json.loads(path.read_text()), "cached": True}
    out = measure_related(n, queries, timeout, mem_gb)
    out["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out["loadavg"] = loadavg()
    if "error" not in out:
        CACHE_DIR.mkdir(exist_ok=True)
        path.write_text(json.dumps(out, indent=2))
    return {**out, "cached": False}


def measure_related(n: int, queries: int, timeout: float, mem_gb: float = 12.0) -> dict:
    """backstory_tools.related_bench.speed(n) in a child process (its memory is freed afterwards)."""
    started = time.perf_counter()
    try:
        proc = subprocess.run([python(), "-c", _SPEED, str(n), str(queries), str(mem_gb)], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"n": n, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"n": n, "error": proc.stderr.strip().splitlines()[-1:] or proc.returncode}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def run_floor(what: str, data: Path, timeout: float, *extra: str) -> dict:
    """``scripts/floor.py memory|cpu|throughput`` in a child process (see that script)."""
    proc = subprocess.run([python(), str(ROOT / "scripts" / "floor.py"), what, "--data", str(data), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [str(proc.returncode)])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])
