#!/usr/bin/env python3
"""Measure Backstory and its peers on the evaluation sets (the dev half in ../shared/data).

    .venv/bin/python scripts/evaluate.py TASK [--data DIR] [--limit N] [--out FILE.json] [--skip-peers] [--folds K]

TASK is extraction, keyphrases, ner, related or all. The product runs through the code the API
uses (see backstory_tools.quality.harness); the peers run in the same process on the same documents.
Prints one table per task and writes every figure to a JSON file (default artifacts/quality.json).
When the data directory is absent it prints "skipped: ..." and exits 0.

``--folds K`` cross-validates the product instead (backstory_tools.quality.folds): each set split
into K folds (extraction by site, related by topic, keyphrases and NER by document), per-fold
figures, the cross-validated figure beside the plain one, and for extraction every clean-up
rule's gain on the folds it was chosen on and on the held-back ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from backstory_tools import default_data_dir
from backstory_tools.quality import folds, harness
from backstory_tools.quality.harness import (
    GATE_LIMITS,
    HEADLINE,
    PRODUCT,
    TASKS,
    TOLERANCE,
    gated_figures,
    run_task,
)

ROOT = Path(__file__).resolve().parents[1]

# Table columns: the headline figures, then counts and timings (everything is in the JSON).
EXTRA_COLUMNS = {
    "extraction": ["empty_predictions", "seconds_per_doc"],
    "keyphrases": ["seconds_per_doc"],
    "ner": ["seconds_per_doc"],
    "related": ["relation_acc", "other_topic_share", "same_event_p@5", "empty_results", "seconds_per_doc",
                "analyze_store_seconds_per_doc"],
}
SHORT = {"seconds_per_doc": "s/doc", "analyze_store_seconds_per_doc": "store s/doc", "empty_predictions": "empty",
         "empty_results": "empty", "relation_acc": "relation acc", "other_topic_share": "other topics",
         "same_event_p@5": "same-event p@5"}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "server", "tools"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if out.returncode != 0 or not out.stdout.strip():
            return "unknown"
        return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return "-" if value is None else str(value)


def format_markdown(result: dict) -> str:
    """The same table in Markdown (for docs/quality.md)."""
    cols = HEADLINE[result["task"]] + EXTRA_COLUMNS[result["task"]]
    out = [
        f"**{result['task']}** ({result['documents']} documents)",
        "",
        "| system | " + " | ".join(SHORT.get(c, c) for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, figures in result["systems"].items():
        cells = [f"FAILED: {figures['error']}"] if "error" in figures else [_cell(figures.get(c)) for c in cols]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def format_table(result: dict) -> str:
    """A fixed-width table: one row per system (the product first), one column per figure."""
    cols = HEADLINE[result["task"]] + EXTRA_COLUMNS[result["task"]]
    header = ["system"] + [SHORT.get(c, c) for c in cols]
    lines = []
    for name, figures in result["systems"].items():
        if "error" in figures:
            lines.append([name, f"FAILED: {figures['error']}"])
        else:
            lines.append([name] + [_cell(figures.get(c)) for c in cols])
    full = [row for row in lines if len(row) == len(header)]
    widths = [max([len(header[i])] + [len(row[i]) for row in full]) for i in range(len(header))]
    out = [f"== {result['task']}: {result['documents']} documents, {result['wall_seconds']:.0f} s"]
    out.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in lines:
        if len(row) != len(header):
            out.append("  ".join(row))
        else:
            out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return "\n".join(out)


def format_folds(result: dict) -> str:
    """A fold report as Markdown: per-fold figures, then (extraction) the rules' gains."""
    task, plain, cv = result["task"], result["plain"], result["cross_validated"]
    main = HEADLINE[task][0]
    out = [
        f"**{task}**, {result['folds']} folds ({result['documents']} documents): {main} plain {plain[main]:.4f}, "
        f"cross-validated {cv[main]:.4f} (folds {result['fold_spread']['min']:.4f}-{result['fold_spread']['max']:.4f})",
        "",
    ]
    cols = [c for c in result["per_fold"][0] if c not in ("fold", "rules_chosen")]
    out += ["| fold | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    out += [f"| {f['fold']} | " + " | ".join(_cell(f[c]) for c in cols) + " |" for f in result["per_fold"]]
    if "rules" in result:
        out += ["", "| rule | sites it fires on | chosen in folds | gain where chosen | gain on the held-back fold |",
                "|---|---|---|---|---|"]
        for rule, e in sorted(result["rules"].items()):
            gains = lambda xs: ", ".join(f"{x:+.4f}" for x in xs) or "-"  # noqa: E731
            out.append(f"| {rule} | {len(result['firing_sites'][rule])} | {e['chosen_in_folds']} | "
                       f"{gains(e['train_gain'])} | {gains(e['held_back_gain'])} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=[*TASKS, "all"])
    parser.add_argument("--data", type=Path, default=None, help="data directory (default: ../shared/data from the repo)")
    parser.add_argument("--limit", type=int, default=None, help="first N items of each set (related: whole topics)")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "quality.json", help="JSON file of all figures")
    parser.add_argument("--skip-peers", action="store_true", help="run the product only")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--archive", metavar="URL", help="related: store the articles in this (empty) archive, e.g. "
                                                        "postgresql://…, instead of a new SQLite file")
    parser.add_argument("--folds", type=int, metavar="K", help="cross-validate the product on K folds (K >= 2)")
    parser.add_argument(
        "--write-baseline",
        type=Path,
        metavar="FILE",
        help="run the product on the quality gate's subsets and write its baseline (tests/quality_baseline.json)",
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.write_baseline and (args.limit is not None or args.task != "all"):
        parser.error("--write-baseline runs all tasks on the gate's own subsets: no --limit, TASK all")
    if args.folds is not None and (args.folds < 2 or args.write_baseline):
        parser.error("--folds needs K >= 2 and no --write-baseline")

    data = args.data or default_data_dir()
    if not data.is_dir():
        print(f"skipped: no evaluation data at {data}")
        return 0
    tasks = list(TASKS) if args.task == "all" else [args.task]
    harness.RELATED_ARCHIVE = args.archive
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _commit(),
        "data": str(data),
        "limit": args.limit,
        "peers": not args.skip_peers,
        "product": PRODUCT,
        "tasks": {},
    }
    start = time.perf_counter()
    for task in tasks:
        if not (data / task).is_dir():
            print(f"skipped {task}: no {data / task}")
            continue
        if args.folds:
            try:
                result = folds.fold_task(task, data, args.folds, args.limit)
            except ValueError as exc:  # too few sites or topics for K folds
                parser.error(f"{task}: {exc}")
            report.setdefault("folds", {})[task] = result
            print(format_folds(result), flush=True)
            print()
            continue
        if args.write_baseline:
            result = run_task(task, data, limit=GATE_LIMITS[task], peers=False)
        else:
            result = run_task(task, data, limit=args.limit, peers=not args.skip_peers)
        report["tasks"][task] = result
        print(format_markdown(result) if args.markdown else format_table(result), flush=True)
        print()
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.out}")
    failed = [t for t, r in report["tasks"].items() if "error" in r.get("systems", {}).get(PRODUCT, {})]
    if failed:
        print(f"the product failed on: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.write_baseline:
        baseline = {
            "note": "quality gate baseline: written by scripts/evaluate.py all --write-baseline; see docs/quality.md",
            "date": report["date"],
            "commit": report["commit"],
            "tolerance": TOLERANCE,
            "tasks": {
                task: {"limit": r["limit"], "documents": r["documents"], "figures": gated_figures(r)}
                for task, r in report["tasks"].items()
            },
        }
        # the tasks with choices made on folds: extraction's clean-up rules, related's constants
        if "extraction" in report["tasks"]:
            cv = folds.fold_task("extraction", data, folds.GATE_FOLDS)
            baseline["tasks"]["extraction"]["folds"] = folds.GATE_FOLDS
            baseline["tasks"]["extraction"]["cross_validated"] = cv["cross_validated"]
        if "related" in report["tasks"]:
            from backstory_tools.related_folds import gate_cross_validated

            baseline["tasks"]["related"]["folds"] = folds.GATE_FOLDS
            baseline["tasks"]["related"]["cross_validated"] = gate_cross_validated(
                harness._models(), folds.GATE_FOLDS, data / "related" / "ecbplus.jsonl")
        args.write_baseline.write_text(json.dumps(baseline, indent=2) + "\n", encoding="utf-8")
        print(f"baseline written to {args.write_baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
