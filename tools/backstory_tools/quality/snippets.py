"""Modern news snippets: 30 sentences of 2024-2026 technology, business and politics written and
labelled by hand for this project (``tests/data/modern_news_entities.jsonl``), to check the
entity repairs on names CoNLL-2003 (1996 newswire) never saw.

Each line is ``{"text": ..., "entities": [{"name": ..., "label": ...}, ...]}`` with spaCy
(OntoNotes) labels; every occurrence of a name in its sentence is a gold span (longer names
first, so "Apple" inside "Apple Intelligence" is not one). Scored with :func:`metrics.ner_scores`
exactly as CoNLL is. ``python -m backstory_tools.quality.snippets`` prints the product's figures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from . import metrics

SNIPPETS = Path(__file__).resolve().parents[3] / "tests" / "data" / "modern_news_entities.jsonl"

Span = tuple[int, int, str]


def load_snippets(path: Path = SNIPPETS) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def gold_spans(row: dict) -> list[Span]:
    """Every occurrence of each named entity of ``row`` as (start, end, label)."""
    text = row["text"]
    spans: list[Span] = []
    for ent in sorted(row["entities"], key=lambda e: len(e["name"]), reverse=True):
        for m in re.finditer(r"(?<![\w-])" + re.escape(ent["name"]) + r"(?!\w)", text):
            if not any(s < m.end() and m.start() < e for s, e, _ in spans):
                spans.append((m.start(), m.end(), ent["label"]))
    return sorted(spans)


def score(predict: Callable[[str], list[Span]], rows: list[dict] | None = None) -> metrics.NerResult:
    """``predict(text)`` → spans, scored against the snippets' gold spans."""
    rows = load_snippets() if rows is None else rows
    return metrics.ner_scores((gold_spans(r), predict(r["text"])) for r in rows)


def main() -> None:
    from backstory.entities import entity_spans
    from backstory.nlp import load_nlp

    nlp = load_nlp()
    res = score(lambda text: entity_spans(nlp(text)))
    print(f"micro PER/ORG/LOC: F1 {res.micro.f1:.3f} P {res.micro.precision:.3f} R {res.micro.recall:.3f} "
          f"({res.gold} gold, {res.predicted} predicted)")
    for t in metrics.CONLL_TYPES:
        prf = res.per_type[t]
        print(f"{t}: F1 {prf.f1:.3f} P {prf.precision:.3f} R {prf.recall:.3f}")


if __name__ == "__main__":
    main()
