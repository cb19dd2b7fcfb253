"""Small ONNX models for import tests, and onnxruntime as their oracle.

Runtime inputs get a symbolic batch ("N"), so every import is also a check that the batch stays
symbolic: models run at two batch sizes on both sides.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import cnngraph
from cnngraph.frontends.onnx_import import from_model

BATCHES = (2, 3)


def model_of(nodes: list[onnx.NodeProto], inputs: dict[str, tuple], outputs: list[str], opset: int = 17,
             initializers: dict | None = None, elem=onnx.TensorProto.FLOAT) -> onnx.ModelProto:
    """A graph of ``nodes``; ``inputs`` map names to per-sample shapes (the batch is added as "N")."""
    ins = [helper.make_tensor_value_info(k, elem, ["N", *shape]) for k, shape in inputs.items()]
    outs = [helper.make_tensor_value_info(k, elem, None) for k in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()]
    graph = helper.make_graph(nodes, "test", ins, outs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def node_model(op_type: str, shapes: list[tuple], attrs: dict | None = None, initializers: dict | None = None,
               opset: int = 17, outputs: int = 1) -> onnx.ModelProto:
    """One node reading runtime inputs x0, x1, ... then the named initializers (None: an empty input)."""
    inits = initializers or {}
    names = [f"x{i}" for i in range(len(shapes))] + ["" if v is None else k for k, v in inits.items()]
    outs = [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op_type, names, outs, name="node", **(attrs or {}))
    present = {k: v for k, v in inits.items() if v is not None}
    return model_of([node], {f"x{i}": s for i, s in enumerate(shapes)}, outs, opset, present)


def onnxruntime_run(model: onnx.ModelProto | bytes, feeds: dict) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def assert_round_trips(graph, opset: int, tol: float = 1e-5) -> onnx.ModelProto:
    """``graph`` exported at ``opset`` passes the checker, runs in onnxruntime with the executor's numbers
    and imports back to the same numbers, at two batch sizes; returns the exported model."""
    from cnngraph.backends.onnx_export import check, to_onnx

    model = to_onnx(graph, opset)
    check(model)
    executor, back = cnngraph.compile(graph), cnngraph.compile(from_model(model))
    name, ttype = next(iter(graph.inputs.items()))
    for batch in BATCHES:
        x = np.random.default_rng(batch).standard_normal(ttype.concrete(batch)).astype(np.float32)
        want = executor(x)
        np.testing.assert_allclose(onnxruntime_run(model, {name: x})[0], want, rtol=tol, atol=tol)
        np.testing.assert_allclose(back(x), want, rtol=tol, atol=tol)
    return model


def feeds_for(model: onnx.ModelProto, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 inputs for every runtime input of ``model`` at ``batch``."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    return {i.name: rng.standard_normal((batch, *[d.dim_value for d in i.type.tensor_type.shape.dim[1:]]))
            .astype(np.float32) for i in model.graph.input if i.name not in inits}


def assert_import_matches(model: onnx.ModelProto, rtol: float = 1e-5, atol: float = 1e-5):
    """Import ``model`` and run it in the NumPy executor next to onnxruntime at two batch sizes."""
    graph = from_model(model)
    executor = cnngraph.compile(graph)
    for batch in BATCHES:
        feeds = feeds_for(model, batch)
        want = onnxruntime_run(model, feeds)
        got = executor.run(feeds)
        assert list(got) == [o.name for o in model.graph.output]
        for w, g in zip(want, got.values()):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return graph
