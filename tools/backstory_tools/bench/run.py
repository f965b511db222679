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
3b. the streamed answer (``Accept: application/x-ndjson``): the facts line's latency on ~800-word
   pages with the server idle, and under the same 16 clients the facts line's p95 beside the
   whole sidebar's (:mod:`backstory_tools.bench.stream`);
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

With ``--database-url URL`` (an empty PostgreSQL database, or ``pgserver`` for a throwaway one)
the same run measures the PostgreSQL side beside it (:mod:`backstory_tools.bench.postgres`): the
import phase's stories imported and completed by 1, then 2 ``backstory worker`` processes; the
archive copied in by ``backstory migrate-archive``; a second server on it that gets each uncached
document right after the SQLite one; its cold start and memory, and a worker's.

Output: a table on stdout and ``artifacts/bench.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backstory_tools.bench.children import measure_related_cached, run_floor
from backstory_tools.bench.common import DEFAULT_DATA, ROOT, loadavg, log, pct
from backstory_tools.bench.corpus import (cached_archive, data_missing, load_duc, load_pages, read_jsonl, run_backlog,
                                          run_import, write_jsonl)
from backstory_tools.bench.ideal import ideal_load
from backstory_tools.bench.load import analyze_once, measure_cache_hits, measure_load, measure_uncached, uncached_tables
from backstory_tools.bench.naive import NaiveStack, f1_at_10, naive_table
from backstory_tools.bench.postgres import (Database, bench_database, database_label, import_rounds, migrate,
                                            server_version)
from backstory_tools.bench.procs import thread_cpu, thread_cpu_per_request
from backstory_tools.bench.report import git_commit, machine, markdown, print_report, verdicts
from backstory_tools.bench.server import Server
from backstory_tools.bench import stream


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
    p.add_argument("--skip", default="",
                   help="comma-separated phases to skip: import,load,stream,related,naive,cache,floor")
    p.add_argument("--timeout", type=float, default=3600, help="limit for each child process (s)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the server process (repeatable), e.g. MALLOC_ARENA_MAX=2")
    p.add_argument("--database-url", metavar="URL",
                   help="also measure PostgreSQL in this run: an empty database's URL, or 'pgserver' for a "
                        "throwaway server from the PyPI package (emptied between phases; see bench/postgres.py)")
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
    if not args.database_url:
        return bench(args, None)
    with bench_database(args.database_url) as db:
        return bench(args, db)


def bench(args: argparse.Namespace, db: Database | None) -> int:
    """The run; with ``db``, the PostgreSQL figures beside SQLite's (``report["postgres"]``)."""
    report: dict[str, Any] = {"meta": {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": machine(), "loadavg_start": loadavg(), "argv": sys.argv[1:], "quick": args.quick,
        "server_env": args.server_env,
    }}
    pg: dict[str, Any] = {}
    if db is not None:
        report["postgres"] = pg
        pg["database"] = database_label(args.database_url)
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
            if db is not None:
                pg["import_rounds"] = import_rounds(db, jsonl, (1, 2), out_dir / "bench-worker.log", args.timeout)

    # the preloaded archive (cached), copied for this run
    archive_src, archive_meta = cached_archive(args.data, args.archive_size, args.seed_docs, args.timeout)
    report["archive"] = archive_meta
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    server = pg_server = None
    try:
        run_archive = work / "archive.sqlite3"
        shutil.copyfile(archive_src, run_archive)
        server_log = out_dir / "bench-server.log"
        server_log.unlink(missing_ok=True)
        server_env = dict(kv.split("=", 1) for kv in args.server_env)
        server = Server(run_archive, server_log, server_env)
        if db is not None:
            log(f"PostgreSQL: backstory migrate-archive of the {archive_meta.get('size')}-story archive ...")
            pg["migrate"] = migrate(run_archive, db, args.timeout)
            log(f"  {pg['migrate']}")
            pg_server = Server(db.url, out_dir / "bench-server-pg.log", server_env)

        # 6. cold start
        log("starting the server ...")
        report["cold_start"] = server.start()
        report["cold_start"]["loadavg"] = loadavg()
        log(f"  {report['cold_start']}")
        if pg_server is not None:
            log("starting the PostgreSQL server beside it ...")
            pg_server.log_path.unlink(missing_ok=True)
            pg["cold_start"] = pg_server.start()
            log(f"  {pg['cold_start']}")

        import httpx

        for each in [s for s in (server, pg_server) if s is not None]:
            with httpx.Client(base_url=each.base, timeout=120.0) as client:  # warm-up, not measured
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
        pg_pages: list[dict] = []
        pg_texts: list[dict] = []
        beside = pg_server.base if pg_server is not None else None
        log(f"uncached analyses: {len(pages)} pages + {len(texts)} texts"
            + (", each then sent to the PostgreSQL server" if beside else "")
            + (f", each followed by the naive stack ({len(naive_ids)})" if naive else "") + " ...")
        t0 = time.perf_counter()
        cpu0 = server.cpu_s()
        page_results = measure_uncached(server.base, pages, naive, naive_ids, naive_rows, beside, pg_pages)
        cpu1 = server.cpu_s()
        text_results = measure_uncached(server.base, texts, naive, naive_ids, naive_rows, beside, pg_texts)
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
        report["analyze_uncached"].update(uncached_tables(page_results, text_results))
        if pg_server is not None:
            pg["analyze_uncached"] = {"paired": True, **uncached_tables(pg_pages, pg_texts),
                                      "errors": [r for r in pg_pages + pg_texts if "error" in r]}
        # Resident memory after warm-up: at rest, once the server has handed back the heap its
        # requests freed (it does so when idle, at most every TRIM_INTERVAL s); and right after the
        # last answer, for comparison.
        from backstory.pipeline import TRIM_INTERVAL

        just_after = server.memory()
        pg_just_after = pg_server.memory() if pg_server is not None else {}
        time.sleep(TRIM_INTERVAL + 1.5)
        report["memory"] = {"after_warmup": server.memory(), "after_warmup_last_answer": just_after,
                            "at_rest_after_s": TRIM_INTERVAL + 1.5}
        if pg_server is not None:
            pg["memory"] = {"after_warmup": pg_server.memory(), "after_warmup_last_answer": pg_just_after,
                            "at_rest_after_s": TRIM_INTERVAL + 1.5}
            pg_server.stop()  # the phases below are SQLite's alone
            pg_server = None
        log(f"  pages e2e {report['analyze_uncached'].get('pages', {}).get('e2e_client')}")

        # 2. cache hits
        if "cache" not in args.skip:
            repeat_docs = [d for d, r in zip(pages, page_results) if "error" not in r][:20]
            if repeat_docs:
                log("cache hits ...")
                report["cache_hit"] = measure_cache_hits(server.base, repeat_docs, args.cache_repeats)
                log(f"  {report['cache_hit']['e2e_client']}")

        # 3b. the streamed answer, the server idle
        if "stream" not in args.skip and good_pages:
            log("streamed answers, one at a time: the facts line ...")
            report["stream"] = {"idle": stream.measure_idle(server.base, pages, {r["id"]: r["words"] for r in good_pages})}
            log(f"  facts {report['stream']['idle']['facts_ms']}, whole {report['stream']['idle']['whole_ms']}")

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
            if "stream" in report:  # 3b under the same load, streamed
                log(f"{args.clients} clients streaming for {args.load_seconds:.0f} s ...")
                report["stream"]["load"] = stream.measure_load(server.base, pages, args.clients, args.load_seconds,
                                                               args.load_max)
                log(f"  facts {report['stream']['load']['facts_ms']}, whole {report['stream']['load']['whole_ms']}")
    finally:
        for each in (server, pg_server):
            if each is not None:
                each.stop()
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

    if db is not None:
        pg.update(server_version(db))  # pgvector as the archive's migrations installed it
    report["meta"]["loadavg_end"] = loadavg()

    def per_document(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "keyphrases"} for r in rows]

    report["per_document"] = per_document(page_results + text_results)
    if db is not None:
        pg["per_document"] = per_document(pg_pages + pg_texts)  # before the verdicts: their paired ratios
    report["verdicts"] = verdicts(report)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print_report(report)
    log(f"JSON report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
