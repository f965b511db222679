"""Topic-fold cross-validation of the related ranking's tunable constants (issue 21).

    python -m backstory_tools.related_folds FEATURES.json [--folds 5] [--out FILE.json]

ECB+ dev is split into folds by topic (``quality.folds.assign_folds``: the split
``scripts/evaluate.py related --folds K`` uses). Every article is in one index and every article
asks for its related stories, as in the product; a fold's figures are those of its articles'
queries. For each held-back fold the constants are chosen on the queries of the *other* folds
(coordinate search from today's values: each parameter in turn takes the candidate value that
raises the training objective most, two rounds) and scored on the held-back queries. The
held-back queries of all folds together give the cross-validated figure. Each parameter's
candidates are also scored one at a time around today's constants, on the training and on the
held-back folds, so every value tried has its held-back effect in the report.

The objective is P@5 minus the hard-confusion share: a same-topic-other-event story in the top
5 costs twice a miss elsewhere (it is the confusion a reader notices).

Features come from ``related_bench features`` (computed once with the project's NLP).
"""

from __future__ import annotations

import argparse
import json
import statistics
from contextlib import contextmanager
from pathlib import Path

import msgspec
import numpy as np

from backstory import schemas
from backstory.archive import features as features_mod
from backstory.archive import related as rel

from .quality.folds import GATE_FOLDS, assign_folds
from .related_bench import DATA, analyze_rows

# The constants before issue 21's folds (chosen on the whole dev set), as one flat parameter set.
BEFORE: dict[str, float] = {
    "w_terms": 0.65, "w_ents": 0.10, "w_kps": 0.05, "w_emb": 0.20,
    "agree_years": 0.05, "agree_months": 0.05, "agree_days": 0.10,
    "conflict_years": 0.10, "conflict_months": 0.10, "conflict_weekdays": 0.05,
    "prf_docs": 2, "prf_weight": 1.0, "min_score": 0.04, "ent_idf_power": 1.0, "num_agree": 0.0,
    "neighbourhood_weight": 0.0,
}


def today() -> dict[str, float]:
    """The index's constants now, in the same form."""
    p = {f"w_{k}": v for k, v in rel.WEIGHTS.items()}
    p |= {f"agree_{k}": rel.DATE_AGREE.get(k, 0.0) for k in ("years", "months", "days")}
    p |= {f"conflict_{k}": rel.DATE_CONFLICT.get(k, 0.0) for k in ("years", "months", "weekdays")}
    p |= {"prf_docs": rel.PRF_DOCS, "prf_weight": rel.PRF_WEIGHT, "min_score": rel.MIN_SCORE}
    p |= {"ent_idf_power": 1.0, "num_agree": rel.NUMBER_AGREE, "neighbourhood_weight": rel.NEIGHBOURHOOD_WEIGHT}
    return p


GRID: dict[str, list[float]] = {
    "w_terms": [0.45, 0.55, 0.65, 0.75, 0.85],
    "w_ents": [0.0, 0.05, 0.10, 0.15, 0.20, 0.30],
    "w_kps": [0.0, 0.05, 0.10],
    "w_emb": [0.10, 0.15, 0.20, 0.30],
    "agree_years": [0.0, 0.025, 0.05, 0.10],
    "agree_months": [0.0, 0.025, 0.05, 0.10],
    "agree_days": [0.0, 0.05, 0.10, 0.15, 0.20],
    "conflict_years": [0.0, 0.05, 0.10, 0.15, 0.20],
    "conflict_months": [0.0, 0.05, 0.10, 0.15],
    "conflict_weekdays": [0.0, 0.025, 0.05, 0.10],
    "prf_docs": [0, 1, 2, 3],
    "prf_weight": [0.5, 1.0, 1.5],
    "min_score": [0.03, 0.04, 0.05],
    "ent_idf_power": [1.0, 1.5, 2.0],
    "num_agree": [0.0, 0.025, 0.05, 0.10],
    "neighbourhood_weight": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0],
}


@contextmanager
def constants(p: dict[str, float]):
    """The module constants of ``related`` set from ``p`` for the duration (restored after)."""
    saved = {n: getattr(rel, n) for n in ("DATE_AGREE", "DATE_CONFLICT", "PRF_DOCS", "PRF_WEIGHT", "MIN_SCORE", "NUMBER_AGREE",
                                    "NEIGHBOURHOOD_WEIGHT")}
    try:
        rel.DATE_AGREE = {k: p[f"agree_{k}"] for k in ("years", "months", "days")}
        rel.DATE_CONFLICT = {k: p[f"conflict_{k}"] for k in ("years", "months", "weekdays")}
        rel.PRF_DOCS, rel.PRF_WEIGHT, rel.MIN_SCORE = int(p["prf_docs"]), p["prf_weight"], p["min_score"]
        rel.NUMBER_AGREE = p["num_agree"]
        rel.NEIGHBOURHOOD_WEIGHT = p["neighbourhood_weight"]
        yield
    finally:
        for n, v in saved.items():
            setattr(rel, n, v)


class Bench:
    """ECB+ dev in one index; per-query outcomes of any parameter set, memoised."""

    def __init__(self, features: str | list[dict], data: Path = DATA) -> None:
        """``features``: the features file's path, or its rows (``related_bench.analyze_rows``)."""
        self.rows = [json.loads(line) for line in data.open()]
        feats = {f["id"]: f for f in (json.load(open(features)) if isinstance(features, str) else features)}
        self.prepared = []
        for r in self.rows:
            f = feats.get(r["id"], {})
            ents = msgspec.convert(f.get("entities", []), list[schemas.Entity])
            kps = msgspec.convert(f.get("keyphrases", []), list[schemas.Keyphrase])
            self.prepared.append((r, features_mod.compute_features(None, r["text"], ents, kps), f.get("embedding")))
        self.fmap = {r["id"]: feat for r, feat, _ in self.prepared}
        self.event = {r["id"]: r["event"] for r in self.rows}
        self.topic = {r["id"]: r["topic"] for r in self.rows}
        sizes: dict[str, int] = {}
        for r in self.rows:
            sizes[r["event"]] = sizes.get(r["event"], 0) + 1
        self.relevant = [sizes[r["event"]] - 1 for r in self.rows]
        self._indexes: dict[tuple, rel.RelatedIndex] = {}
        self._memo: dict[tuple, np.ndarray] = {}

    def index(self, p: dict[str, float]) -> rel.RelatedIndex:
        key = (p["ent_idf_power"],)  # the one parameter that changes stored impacts
        if key not in self._indexes:
            index = _index_class(p["ent_idf_power"])()
            with index.bulk():
                for r, feat, emb in self.prepared:
                    index.add(r["id"], feat, emb, None)
            self._indexes[key] = index
        return self._indexes[key]

    def outcomes(self, p: dict[str, float]) -> np.ndarray:
        """Per query: (P@5, P@min(5,R), hard share); NaN rows for queries with no relevant story."""
        key = tuple(sorted(p.items()))
        if key in self._memo:
            return self._memo[key]
        index = self.index(p)
        index.weights = {k: p[f"w_{k}"] for k in ("terms", "ents", "kps", "emb")}
        out = np.full((len(self.rows), 3), np.nan)
        with constants(p):
            for i, (r, feat, emb) in enumerate(self.prepared):
                if not self.relevant[i]:
                    continue
                hits = index.query(feat, emb, exclude_id=r["id"], limit=5,
                                   features_of=lambda ids: [self.fmap[x] for x in ids])
                same = [self.event[h.story_id] == r["event"] for h in hits]
                hard = [self.topic[h.story_id] == r["topic"] and not s for h, s in zip(hits, same)]
                k = min(5, self.relevant[i])
                out[i] = (sum(same) / 5, sum(same[:k]) / k, sum(hard) / 5)
        self._memo[key] = out
        return out

    def figures(self, p: dict[str, float], queries: np.ndarray) -> dict[str, float]:
        o = self.outcomes(p)[queries]
        o = o[~np.isnan(o[:, 0])]
        return {"p_at_5": _r(o[:, 0].mean()), "p_at_min5r": _r(o[:, 1].mean()), "hard_confusion_share": _r(o[:, 2].mean())}

    def objective(self, p: dict[str, float], queries: np.ndarray) -> float:
        f = self.figures(p, queries)
        return f["p_at_5"] - f["hard_confusion_share"]


def _r(x: float) -> float:
    return round(float(x), 4)


def _index_class(power: float) -> type[rel.RelatedIndex]:
    """The index with the entity channel's idf raised to ``power``: rare shared names count more
    (tried as a candidate signal; the index has no such constant)."""
    if power == 1.0:
        return rel.RelatedIndex

    class RareNames(rel.RelatedIndex):
        def _idf(self, ch, tids):
            idf = super()._idf(ch, tids)
            return idf ** power if ch is self.channels.get("ents") else idf

    return RareNames


def search(bench: Bench, start: dict[str, float], train: np.ndarray, params: list[str], rounds: int = 2) -> tuple[dict, list]:
    """Coordinate search on ``train``: each parameter in turn takes its best candidate value, kept
    only when it raises the objective by more than one query's worth (ties keep today's value)."""
    p = dict(start)
    best = bench.objective(p, train)
    eps = 0.5 / max(1, len(train))
    steps = []
    for _ in range(rounds):
        changed = False
        for name in params:
            for v in GRID[name]:
                if v == p[name]:
                    continue
                q = p | {name: v}
                val = bench.objective(q, train)
                if val > best + eps:
                    steps.append({"param": name, "from": p[name], "to": v, "train_gain": _r(val - best)})
                    p, best, changed = q, val, True
        if not changed:
            break
    return p, steps


def cross_validate(bench: Bench, k: int, params: list[str], start: dict[str, float] | None = None) -> dict:
    start = start or today()
    fold = np.asarray(assign_folds([r["topic"] for r in bench.rows], k))
    everything = np.arange(len(bench.rows))
    cv = np.full((len(bench.rows), 3), np.nan)
    per_fold, chosen = [], []
    for f in range(k):
        train, held = everything[fold != f], everything[fold == f]
        p, steps = search(bench, start, train, params)
        cv[held] = bench.outcomes(p)[held]
        changes = {n: v for n, v in p.items() if v != start[n]}
        chosen.append(changes)
        per_fold.append({"fold": f, "topics": len({bench.topic[bench.rows[i]["id"]] for i in held}),
                         "today": bench.figures(start, held), "chosen": bench.figures(p, held),
                         "train_today": bench.figures(start, train), "train_chosen": bench.figures(p, train),
                         "changes": changes, "steps": steps})
    ok = cv[~np.isnan(cv[:, 0])]
    return {
        "folds": k, "params_searched": params,
        "plain_today": bench.figures(start, everything),
        "cross_validated": {"p_at_5": _r(ok[:, 0].mean()), "p_at_min5r": _r(ok[:, 1].mean()),
                            "hard_confusion_share": _r(ok[:, 2].mean())},
        "fold_spread_today": _spread([pf["today"]["p_at_5"] for pf in per_fold]),
        "fold_spread_chosen": _spread([pf["chosen"]["p_at_5"] for pf in per_fold]),
        "per_fold": per_fold,
    }


def one_at_a_time(bench: Bench, k: int, start: dict[str, float] | None = None) -> dict:
    """Every candidate value of every parameter, alone around ``start``: its effect (objective, P@5,
    hard share) on each fold's training and held-back queries, against ``start``."""
    start = start or today()
    fold = np.asarray(assign_folds([r["topic"] for r in bench.rows], k))
    everything = np.arange(len(bench.rows))
    out = {}
    for name, values in GRID.items():
        for v in values:
            if v == start[name]:
                continue
            q = start | {name: v}
            held_gain, train_gain = [], []
            for f in range(k):
                train, held = everything[fold != f], everything[fold == f]
                train_gain.append(bench.objective(q, train) - bench.objective(start, train))
                held_gain.append(bench.objective(q, held) - bench.objective(start, held))
            out[f"{name}={v}"] = {"all": bench.figures(q, everything),
                                  "train_gain_mean": _r(statistics.fmean(train_gain)),
                                  "held_back_gain_per_fold": [_r(g) for g in held_gain],
                                  "held_back_gain_mean": _r(statistics.fmean(held_gain))}
    return out


FOLD_CHOSEN = ("num_agree", "neighbourhood_weight")
"""The constants chosen on topic folds (issue 21). The others were chosen on the whole dev set
before the folds existed, and re-choosing them on folds gains nothing held back (docs/quality.md)."""


def gate_cross_validated(models, k: int = GATE_FOLDS, data: Path = DATA) -> dict[str, float]:
    """The quality gate's cross-validated related figure: every ECB+ dev article analysed with
    ``models`` into one index, the :data:`FOLD_CHOSEN` constants chosen on the training folds'
    queries (from their values before issue 21) and scored on the held-back ones. Index only (no
    duplicate merges), so a little apart from ``scripts/evaluate.py related``; named as the gate's
    related figures."""
    bench = Bench(analyze_rows([json.loads(line) for line in data.open()], models), data)
    cv = cross_validate(bench, k, list(FOLD_CHOSEN), today() | {n: BEFORE[n] for n in FOLD_CHOSEN})["cross_validated"]
    return {"p@5": cv["p_at_5"], "p@min(5,R)": cv["p_at_min5r"], "hard_share@5": cv["hard_confusion_share"]}


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": _r(statistics.fmean(values)), "min": _r(min(values)), "max": _r(max(values))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("features")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--params", default=",".join(GRID), help="comma-separated parameters to search")
    ap.add_argument("--sweep", action="store_true", help="also score each value alone around today's constants")
    ap.add_argument("--start", choices=("before", "today"), default="today",
                    help="search from the constants before issue 21 or from the index's constants now")
    ap.add_argument("--out")
    args = ap.parse_args()
    bench = Bench(args.features)
    start = BEFORE if args.start == "before" else today()
    report = {"start": start, "cv": cross_validate(bench, args.folds, args.params.split(","), start)}
    if args.sweep:
        report["one_at_a_time"] = one_at_a_time(bench, args.folds, start)
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(json.dumps({k: report["cv"][k] for k in ("plain_today", "cross_validated", "fold_spread_today", "fold_spread_chosen")}))
    for pf in report["cv"]["per_fold"]:
        print(pf["fold"], pf["today"], pf["chosen"], pf["changes"])


if __name__ == "__main__":
    main()
