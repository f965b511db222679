#!/usr/bin/env python3
"""The floor under the speed and memory targets (issue 5): what the fixed stack costs before any
code of ours adds to it. Run by ``scripts/bench.py`` (phase ``floor``), or alone:

    .venv/bin/python scripts/floor.py memory          # resident memory of what must be loaded
    .venv/bin/python scripts/floor.py cpu [--data D]   # CPU per 800-word page, stage by stage

``memory``: fresh interpreters load, step by step, what the server process must hold (the web
stack, trafilatura and its language model, ONNX Runtime with the embedding model, KeyBERT with
scikit-learn and SciPy) and what a spaCy process must hold; the resident size (VmRSS) after
each step. Their sum is the least a server can use at rest, before it has read one page.

``cpu``: the CPU time of each stage a sidebar needs, run one after the other in this process on
the extraction pages of 600-1000 words and on all of them (medians): extraction, spaCy tagger + candidates, spaCy
NER + entities, the document embedding, the candidate embeddings + ranking. Their sum is the
CPU one page costs on its own; on two cores, N clients that always wait see at least
N × sum / 2 of latency on average, whatever the scheduling.

Both print one JSON object.
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "server") not in sys.path:
    sys.path.insert(0, str(ROOT / "server"))

_STEPS = {
    "server": [
        ("python + numpy", "import numpy"),
        ("web stack (litestar, msgspec, uvicorn, httpx)", "import litestar, msgspec, uvicorn, httpx"),
        ("trafilatura + warm-up (word lists, py3langid model)", "from backstory.extract import warm_up; warm_up()"),
        ("onnxruntime + tokenizers", "import onnxruntime, tokenizers"),
        ("keybert (scikit-learn, scipy)", "import keybert, sklearn.feature_extraction.text"),
        ("embedding model session + one 256-token run",
         "from backstory.embed import MiniLMEmbedder; e = MiniLMEmbedder(); e.embed_document('word ' * 300)"),
    ],
    "spaCy process (NER half)": [
        ("python + numpy", "import numpy"),
        ("spacy", "import spacy"),
        ("en_core_web_sm NER + gazetteer", "from backstory.nlp import load_nlp; load_nlp('ner')"),
    ],
    "spaCy process (tagger half)": [
        ("python + numpy", "import numpy"),
        ("spacy", "import spacy"),
        ("en_core_web_sm tok2vec + tagger", "from backstory.nlp import load_nlp; load_nlp('tagger')"),
    ],
}

_CHILD = (
    "import json, sys\n"
    "def rss():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmRSS:'):\n"
    "            return int(line.split()[1]) / 1024\n"
    "out = []\n"
    "for name, code in json.loads(sys.argv[1]):\n"
    "    exec(code)\n"
    "    out.append([name, round(rss(), 1)])\n"
    "print(json.dumps(out))\n"
)


def memory() -> dict:
    result: dict = {"processes": {}}
    env_path = str(ROOT / "server")
    for process, steps in _STEPS.items():
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(steps)], capture_output=True, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": env_path}, timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
        rows = json.loads(proc.stdout.strip().splitlines()[-1])
        steps_out, last = [], 0.0
        for name, rss in rows:
            steps_out.append({"step": name, "rss_mb": rss, "added_mb": round(rss - last, 1)})
            last = rss
        result["processes"][process] = {"steps": steps_out, "rss_mb": last}
    two = sum(p["rss_mb"] for p in result["processes"].values())
    result["total_two_spacy_processes_mb"] = round(two, 1)
    result["total_one_spacy_process_mb"] = round(
        result["processes"]["server"]["rss_mb"] + result["processes"]["spaCy process (NER half)"]["rss_mb"]
        + sum(s["added_mb"] for s in result["processes"]["spaCy process (tagger half)"]["steps"][2:]), 1)
    return result


def cpu(data: Path) -> dict:
    """:func:`cpu_stages` on the 600-1000-word pages and on all pages."""
    return {"pages_800w": cpu_stages(data, 600, 1000), "all_pages": cpu_stages(data, 0, 10**9)}


def cpu_stages(data: Path, min_words: int, max_words: int) -> dict:
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench
    from backstory.embed import MiniLMEmbedder
    from backstory.entities import extract_entities
    from backstory.extract import extract_article, warm_up
    from backstory.keyphrases import KeyphraseExtractor, select_candidates
    from backstory.nlp import load_nlp

    warm_up()
    tagger, ner = load_nlp("tagger"), load_nlp("ner")
    embedder = MiniLMEmbedder()
    ranker = KeyphraseExtractor(embedder)
    stages: dict[str, list[float]] = {}

    def timed(name: str, fn, *args, **kwargs):
        c0 = time.process_time()
        out = fn(*args, **kwargs)
        stages.setdefault(name, []).append((time.process_time() - c0) * 1000)
        return out

    n = 0
    for page in bench.load_pages(data, None):
        try:
            article = extract_article(page.html, page.url)
        except Exception:  # noqa: BLE001 - pages that are not articles are not measured
            continue
        if not min_words <= len(article.text.split()) <= max_words:
            continue
        n += 1
        timed("extraction", extract_article, page.html, page.url)
        cands = timed("spaCy tagger + candidates", lambda: select_candidates(tagger(article.text), article.title))
        timed("spaCy NER + entities", lambda: extract_entities(ner(article.text)))
        doc_text = f"{article.title}\n\n{article.text}" if article.title else article.text
        vector = timed("document embedding", embedder.embed_document, doc_text)
        timed("candidate embeddings + ranking", ranker.extract_from, cands, article.text, article.title,
              top_n=10, doc_embedding=vector)
    medians = {k: round(statistics.median(v), 1) for k, v in stages.items()}
    total = round(sum(medians.values()), 1)
    return {
        "pages": n, "cpu_ms_p50": medians, "sum_ms": total,
        "max_per_s_on_2_cores": round(2000 / total, 2) if total else None,
        "mean_latency_16_clients_ms_at_least": round(16 * total / 2, 0),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["memory", "cpu"])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = p.parse_args(argv)
    print(json.dumps(memory() if args.what == "memory" else cpu(args.data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
