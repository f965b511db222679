"""Each related hit's neighbourhood: what :mod:`backstory.archive.relation` reads to tell the same
event from the backstory (reports of one event are each other's nearest stories).

A hit's neighbourhood is its :data:`~backstory.archive.related.NEIGHBOURS` nearest stories by a
first pass of the related ranking (no feedback, no dates): its most telling words and names
within :data:`NEIGHBOUR_BUDGET` postings, the :data:`NEIGHBOUR_CANDIDATES` best of those with
the embedding term added. All the hits of one lookup are looked up together, in one batch of
array operations (one lookup per hit cost more in numpy calls than in postings read), and hits
whose relation is decided without it (near copies) are not looked up at all. The figures are in
``docs/quality.md`` and ``docs/benchmarks.md``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .relation import needs_neighbourhood

# The annotations name RelatedIndex and Hit of backstory.archive.related and Features of
# .features without importing them: the ranking imports this module, and an import back (even
# for type checkers only) would close a circle (tests/test_imports.py).


class Limits(NamedTuple):
    """The related ranking's limits a first pass keeps to (``RelatedIndex.limits``: the ranking's
    module holds them and imports this one)."""

    query_terms: int
    max_df_fraction: float
    min_score: float
    neighbours: int
    channels: tuple[str, ...]


NEIGHBOUR_BUDGET = 1_000   # postings one hit's neighbourhood reads at most (its most telling words)
NEIGHBOUR_CANDIDATES = 20  # a hit's best candidates by shared words that get the embedding term


def shared_neighbours(index: RelatedIndex, hits: list[Hit], stored: list[Features],
                      nearest: list[tuple[int, float]], n: int, exclude: np.ndarray) -> None:
    """Set each hit's ``shared_neighbours``: the share of the query's neighbourhood (``nearest``:
    its NEIGHBOURS nearest slots with their ranking scores; the hit left out) among the hit's own
    NEIGHBOURS nearest (the query's story and ``exclude`` left out: the same whether the query is
    archived or not); None when the hit has fewer neighbours: only stories that share words or
    names with it are candidates (never a scan of every embedding), and in a small archive, where
    every story is near every other, the score decides."""
    todo = [(h, f) for h, f in zip(hits, stored) if needs_neighbourhood(h)]
    if not todo or not nearest:
        return
    slots = np.asarray([index.slot_of[h.story_id] for h, _ in todo], dtype=np.int64)
    docs, group, vals = _postings(index, [f for _, f in todo], len(todo))
    if not len(docs):
        return
    # one sum per (hit, story): the hits' first passes side by side in one key space
    touched, inverse = np.unique(group * n + docs, return_inverse=True)
    score = np.bincount(inverse, weights=vals)
    g, doc = touched // n, touched % n
    keep = index.alive[doc] & ~exclude[doc] & (doc != slots[g])
    g, doc, score = g[keep], doc[keep], score[keep]
    g, doc, score = _best(g, doc, score, NEIGHBOUR_CANDIDATES)
    w_emb = index.weights.get("emb", 0.0)
    if w_emb and len(doc):
        q = index.emb[slots].astype(np.float32) * (index.has_emb[slots][:, None] / (127.0 * 127.0))
        e = np.einsum("ij,ij->i", index.emb[doc].astype(np.float32), q[g])
        score = score + w_emb * np.clip(e, 0, None) * index.has_emb[doc]
    keep = score >= index.limits.min_score
    g, doc, score = _best(g[keep], doc[keep], score[keep], index.limits.neighbours)
    weight = dict(nearest)
    for i, (hit, _) in enumerate(todo):
        mine = doc[g == i]
        whole = sum(w for s, w in weight.items() if s != slots[i])
        if len(mine) >= index.limits.neighbours and whole > 0:
            hit.shared_neighbours = round(sum(weight.get(int(s), 0.0) for s in mine) / whole, 4)


def _postings(index: RelatedIndex, stored: list[Features], hits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The postings every hit's first pass reads: (story slots, the hit's number, impact x query
    weight). Per hit and channel, as in ``RelatedIndex._score``: the unit-length idf-weighted
    vector of its QUERY_TERMS most telling keys, read most telling first while the channel's
    share of the budget lasts, words in too many stories skipped."""
    common = max(index.limits.max_df_fraction * index.n_alive, 2000)
    names = [name for name in index.limits.channels if index.weights.get(name, 0.0)]
    if not names:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    wsum = sum(index.weights[name] for name in names)
    keys: list[tuple] = []  # per channel: (hit and channel, key ids, query weights, document frequencies)
    for c, name in enumerate(names):
        ch = index.channels[name]
        items = [getattr(f, name) for f in stored]
        tids = np.asarray(ch.term_ids([it[0] for its in items for it in its], create=False), dtype=np.int64)
        grp = np.repeat(np.arange(hits, dtype=np.int64), [len(its) for its in items])
        w = np.asarray([float(it[1]) for its in items for it in its], dtype=np.float32)
        w = np.where(tids >= 0, w * index._idf(ch, np.where(tids >= 0, tids, 0)), 0)  # unseen keys match nothing
        if name == "terms" and max(map(len, items)) > index.limits.query_terms:  # a long story: its most telling words
            grp, tids, w = _best(grp, tids, w, index.limits.query_terms)
        norm = np.sqrt(np.bincount(grp, weights=(w * w).astype(np.float64), minlength=hits))
        df = ch.df[np.where(tids >= 0, tids, 0)]
        ok = (w > 0) & (df <= common)
        keys.append((grp[ok] * len(names) + c, tids[ok], w[ok] / norm[grp[ok]] * index.weights[name], df[ok]))
    # most telling first within each hit and channel; then within the channel's share of the
    # hit's budget (at least its most telling key)
    grp, tids, w, df = (np.concatenate(field) for field in zip(*keys))
    if not len(grp):  # no hit has a key that can match (unseen, or in too many stories)
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    grp, tids, w, df = _best(grp, tids, w, len(w), df)
    share = NEIGHBOUR_BUDGET / wsum * np.asarray([index.weights[name] for name in names])[grp % len(names)]
    before = np.cumsum(df) - df
    first = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]])
    spent = before - np.repeat(before[first], np.diff(np.r_[first, len(grp)]))
    within = (spent + df <= share) | (spent == 0)
    grp, tids, w = grp[within], tids[within], w[within]
    out_docs, out_group, out_vals = [], [], []
    for c, name in enumerate(names):
        ch = index.channels[name]
        mine = grp % len(names) == c
        g, t, wt = grp[mine] // len(names), tids[mine], w[mine]
        in_csr = t < len(ch.offsets) - 1
        lo, hi = ch.offsets[t[in_csr]], ch.offsets[t[in_csr] + 1]
        lens = hi - lo
        total = int(lens.sum())
        if total:
            idx = np.repeat(lo - (np.cumsum(lens) - lens), lens) + np.arange(total)
            out_docs.append(ch.docs[idx].astype(np.int64))
            out_group.append(np.repeat(g[in_csr], lens))
            out_vals.append(ch.imp[idx] * np.repeat(wt[in_csr], lens))
        if ch.delta:  # postings not merged yet
            for tid, hit, weight in zip(t.tolist(), g.tolist(), wt.tolist()):
                extra = ch.delta.get(tid)
                if extra:
                    out_docs.append(np.asarray(extra[0], dtype=np.int64))
                    out_group.append(np.full(len(extra[0]), hit, dtype=np.int64))
                    out_vals.append(np.asarray(extra[2], dtype=np.float32) * weight)
    if not out_docs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(out_docs), np.concatenate(out_group), np.concatenate(out_vals).astype(np.float64)


def _best(group: np.ndarray, key: np.ndarray, value: np.ndarray, k: int, *more: np.ndarray) -> tuple:
    """The ``k`` rows of highest ``value`` (>= 0) in each group, grouped and best first within
    their group; ``more``: arrays carried along. One sort on group x (top + 1) - value: a sort by
    two keys (or one partition per hit) costs more in calls than the rows it sorts."""
    if not len(group):
        return (group, key, value, *more)
    order = np.argsort(group * (float(value.max()) + 1.0) - value, kind="stable")
    group = group[order]
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    rank = np.arange(len(group)) - np.repeat(first, np.diff(np.r_[first, len(group)]))
    pick = order[rank < k]
    return (group[rank < k], key[pick], value[pick], *(m[pick] for m in more))
