"""Study: would combining extractors raise extraction on held-back sites? (issue 21; docs/quality.md)

Reads each extraction dev page once through four extractors — the product (trafilatura's
precision mode and the clean-up), trafilatura's recall mode, readability (trafilatura's copy)
and jusText — and scores, with thresholds chosen on the training folds by site
(:func:`backstory_tools.quality.folds.assign_folds`) and scored on the held-back fold:

- ``add``: a paragraph of a second source that is not in the product's text, when the other two
  outputs also keep it (between kept paragraphs or anywhere, with a minimum length);
- ``drop``: a short kept paragraph that neither readability nor jusText keeps;
- ``page``: readability's whole text instead of the product's when it holds most of it, adds
  little, and (optionally) jusText keeps half of what it adds.

Nothing here is used by the product; ``python -m backstory_tools.quality.combine [DATA_DIR]``
prints the figures docs/quality.md quotes.
"""

from __future__ import annotations

import copy
import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import harness, metrics
from .folds import assign_folds, site_of

_K = 5


class _Text:
    """A text's shingles and its normalised form, to ask how much of a paragraph it holds."""

    def __init__(self, text: str) -> None:
        from backstory.extract.cleanup import _norm

        self.shingles = metrics.shingles(text)
        self.norm = f" {_norm(text)} "

    def holds(self, paragraph: str) -> float:
        """The share of ``paragraph``'s shingles in this text (a paragraph under 4 tokens: 1 or 0)."""
        from backstory.extract.cleanup import _norm

        sh = metrics.shingles(paragraph)
        if not sh:
            return 0.0
        if len(next(iter(sh))) < 4:
            return 1.0 if f" {_norm(paragraph)} " in self.norm else 0.0
        return sum((sh & self.shingles).values()) / sum(sh.values())


def _outputs(row: dict) -> dict[str, list[str]]:
    """The paragraphs of each extractor on one page."""
    from trafilatura import bare_extraction
    from trafilatura.external import basic_cleaning, try_justext, try_readability

    from backstory.extract import decode_html, page_cleanup
    from backstory.extract.cleanup import _text_of
    from backstory.extract.parse import _drop_after, _flatten_deep, _load

    html = decode_html(row["raw"])
    cleanup = page_cleanup(html, row["url"])
    product = cleanup.text() if cleanup is not None else ""
    tree = _load(html)
    _flatten_deep(tree)
    _drop_after(tree, 8000)
    recall = bare_extraction(tree, url=row["url"], favor_recall=True, include_comments=False, include_tables=True,
                             with_metadata=False)
    readability = try_readability(copy.deepcopy(tree))
    justext = try_justext(basic_cleaning(copy.deepcopy(tree)), row["url"], "en")

    def joined(el) -> str:
        return " ".join(" ".join(el.itertext()).split())

    return {
        "product": product.split("\n\n") if product else [],
        "recall": [t for t in (_text_of(e) for e in recall.body.iter("p", "item", "head", "quote"))
                   if t] if recall is not None and recall.body is not None else [],
        "readability": [t for t in map(joined, readability.iter("p", "li", "h1", "h2", "h3", "h4", "td", "pre",
                                                               "blockquote")) if t],
        "justext": [t for t in map(joined, justext) if t],
    }


class _Page:
    def __init__(self, row: dict) -> None:
        self.truth = row["article_body"]
        self.out = _outputs(row)
        self.texts = {k: _Text("\n\n".join(v)) for k, v in self.out.items()}

    def candidates(self, source: str, judges: tuple[str, str]) -> list[tuple[int, str, float, float, int]]:
        """``source``'s paragraphs not in the product's text: (index of the product paragraph they
        come before, text, share kept by each judge, words)."""
        from backstory.extract.cleanup import _WORD, _norm

        kept = [_norm(t) for t in self.out["product"]]
        at, out = 0, []
        for text in self.out[source]:
            if self.texts["product"].holds(text) >= 0.5:  # already ours: follow its position
                key = _norm(text)
                at = next((k + 1 for k in range(at, len(kept)) if kept[k] and (kept[k] in key or key in kept[k])), at)
                continue
            out.append((at, text, self.texts[judges[0]].holds(text), self.texts[judges[1]].holds(text),
                        len(_WORD.findall(text))))
        return out


def _combined(page: _Page, add: Callable | None, drop: Callable | None, cands) -> str:
    from backstory.extract import is_article_text

    kept = page.out["product"]
    out: list[str] = []
    ci = 0
    for i in range(len(kept) + 1):
        while ci < len(cands) and cands[ci][0] <= i:
            if add is not None and add(cands[ci], len(kept)):
                out.append(cands[ci][1])
            ci += 1
        if i < len(kept) and not (drop is not None and drop(page, kept[i])):
            out.append(kept[i])
    text = "\n\n".join(out)
    return text if is_article_text(text) else ""


def _add_rule(mode: str, share: float, between: bool, min_words: int) -> Callable:
    def add(c, n: int) -> bool:
        at, _, a, b, words = c
        if words < min_words or (between and not 0 < at < n):
            return False
        return {"both": a >= share and b >= share, "either": a >= share or b >= share,
                "first": a >= share, "second": b >= share}[mode]
    return add


def _drop_rule(judges: tuple[str, ...], max_words: int, share: float) -> Callable:
    from backstory.extract.cleanup import _WORD

    def drop(page: _Page, text: str) -> bool:
        return len(_WORD.findall(text)) <= max_words and all(page.texts[j].holds(text) < share for j in judges)
    return drop


def _page_rule(min_held: float, max_added: float, justext: bool) -> Callable:
    def choose(page: _Page) -> str:
        ours, theirs = page.texts["product"].shingles, page.texts["readability"].shingles
        n = sum(ours.values()) or 1
        added = theirs - ours
        agreed = sum((added & page.texts["justext"].shingles).values())
        if (sum((ours & theirs).values()) / n >= min_held and sum(added.values()) / n <= max_added
                and (not justext or agreed >= 0.5 * sum(added.values()))):
            return "\n\n".join(page.out["readability"])
        return "\n\n".join(page.out["product"])
    return choose


def _study(pages: list[_Page], fold: list[int], settings: dict[str, Callable[[int], str]]) -> dict[str, Any]:
    """Plain figure of every setting, and the cross-validated one (setting chosen on the other folds)."""
    memo: dict[tuple[str, int], metrics.PageScore] = {}

    def score(name: str, idx: Sequence[int]) -> float:
        for i in idx:
            if (name, i) not in memo:
                memo[name, i] = metrics.page_score(pages[i].truth, settings[name](i))
        return metrics.extraction_from_pages(memo[name, i] for i in idx).f1

    everything = range(len(pages))
    best = max(settings, key=lambda s: (score(s, everything), s == "none"))
    per_fold, cv = [], {}
    for f in range(_K):
        train = [i for i in everything if fold[i] != f]
        held = [i for i in everything if fold[i] == f]
        chosen = max(settings, key=lambda s: (score(s, train), s == "none"))
        per_fold.append({"chosen": chosen, "held_back_gain": round(score(chosen, held) - score("none", held), 4)})
        cv.update({i: memo[chosen, i] for i in held})
    res = metrics.extraction_from_pages(cv[i] for i in everything)
    return {"best_plain": (best, round(score(best, everything), 4)), "per_fold": per_fold,
            "cross_validated": (round(res.f1, 4), round(res.precision, 4), round(res.recall, 4))}


def run(data: Path) -> dict[str, Any]:
    rows = harness._extraction_rows(data, None)
    pages = [_Page(r) for r in rows]
    fold = assign_folds([site_of(r["url"]) for r in rows], _K)
    product = {"none": lambda i: "\n\n".join(pages[i].out["product"])}
    alone = {k: round(metrics.extraction_scores((p.truth, "\n\n".join(p.out[k])) for p in pages).f1, 4)
             for k in ("product", "recall", "readability", "justext")}
    report: dict[str, Any] = {"alone": alone}
    grid = list(itertools.product(("both", "either", "first", "second"), (0.5, 0.8, 1.0), (True, False), (1, 5, 10)))
    for source, judges in (("recall", ("readability", "justext")), ("readability", ("recall", "justext"))):
        cands = [p.candidates(source, judges) for p in pages]
        settings = dict(product)
        for g in grid:
            rule = _add_rule(*g)
            settings[f"add {g}"] = lambda i, rule=rule: _combined(pages[i], rule, None, cands[i])
        report[f"add from {source}"] = _study(pages, fold, settings)
    settings = dict(product)
    for judges, words, share in itertools.product((("readability", "justext"), ("readability",), ("justext",)),
                                                  (3, 6, 10, 20, 40), (0.2, 0.5)):
        rule = _drop_rule(judges, words, share)
        settings[f"drop {judges} {words} {share}"] = lambda i, rule=rule: _combined(pages[i], None, rule, [])
    report["drop"] = _study(pages, fold, settings)
    for justext in (True, False):
        settings = dict(product)
        for g in itertools.product((0.8, 0.9, 0.95, 0.98), (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)):
            rule = _page_rule(*g, justext)
            settings[f"page {g}"] = lambda i, rule=rule: rule(pages[i])
        report[f"page choice{' with jusText' if justext else ''}"] = _study(pages, fold, settings)
    return report


if __name__ == "__main__":  # pragma: no cover - a study, run by hand
    import json

    print(json.dumps(run(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")), indent=1, default=str))
