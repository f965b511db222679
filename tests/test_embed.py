"""MiniLMEmbedder on the real int8 ONNX model and the real tokenizer (both installed locally)."""

from __future__ import annotations

import json
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from backstory.embed import DIM, MiniLMEmbedder, default_tokenizer_path
from backstory.onnx_model import default_model_path, drop_attention_mask, drop_softmax_nan_guards, prepare_model

SENTENCES = [
    "The city council approved the new light rail line after a long debate.",
    "Councillors voted to build a tram route across the city.",
    "The striker scored twice as the home team won the cup final.",
    "Heavy rain flooded farms along the river valley overnight.",
    "crude oil",
    "",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_shape_dtype_and_unit_norms(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), DIM)
    assert vectors.dtype == np.float32
    norms = np.linalg.norm(vectors[:-1], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    # An empty text has no content: a zero vector rather than the embedding of [CLS] [SEP].
    assert not vectors[-1].any()
    assert embedder.embed([]).shape == (0, DIM)


def test_similar_sentences_are_closer_than_unrelated(embedder: MiniLMEmbedder) -> None:
    rail, tram, football, flood = embedder.embed(SENTENCES[:4])
    assert cos(rail, tram) > 0.4
    assert cos(rail, tram) > cos(rail, football) + 0.2
    assert cos(rail, tram) > cos(rail, flood) + 0.2
    oil, petroleum, cake = embedder.embed(["crude oil", "petroleum", "birthday cake"])
    assert cos(oil, petroleum) > cos(oil, cake)


def test_deterministic_and_batch_equals_single(embedder: MiniLMEmbedder) -> None:
    embedder.clear_cache()
    batch = embedder.embed(SENTENCES)
    embedder.clear_cache()
    again = embedder.embed(SENTENCES)
    assert np.array_equal(batch, again)
    # A text's vector does not depend on the texts embedded with it.
    single = np.stack([MiniLMEmbedder(cache_size=0).embed([s])[0] for s in SENTENCES[:3]])
    assert np.array_equal(batch[:3], single)


def test_quantised_model_runs_one_document_at_a_time(embedder: MiniLMEmbedder) -> None:
    # Dynamic quantisation scales activations per run: batching would make vectors depend on
    # their neighbours, so the quantised embedder never batches documents.
    assert embedder.quantized and embedder.batch_size == 1
    assert MiniLMEmbedder(batch_size=64, cache_size=0).batch_size == 1


def test_phrases_run_in_batches_of_equal_length_close_to_their_solo_vectors(monkeypatch) -> None:
    emb = MiniLMEmbedder(cache_size=0)
    phrases = ["oil spill", "Exxon Valdez", "European Union officials", "cleanup", "nuclear power plant",
               "Prince William Sound", "the coast guard", "fishing industry"]
    runs: list[int] = []
    real_run = emb._session.run
    monkeypatch.setattr(emb, "_session", type("S", (), {"run": lambda self, out, feeds: (
        runs.append(len(feeds["input_ids"])) or real_run(out, feeds))})())
    batched = emb.embed_phrases(phrases)
    lengths = sorted(len(emb._tokenizer.encode(p).ids) for p in phrases)
    assert sum(runs) == len(phrases) and len(runs) < len(phrases)  # a few batches, not one run each
    # Batches hold phrases of equal token count: the prepared model is never fed padding.
    assert runs == [lengths.count(n) for n in sorted(set(lengths))]
    runs.clear()
    solo = emb.embed(phrases)
    assert runs == [1] * len(phrases)
    cos = np.sum(batched * solo, axis=1)
    assert cos.min() > 0.97 and cos.mean() > 0.985
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # The same list gives the same vectors again (the batch is the same).
    assert np.array_equal(emb.embed_phrases(phrases), batched)


def test_small_batches_give_the_same_vectors() -> None:
    # The float model (quantize=False) batches: padding and batch size must not change a vector.
    texts = [f"story number {i} about the harbour bridge repairs" for i in range(7)] + SENTENCES[:4]
    big = MiniLMEmbedder(batch_size=64, cache_size=0, quantize=False).embed(texts)
    small = MiniLMEmbedder(batch_size=2, cache_size=0, quantize=False).embed(texts)
    assert np.allclose(big, small, atol=1e-4)


def test_token_budget_splits_batches() -> None:
    emb = MiniLMEmbedder(batch_size=4, max_batch_tokens=300, cache_size=0, quantize=False)
    lengths = [3, 3, 5, 8, 9, 60, 70, 100, 256, 256]
    batches = emb._batches(list(range(len(lengths))), lengths, emb.batch_size)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 300
    long_texts = [" ".join(SENTENCES[:4] * k) for k in (1, 3, 6, 12)] + SENTENCES[:3]
    single = MiniLMEmbedder(batch_size=1, cache_size=0, quantize=False).embed(long_texts)
    assert np.allclose(emb.embed(long_texts), single, atol=1e-4)


def test_embed_document_reads_only_the_first_256_tokens(embedder: MiniLMEmbedder) -> None:
    head = " ".join(f"word{i % 50} river bridge" for i in range(200))  # far more than 256 tokens
    assert len(embedder._tokenizer.encode(head).ids) == 256
    doc = embedder.embed_document(head)
    assert doc.shape == (DIM,)
    assert np.allclose(doc, embedder.embed_document(head + " the election results came in late"), atol=1e-6)
    short = embedder.embed_document("The harbour bridge reopened on Monday.")
    assert np.allclose(short, embedder.embed(["The harbour bridge reopened on Monday."])[0])


def encoded_texts(embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts ``embedder`` runs through the model from now on: those its cache did not hold."""
    seen: list[str] = []
    encode = embedder._encode

    def spy(texts: list[str], *args, **kwargs):
        seen.extend(texts)
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(embedder, "_encode", spy)
    return seen


def test_phrase_cache_hits_and_lru_eviction(monkeypatch: pytest.MonkeyPatch) -> None:
    emb = MiniLMEmbedder(cache_size=3)
    encoded = encoded_texts(emb, monkeypatch)
    first = emb.embed(["oil spill", "tanker", "coast guard"])
    assert encoded == ["oil spill", "tanker", "coast guard"]
    second = emb.embed(["coast guard", "oil spill"])
    assert len(encoded) == 3  # both came from the cache
    assert np.array_equal(second, first[[2, 0]])
    second[:] = 0  # the caller's array is a copy: the cache is unharmed
    assert np.array_equal(emb.embed(["oil spill"])[0], first[0])
    emb.embed(["wildlife"])  # evicts the least recently used entry: "tanker"
    assert list(emb._cache) == ["coast guard", "oil spill", "wildlife"]
    # Repeated texts in one call are computed once.
    encoded.clear()
    out = emb.embed(["salmon", "salmon"])
    assert encoded == ["salmon"]
    assert np.array_equal(out[0], out[1])
    # Long texts are not cached.
    emb.embed(["x" * 500])
    assert "x" * 500 not in emb._cache


def test_thread_safe(embedder: MiniLMEmbedder) -> None:
    texts = [f"{s} ({i})" for i in range(6) for s in SENTENCES[:4]]
    expected = MiniLMEmbedder(cache_size=0).embed(texts)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            order = texts[k:] + texts[:k]
            out = embedder.embed(order)
            results[k] = np.concatenate([out[len(texts) - k :], out[: len(texts) - k]])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for out in results.values():
        assert np.allclose(out, expected, atol=1e-4)


def test_session_options(embedder: MiniLMEmbedder) -> None:
    options = embedder._session.get_session_options()
    assert options.enable_cpu_mem_arena is False
    assert options.enable_mem_pattern is False
    assert options.intra_op_num_threads == 1
    assert embedder._session.get_providers() == ["CPUExecutionProvider"]


# --- the int8 ONNX vectors against the original fp32 weights --------------------------------


def _load_safetensors(path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + size])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + size + start : 8 + size + end], dtype=np.float32).reshape(info["shape"])
    return out


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gain + bias


def _reference_embedding(w: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """BERT (6 layers, 12 heads, 384 wide) in plain numpy, mean-pooled and normalised."""
    from scipy.special import erf

    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = _layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def dense(t: np.ndarray, name: str) -> np.ndarray:
            return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (dense(x, f"attention.self.{m}").reshape(n, 12, 32).transpose(1, 0, 2) for m in ("query", "key", "value"))
        att = q @ k.transpose(0, 2, 1) / np.sqrt(32)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(1, 0, 2).reshape(n, 384)
        x = _layer_norm(x + dense(ctx, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = dense(x, "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        x = _layer_norm(x + dense(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    mean = x.mean(0)
    return mean / np.linalg.norm(mean)


def _reference_check(embedder: MiniLMEmbedder) -> list[float]:
    from tokenizers import Tokenizer

    weights_path = default_tokenizer_path().parent / "model.safetensors"
    weights = _load_safetensors(weights_path)
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    texts = SENTENCES[:5] + [" ".join(SENTENCES[:4] * 12)]  # the last one is cut at 256 tokens
    ours = embedder.embed(texts)
    return [cos(_reference_embedding(weights, tokenizer.encode(t).ids), v) for t, v in zip(texts, ours)]


def test_shipped_int8_file_matches_the_fp32_model() -> None:
    sims = _reference_check(MiniLMEmbedder(cache_size=0, quantize=False))
    assert min(sims) > 0.999, sims


def test_quantised_vectors_stay_close_to_the_fp32_model(embedder: MiniLMEmbedder) -> None:
    embedder.clear_cache()
    sims = _reference_check(embedder)
    assert min(sims) > 0.99 and float(np.mean(sims)) > 0.993, sims


def test_quantised_model_is_made_once_and_cached(tmp_path) -> None:
    source = default_model_path()
    # what an earlier version left: its quantised copy goes, the language model's file stays
    (tmp_path / "minilm-l6-00112233aabbccdd.onnx").write_bytes(b"an earlier recipe's model")
    (tmp_path / "langid-00112233aabbccdd.npz").write_bytes(b"another kind of entry")
    first = prepare_model(source, tmp_path)
    assert first.parent == tmp_path and first != source
    stamp = first.stat().st_mtime_ns
    assert prepare_model(source, tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # read from the cache, not rebuilt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["langid-00112233aabbccdd.npz", first.name]  # no leftovers
    assert first.stat().st_size < source.stat().st_size * 1.2


def test_unwritable_cache_falls_back_to_the_shipped_file(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert prepare_model(default_model_path(), blocker / "cache") == default_model_path()


# --- the lean graph: what prepare_model removes never changes a value ------------------------


def _float_graph(tmp_path):
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "float.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(default_model_path()), sess_options=options, providers=["CPUExecutionProvider"])
    return onnx.load(str(tmp_path / "float.onnx"))


def _run(model, ids: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})[0]


def test_lean_graph_gives_bit_identical_values_without_padding(tmp_path) -> None:
    import onnx

    original = _float_graph(tmp_path)
    lean = onnx.ModelProto()
    lean.CopyFrom(original)
    assert drop_softmax_nan_guards(lean.graph) == 6  # one per layer
    assert drop_attention_mask(lean.graph) == 6
    assert {i.name for i in lean.graph.input} == {"input_ids", "token_type_ids"}
    assert not {n.op_type for n in lean.graph.node} & {"IsNaN", "Where"}
    assert len(lean.graph.node) < len(original.graph.node)
    rng = np.random.default_rng(7)
    for shape in ((1, 5), (1, 256), (3, 9)):  # one document, a long one, a batch of equal length
        ids = rng.integers(1000, 20000, size=shape).astype(np.int64)
        ids[:, 0], ids[:, -1] = 101, 102
        assert np.array_equal(_run(original, ids), _run(lean, ids))


def test_the_prepared_model_is_never_fed_padding(embedder: MiniLMEmbedder) -> None:
    assert embedder.quantized and not embedder.masked
    assert "attention_mask" not in embedder._input_names
    lengths = [3, 3, 4, 4, 4, 6, 9]
    assert embedder._batches(list(range(len(lengths))), lengths, 64, None) == [[0, 1], [2, 3, 4], [5], [6]]
    assert MiniLMEmbedder(cache_size=0, quantize=False).masked  # the shipped file keeps its mask


def _tiny_graph(mask_also_scales: bool):
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "m"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    if mask_also_scales:  # the mask reaches the result another way, as position ids would
        nodes.append(helper.make_node("Mul", ["x", "m"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4]))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, 4])],
        outputs,
    )
    return graph


def test_the_mask_stays_when_it_is_read_elsewhere() -> None:
    kept = _tiny_graph(mask_also_scales=True)
    before = kept.SerializeToString()
    assert drop_attention_mask(kept) == 0
    assert kept.SerializeToString() == before
    dropped = _tiny_graph(mask_also_scales=False)
    assert drop_attention_mask(dropped) == 1
    assert [n.op_type for n in dropped.node] == ["Softmax"] and dropped.node[0].input[0] == "x"
    assert [i.name for i in dropped.input] == ["x"]


def test_the_model_cache_setting_is_read_from_the_environment(tmp_path, monkeypatch) -> None:
    from platformdirs import user_cache_dir

    from backstory.model_cache import model_cache_dir

    monkeypatch.delenv("BACKSTORY_MODEL_CACHE", raising=False)
    assert model_cache_dir() == Path(user_cache_dir("backstory", appauthor=False))
    monkeypatch.setenv("BACKSTORY_MODEL_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("BACKSTORY_PORT", "eighty")  # another setting's error is not the loaders' to report
    assert model_cache_dir() == tmp_path / "models"
