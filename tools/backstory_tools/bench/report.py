"""The report: the machine, the verdicts against the targets, the table and the Markdown."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from backstory_tools.bench.common import ROOT


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
    "postgres_analyze_ratio": 1.15,  # issue 16: analyse p50 on PostgreSQL within 15 % of SQLite, same run
    "postgres_related_100k_p50_ms": 20.0,
    "facts_line_p50_ms": 60.0,  # issue 20: the streamed facts line, ~800-word pages, idle server
    "facts_over_whole_p95": 0.25,  # issue 20: under 16 clients, facts-line p95 / whole-sidebar p95
}


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


def verdicts(report: dict) -> list[dict]:
    """One row per target: measured value, target, pass/fail (None when not measured)."""
    rows = []

    def add(name: str, value: Any, target: str, ok: bool | None, note: str = "", unit: str | None = None) -> None:
        m = re.match(r"^\(?[≤≥]\s*[\d.,]+\s*([^)]*)\)?$", target)
        if unit is None:
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
    _stream_verdicts(report, add)
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
    if report.get("postgres"):
        from backstory_tools.bench.report_pg import postgres_verdicts

        postgres_verdicts(report, add, TARGETS)
    return rows


def _stream_verdicts(report: dict, add: Any) -> None:
    """The streamed answer's rows (issue 20), when the run measured it."""
    st = report.get("stream", {})
    idle = st.get("idle", {})
    if idle:
        p50 = idle.get("facts_ms", {}).get("p50")
        add("streamed: facts line p50, ~800-word pages, idle", p50, "≤ 60 ms",
            None if p50 is None else p50 <= TARGETS["facts_line_p50_ms"],
            f"n={idle.get('facts_ms', {}).get('n')} ({idle.get('pages')}); whole sidebar p50 "
            f"{idle.get('whole_ms', {}).get('p50')} ms; server's extract p50 {idle.get('server_extract_ms', {}).get('p50')} ms")
    ld = st.get("load", {})
    if ld:
        ratio = ld.get("facts_p95_over_whole_p95")
        plain = report.get("load", {}).get("latency_ms", {}).get("p95")
        add(f"streamed, {ld.get('clients')} clients: facts p95 / whole-sidebar p95", ratio, "≤ 0.25",
            None if ratio is None else ratio <= TARGETS["facts_over_whole_p95"],
            f"facts p95 {ld.get('facts_ms', {}).get('p95')} ms, whole p95 {ld.get('whole_ms', {}).get('p95')} ms "
            f"(not streamed, phase 3: {plain} ms); {ld.get('errors')} errors", unit="")


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
        for side, data, ks in (("ours", un, keys),
                               ("postgres", report.get("postgres", {}).get("analyze_uncached", {}), keys),
                               ("naive", naive, ("extract", "entities", "keyphrases", "-", "-", "total", "total"))):
            for name in ("pages", "pages_800w", "texts"):
                t = data.get(name)
                if not t:
                    continue
                cells = "".join(f"{_fmt(t.get(k, {}).get('p50')):>7} /{_fmt(t.get(k, {}).get('p95')):>5}" for k in ks)
                print(f"{side + ' ' + name:<22}{t[ks[-1]]['n']:>5}  {cells}")
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
                           ("ours on PostgreSQL", report.get("postgres", {}).get("analyze_uncached", {}), keys),
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
