"""Inverted lists for one sparse channel of the related-story index (terms, entities or
keyphrases): CSR arrays plus a small append-only delta, merged as the archive grows.

Each posting keeps the raw weight (log tf x label/keyphrase weight) and its *impact*: the raw
weight times the term's idf divided by the story's vector norm, so a query's cosine is one
weighted sum over postings. :class:`backstory.archive.related.RelatedIndex` owns one
:class:`Postings` per channel and recomputes the impacts with the current idf on ``refresh``.
"""

from __future__ import annotations

from array import array
from itertools import chain
from typing import Iterable

import numpy as np


class Postings:
    """One channel's inverted lists: CSR arrays (``offsets``, ``docs``, ``raw``, ``imp``) + an
    append-only ``delta``, and the postings of a bulk load waiting for the next merge."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.df = np.zeros(1024, dtype=np.int32)
        self.offsets = np.zeros(1, dtype=np.int64)
        self.docs = np.zeros(0, dtype=np.int32)
        self.raw = np.zeros(0, dtype=np.float16)
        self.imp = np.zeros(0, dtype=np.float32)
        self.delta: dict[int, tuple[list[int], list[float], list[float]]] = {}
        self.delta_size = 0
        # bulk loads: flat term ids / slots / raw weights, turned into postings by the next merge.
        # Typed arrays, not lists: lists of a large load's keys leave freed-but-resident small
        # objects behind.
        self.pending_tids = array("i")
        self.pending_slots = array("i")
        self.pending_raw = array("f")
        self.pending_arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def term_ids(self, keys: Iterable[str], create: bool) -> list[int]:
        vocab = self.vocab
        if not create:
            return [vocab.get(k, -1) for k in keys]
        out = []
        for k in keys:
            tid = vocab.get(k)
            if tid is None:
                tid = vocab[k] = len(vocab)
            out.append(tid)
        if len(vocab) > len(self.df):
            grown = np.zeros(max(len(vocab), 2 * len(self.df)), dtype=np.int32)
            grown[: len(self.df)] = self.df
            self.df = grown
        return out

    def add(self, slot: int, tids: list[int], raw: list[float], imp: list[float]) -> None:
        delta = self.delta
        for tid, r, i in zip(tids, raw, imp):
            lists = delta.get(tid)
            if lists is None:
                delta[tid] = ([slot], [r], [i])
            else:
                lists[0].append(slot)
                lists[1].append(r)
                lists[2].append(i)
        if tids:
            np.add.at(self.df, np.asarray(tids, dtype=np.int64), 1)
        self.delta_size += len(tids)

    def postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        if tid + 1 < len(self.offsets):
            lo, hi = self.offsets[tid], self.offsets[tid + 1]
            docs, imp = self.docs[lo:hi], self.imp[lo:hi]
        else:
            docs, imp = self.docs[:0], self.imp[:0]
        extra = self.delta.get(tid)
        if extra:
            docs = np.concatenate([docs, np.asarray(extra[0], dtype=np.int32)])
            imp = np.concatenate([imp, np.asarray(extra[2], dtype=np.float32)])
        return docs, imp

    def _take_pending(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        parts = self.pending_arrays
        if len(self.pending_tids):
            parts.append((np.frombuffer(self.pending_tids, dtype=np.int32).copy(),
                          np.frombuffer(self.pending_slots, dtype=np.int32).copy(),
                          np.frombuffer(self.pending_raw, dtype=np.float32).copy()))
        self.pending_tids, self.pending_slots, self.pending_raw = array("i"), array("i"), array("f")
        self.pending_arrays = []
        return parts

    def merge(self, alive: np.ndarray) -> None:
        """Fold the delta and bulk-loaded postings into the CSR arrays; drop deleted stories."""
        pending = self._take_pending()
        n_terms = len(self.vocab)
        old_counts = np.diff(self.offsets)
        old_terms = np.repeat(np.arange(len(old_counts), dtype=np.int32), old_counts)
        if self.delta:
            keys = np.fromiter(self.delta.keys(), dtype=np.int32, count=len(self.delta))
            lens = np.fromiter((len(v[0]) for v in self.delta.values()), dtype=np.int64, count=len(self.delta))
            d_terms = np.repeat(keys, lens)
            d_docs = np.fromiter(chain.from_iterable(v[0] for v in self.delta.values()), dtype=np.int32)
            d_raw = np.fromiter(chain.from_iterable(v[1] for v in self.delta.values()), dtype=np.float32)
            terms = np.concatenate([old_terms, d_terms])
            docs = np.concatenate([self.docs, d_docs])
            raw = np.concatenate([self.raw.astype(np.float32), d_raw])
        else:
            terms, docs, raw = old_terms, self.docs, self.raw.astype(np.float32)
        if pending:
            terms = np.concatenate([terms, *(p[0] for p in pending)])
            docs = np.concatenate([docs, *(p[1] for p in pending)])
            raw = np.concatenate([raw, *(p[2] for p in pending)])
        keep = alive[docs] if len(docs) else np.zeros(0, dtype=bool)
        terms, docs, raw = terms[keep], docs[keep], raw[keep]
        order = np.lexsort((docs, terms))
        self.docs, self.raw = docs[order], raw[order].astype(np.float16)
        counts = np.bincount(terms, minlength=n_terms)
        self.offsets = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(counts, out=self.offsets[1:])
        self.df = np.zeros(max(n_terms, 1024), dtype=np.int32)
        self.df[:n_terms] = counts
        self.imp = np.zeros(len(self.docs), dtype=np.float32)
        self.delta = {}
        self.delta_size = 0
