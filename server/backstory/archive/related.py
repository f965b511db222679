"""Hybrid related-story ranking over an in-memory index, shared by every archive backend.

Each story becomes four channels (its :class:`~backstory.archive.features.Features` and its
embedding):

* ``terms``: content words of title + text (sublinear tf x idf, cosine);
* ``ents``: people, organisations, places, ... (label weight x log count x idf, cosine);
* ``kps``: keyphrases (score x idf, cosine);
* ``emb``: the 384-d document embedding (int8-quantised, cosine).

Sparse channels are inverted lists (:class:`~backstory.archive.postings.Postings`) whose
postings carry their *impact* (weight x idf / story norm), so a lookup is
one weighted sum over the postings of the query's most telling words and names, within a
budget, never a scan of every story. The best candidates get the embedding term added. Then
pseudo-relevance feedback: the two best first-pass stories join the query and the lookup runs
again, which keeps the list on the query's *event* rather than its topic. Names and places
separate events better than meaning does, so the embedding weighs little. Last, dates: a
candidate naming one of the query's years, months or calendar days gains a little; one naming
years (months, weekdays) but none of the query's loses a little (two floods of the same river
share every word but the date). Stories that name no date are left as they are. Numbers
likewise: a candidate naming the query's counts or amounts (a toll, a magnitude, a sum) gains a
little. Each hit carries what decides its relation to the
query (same event or background, :mod:`backstory.archive.relation`): its SimHash distance, and
how much of the query's neighbourhood it shares (:mod:`backstory.archive.neighbours`). That share
also orders the first hits (:data:`NEIGHBOURHOOD_WEIGHT`): a same-topic story of another event has
its own event's reports around it, not the query's, and drops behind the query's event.

``python -m backstory_tools.related_bench`` measures it on ECB+ dev; the figures of each signal
are in ``docs/quality.md`` and ``docs/benchmarks.md``.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..duplicates import hamming, popcount64
from ..story import EMBEDDING_DIM, OPERATOR, Viewer
from .features import MAX_DAYS, MAX_NUMBERS, Features, calendar_mask, day_row, number_row, quantize, year_mask
from .neighbours import Limits, shared_neighbours
from .relation import needs_neighbourhood
from .postings import Postings

# Fusion weights, tuned on ECB+ (see backstory_tools.related_bench).
WEIGHTS = {"terms": 0.65, "ents": 0.10, "kps": 0.05, "emb": 0.20}
PRF_DOCS = 2            # pseudo-relevance feedback: the best first-pass hits ...
PRF_WEIGHT = 1.0        # ... are added to the query with this weight (ranking only)
QUERY_TERMS = 128       # query words whose postings are read
CANDIDATES = 300        # stories rescored per lookup
MAX_DF_FRACTION = 0.05  # words in more stories than this are skipped when the archive is big
POSTINGS_BUDGET = 20_000  # postings read per lookup pass at most
MIN_SCORE = 0.04        # weaker matches are not shown
NEIGHBOURS = 10         # the nearest stories compared by Hit.shared_neighbours (whatever the limit)
# Reports of one event are each other's nearest stories, a same-topic story of another event is
# not (see neighbours.py): the first RERANK_DEPTH hits are ordered by their ranking score plus
# NEIGHBOURHOOD_WEIGHT x the share of the query's neighbourhood they share (chosen on topic folds
# of ECB+ dev, docs/quality.md). A deeper window gained nothing there and costs a neighbourhood
# per hit.
RERANK_DEPTH = 10
NEIGHBOURHOOD_WEIGHT = 0.5
# Dates (see ``features.dates_in``): stories that name the same year, month or calendar day are more
# likely to report the same event; two stories that both name years (months, weekdays) but not
# one in common are likely to report two events of the same kind. Added to the fused score of
# the final ranking (not to the first pass, nor to the shown score).
DATE_AGREE = {"years": 0.05, "months": 0.05, "days": 0.10}
DATE_CONFLICT = {"years": 0.10, "months": 0.10, "weekdays": 0.05}
# Numbers (see ``features.numbers_in``): added per number the query and a candidate both name, at
# most NUMBERS_COUNTED of them, like the dates.
NUMBER_AGREE = 0.05
NUMBERS_COUNTED = 2


@dataclass
class Hit:
    story_id: str
    score: float
    shared_entities: list[str] = field(default_factory=list)
    shared_keyphrases: list[str] = field(default_factory=list)
    # What backstory.archive.relation reads besides the score: the SimHash distance to the query's
    # text (None: either is too short), and how much of the query's neighbourhood the hit shares
    # (see backstory.archive.neighbours: reports of one event are each other's neighbours).
    copy_distance: int | None = None
    shared_neighbours: float | None = None


_SPARSE = ("terms", "ents", "kps")


def _by_neighbourhood(hits: list[Hit], ranked: list[float]) -> list[int]:
    """The hits' positions in their final order: the first RERANK_DEPTH by ranking score
    (``ranked``) plus NEIGHBOURHOOD_WEIGHT x their shared neighbourhood; a near copy counts as
    sharing all of it (the same event by definition; its neighbourhood is not looked up). A hit
    whose neighbourhood is unknown (a small archive) keeps its place; the rest follow as ranked."""
    window = range(min(RERANK_DEPTH, len(hits)))
    known = [i for i in window if hits[i].shared_neighbours is not None or not needs_neighbourhood(hits[i])]
    share = {i: 1.0 if hits[i].shared_neighbours is None else hits[i].shared_neighbours for i in known}
    moved = iter(sorted(known, key=lambda i: -(ranked[i] + NEIGHBOURHOOD_WEIGHT * share[i])))
    return [next(moved) if i in share else i for i in window] + list(range(len(window), len(hits)))


class RelatedIndex:
    """In-memory related-story index. Thread-safe: one lock around reads and writes."""

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = dict(WEIGHTS if weights is None else weights)
        self.lock = threading.RLock()
        self.channels = {name: Postings() for name in _SPARSE}
        self.ids: list[str | None] = []
        self.slot_of: dict[str, int] = {}
        cap = 1024
        self.alive = np.zeros(cap, dtype=bool)
        self.simhash = np.zeros(cap, dtype=np.int64)
        self.has_simhash = np.zeros(cap, dtype=bool)
        self.emb = np.zeros((cap, EMBEDDING_DIM), dtype=np.int8)
        self.has_emb = np.zeros(cap, dtype=bool)
        # dates named: years as a 128-bit ring (2 x uint64), months (bits 0-11) and weekdays
        # (bits 16-22) as one uint32, up to MAX_DAYS calendar days (0 = none)
        self.years = np.zeros((cap, 2), dtype=np.uint64)
        self.cal = np.zeros(cap, dtype=np.uint32)
        self.days = np.zeros((cap, MAX_DAYS), dtype=np.int16)
        self.numbers = np.zeros((cap, MAX_NUMBERS), dtype=np.int64)  # number_row codes (0 = none)
        # Whose each story is: 0 the team's, else a private story's owner (its code in owner_code).
        # A lookup shows a viewer the team's stories and its own only (see query and near_simhash).
        self.owner = np.zeros(cap, dtype=np.int32)
        self.owner_code: dict[str, int] = {"": 0}
        self.n_alive = 0
        self._merged_at = 0
        self._bulk = 0

    # ---- writes -------------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        """The ranking's limits as this module sets them now (the neighbourhoods' first pass keeps to them too)."""
        return Limits(QUERY_TERMS, MAX_DF_FRACTION, MIN_SCORE, NEIGHBOURS, _SPARSE)

    def __len__(self) -> int:
        return self.n_alive

    @contextmanager
    def bulk(self):
        """Add many stories without intermediate merges; one refresh at the end."""
        with self.lock:
            self._bulk += 1
            try:
                yield self
            finally:
                self._bulk -= 1
                if not self._bulk:
                    self.refresh()

    def _grow(self, need: int) -> None:
        cap = len(self.alive)
        if need <= cap:
            return
        new = max(need, cap * 2)

        def grow(a: np.ndarray) -> np.ndarray:
            b = np.zeros((new, *a.shape[1:]), dtype=a.dtype)
            b[: len(a)] = a
            return b

        self.alive, self.simhash, self.has_simhash = grow(self.alive), grow(self.simhash), grow(self.has_simhash)
        self.emb, self.has_emb = grow(self.emb), grow(self.has_emb)
        self.years, self.cal, self.days = grow(self.years), grow(self.cal), grow(self.days)
        self.numbers = grow(self.numbers)
        self.owner = grow(self.owner)

    def add(self, story_id: str, features: Features, embedding: Sequence[float] | np.ndarray | None,
            simhash: int | None, text_len_ok: bool = True, owner: str = "") -> None:
        """Add (or replace) one story (``owner``: a private story's, "" for a team story)."""
        with self.lock:
            if story_id in self.slot_of:
                self._remove(story_id)
            slot = len(self.ids)
            self._grow(slot + 1)
            self.ids.append(story_id)
            self.slot_of[story_id] = slot
            self.alive[slot] = True
            self.owner[slot] = self.owner_code.setdefault(owner, len(self.owner_code))
            self.n_alive += 1
            if simhash is not None and text_len_ok:
                self.simhash[slot] = simhash
                self.has_simhash[slot] = True
            for name in _SPARSE:
                ch = self.channels[name]
                items = getattr(features, name)
                if self._bulk:  # postings are built, and impacts computed, by the refresh ending the bulk load
                    ch.pending_tids.extend(ch.term_ids([it[0] for it in items], create=True))
                    ch.pending_raw.extend(float(it[1]) for it in items)
                    ch.pending_slots.extend([slot] * len(items))
                    continue
                tids = ch.term_ids([it[0] for it in items], create=True)
                raw = [float(it[1]) for it in items]
                w = np.asarray(raw, dtype=np.float32) * self._idf(ch, np.asarray(tids, dtype=np.int64))
                norm = float(np.sqrt((w * w).sum())) if len(w) else 0.0
                imp = (w / norm).tolist() if norm > 0 else raw
                ch.add(slot, tids, raw, imp)
            if embedding is not None:
                self.emb[slot] = quantize(np.asarray(embedding, dtype=np.float32))
                self.has_emb[slot] = True
            self.years[slot], self.cal[slot] = year_mask(features.years), calendar_mask(features)
            self.days[slot] = day_row(features.days)
            self.numbers[slot] = number_row(features.numbers)
            if not self._bulk:
                self._maybe_merge()

    def remove(self, story_id: str) -> bool:
        with self.lock:
            return self._remove(story_id)

    def _remove(self, story_id: str) -> bool:
        slot = self.slot_of.pop(story_id, None)
        if slot is None:
            return False
        self.alive[slot] = False
        self.ids[slot] = None
        self.n_alive -= 1
        return True

    def _maybe_merge(self) -> None:
        delta = sum(ch.delta_size for ch in self.channels.values())
        stored = sum(len(ch.docs) for ch in self.channels.values())
        # Merge when the delta is a fifth of the CSR, or the archive grew by a tenth since the last
        # merge (idf moves: impacts of newer stories were computed with older idf). Amortised O(1)
        # per posting.
        if delta > max(50_000, 0.2 * stored) or self.n_alive >= 1.1 * max(self._merged_at, 32):
            self.refresh()

    def refresh(self) -> None:
        """Merge pending postings, forget deleted stories, recompute impacts with the current idf."""
        with self.lock:
            n = len(self.ids)
            for ch in self.channels.values():
                ch.merge(self.alive[:n] if n else np.zeros(0, dtype=bool))
                counts = np.diff(ch.offsets)
                terms = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
                w = ch.raw.astype(np.float32) * self._idf(ch, terms)
                norm = np.sqrt(np.bincount(ch.docs, weights=(w * w).astype(np.float64), minlength=n))
                with np.errstate(divide="ignore", invalid="ignore"):
                    ch.imp = np.where(norm[ch.docs] > 0, w / norm[ch.docs], 0.0).astype(np.float32)
            self._merged_at = self.n_alive

    def _idf(self, ch: Postings, tids: np.ndarray) -> np.ndarray:
        n = max(self.n_alive, 1)
        df = ch.df[tids] if len(tids) else np.zeros(0, dtype=np.int32)
        return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)

    def near_simhash(self, value: int, max_distance: int, owner: str = "") -> list[tuple[str, int]]:
        """Stored stories of one owner ("": the team's) whose SimHash is within ``max_distance``
        bits, nearest first: a team story is never a copy of a private one, nor the reverse."""
        with self.lock:
            n = len(self.ids)
            code = self.owner_code.get(owner)
            if not n or code is None:
                return []
            d = popcount64(np.bitwise_xor(self.simhash[:n], np.int64(value)).view(np.uint64))
            hits = np.flatnonzero((d <= max_distance) & self.has_simhash[:n] & self.alive[:n] & (self.owner[:n] == code))
            return sorted(((self.ids[i], int(d[i])) for i in hits), key=lambda x: x[1])

    # ---- reads --------------------------------------------------------------------------
    def _channel_query(self, name: str, items: list) -> tuple[np.ndarray, np.ndarray]:
        """Unit-length idf-weighted query vector of one channel: (term ids, weights); unseen ids are -1."""
        ch = self.channels[name]
        if name == "terms" and len(items) > QUERY_TERMS:
            items = self._top_terms(ch, items)
        tids = np.asarray(ch.term_ids([it[0] for it in items], create=False), dtype=np.int64)
        qv = np.asarray([float(it[1]) for it in items], dtype=np.float32)
        idf = self._idf(ch, np.where(tids >= 0, tids, 0))
        idf[tids < 0] = math.log(1.0 + max(self.n_alive, 1)) + 1.0  # unseen key: rarest
        qw = qv * idf
        norm = float(np.sqrt((qw * qw).sum()))
        return tids, (qw / norm if norm > 0 else qw)

    def _score(self, queries: dict, qe: np.ndarray | None, n: int, limit: int,
               exclude: np.ndarray, budget: int = POSTINGS_BUDGET) -> tuple[np.ndarray, np.ndarray]:
        """Candidates and their fused scores for per-channel query vectors."""
        acc_docs, acc_vals = [], []
        common = max(MAX_DF_FRACTION * self.n_alive, 2000)
        # Read postings in order of what they can add to a score (query weight x channel weight),
        # until the budget is spent: rare names and words come first, common words last or never.
        for name, (tids, qw) in queries.items():
            wc = self.weights.get(name, 0.0)
            ch = self.channels[name]
            ok = (tids >= 0) & (qw != 0)
            if not wc or not ok.any():
                continue
            t, w = tids[ok], qw[ok] * wc
            df = ch.df[t]
            keep = df <= common
            t, w, df = t[keep], w[keep], df[keep]
            order = np.argsort(-w, kind="stable")
            t, w, df = t[order], w[order], df[order]
            share = budget * (wc / sum(self.weights.get(c, 0.0) for c in queries))
            within = np.cumsum(df) <= max(share, df[0] if len(df) else 0)
            t, w = t[within], w[within]
            if not len(t):
                continue
            # gather the CSR slices of all chosen terms at once
            n_csr = len(ch.offsets) - 1
            in_csr = t < n_csr
            tc, wcsr = t[in_csr], w[in_csr]
            lo, hi = ch.offsets[tc], ch.offsets[tc + 1]
            lens = hi - lo
            total_len = int(lens.sum())
            if total_len:
                starts = np.repeat(lo - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
                idx = starts + np.arange(total_len)
                acc_docs.append(ch.docs[idx])
                acc_vals.append(ch.imp[idx] * np.repeat(wcsr, lens))
            if ch.delta:
                for tid, weight in zip(t.tolist(), w.tolist()):
                    extra = ch.delta.get(tid)
                    if extra:
                        acc_docs.append(np.asarray(extra[0], dtype=np.int32))
                        acc_vals.append(np.asarray(extra[2], dtype=np.float32) * weight)
        if acc_docs:
            docs = np.concatenate(acc_docs)
            vals = np.concatenate(acc_vals).astype(np.float64)
            if n > 16 * len(docs):  # big archive, few postings: sum sparsely (no archive-sized arrays)
                touched, inverse = np.unique(docs, return_inverse=True)
                tscore = np.bincount(inverse, weights=vals)
            else:
                acc = np.bincount(docs, weights=vals, minlength=n)
                touched = np.flatnonzero(acc != 0)  # (on floats flatnonzero is several times slower)
                tscore = acc[touched]
            keep = self.alive[touched] & ~exclude[touched]
            touched, tscore = touched[keep], tscore[keep]
            k = min(CANDIDATES, len(touched))
            cand = touched[np.argpartition(-tscore, k - 1)[:k]] if 0 < k < len(touched) else touched
        else:
            touched, tscore = np.zeros(0, dtype=np.int64), np.zeros(0)
            cand = np.zeros(0, dtype=np.int64)
        if qe is not None and len(cand) < limit and n <= 200_000:  # few shared words: meaning alone
            sims = self.emb[:n].astype(np.float32) @ qe / 127.0
            sims = np.where(self.alive[:n] & self.has_emb[:n] & ~exclude, sims, -1.0)
            extra = np.argsort(-sims)[: limit * 3]
            cand = np.unique(np.concatenate([cand, extra[sims[extra] > 0.3]]))
        pos = np.minimum(np.searchsorted(touched, cand), max(len(touched) - 1, 0))
        total = np.where(touched[pos] == cand, tscore[pos], 0.0) if len(touched) else np.zeros(len(cand))
        if qe is not None and self.weights.get("emb", 0) and len(cand):
            e = self.emb[cand].astype(np.float32) @ qe / 127.0
            total = total + self.weights["emb"] * np.clip(e, 0, None) * self.has_emb[cand]
        return cand, total

    def query(self, features: Features, embedding: Sequence[float] | np.ndarray | None, *,
              exclude_id: str | None = None, limit: int = 10,
              features_of: Callable[[list[str]], list[Features]] | None = None,
              viewer: Viewer = OPERATOR, exclude_ids: Sequence[str] = (), simhash: int | None = None) -> list[Hit]:
        """The ``limit`` best related stories ``viewer`` may see (the team's and its own private
        ones; see :data:`backstory.story.Viewer`), ``exclude_id``/``exclude_ids`` left out.
        ``features_of`` (story ids -> stored Features) enables pseudo-relevance feedback: the best
        first-pass hits join the query, which keeps the ranking on the query's event. Shown scores
        stay the plain similarity to the query. ``simhash`` (the query text's, when usable) gives
        each hit its ``copy_distance``."""
        with self.lock:
            n = len(self.ids)
            if self.n_alive == 0 or n == 0:
                return []
            # Another member's private story is no candidate at all: not a hit, not feedback, no reason.
            exclude = np.zeros(n, dtype=bool) if viewer == OPERATOR else (
                (self.owner[:n] != 0) & (self.owner[:n] != self.owner_code.get(viewer or "", 0)))
            for story_id in (exclude_id, *exclude_ids):
                if story_id is not None and story_id in self.slot_of:
                    exclude[self.slot_of[story_id]] = True
            queries = base = {name: self._channel_query(name, getattr(features, name)) for name in _SPARSE}
            qe = None
            if embedding is not None:
                qe = np.asarray(embedding, dtype=np.float32)
                qn = float(np.linalg.norm(qe))
                qe = qe / qn if qn > 0 else None
            cand, total = self._score(queries, qe, n, limit, exclude)
            if len(cand) == 0:
                return []
            first = dict(zip(cand.tolist(), total.tolist()))
            if features_of is not None and PRF_DOCS and PRF_WEIGHT:
                top = cand[np.argsort(-total)[:PRF_DOCS]]
                top = [int(t) for t in top if first[int(t)] >= MIN_SCORE]
                if top:
                    fb = features_of([self.ids[t] for t in top])
                    queries = {name: self._expand(name, queries[name], [getattr(f, name) for f in fb]) for name in _SPARSE}
                    if qe is not None:
                        qe = qe + PRF_WEIGHT * np.mean([self.emb[t].astype(np.float32) / 127.0 for t in top], axis=0)
                    cand, total = self._score(queries, qe, n, limit, exclude)
            total = total + self._dates(cand, features) + self._numbers(cand, features)
            order = np.argsort(-total)
            # with feedback (the stored features) the first RERANK_DEPTH hits are reordered by
            # their neighbourhoods, so that many are looked at even when fewer are asked for
            pool = max(limit, RERANK_DEPTH) if features_of is not None and NEIGHBOURHOOD_WEIGHT else limit
            hits, ranked, nearest = [], [], []
            for j in order:
                slot = int(cand[j])
                shown = first.get(slot)
                if shown is None or shown < MIN_SCORE:
                    continue
                if len(nearest) < NEIGHBOURS:
                    nearest.append((slot, max(float(total[j]), 0.0)))
                if len(hits) >= pool:
                    if len(nearest) >= NEIGHBOURS:
                        break
                    continue
                copy = hamming(int(self.simhash[slot]), simhash) if simhash is not None and self.has_simhash[slot] else None
                hits.append(Hit(story_id=self.ids[slot], score=round(float(shown), 4), copy_distance=copy))
                ranked.append(float(total[j]))
            if hits:
                stored = features_of([h.story_id for h in hits]) if features_of is not None else None
                if stored is not None:
                    shared_neighbours(self, hits, stored, nearest, n, exclude)
                    keep = _by_neighbourhood(hits, ranked)[:limit]
                    stored = [stored[i] for i in keep]
                    hits = [hits[i] for i in keep]
                self._explain(hits, features, stored, base)
            return hits

    def _dates(self, cand: np.ndarray, features: Features) -> np.ndarray:
        """What the dates the query and each candidate name add to the candidate's score."""
        out = np.zeros(len(cand))
        if not len(cand):
            return out
        if features.years:
            q = year_mask(features.years)
            m = self.years[cand]
            named = (m[:, 0] | m[:, 1]) != 0
            shared = ((m[:, 0] & q[0]) | (m[:, 1] & q[1])) != 0
            out += DATE_AGREE.get("years", 0.0) * shared - DATE_CONFLICT.get("years", 0.0) * (named & ~shared)
        q_cal = calendar_mask(features)
        if q_cal:
            cal = self.cal[cand]
            for name, bits in (("months", 0x0FFF), ("weekdays", 0x7F << 16)):
                if q_cal & bits:
                    m = cal & np.uint32(bits)
                    shared = (m & np.uint32(q_cal & bits)) != 0
                    out += DATE_AGREE.get(name, 0.0) * shared - DATE_CONFLICT.get(name, 0.0) * ((m != 0) & ~shared)
        if features.days and DATE_AGREE.get("days"):
            d = self.days[cand]
            q = day_row(features.days)
            same = (d[:, :, None] == q[q != 0][None, None, :]).any(axis=(1, 2))
            out += DATE_AGREE["days"] * same
        return out

    def _numbers(self, cand: np.ndarray, features: Features) -> np.ndarray:
        """What the numbers the query and each candidate both name add to the candidate's score."""
        if not len(cand) or not features.numbers or not NUMBER_AGREE:
            return np.zeros(len(cand))
        q = number_row(features.numbers)
        shared = (self.numbers[cand][:, :, None] == q[q != 0][None, None, :]).any(axis=2).sum(axis=1)
        return NUMBER_AGREE * np.minimum(shared, NUMBERS_COUNTED)

    def _expand(self, name: str, query: tuple[np.ndarray, np.ndarray], docs: list[list]) -> tuple[np.ndarray, np.ndarray]:
        """The query vector plus the mean of the feedback stories' vectors (times PRF_WEIGHT)."""
        tids, weights = [query[0]], [query[1].astype(np.float64)]
        for items in docs:
            t, w = self._channel_query(name, items)
            tids.append(t)
            weights.append(w.astype(np.float64) * (PRF_WEIGHT / len(docs)))
        t, w = np.concatenate(tids), np.concatenate(weights)
        known = t >= 0
        if not known.any():
            return query
        uniq, inverse = np.unique(t[known], return_inverse=True)
        return uniq, np.bincount(inverse, weights=w[known], minlength=len(uniq)).astype(np.float32)

    def _top_terms(self, ch: Postings, items: list) -> list:
        tids = np.asarray(ch.term_ids([it[0] for it in items], create=False), dtype=np.int64)
        idf = self._idf(ch, np.where(tids >= 0, tids, 0))
        idf[tids < 0] = 0  # unseen words cannot match anything
        w = np.asarray([it[1] for it in items], dtype=np.float32) * idf
        return [items[i] for i in np.argsort(-w)[:QUERY_TERMS]]

    def _explain(self, hits: list[Hit], features: Features, stored: list[Features] | None, queries: dict) -> None:
        """Reasons: the query's entities and keyphrases the hit shares, most telling first
        (``stored``: the hits' features, when the caller can read them)."""
        keysets = None if stored is None else [({k for k, *_ in f.ents}, {k for k, *_ in f.kps}) for f in stored]
        slots = np.asarray([self.slot_of[h.story_id] for h in hits], dtype=np.int32)
        for name, attr, src, pos in (("ents", "shared_entities", features.ents, 0), ("kps", "shared_keyphrases", features.kps, 1)):
            if not src:
                continue
            tids, qw = queries[name]  # the query's own vectors (src order)
            ch = self.channels[name]
            lists = [getattr(h, attr) for h in hits]
            shown = [{s.lower() for s in lst} for lst in lists]
            for i in np.argsort(-qw).tolist():
                key, display = src[i][0], src[i][2]
                if keysets is not None:
                    present = [j for j, ks in enumerate(keysets) if key in ks[pos]]
                elif tids[i] >= 0:
                    present = np.flatnonzero(np.isin(slots, ch.postings(int(tids[i]))[0])).tolist()
                else:
                    continue
                low = display.lower()
                for j in present:
                    if len(lists[j]) < 8 and low not in shown[j]:
                        lists[j].append(display)
                        shown[j].add(low)
