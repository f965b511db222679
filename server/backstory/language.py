"""Language identification: py3langid's model, held in a small fraction of its memory.

py3langid scores a text with naive Bayes over byte n-grams (1-6 bytes). It finds them by walking
a DFA over the text's bytes (a row of 256 transitions for each of its states, most of its
memory) and a dense table of feature weights. That DFA is an Aho-Corasick automaton: after each
byte it stands on the trie node of the longest suffix of the bytes read so far that starts one
of its n-grams (a test checks every state and byte; each build checks a sample), and each node
names at most one feature to count. So the same walk is a lookup of each position's last 1-6
bytes among the node strings, longest match first: a sorted array of 8-byte keys, searched with
numpy for all positions at once. The weights are mostly each language's floor value for an
n-gram it never saw: :class:`Weights` keeps only the entries that differ and rebuilds a text's
rows exactly. The sizes are in ``docs/benchmarks.md`` ("Figures behind design choices").

:class:`CompactIdentifier` is built once from py3langid's shipped model and cached on disk
(next to the embedding model); its scores are py3langid's own computation on the same features
in the same order, so ``classify`` gives py3langid's answer (a test compares them).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import threading
import unicodedata
from pathlib import Path

import numpy as np

from .model_cache import model_cache_dir, prune_model_cache

log = logging.getLogger(__name__)

RECIPE = "aho-corasick-nodes-v1+sparse-weights"  # part of the cache key: change it with the format
MAX_NGRAM = 6  # the longest n-gram of py3langid's model; checked when building
_LENGTH_SHIFT = 48  # key = length << 48 | the n-gram's bytes, big-endian


def _model_file() -> Path:
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    return Path(MODEL_DIR) / MODEL_FILE


class Weights:
    """py3langid's feature weights, a (features × classes) float16 table, held as each class's
    most common value plus the entries that differ from it (a small share of them).
    :meth:`rows` rebuilds any rows exactly, so scores computed from them are bit for bit the
    same as from the table."""

    def __init__(self, base: np.ndarray, starts: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        self.base = base  # (classes,) float16: each class's most common weight
        self.starts = starts  # (features + 1,) int64: row i's entries are [starts[i], starts[i+1])
        self.cols = cols  # uint8 (or uint16 past 256 classes): the class of each entry
        self.vals = vals  # float16: its weight

    @classmethod
    def from_dense(cls, table: np.ndarray) -> "Weights":
        table = np.ascontiguousarray(table)
        if table.ndim != 2 or table.dtype != np.float16:
            raise ValueError("py3langid's weights are not the float16 table this module reads")
        bits = table.view(np.uint16)
        base = np.array([np.bincount(bits[:, c], minlength=1 << 16).argmax() for c in range(table.shape[1])],
                        dtype=np.uint16).view(np.float16)
        differs = bits != base.view(np.uint16)  # bitwise, so a NaN or -0.0 is kept as it is
        rows, cols = np.nonzero(differs)  # row by row, in order
        starts = np.zeros(table.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=table.shape[0]), out=starts[1:])
        col_type = np.uint8 if table.shape[1] <= 256 else np.uint16
        return cls(base, starts, cols.astype(col_type), table[rows, cols])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.starts) - 1, len(self.base)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.base, self.starts, self.cols, self.vals))

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The dense rows ``idx``, as the table holds them."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.repeat(self.base[None, :], len(idx), axis=0)
        lo, hi = self.starts[idx], self.starts[idx + 1]
        n = hi - lo
        if n.sum():
            row = np.repeat(np.arange(len(idx)), n)
            entry = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
            out[row, self.cols[entry]] = self.vals[entry]
        return out


class CompactIdentifier:
    """py3langid's ``LanguageIdentifier(norm_probs=True).classify`` over node keys instead of the
    DFA."""

    def __init__(self, keys: np.ndarray, states: np.ndarray, output: np.ndarray, ptc: Weights,
                 pc: np.ndarray, classes: list[str]) -> None:
        self.keys = keys  # sorted uint64 node keys
        self.states = states  # the state of each key
        self.output = output  # feature counted on reaching each state, -1 for none
        self.ptc = ptc  # the (features, classes) float16 weights, as shipped (see Weights)
        self.pc = pc
        self.classes = classes
        first: dict[str, int] = {}
        self._aliases = []  # (first, duplicate) columns of labels that appear twice
        for i, c in enumerate(classes):
            if c in first:
                self._aliases.append((first[c], i))
            else:
                first[c] = i

    # --- scoring, as py3langid does it -----------------------------------------------------

    @staticmethod
    def encode(text: str) -> bytes:
        if text.isupper():
            text = text.lower()
        return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")

    def features(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The features the DFA walk would count in ``data``, in order of first appearance, with
        their counts."""
        if not data:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        b = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
        state = np.zeros(len(b), dtype=np.int64)  # the root: no n-gram ends here
        value = np.zeros(len(b), dtype=np.uint64)
        last = len(self.keys) - 1
        for length in range(1, MAX_NGRAM + 1):
            # value[i] = the bytes data[i-length+1 .. i], from i = length-1 on
            if length == 1:
                value[:] = b
            else:
                value[length - 1:] = (value[length - 2:-1] << np.uint64(8)) | b[length - 1:]
            keys = value[length - 1:] | np.uint64(length << _LENGTH_SHIFT)
            at = np.minimum(np.searchsorted(self.keys, keys), last)
            found = self.keys[at] == keys
            state[length - 1:][found] = self.states[at[found]]  # longer matches overwrite shorter
        feats = self.output[state]
        feats = feats[feats >= 0]
        uniq, first, counts = np.unique(feats, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")
        return uniq[order], counts[order]

    def scores(self, text: str) -> np.ndarray:
        data = self.encode(text)
        idx, counts = self.features(data)
        if len(idx):
            scores = np.log1p(counts.astype(np.float32)) @ self.ptc.rows(idx) + self.pc
        else:
            scores = np.zeros(len(self.classes), dtype=np.float32)
        scores *= 1.0 / math.sqrt(len(data) or 1)
        np.exp(scores - scores.max(), out=scores)
        scores /= scores.sum()
        for i, j in self._aliases:
            scores[i] += scores[j]
            scores[j] = 0.0
        return scores

    def classify(self, text: str) -> tuple[str, float]:
        """(ISO 639 code, probability)."""
        scores = self.scores(text)
        i = int(scores.argmax())
        return self.classes[i], float(scores[i])

    # --- building and caching --------------------------------------------------------------

    @classmethod
    def from_py3langid(cls) -> "CompactIdentifier":
        """Build from py3langid's shipped model (once: it holds that whole model while it runs)."""
        from py3langid.modelio import load_model

        ptc, pc, classes, nextmove, rows, output = load_model(_model_file())
        table = np.frombuffer(nextmove, dtype=np.uint32 if nextmove.itemsize == 4 else np.uint16)
        table = table.reshape(-1, 256)
        row_of = np.frombuffer(rows, dtype={2: np.uint16, 4: np.uint32, 8: np.uint64}[rows.itemsize])
        out = np.asarray(output, dtype=np.int32)
        n = len(row_of)
        # Breadth first from the root: the first path to reach a state is its node's string.
        depth = np.full(n, -1, dtype=np.int64)
        value = np.zeros(n, dtype=np.uint64)
        depth[0] = 0
        frontier = np.array([0])
        level = 0
        while len(frontier):
            level += 1
            nxt = table[row_of[frontier]].astype(np.int64)  # (frontier, 256)
            src = np.repeat(frontier, 256)
            byte = np.tile(np.arange(256, dtype=np.uint64), len(frontier))
            nxt = nxt.ravel()
            new = depth[nxt] < 0
            nxt, src, byte = nxt[new], src[new], byte[new]
            nxt, first = np.unique(nxt, return_index=True)
            depth[nxt] = level
            value[nxt] = (value[src[first]] << np.uint64(8)) | byte[first]
            frontier = nxt
        if (depth < 0).any() or depth.max() > MAX_NGRAM:
            raise ValueError("py3langid's DFA is not the automaton this module reads")
        keys = value[1:] | (depth[1:].astype(np.uint64) << np.uint64(_LENGTH_SHIFT))
        order = np.argsort(keys)
        compact = cls(keys[order], (np.arange(1, n)[order]).astype(np.int32), out, Weights.from_dense(ptc),
                      np.asarray(pc, dtype=np.float32), [str(c) for c in classes])
        # The whole check is too slow for every start (a test runs it); a sample of states here.
        sample = np.random.default_rng(0).choice(n, size=min(n, 2048), replace=False)
        compact.check(table, row_of, sample)
        return compact

    def check(self, table: np.ndarray, row_of: np.ndarray, states: np.ndarray | None = None) -> None:
        """Raise ValueError unless, for each of ``states`` (default all) and each byte, the
        DFA's transition is the longest-suffix node lookup :meth:`features` does."""
        n = len(row_of)
        depth = np.zeros(n, dtype=np.int64)
        value = np.zeros(n, dtype=np.uint64)
        depth[self.states] = (self.keys >> np.uint64(_LENGTH_SHIFT)).astype(np.int64)
        value[self.states] = self.keys & np.uint64((1 << _LENGTH_SHIFT) - 1)
        states = np.arange(n) if states is None else np.asarray(states)
        last = len(self.keys) - 1
        for chunk in np.array_split(states, max(1, len(states) // 2048)):
            grown = (np.repeat(value[chunk], 256) << np.uint64(8)) | np.tile(np.arange(256, dtype=np.uint64), len(chunk))
            room = np.repeat(depth[chunk], 256) + 1
            want = np.zeros(len(grown), dtype=np.int64)
            for length in range(1, MAX_NGRAM + 1):
                keys = (grown & np.uint64((1 << (8 * length)) - 1)) | np.uint64(length << _LENGTH_SHIFT)
                at = np.minimum(np.searchsorted(self.keys, keys), last)
                found = (self.keys[at] == keys) & (room >= length)
                want[found] = self.states[at[found]]
            if not np.array_equal(table[row_of[chunk]].astype(np.int64).ravel(), want):
                raise ValueError("py3langid's DFA is not the automaton this module reads")

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, keys=self.keys, states=self.states, output=self.output, base=self.ptc.base,
                     starts=self.ptc.starts, cols=self.ptc.cols, vals=self.ptc.vals, pc=self.pc,
                     classes=np.array(self.classes))

    @classmethod
    def load(cls, path: Path) -> "CompactIdentifier":
        with np.load(path, allow_pickle=False) as data:
            weights = Weights(data["base"], data["starts"], data["cols"], data["vals"])
            return cls(data["keys"], data["states"], data["output"], weights, data["pc"],
                       [str(c) for c in data["classes"]])


_identifier: CompactIdentifier | None = None
_lock = threading.Lock()


def cache_path(cache_dir: str | Path | None = None) -> Path:

    digest = hashlib.sha256(_model_file().read_bytes()).hexdigest()[:16]
    key = hashlib.sha256(f"{digest}|{RECIPE}".encode()).hexdigest()[:16]
    return (Path(cache_dir) if cache_dir is not None else model_cache_dir()) / f"langid-{key}.npz"


def identifier(cache_dir: str | Path | None = None) -> CompactIdentifier:
    """The process's identifier: read from the cache, else built and cached (thread-safe)."""
    global _identifier
    if _identifier is not None and cache_dir is None:
        return _identifier
    with _lock:
        if _identifier is not None and cache_dir is None:
            return _identifier
        path = cache_path(cache_dir)
        try:
            found = CompactIdentifier.load(path)
        except Exception:  # noqa: BLE001 - missing, cut short or unreadable: built again
            found = CompactIdentifier.from_py3langid()
            tmp = None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".langid-", delete=False) as fh:
                    tmp = Path(fh.name)
                found.save(tmp)
                os.replace(tmp, path)  # atomic: a concurrent start sees all of it or nothing
                prune_model_cache(path)  # an earlier version's file is never read again
            except OSError as exc:
                log.warning("cannot cache the language model in %s (%s)", path.parent, exc)
                if tmp is not None:
                    tmp.unlink(missing_ok=True)
            from .memory import release_free_memory

            release_free_memory()  # the DFA read while building
        if cache_dir is None:
            _identifier = found
        return found
