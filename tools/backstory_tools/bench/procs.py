"""Process accounting from ``/proc``: the server's process tree, each process's role, its unique
resident memory and the CPU of each thread."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


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
