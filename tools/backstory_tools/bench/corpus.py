"""The bench's documents (the extraction pages, the DUC texts), the bulk import (5) and the cached
10,000-story archive every server run starts from."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backstory_tools.bench.common import CACHE_DIR, ROOT, log, python
from backstory_tools.bench.server import Server


CACHE_VERSION = 1  # bump when the archive generation below changes


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


_PROGRESS = re.compile(r"(\d+) imported, (\d+) skipped, (\d+) failed")


def run_import(jsonl: Path, archive: Path | str, timeout: float, analyse: bool = False) -> dict:
    """``backstory import FILE --archive PATH_OR_URL [--analyse]`` in a subprocess; wall and steady rates.

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
                    imported, skipped, failed = (int(g) for g in m.groups())
                    marks.append((now, imported + skipped + failed, skipped, failed))
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
    # a short import can report all its progress in one read: no interval to take a rate over
    if first is not None and marks[-1][1] > first[1] and marks[-1][0] - first[0] >= 0.1:
        out["startup_s"] = round(first[0] - started, 2)
        out["rate_steady_per_s"] = round((marks[-1][1] - first[1]) / (marks[-1][0] - first[0]), 2)
    if failed:
        out["errors_tail"] = tail[-5:]
    return out


def run_backlog(archive: Path, log_path: Path, timeout: float, budget: float | None = None) -> dict:
    """Start the server on an archive a plain import filled and time its background analysis:
    from ready until ``/readyz`` reports no pending story, or for ``budget`` seconds (a sample of
    a backlog too long to wait for)."""
    import httpx

    server = Server(archive, log_path)
    try:
        started = server.start(timeout)
        with httpx.Client(base_url=server.base, timeout=10) as client:
            pending = first = client.get("/readyz").json().get("pending_analysis", 0)
            t0 = time.perf_counter()
            while pending and time.perf_counter() - t0 < (budget or timeout):
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
    from backstory.archive.sqlite import archive_at

    archive = archive_at(path)
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
    from backstory.archive.sqlite import archive_at

    archive = archive_at(path)
    await archive.start()
    await archive.close()


def cached_archive(data: Path, size: int, seed_docs: int, timeout: float) -> tuple[Path, dict]:
    """The ``size``-story archive from ``.bench-cache`` (built on first use)."""
    from backstory.archive.features import FEATURES_VERSION

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
