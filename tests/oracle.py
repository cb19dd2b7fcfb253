"""Oracles for op tests: run one ONNX node in onnx.reference / onnxruntime, and one cnngraph op.

A test module that imports ``op_backend`` runs every test once per backend (``tests/backends.py``):
``cnngraph_op`` and ``check_gradients`` then compile for that backend, so each op's forward and
backward meet the same oracle on NumPy, on the strict (CuPy-like) backend and, with a GPU, on CuPy.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import cnngraph
from cnngraph.arrays import to_numpy
from cnngraph.frontends import dsl
from tests.backends import BACKENDS

_current = {"backend": "numpy"}


@pytest.fixture(params=BACKENDS, autouse=True)
def op_backend(request):
    """Import into a test module to run each of its tests on every backend."""
    _current["backend"] = request.param
    yield request.param
    _current["backend"] = "numpy"


def current_backend() -> str:
    return _current["backend"]


def onnx_node_model(op_type: str, inputs: list[np.ndarray], attrs: dict, initializers: dict | None = None,
                    opset: int = 17) -> onnx.ModelProto:
    """A one-node ONNX model: runtime inputs in0, in1, ... then named initializers, output 'out'."""
    initializers = initializers or {}
    elem = helper.np_dtype_to_tensor_dtype(inputs[0].dtype)
    graph_inputs = [helper.make_tensor_value_info(f"in{i}", elem, a.shape) for i, a in enumerate(inputs)]
    names = [f"in{i}" for i in range(len(inputs))] + list(initializers)
    node = helper.make_node(op_type, names, ["out"], **attrs)
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()]
    out = helper.make_tensor_value_info("out", elem, None)
    graph = helper.make_graph([node], "oracle", graph_inputs, [out], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def onnx_reference(op_type: str, inputs: list[np.ndarray], attrs: dict | None = None,
                   initializers: dict | None = None, opset: int = 17) -> np.ndarray:
    """Output of ``onnx.reference.ReferenceEvaluator`` for one node."""
    model = onnx_node_model(op_type, inputs, attrs or {}, initializers, opset)
    feeds = {f"in{i}": a for i, a in enumerate(inputs)}
    return ReferenceEvaluator(model).run(None, feeds)[0]


def onnxruntime_output(op_type: str, inputs: list[np.ndarray], attrs: dict | None = None,
                       initializers: dict | None = None, opset: int = 17) -> np.ndarray:
    """Output of onnxruntime (CPU) for one node; the test is skipped without onnxruntime."""
    import pytest

    ort = pytest.importorskip("onnxruntime")
    model = onnx_node_model(op_type, inputs, attrs or {}, initializers, opset)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {f"in{i}": a for i, a in enumerate(inputs)})[0]


def cnngraph_op(op_name: str, inputs: list[np.ndarray], attrs: dict | None = None,
                params: dict[str, np.ndarray] | None = None, dtype: str = "float64",
                train: bool = False) -> np.ndarray:
    """Run one cnngraph op through the DSL and the current backend's executor; ``params`` keyed by role.

    Also checks what every kernel owes its schema: the inferred output shape, and inputs left untouched.
    """
    tensors = [dsl.input(f"in{i}", a.shape[1:]) for i, a in enumerate(inputs)]
    out = dsl.layer(op_name, tensors, name="op", **(attrs or {}))
    graph = dsl.Model(tensors, out)
    for role, value in (params or {}).items():
        graph.params[graph.node("op").params[role]] = np.asarray(value)
    model = cnngraph.compile(graph, backend=current_backend(), dtype=dtype, train=train)
    before = [a.copy() for a in inputs]
    out = to_numpy((model.forward if train else model.run)({f"in{i}": a for i, a in enumerate(inputs)})["op"])
    assert out.shape == graph.node("op").type.concrete(len(inputs[0])), "kernel output disagrees with infer"
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b, err_msg="the kernel modified its input")
    return out


def random(shape, seed: int = 0, dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
