"""The related stories' ``relation`` (same event or background) measured on ECB+ dev.

The related task (:func:`backstory_tools.quality.harness.run_related`) hands every query's top
:data:`DEPTH` hits here (:func:`observe`). Gold: same ``event`` = ``same_event``; same ``topic``,
another event = ``background``. Figures (:func:`figures`):

* ``relation_acc``: accuracy of ``relation`` over the items of the top 10 that share the query's
  topic (the others have no gold relation); ``other_topic_share`` beside it, the share of the
  top 10 from other topics (and ``other_topic_same_event``, how many of those were called the
  same event: a slip a reader would see);
* ``same_event_p@5``: precision of the first 5 items of the "Same story elsewhere" section alone
  (divided by the number shown, at most 5: a section is as long as the list has such items),
  and ``same_event_recall@10``: the share of the top 10's same-event stories the section shows.

:func:`held_back` chooses :class:`backstory.archive.relation.Thresholds` on half of the topics
and measures them on the other half, both ways round (never on all of the set at once):

    .venv/bin/python -m backstory_tools.quality.relation [--data DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from backstory.archive.related import Hit
from backstory.archive.relation import THRESHOLDS, Thresholds, relation_of

DEPTH = 10  # the related list the panel shows
# The grid :func:`held_back` chooses from.
NEIGHBOURS_GRID = [round(0.05 * i, 2) for i in range(21)]
SCORE_GRID = [round(0.10 + 0.05 * i, 2) for i in range(9)]


@dataclass
class Observed:
    """One query's top hits: (document id, hit, the hit's published date), best first."""

    doc: str
    published: str | None
    hits: list[tuple[str, Hit, str | None]]


def observe(doc: str, published: str | None, found: list, story_to_doc: dict[str, str]) -> Observed:
    """A query's :meth:`StoryArchive.related_hits` answer, its stories named by document id."""
    return Observed(doc, published, [(story_to_doc.get(h.story_id, h.story_id), h, card.published) for h, card in found])


def figures(rows: list[dict], observed: list[Observed], thresholds: Thresholds = THRESHOLDS) -> dict:
    event_of = {r["id"]: r["event"] for r in rows}
    topic_of = {r["id"]: r["topic"] for r in rows}
    right = judged = other = other_same = shown = 0
    section_p, section_r = [], []
    for q in observed:
        same_in_top = 0
        section: list[str] = []
        for doc, hit, published in q.hits[:DEPTH]:
            shown += 1
            said = relation_of(hit, q.published, published, thresholds)
            if said == "same_event":
                section.append(doc)
            if event_of.get(doc) == event_of[q.doc]:
                same_in_top += 1
            if topic_of.get(doc) != topic_of[q.doc]:
                other += 1
                other_same += said == "same_event"
                continue
            gold = "same_event" if event_of.get(doc) == event_of[q.doc] else "background"
            judged += 1
            right += said == gold
        if section:
            section_p.append(sum(event_of.get(d) == event_of[q.doc] for d in section[:5]) / len(section[:5]))
        if same_in_top:
            section_r.append(sum(event_of.get(d) == event_of[q.doc] for d in section) / same_in_top)
    return {
        "relation_acc": round(right / judged, 4) if judged else None,
        "judged": judged,
        "other_topic_share": round(other / shown, 4) if shown else None,
        "other_topic_same_event": other_same,
        "same_event_p@5": round(sum(section_p) / len(section_p), 4) if section_p else None,
        "same_event_recall@10": round(sum(section_r) / len(section_r), 4) if section_r else None,
        "empty_same_event_sections": len(observed) - len(section_p),
    }


GRIDS = {
    "neighbours": [Thresholds(nb, sc) for nb, sc in itertools.product(NEIGHBOURS_GRID, SCORE_GRID)],
    "score alone": [Thresholds(None, sc) for sc in SCORE_GRID],  # the rule of a small archive
}


def _choose(rows: list[dict], observed: list[Observed], grid: list[Thresholds]) -> Thresholds:
    """The thresholds of ``grid`` with the best relation accuracy on these queries (ties: the
    same-event section's precision, then the grid's first)."""
    def key(t: Thresholds) -> tuple:
        f = figures(rows, observed, t)
        return (f["relation_acc"] or 0.0, f["same_event_p@5"] or 0.0)

    return max(grid, key=key)


def held_back(rows: list[dict], observed: list[Observed]) -> dict:
    """Two folds by topic (topics in file order, alternately): thresholds chosen on one half,
    figures measured on the other, for each rule (:data:`GRIDS`). The shipped thresholds are
    the first fold's choice, so their held-back figures are those on the second half."""
    topics = sorted({r["topic"] for r in rows}, key=lambda t: min(i for i, r in enumerate(rows) if r["topic"] == t))
    topic_of = {r["id"]: r["topic"] for r in rows}
    halves = [set(topics[0::2]), set(topics[1::2])]
    out = []
    for tune, check in (halves, halves[::-1]):
        tuned_obs = [q for q in observed if topic_of[q.doc] in tune]
        check_obs = [q for q in observed if topic_of[q.doc] in check]
        fold: dict = {"tuned_on_topics": sorted(tune, key=str)}
        for rule, grid in GRIDS.items():
            chosen = _choose(rows, tuned_obs, grid)
            fold[rule] = {"chosen": chosen._asdict(), "on_tuning_half": figures(rows, tuned_obs, chosen),
                          "held_back": figures(rows, check_obs, chosen)}
        out.append(fold)
    second = [q for q in observed if topic_of[q.doc] in halves[1]]
    return {"shipped": THRESHOLDS._asdict(), "shipped_held_back": figures(rows, second, THRESHOLDS), "folds": out}


def main(argv: list[str] | None = None) -> int:
    from backstory_tools import default_data_dir

    from . import harness

    parser = argparse.ArgumentParser(description="relation thresholds chosen and checked on folds of ECB+ dev topics")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON file of the figures")
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    result = harness.run_task("related", data, peers=False)
    folds = result.get("relation_folds")
    print(json.dumps({"flat": result["systems"][harness.PRODUCT], "relation_folds": folds}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
