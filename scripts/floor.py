#!/usr/bin/env python3
"""The floor under the speed and memory targets (issue 5): what the fixed stack costs before any
code of ours adds to it. Run by ``scripts/bench.py`` (phase ``floor``), or alone:

    .venv/bin/python scripts/floor.py memory             # resident memory of what must be loaded
    .venv/bin/python scripts/floor.py cpu [--data D]      # CPU per page, stage by stage
    .venv/bin/python scripts/floor.py throughput [--data D] [--seconds S]   # pages/s on 2 cores

``memory``: fresh interpreters load, step by step, what the server process must hold (the web
stack, trafilatura, ONNX Runtime with the embedding model, KeyBERT with scikit-learn and SciPy,
and py3langid's model in its compact form, loaded only for a text that is not plainly English) and what the
spaCy processes must hold (one loads the pipeline, the NER process is forked from it); VmRSS
after each step, and for the spaCy pair the loader's VmRSS plus the forked process's private pages
(the pages they share counted once). Their sum is
the least a server can use at rest, before it has read one page.

``cpu``: the CPU time of each stage a sidebar needs, run one after the other in this process on
the extraction pages of 600-1000 words and on all of them (medians): extraction, spaCy tagger +
candidates, spaCy NER + entities, the document embedding, the candidate embeddings + ranking.
Their sum is the CPU one page costs on its own; on two cores, N clients that always wait see at
least N × sum / 2 of latency on average, whatever the scheduling.

``throughput``: two processes, one per core, each running those five stages back to back on all
pages for ``--seconds``: the most pages per second this stack gives on this machine with no HTTP,
no archive, no related search and no hand-over between processes; and each page's CPU there
(``cpu_ms_by_page``, the median of its runs), from which ``scripts/bench.py`` plays an ideal server.

Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from backstory.story import embedding_text
from backstory_tools import default_data_dir

ROOT = Path(__file__).resolve().parents[1]

LANGUAGE_MODEL_STEP = "language model (py3langid's, compact; the first text that is not plainly English)"
_STEPS = {
    "server": [
        ("python + numpy", "import numpy"),
        ("web stack (litestar, msgspec, uvicorn, httpx)", "import litestar, msgspec, uvicorn, httpx"),
        ("trafilatura + warm-up (word lists)", "from backstory.extract import warm_up; warm_up()"),
        ("onnxruntime + tokenizers", "import onnxruntime, tokenizers"),
        ("keybert (scikit-learn, scipy)", "import keybert, sklearn.feature_extraction.text"),
        ("embedding model session + one 256-token run",
         "from backstory.embed import MiniLMEmbedder; e = MiniLMEmbedder(); e.embed_document('word ' * 300)"),
        (LANGUAGE_MODEL_STEP, "from backstory.extract import detect_language; "
         "detect_language('Der Stadtrat hat am Dienstagabend beschlossen, die alte Brücke für vier Millionen "
         "Euro zu sanieren, statt sie durch einen Neubau zu ersetzen.')"),
    ],
    "spaCy processes": [
        ("python + numpy", "import numpy"),
        ("spacy", "import spacy"),
        ("en_core_web_sm tagger + NER + gazetteer, one text",
         "from backstory.nlp_worker import _init_child; _init_child(os.getppid(), 'all')"),
    ],
}

_CHILD = (
    "import json, os, sys\n"
    "def rss():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmRSS:'):\n"
    "            return int(line.split()[1]) / 1024\n"
    "from backstory.memory import release_free_memory\n"
    "out = []\n"
    "for name, code in json.loads(sys.argv[1]):\n"
    "    exec(code)\n"
    "    release_free_memory()  # what a step holds, not the heap it freed (the server trims too)\n"
    "    out.append([name, round(rss(), 1)])\n"
    "print(json.dumps(out))\n"
)


def memory() -> dict:
    result: dict = {"processes": {}}
    for process, steps in _STEPS.items():
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(steps)], capture_output=True, text=True, cwd=ROOT,
            timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
        rows = json.loads(proc.stdout.strip().splitlines()[-1])
        steps_out, last = [], 0.0
        for name, rss in rows:
            steps_out.append({"step": name, "rss_mb": rss, "added_mb": round(rss - last, 1)})
            last = rss
        result["processes"][process] = {"steps": steps_out, "rss_mb": last}
    # The pair as the server runs it: the tagger process loads, the NER process is forked from it.
    from backstory.nlp_worker import NlpWorker

    worker = NlpWorker()
    try:
        pids = worker.pids
        pair = _status_mb(pids["tagger"], "VmRSS") + _private_mb(pids["ner"])
    finally:
        worker.close()
    spacy = result["processes"]["spaCy processes"]["steps"]
    one = spacy[-1]["rss_mb"]
    spacy.append({"step": "the NER process forked from it (its private pages added)", "rss_mb": round(pair, 1),
                  "added_mb": round(pair - one, 1)})
    result["processes"]["spaCy processes"]["rss_mb"] = round(pair, 1)
    server = result["processes"]["server"]
    english_only = next(s["rss_mb"] - s["added_mb"] for s in server["steps"] if s["step"] == LANGUAGE_MODEL_STEP)
    result["total_mb"] = round(server["rss_mb"] + pair, 1)
    result["total_english_only_mb"] = round(english_only + pair, 1)
    result["total_one_spacy_process_mb"] = round(server["rss_mb"] + one, 1)
    return result


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _private_mb(pid: int) -> float:
    kb = sum(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
             if line.startswith(("Private_Clean:", "Private_Dirty:")))
    return kb / 1024


def cpu(data: Path) -> dict:
    """:func:`cpu_stages` on the 600-1000-word pages and on all pages."""
    return {"pages_800w": cpu_stages(data, 600, 1000), "all_pages": cpu_stages(data, 0, 10**9)}


class Stages:
    """The five stages a sidebar needs, loaded in this process, run one after the other."""

    def __init__(self) -> None:
        from backstory.embed import MiniLMEmbedder
        from backstory.gazetteer import load_gazetteer
        from backstory.extract import warm_up
        from backstory.keyphrases import KeyphraseExtractor
        from backstory.nlp import load_nlp

        warm_up()
        self.tagger, self.ner = load_nlp("tagger"), load_nlp("ner")
        load_gazetteer()  # as the spaCy processes do at start, so the first page's NER time is not its load
        self.embedder = MiniLMEmbedder()
        self.ranker = KeyphraseExtractor(self.embedder)

    def run(self, page) -> dict[str, float] | None:
        """CPU ms of each stage on ``page``; None when it is not an article."""
        from backstory.entities import extract_entities
        from backstory.extract import extract_article
        from backstory.keyphrases import select_candidates

        ms: dict[str, float] = {}

        def timed(name: str, fn, *args, **kwargs):
            c0 = time.process_time()
            out = fn(*args, **kwargs)
            ms[name] = (time.process_time() - c0) * 1000
            return out

        try:
            article = timed("extraction", extract_article, page.html, page.url)
        except Exception:  # noqa: BLE001 - pages that are not articles are not measured
            return None
        cands = timed("spaCy tagger + candidates", lambda: select_candidates(self.tagger(article.text), article.title))
        timed("spaCy NER + entities", lambda: extract_entities(self.ner(article.text)))
        vector = timed("document embedding", self.embedder.embed_document, embedding_text(article.title, article.text))
        timed("candidate embeddings + ranking", self.ranker.extract_from, cands, article.text, article.title,
              top_n=10, doc_embedding=vector)
        ms["words"] = len(article.text.split())
        return ms


def _pages(data: Path) -> list:
    from backstory_tools.bench.corpus import load_pages

    return load_pages(data, None)


def cpu_stages(data: Path, min_words: int, max_words: int) -> dict:
    stages = Stages()
    runs = []
    for page in _pages(data):
        run = stages.run(page)
        if run and min_words <= run.pop("words") <= max_words:
            runs.append(run)
    medians = {k: round(statistics.median(r[k] for r in runs), 1) for k in (runs[0] if runs else {})}
    total = round(sum(medians.values()), 1)
    return {
        "pages": len(runs), "cpu_ms_p50": medians, "sum_ms": total,
        "max_per_s_on_2_cores": round(2000 / total, 2) if total else None,
        "mean_latency_16_clients_ms_at_least": round(16 * total / 2, 0),
    }


def _throughput_worker(data: str, seconds: float, offset: int, ready, go, results) -> None:
    stages = Stages()
    pages = _pages(Path(data))
    pages = pages[offset:] + pages[:offset]
    stages.run(pages[0])  # warm
    ready.put(os.getpid())
    go.wait()
    n, i, cpu = 0, 0, 0.0
    by_page: dict[str, list[float]] = {}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        page = pages[i % len(pages)]
        run = stages.run(page)
        i += 1
        if run:
            run.pop("words")
            n += 1
            cost = sum(run.values())
            cpu += cost
            by_page.setdefault(page.id, []).append(cost)
    results.put({"pages": n, "seconds": time.perf_counter() - start, "cpu_ms": cpu, "by_page": by_page})


def throughput(data: Path, seconds: float = 25.0, processes: int = 2) -> dict:
    """:class:`Stages` back to back in ``processes`` processes at once (spawned, each its own
    models), started together after all have loaded: pages per second and CPU per page."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    count = len(_pages(data))
    procs = [ctx.Process(target=_throughput_worker, args=(str(data), seconds, k * count // processes, ready, go, results))
             for k in range(processes)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    go.set()
    rows = [results.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join()
    pages = sum(r["pages"] for r in rows)
    by_page: dict[str, list[float]] = {}
    for r in rows:
        for page_id, costs in r["by_page"].items():
            by_page.setdefault(page_id, []).extend(costs)
    return {
        "processes": processes, "seconds": round(max(r["seconds"] for r in rows), 1), "pages": pages,
        "pages_per_s": round(pages / max(r["seconds"] for r in rows), 2),
        "cpu_ms_per_page": round(sum(r["cpu_ms"] for r in rows) / pages, 1) if pages else None,
        # each page's CPU (median of its runs here): what an ideal server would spend on it
        "cpu_ms_by_page": {k: round(statistics.median(v), 1) for k, v in sorted(by_page.items())},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["memory", "cpu", "throughput"])
    p.add_argument("--data", type=Path, default=default_data_dir())
    p.add_argument("--seconds", type=float, default=25.0, help="length of the throughput run")
    args = p.parse_args(argv)
    if args.what == "memory":
        print(json.dumps(memory()))
    elif args.what == "cpu":
        print(json.dumps(cpu(args.data)))
    else:
        print(json.dumps(throughput(args.data, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
