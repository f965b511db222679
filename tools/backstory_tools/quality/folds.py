"""Cross-validation on the dev sets: figures on documents whose site, topic or text no choice was
made on (``scripts/evaluate.py --folds K``).

Each set is split into ``K`` folds by the unit a choice could fit: extraction by site (a rule
that names one site's furniture fits every page of that site), related stories by topic,
keyphrases and entities by document. The folds are fixed: groups are ordered by a hash of their
key and dealt out in turn, so they are balanced and the same in every run.

Extraction is the task whose rules can be switched off one by one (``backstory.extract.cleanup.RULES``):
for every held-back fold, each rule is kept only when switching it off lowers the F1 of the
*other* folds, and the rules so chosen are scored on the held-back fold. The pages of all
held-back folds together give the cross-validated figure; each rule's effect on the folds it
was judged on and on the held-back ones is reported beside it. Keyphrases, entities and related
stories have no switchable choices here: their per-fold figures show how much a figure moves
from one part of the set to another. (The related ranking's constants are chosen on topic folds
by :mod:`backstory_tools.related_folds`, over one index of precomputed features rather than
through the archive; the quality gate checks its cross-validated figure.)
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import harness, metrics

__all__ = ["GATE_FOLDS", "RuledPages", "assign_folds", "extraction_folds", "fold_task", "select_rules", "site_of"]

GATE_FOLDS = 5
"""The folds the quality gate cross-validates extraction on (tests/quality_baseline.json)."""


def site_of(url: str) -> str:
    """The site a page belongs to: its registrable domain (``www.bbc.co.uk`` -> ``bbc.co.uk``)."""
    from urllib.parse import urlsplit

    from backstory.extract.cleanup import _site_key

    return _site_key(urlsplit(url).hostname or "")


def assign_folds(keys: Sequence[object], k: int) -> list[int]:
    """The fold (0..k-1) of each item, keeping items with the same key together."""
    if k < 2:
        raise ValueError("--folds needs at least 2 folds")
    groups = sorted(set(keys), key=lambda g: hashlib.sha1(str(g).encode("utf-8")).hexdigest())
    if len(groups) < k:
        raise ValueError(f"{len(groups)} groups cannot fill {k} folds")
    fold_of = {g: i % k for i, g in enumerate(groups)}
    return [fold_of[key] for key in keys]


def _r(x: float) -> float:
    return round(float(x), 4)


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": _r(statistics.fmean(values)), "min": _r(min(values)), "max": _r(max(values))}


# ---------------------------------------------------------------------------------------------
# extraction


class RuledPages:
    """The extraction dev pages read once, scored under any set of clean-up rules (memoised:
    most rule sets leave most pages as they were)."""

    def __init__(self, rows: list[dict]) -> None:
        from backstory.extract import decode_html, page_cleanup

        self.truth = [r["article_body"] for r in rows]
        self.cleanups = [page_cleanup(decode_html(r["raw"]), r["url"]) for r in rows]
        self._memo: list[dict[str, metrics.PageScore]] = [{} for _ in rows]

    def firing_sites(self, sites: list[str]) -> dict[str, list[str]]:
        """Each rule's sites: those where it removes a block (or changes the text) with every other rule in place."""
        from backstory.extract.cleanup import RULES

        out: dict[str, set[str]] = {u: set() for u in RULES}
        full = self.cleanups
        for page, site in enumerate(sites):
            for block in full[page].blocks if full[page] is not None else ():
                for u in block.reasons:
                    out[u].add(site)
            for u in RULES:  # and rules that act on the whole text (the headline's)
                if self.text(page, RULES) != self.text(page, RULES - {u}):
                    out[u].add(site)
        return {u: sorted(s) for u, s in sorted(out.items())}

    def text(self, page: int, rules: frozenset[str]) -> str:
        from backstory.extract import is_article_text

        cleanup = self.cleanups[page]
        text = cleanup.text(rules) if cleanup is not None else ""
        return text if is_article_text(text) else ""

    def page(self, page: int, rules: frozenset[str]) -> metrics.PageScore:
        text = self.text(page, rules)
        memo = self._memo[page]
        if text not in memo:
            memo[text] = metrics.page_score(self.truth[page], text)
        return memo[text]

    def scores(self, pages: list[int], rules: frozenset[str]) -> metrics.ExtractionResult:
        return metrics.extraction_from_pages(self.page(p, rules) for p in pages)

    def f1(self, pages: list[int], rules: frozenset[str]) -> float:
        return self.scores(pages, rules).f1


def select_rules(pages: RuledPages, train: list[int], candidates: frozenset[str]) -> list[tuple[str, float]]:
    """Forward selection: from no rule, add the rule that raises F1 on ``train`` most, while one
    raises it at all. The rules in the order added, with each one's gain."""
    chosen: frozenset[str] = frozenset()
    current = pages.f1(train, chosen)
    steps: list[tuple[str, float]] = []
    while True:
        best, best_f1 = None, current
        for rule in sorted(candidates - chosen):
            value = pages.f1(train, chosen | {rule})
            if value > best_f1 + 1e-9:
                best, best_f1 = rule, value
        if best is None:
            return steps
        steps.append((best, best_f1 - current))
        chosen, current = chosen | {best}, best_f1


def _figures(res: metrics.ExtractionResult) -> dict[str, float]:
    return {"f1": _r(res.f1), "precision": _r(res.precision), "recall": _r(res.recall)}


def extraction_folds(data: Path, k: int, limit: int | None = None) -> dict:
    """Cross-validated extraction: for each held-back fold, the clean-up rules are selected on the
    other folds (:func:`select_rules`) and scored on it."""
    from backstory.extract.cleanup import RULES

    rows = harness._extraction_rows(data, limit)
    sites = [site_of(r["url"]) for r in rows]
    fold = assign_folds(sites, k)
    pages = RuledPages(rows)
    everything = list(range(len(rows)))
    rule_effects: dict[str, dict[str, list[float]]] = {u: {"train_gain": [], "held_back_gain": []} for u in sorted(RULES)}
    per_fold: list[dict] = []
    cv_scores: dict[int, metrics.PageScore] = {}
    for f in range(k):
        train = [p for p in everything if fold[p] != f]
        held = [p for p in everything if fold[p] == f]
        steps = select_rules(pages, train, RULES)
        chosen = frozenset(u for u, _ in steps)
        for u, gain in steps:  # each chosen rule: its gain where it was chosen and where it was not
            rule_effects[u]["train_gain"].append(_r(gain))
            rule_effects[u]["held_back_gain"].append(_r(pages.f1(held, chosen) - pages.f1(held, chosen - {u})))
        for p in held:
            cv_scores[p] = pages.page(p, chosen)
        per_fold.append({
            "fold": f,
            "pages": len(held),
            "sites": len({sites[p] for p in held}),
            "f1_no_rules": _r(pages.f1(held, frozenset())),
            "f1_all_rules": _r(pages.f1(held, RULES)),
            "f1_chosen_rules": _r(pages.f1(held, chosen)),
            "rules_chosen": [u for u, _ in steps],
        })
    full_steps = select_rules(pages, everything, RULES)
    return {
        "task": "extraction",
        "folds": k,
        "documents": len(rows),
        "groups": len(set(sites)),
        "plain": _figures(pages.scores(everything, RULES)),
        "cross_validated": _figures(metrics.extraction_from_pages(cv_scores[p] for p in everything)),
        "no_rules": _figures(pages.scores(everything, frozenset())),
        "fold_spread": _spread([pf["f1_chosen_rules"] for pf in per_fold]),
        "per_fold": per_fold,
        "rules": {
            u: {"chosen_in_folds": len(e["train_gain"]), **e} for u, e in rule_effects.items()
        },
        "selected_on_all_pages": [{"rule": u, "gain": _r(g)} for u, g in full_steps],
        "never_selected": sorted(RULES - {u for u, _ in full_steps}),
        "firing_sites": pages.firing_sites(sites),
    }


# ---------------------------------------------------------------------------------------------
# keyphrases, entities, related stories: nothing is chosen on folds here, so the held-back
# figure is the plain one; the folds show its spread.


def _by_fold(rows: list[dict], keys: list[str], k: int, score: Callable[[list[int]], dict]) -> dict:
    fold = assign_folds(keys, k)
    per_fold = []
    for f in range(k):
        idx = [i for i in range(len(rows)) if fold[i] == f]
        per_fold.append({"fold": f, "documents": len(idx), **score(idx)})
    everything = score(list(range(len(rows))))
    return {"per_fold": per_fold, "plain": everything, "cross_validated": everything}


_PER_DOCUMENT = {
    # task: (file, the product's prediction for a row, the task's figures)
    "keyphrases": ("keyphrases/duc2001.jsonl", harness._product_keyphrases, harness._keyphrase_figures),
    "ner": ("ner/conll2003.jsonl", harness._product_spans, harness._ner_figures),
}


def _per_document(task: str, data: Path, k: int, limit: int | None) -> dict:
    file, predict, figures = _PER_DOCUMENT[task]
    rows = harness.load_jsonl(data / file, limit)
    preds = [predict(r) for r in rows]

    def score(idx: list[int]) -> dict:
        return _pick(figures([rows[i] for i in idx], [preds[i] for i in idx], 0.0), harness.HEADLINE[task])

    return _by_fold(rows, [r["id"] for r in rows], k, score)


def _related(data: Path, k: int, limit: int | None) -> dict:
    rows = harness._related_rows(data, limit)
    results, _ = asyncio.run(harness._product_related_async(rows, 5))  # one archive holds every article
    by_id = dict(results)

    def score(idx: list[int]) -> dict:
        sub = [(rows[i]["id"], by_id[rows[i]["id"]]) for i in idx]
        return _pick(harness._related_figures(rows, sub, 5), harness.HEADLINE["related"])

    return _by_fold(rows, [r["topic"] for r in rows], k, score)


def _pick(figures: dict, names: list[str]) -> dict:
    return {n: figures[n] for n in names if n in figures}


def fold_task(task: str, data: Path, k: int, limit: int | None = None) -> dict[str, Any]:
    """The fold report of one task (see the module's doc)."""
    if task == "extraction":
        return extraction_folds(data, k, limit)
    out = _related(data, k, limit) if task == "related" else _per_document(task, data, k, limit)
    main = harness.HEADLINE[task][0]
    return {"task": task, "folds": k, "documents": sum(f["documents"] for f in out["per_fold"]),
            "fold_spread": _spread([f[main] for f in out["per_fold"]]), **out}
