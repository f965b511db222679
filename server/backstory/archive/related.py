"""Hybrid related-story ranking over an in-memory index, shared by every archive backend.

Each story becomes four sparse/dense channels:

* ``terms``: content words of title + text (sublinear tf, TF-IDF cosine);
* ``ents``: people, organisations, places, ... (label weight x log count, TF-IDF cosine);
* ``kps``: keyphrases (score-weighted, TF-IDF cosine);
* ``emb``: the 384-d document embedding (int8-quantised, cosine).

Sparse channels are inverted lists (CSR arrays plus a small append-only delta that is merged
when it grows), so a lookup touches only the postings of the query's own words and names,
never every story. Candidates come from the sparse channels; each is rescored with all four
channels and the weighted sum ranks them. Names and places separate events better than
meaning does, so the embedding weighs least.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import msgspec
import numpy as np

from .base import EMBEDDING_DIM, SIMHASH_MAX_DISTANCE, simhash_usable

FEATURES_VERSION = 1  # bump when compute_features changes: stored features are then recomputed
# Fusion weights, tuned on ECB+ (see backstory.archive.bench).
WEIGHTS = {"terms": 0.45, "ents": 0.35, "kps": 0.10, "emb": 0.10}
MAX_TERMS = 128         # content words kept per story (most frequent first)
QUERY_TERMS = 100       # query words whose postings are read
CANDIDATES = 300        # stories rescored per lookup
MIN_SCORE = 0.04        # weaker matches are not shown

ENTITY_LABEL_WEIGHT = {
    "PERSON": 1.0, "PER": 1.0, "ORG": 1.0, "GPE": 1.0, "LOC": 1.0, "FAC": 0.8,
    "NORP": 0.4, "EVENT": 0.8, "PRODUCT": 0.6, "WORK_OF_ART": 0.6, "LAW": 0.6, "MISC": 0.5,
}

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren as at be because been before being
    below between both but by can could did didn do does doesn doing don down during each else even ever few for
    from further get gets got had has hasn have haven having he her here hers herself him himself his how however
    i if in into is isn it its itself just let like ll made make many may me might more most much must my myself
    no nor not now of off on once one only or other our ours ourselves out over own per re said same say says she
    should so some such than that the their theirs them themselves then there these they this those though
    through to too under until up upon us ve very via was wasn we were weren what when where which while who whom
    whose why will with within without would yet you your yours yourself yourselves told according also
    since around among new two three four five six seven eight nine ten first last year years time week day""".split()
)
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_LEADING_THE = re.compile(r"^(the|a|an)\s+", re.I)
_POSSESSIVE = re.compile(r"['’]s$")


def tokenize(text: str) -> list[str]:
    out = []
    for tok in _TOKEN.findall(text.lower()):
        tok = _POSSESSIVE.sub("", tok)
        if len(tok) < 2 or tok in STOPWORDS:
            continue
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith(("ss", "us", "is")):
            tok = tok[:-1]
        out.append(tok)
    return out


def entity_key(name: str) -> str:
    name = _POSSESSIVE.sub("", _LEADING_THE.sub("", " ".join(name.split())))
    return name.lower().strip(" .,;:'\"")


class Features(msgspec.Struct, array_like=True):
    """What the index keeps of one story (also persisted by backends so start-up needs no NLP)."""

    terms: list[tuple[str, float]]            # word -> sublinear tf
    ents: list[tuple[str, float, str]]        # key -> weight, display name
    kps: list[tuple[str, float, str]]         # key -> weight, display phrase


_features_encoder = msgspec.msgpack.Encoder()
_features_decoder = msgspec.msgpack.Decoder(Features)


def encode_features(f: Features) -> bytes:
    return _features_encoder.encode(f)


def decode_features(data: bytes) -> Features:
    return _features_decoder.decode(data)


def compute_features(title: str | None, text: str, entities: Sequence, keyphrases: Sequence) -> Features:
    """Channel features of a story from its title, text, entities and keyphrases."""
    counts = Counter(tokenize(text))
    for tok in tokenize(title or ""):
        counts[tok] += 2
    terms = [(t, 1.0 + math.log(c)) for t, c in counts.most_common(MAX_TERMS)]

    ents: dict[str, list] = {}
    for e in entities:
        w = ENTITY_LABEL_WEIGHT.get(e.label)
        if w is None:
            continue
        key = entity_key(e.name)
        if len(key) < 2:
            continue
        weight = w * (1.0 + math.log(max(1, e.count)))
        slot = ents.setdefault(key, [0.0, e.name, 0.0])
        slot[0] = max(slot[0], weight)
        if weight > slot[2]:
            slot[1], slot[2] = e.name, weight
        if e.label in ("PERSON", "PER"):
            parts = key.split()
            if len(parts) > 1:  # "Tara Reid" also matches a later bare "Reid"
                last = ents.setdefault(parts[-1], [0.0, e.name, 0.0])
                last[0] = max(last[0], weight * 0.7)
    ent_list = [(k, v[0], v[1]) for k, v in ents.items()]

    kps: dict[str, tuple[float, str]] = {}
    for kp in keyphrases:
        key = " ".join(tokenize(kp.phrase))
        if key and (key not in kps or kp.score > kps[key][0]):
            kps[key] = (max(float(kp.score), 0.05), kp.phrase)
    kp_list = [(k, w, name) for k, (w, name) in kps.items()]
    return Features(terms=terms, ents=ent_list, kps=kp_list)


class _Channel:
    """Inverted lists for one sparse channel: CSR arrays + an append-only delta."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.df = np.zeros(0, dtype=np.int32)
        self.offsets = np.zeros(1, dtype=np.int64)
        self.docs = np.zeros(0, dtype=np.int32)
        self.vals = np.zeros(0, dtype=np.float32)
        self.delta: dict[int, tuple[list[int], list[float]]] = {}
        self.delta_size = 0

    def term_ids(self, keys: Iterable[str], create: bool) -> list[int]:
        out = []
        for k in keys:
            tid = self.vocab.get(k)
            if tid is None:
                if not create:
                    out.append(-1)
                    continue
                tid = self.vocab[k] = len(self.vocab)
            out.append(tid)
        if create and len(self.vocab) > len(self.df):
            grown = np.zeros(max(len(self.vocab), 2 * len(self.df), 1024), dtype=np.int32)
            grown[: len(self.df)] = self.df
            self.df = grown
        return out

    def add(self, slot: int, tids: list[int], vals: list[float]) -> None:
        for tid, v in zip(tids, vals):
            lists = self.delta.get(tid)
            if lists is None:
                lists = self.delta[tid] = ([], [])
            lists[0].append(slot)
            lists[1].append(v)
            self.df[tid] += 1
        self.delta_size += len(tids)

    def postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = (self.offsets[tid], self.offsets[tid + 1]) if tid + 1 < len(self.offsets) else (0, 0)
        docs, vals = self.docs[lo:hi], self.vals[lo:hi]
        extra = self.delta.get(tid)
        if extra:
            docs = np.concatenate([docs, np.asarray(extra[0], dtype=np.int32)])
            vals = np.concatenate([vals, np.asarray(extra[1], dtype=np.float32)])
        return docs, vals

    def merge(self, alive: np.ndarray) -> None:
        """Fold the delta into the CSR arrays and drop postings of deleted stories."""
        n_terms = len(self.vocab)
        old_counts = np.diff(self.offsets)
        old_terms = np.repeat(np.arange(len(old_counts), dtype=np.int32), old_counts)
        d_terms, d_docs, d_vals = [], [], []
        for tid, (ds, vs) in self.delta.items():
            d_terms.append(np.full(len(ds), tid, dtype=np.int32))
            d_docs.append(np.asarray(ds, dtype=np.int32))
            d_vals.append(np.asarray(vs, dtype=np.float32))
        terms = np.concatenate([old_terms, *d_terms]) if d_terms else old_terms
        docs = np.concatenate([self.docs, *d_docs]) if d_docs else self.docs
        vals = np.concatenate([self.vals, *d_vals]) if d_vals else self.vals
        keep = alive[docs] if len(docs) else np.zeros(0, dtype=bool)
        terms, docs, vals = terms[keep], docs[keep], vals[keep]
        order = np.lexsort((docs, terms))
        self.docs, self.vals = docs[order], vals[order]
        counts = np.bincount(terms, minlength=n_terms)
        self.offsets = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(counts, out=self.offsets[1:])
        self.df = np.zeros(max(n_terms, 1024), dtype=np.int32)
        self.df[:n_terms] = counts
        self.delta = {}
        self.delta_size = 0


@dataclass
class Hit:
    story_id: str
    score: float
    shared_entities: list[str] = field(default_factory=list)
    shared_keyphrases: list[str] = field(default_factory=list)


_SPARSE = ("terms", "ents", "kps")


class RelatedIndex:
    """In-memory related-story index. Thread-safe: one lock around reads and writes."""

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = dict(WEIGHTS if weights is None else weights)
        self.lock = threading.RLock()
        self.channels = {name: _Channel() for name in _SPARSE}
        self.ids: list[str | None] = []
        self.slot_of: dict[str, int] = {}
        cap = 1024
        self.alive = np.zeros(cap, dtype=bool)
        self.simhash = np.zeros(cap, dtype=np.int64)
        self.has_simhash = np.zeros(cap, dtype=bool)
        self.norms = {name: np.zeros(cap, dtype=np.float32) for name in _SPARSE}
        self.emb = np.zeros((cap, EMBEDDING_DIM), dtype=np.int8)
        self.has_emb = np.zeros(cap, dtype=bool)
        self.n_alive = 0
        self._merged_at = 0

    # ---- writes -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_alive

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
        self.norms = {k: grow(v) for k, v in self.norms.items()}
        self.emb, self.has_emb = grow(self.emb), grow(self.has_emb)

    def add(self, story_id: str, features: Features, embedding: Sequence[float] | np.ndarray | None,
            simhash: int | None, text_len_ok: bool = True) -> None:
        """Add (or replace) one story."""
        with self.lock:
            if story_id in self.slot_of:
                self._remove(story_id)
            slot = len(self.ids)
            self._grow(slot + 1)
            self.ids.append(story_id)
            self.slot_of[story_id] = slot
            self.alive[slot] = True
            self.n_alive += 1
            if simhash is not None and text_len_ok:
                self.simhash[slot] = simhash
                self.has_simhash[slot] = True
            for name in _SPARSE:
                ch = self.channels[name]
                items = getattr(features, name)
                tids = ch.term_ids([it[0] for it in items], create=True)
                vals = [float(it[1]) for it in items]
                ch.add(slot, tids, vals)
                idf = self._idf(ch, np.asarray(tids, dtype=np.int64))
                v = np.asarray(vals, dtype=np.float32) * idf
                self.norms[name][slot] = float(np.sqrt((v * v).sum())) if len(v) else 0.0
            if embedding is not None:
                self.emb[slot] = quantize(np.asarray(embedding, dtype=np.float32))
                self.has_emb[slot] = True
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
        if delta > 20000 and delta > 0.1 * sum(len(ch.docs) for ch in self.channels.values()):
            self.refresh()
        elif self.n_alive >= 2 * max(self._merged_at, 64):
            self.refresh()

    def refresh(self) -> None:
        """Merge pending postings, forget deleted stories, recompute norms with current idf."""
        with self.lock:
            n = len(self.ids)
            for name, ch in self.channels.items():
                ch.merge(self.alive[:n] if n else np.zeros(0, dtype=bool))
                counts = np.diff(ch.offsets)
                terms = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
                w = ch.vals * self._idf(ch, terms)
                norm2 = np.bincount(ch.docs, weights=(w * w).astype(np.float64), minlength=n)
                self.norms[name][:n] = np.sqrt(norm2[:n]).astype(np.float32)
            self._merged_at = self.n_alive

    def _idf(self, ch: _Channel, tids: np.ndarray) -> np.ndarray:
        n = max(self.n_alive, 1)
        df = ch.df[tids] if len(tids) else np.zeros(0, dtype=np.int32)
        return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)

    # ---- reads --------------------------------------------------------------------------
    def query(self, features: Features, embedding: Sequence[float] | np.ndarray | None, *,
              exclude_id: str | None = None, simhash: int | None = None, limit: int = 10) -> list[Hit]:
        with self.lock:
            n = len(self.ids)
            if self.n_alive == 0 or n == 0:
                return []
            scores: dict[str, np.ndarray] = {}
            cand_parts = []
            used: dict[str, tuple[list[int], np.ndarray]] = {}
            for name in _SPARSE:
                ch = self.channels[name]
                items = getattr(features, name)
                if name == "terms":
                    items = items[:QUERY_TERMS] if len(items) <= QUERY_TERMS else self._top_terms(ch, items)
                tids = np.asarray(ch.term_ids([it[0] for it in items], create=False), dtype=np.int64)
                qv = np.asarray([float(it[1]) for it in items], dtype=np.float32)
                known = tids >= 0
                idf_all = self._idf(ch, np.where(known, tids, 0))
                idf_all[~known] = math.log(1.0 + max(self.n_alive, 1)) + 1.0  # unseen key: rarest
                qw = qv * idf_all
                qnorm = float(np.sqrt((qw * qw).sum()))
                acc_docs, acc_vals = [], []
                for i in np.nonzero(known)[0]:
                    docs, vals = ch.postings(int(tids[i]))
                    if len(docs):
                        acc_docs.append(docs)
                        acc_vals.append(vals * (qw[i] * idf_all[i]))
                if not acc_docs or qnorm == 0:
                    continue
                docs = np.concatenate(acc_docs)
                dots = np.bincount(docs, weights=np.concatenate(acc_vals).astype(np.float64), minlength=n)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cos = np.where(self.norms[name][:n] > 0, dots / (self.norms[name][:n] * qnorm), 0.0)
                scores[name] = cos
                cand_parts.append(cos)
                used[name] = ([int(t) for t in tids], qw)
            if cand_parts:
                pre = sum(self.weights.get(name, 0) * scores[name] for name in scores)
                pre = np.where(self.alive[:n], pre, -1.0)
                k = min(CANDIDATES, n)
                cand = np.argpartition(-pre, k - 1)[:k] if k < n else np.arange(n)
                cand = cand[pre[cand] > 0]
            else:
                cand = np.zeros(0, dtype=np.int64)
            qe = None
            if embedding is not None:
                qe = np.asarray(embedding, dtype=np.float32)
                if len(cand) < limit and n <= 200_000:  # few shared words: fall back to meaning alone
                    sims = self.emb[:n].astype(np.float32) @ (qe * 127.0) / (127.0 * 127.0)
                    sims = np.where(self.alive[:n] & self.has_emb[:n], sims, -1.0)
                    extra = np.argsort(-sims)[: limit * 3]
                    cand = np.unique(np.concatenate([cand, extra[sims[extra] > 0.3]]))
            if len(cand) == 0:
                return []
            cand = cand[self.alive[cand]]
            total = np.zeros(len(cand), dtype=np.float64)
            for name, cos in scores.items():
                total += self.weights.get(name, 0) * cos[cand]
            if qe is not None and self.weights.get("emb", 0):
                e = self.emb[cand].astype(np.float32) @ qe / 127.0
                total += self.weights["emb"] * np.clip(e, 0, 1) * self.has_emb[cand]
            if exclude_id is not None and exclude_id in self.slot_of:
                total[cand == self.slot_of[exclude_id]] = -1.0
            if simhash is not None:
                x = np.bitwise_xor(self.simhash[cand], np.int64(simhash)).view(np.uint64)
                dup = _popcount64(x) <= SIMHASH_MAX_DISTANCE
                total[dup & self.has_simhash[cand]] = -1.0
            order = np.argsort(-total)
            hits = []
            for j in order:
                if total[j] < MIN_SCORE or len(hits) >= limit:
                    break
                slot = int(cand[j])
                hits.append(Hit(story_id=self.ids[slot], score=round(float(total[j]), 4)))
            if hits:
                self._explain(hits, features, used)
            return hits

    def _top_terms(self, ch: _Channel, items: list) -> list:
        tids = np.asarray(ch.term_ids([it[0] for it in items], create=False), dtype=np.int64)
        idf = self._idf(ch, np.where(tids >= 0, tids, 0))
        idf[tids < 0] = 0  # unseen words cannot match anything
        w = np.asarray([it[1] for it in items], dtype=np.float32) * idf
        return [items[i] for i in np.argsort(-w)[:QUERY_TERMS]]

    def _explain(self, hits: list[Hit], features: Features, used: dict) -> None:
        slots = np.asarray([self.slot_of[h.story_id] for h in hits], dtype=np.int32)
        for name, attr, src in (("ents", "shared_entities", features.ents), ("kps", "shared_keyphrases", features.kps)):
            if name not in used:
                continue
            ch = self.channels[name]
            tids, qw = used[name]
            by_weight = np.argsort(-qw)
            seen_names: list[set] = [set() for _ in hits]
            for i in by_weight:
                if tids[i] < 0:
                    continue
                docs, _ = ch.postings(tids[i])
                present = np.isin(slots, docs)
                display = src[i][2]
                for h_i in np.nonzero(present)[0]:
                    lst = getattr(hits[h_i], attr)
                    low = display.lower()
                    if low in seen_names[h_i] or any(low in s.lower() for s in lst) or len(lst) >= 8:
                        continue
                    seen_names[h_i].add(low)
                    lst.append(display)


def quantize(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec = vec / norm
    return np.clip(np.rint(vec * 127.0), -127, 127).astype(np.int8)


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount64(x: np.ndarray) -> np.ndarray:
    return _POP8[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)
