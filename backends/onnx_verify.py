"""Check an exported model: onnxruntime on the file against a cnngraph executor (NumPy by default) on the graph.

Both run the same random inputs at two batch sizes (the symbolic batch must really be symbolic).
The relative difference is taken against the largest reference magnitude, so outputs near zero do
not blow it up; the tolerance depends on the element type.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from cnngraph.backends.executor import Executor
from cnngraph.errors import OnnxExportError, OnnxVerifyError
from cnngraph.ir import Graph
from cnngraph.probes import random_inputs

TOLERANCE = {"float32": 1e-4, "float64": 1e-9}  # max |onnxruntime - numpy| / max |numpy|
ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64"}
DEFAULT_BATCHES = (1, 3)
TRAINING_BATCHES = (4, 5)  # BatchNorm on batch statistics: a few values per channel, not ill-conditioned pairs


@dataclass(frozen=True)
class Difference:
    output: str
    batch: int
    max_abs: float
    max_rel: float


@dataclass(frozen=True)
class Verification:
    """Per output and batch size, how far onnxruntime is from the cnngraph executor."""

    differences: tuple[Difference, ...]
    dtype: str

    @property
    def tolerance(self) -> float:
        return TOLERANCE[self.dtype]

    @property
    def ok(self) -> bool:
        return all(d.max_rel <= self.tolerance for d in self.differences)

    def __str__(self) -> str:
        return "; ".join(f"'{d.output}' at batch {d.batch}: max abs {d.max_abs:.2e}, max rel {d.max_rel:.2e}"
                         for d in self.differences) + f" (tolerance {self.tolerance:.0e}, {self.dtype})"


def verify(graph: Graph, model: onnx.ModelProto | bytes | str | os.PathLike, batches=None,
           training: bool = False, seed: int = 0, backend: str = "numpy") -> Verification:
    """Run both (cnngraph on ``backend``) on random inputs at each batch size; OnnxVerifyError past the tolerance.

    ``model`` is the exported file's path, its bytes, or the ModelProto.

    ``training`` compares a training export: BatchNorm on batch statistics on both sides, and
    Dropout at ratio 0, since two random masks cannot agree. ``batches`` defaults to (1, 3), or
    (4, 5) for a training export.
    """
    batches = batches or (TRAINING_BATCHES if training else DEFAULT_BATCHES)
    ort = _onnxruntime()
    if training:
        model = _for_onnxruntime_training(_loaded(model))
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    source = source if isinstance(source, bytes) else os.fspath(source)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    types = [o.type for o in session.get_outputs()]
    dtype = next((ORT_TYPES[t] for t in types if t in ORT_TYPES), None)  # the model's element type
    if dtype is None:
        raise OnnxExportError(f"cannot verify outputs of types {types}; supported: a model with a "
                              f"{' or '.join(ORT_TYPES)} output (int64 outputs, as NMS's, are checked beside it)")
    executor = _reference(graph, dtype, training, backend)
    rng = np.random.default_rng(seed)
    differences = []
    for batch in batches:
        feeds = random_inputs(graph, batch, rng, dtype)
        got = dict(zip(graph.outputs, session.run(graph.outputs, feeds)))
        for name, want in executor.run(feeds, to_host=True).items():
            if got[name].shape != want.shape:  # a different number of detections
                differences.append(Difference(name, batch, float("inf"), float("inf")))
                continue
            max_abs = float(np.max(np.abs(got[name] - want), initial=0.0))
            differences.append(Difference(name, batch, max_abs, max_abs / max(float(np.max(np.abs(want))), 1e-30)))
    result = Verification(tuple(differences), dtype)
    if not result.ok:
        raise OnnxVerifyError(f"onnxruntime and the {executor.backend.name} executor disagree: {result}")
    return result


def _reference(graph: Graph, dtype: str, training: bool, backend: str) -> Executor:
    """The executor on the graph as it is (no optimisation passes): the reference semantics.

    Training runs on a copy with Dropout at ratio 0: BatchNorm updates its running statistics in place.
    """
    if training:
        graph = graph.copy()
        for node in graph.nodes:
            if node.op == "Dropout":
                node.attrs["p"] = 0.0
    elif graph.training:
        graph = copy.copy(graph)  # shallow: inference writes nothing
    graph.training = training
    return Executor(graph, backend, dtype)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise OnnxExportError("verifying needs onnxruntime: pip install 'cnngraph[cpu]'") from None
    return onnxruntime


def _loaded(model: onnx.ModelProto | bytes | str | os.PathLike) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    return onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(os.fspath(model))


def _for_onnxruntime_training(model: onnx.ModelProto) -> onnx.ModelProto:
    """Dropout at ratio 0; BatchNorm momentum 1, which the spec says leaves Y alone but onnxruntime's
    CPU kernel needs for a correct Y in training mode (microsoft/onnxruntime#29790)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            kept = [a for a in node.attribute if a.name != "momentum"]
            del node.attribute[:]
            node.attribute.extend([*kept, onnx.helper.make_attribute("momentum", 1.0)])
        elif node.op_type == "Dropout":
            ratio = f"{node.name}/verify_ratio"
            model.graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), ratio))
            inputs = [*node.input, "", ""][:3]
            inputs[1] = ratio
            del node.input[:]
            node.input.extend(inputs)
    return model
