"""MaxPool2dIndices and MaxUnpool2d against ONNX's two-output MaxPool and MaxUnpool (onnxruntime, onnx.reference),
and their ONNX export.

ONNX flattens indices over the whole (N, C, H, W) tensor; ours are per (H, W) plane (torch's
convention), so the oracle's indices are reduced modulo H * W before comparing.
"""

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import cnngraph
from cnngraph.backends.onnx_export import check, to_onnx
from cnngraph.backends.onnx_verify import verify
from cnngraph.errors import AttrError, ShapeError
from cnngraph.frontends import dsl
from cnngraph.ops import Window, get_op
from tests.oracle import cnngraph_op, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend

CASES = [
    # (C, H, W), kernel, stride, padding (t, l, b, r), ceil_mode
    ((3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), False),  # SegNet's pool
    ((2, 9, 7), (2, 2), (2, 2), (0, 0, 0, 0), False),  # odd sizes drop the last row / column
    ((2, 9, 9), (3, 3), (2, 2), (1, 1, 1, 1), False),  # overlapping windows, padding
    ((2, 10, 7), (3, 2), (2, 3), (1, 0, 0, 1), False),  # asymmetric
    ((2, 9, 9), (3, 3), (2, 2), (0, 0, 0, 0), True),
]


def onnx_pool_then_unpool(x, k, s, p, ceil, output_size):
    """ONNX MaxPool (values, indices) -> MaxUnpool(values, indices, output_shape): all three outputs."""
    f = TensorProto.FLOAT
    pool = helper.make_node("MaxPool", ["x"], ["values", "indices"], kernel_shape=k, strides=s, pads=p,
                            ceil_mode=int(ceil))
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [*x.shape[:2], *output_size])
    unpool = helper.make_node("MaxUnpool", ["values", "indices", "shape"], ["unpooled"], kernel_shape=k, strides=s,
                              pads=p)
    graph = helper.make_graph(
        [pool, unpool], "oracle", [helper.make_tensor_value_info("x", f, x.shape)],
        [helper.make_tensor_value_info(n, t, None) for n, t in
         (("values", f), ("indices", TensorProto.INT64), ("unpooled", f))],
        initializer=[shape],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def cnngraph_pool_then_unpool(x, k, s, p, ceil, output_size):
    image = dsl.input("x", x.shape[1:])
    attrs = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    values = dsl.layer("MaxPool2d", [image], name="values", **attrs)
    indices = dsl.layer("MaxPool2dIndices", [image], name="indices", **attrs)
    unpooled = dsl.layer("MaxUnpool2d", [values, indices], name="unpooled", kernel_size=k, stride=s, padding=p,
                         output_size=output_size)
    graph = dsl.Model(image, [values, indices, unpooled])
    return cnngraph.compile(graph).run({"x": x})


@pytest.mark.parametrize("chw,k,s,p,ceil", CASES)
def test_indices_and_unpool_match_onnxruntime(chw, k, s, p, ceil):
    ort = pytest.importorskip("onnxruntime")
    x = random((2, *chw), 5, np.float32)
    size = chw[1:] if not ceil else (10, 10)  # with ceil_mode the unpooled plane may exceed the input
    model = onnx_pool_then_unpool(x, k, s, p, ceil, size)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values, indices, unpooled = sess.run(None, {"x": x})
    got = cnngraph_pool_then_unpool(x, k, s, p, ceil, size)
    assert got["indices"].dtype == np.int64
    np.testing.assert_array_equal(got["indices"], indices % (chw[1] * chw[2]))
    np.testing.assert_array_equal(got["values"], values)
    if not ceil:  # onnxruntime scatters into the given shape with its own flattening; compare only real planes
        np.testing.assert_array_equal(got["unpooled"], unpooled)


# onnx.reference sizes its scatter buffer by the default size and ignores output_shape: even sizes only
@pytest.mark.parametrize("chw,k,s,p,ceil", [c for c in CASES if not c[-1] and c[0] != (2, 9, 7)])
def test_unpool_matches_onnx_reference(chw, k, s, p, ceil):
    x = random((2, *chw), 6, np.float32)
    values, indices, unpooled = ReferenceEvaluator(onnx_pool_then_unpool(x, k, s, p, ceil, chw[1:])).run(None, {"x": x})
    got = cnngraph_pool_then_unpool(x, k, s, p, ceil, chw[1:])
    np.testing.assert_array_equal(got["unpooled"], unpooled)


def test_ties_pick_the_first_maximum_in_scan_order():
    x = np.zeros((1, 1, 2, 4))
    x[0, 0] = [[1, 5, 5, 0], [5, 2, 0, 0]]
    got = cnngraph_op("MaxPool2dIndices", [x], dict(kernel_size=2))
    np.testing.assert_array_equal(got.ravel(), [1, 2])  # (0, 1) beats (1, 0); (0, 2) is the first of four zeros


def test_unpool_places_values_at_indices():
    """A hand case: every window's maximum goes back where it came from, zeros elsewhere."""
    x = np.array([[[[1, 9, 2, 3], [4, 0, 8, 5]]]], dtype=np.float64)
    got = cnngraph_pool_then_unpool(x, (2, 2), (2, 2), (0, 0, 0, 0), False, (2, 4))["unpooled"]
    np.testing.assert_array_equal(got[0, 0], [[0, 9, 0, 0], [0, 0, 8, 0]])


def test_shapes_and_windows():
    x = dsl.input("x", (4, 9, 7))
    idx = dsl.layer("MaxPool2dIndices", [x], kernel_size=2)
    pooled = dsl.max_pool2d(x, 2)
    assert idx.type.dtype == "int64" and idx.shape == pooled.shape == ("N", 4, 4, 3)
    up = dsl.layer("MaxUnpool2d", [pooled, idx], kernel_size=2)
    assert up.shape == ("N", 4, 8, 6) and up.attrs["stride"] == (2, 2)
    assert dsl.layer("MaxUnpool2d", [pooled, idx], kernel_size=2, output_size=(9, 7)).shape == ("N", 4, 9, 7)
    # the unpool's window undoes the pool's: jump 1/2 and a centre shift of -1/2 pooled pixel
    assert get_op("MaxUnpool2d").window(up.attrs, [pooled.type, idx.type]) == Window((1, 1), (0.5, 0.5), (0.25, 0.25))


def test_errors_name_layer_and_what_was_found():
    x = dsl.input("x", (4, 8, 8))
    pooled, idx = dsl.max_pool2d(x, 2), dsl.layer("MaxPool2dIndices", [x], kernel_size=2)
    with pytest.raises(ShapeError, match=r"layer 'up' \(MaxUnpool2d\): indices must be int64 .* got float32"):
        dsl.layer("MaxUnpool2d", [pooled, pooled], name="up", kernel_size=2)
    with pytest.raises(ShapeError, match=r"input \(N, 4, 8, 8\) and indices \(N, 4, 4, 4\) differ in shape"):
        dsl.layer("MaxUnpool2d", [x, idx], kernel_size=2)
    with pytest.raises(AttrError, match=r"output_size \(10, 8\) must lie between \(8, 8\) and that plus stride - 1"):
        dsl.layer("MaxUnpool2d", [pooled, idx], kernel_size=2, output_size=(10, 8))


@pytest.mark.parametrize("opset", (13, 17, 21))
@pytest.mark.parametrize("chw,k,s,p,ceil", CASES)
def test_pool_indices_unpool_export_to_onnx(chw, k, s, p, ceil, opset):
    """Exported as MaxPool's second output (reduced modulo H * W) and MaxUnpool (offset back by plane), both
    built from the runtime batch: onnxruntime agrees at batch 1 and 3."""
    pytest.importorskip("onnxruntime")
    image = dsl.input("x", chw)
    attrs = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    values = dsl.layer("MaxPool2d", [image], name="values", **attrs)
    indices = dsl.layer("MaxPool2dIndices", [image], name="indices", **attrs)
    size = chw[1:] if not ceil else (10, 10)
    up = dsl.layer("MaxUnpool2d", [dsl.tanh(values), indices], name="up", kernel_size=k, stride=s, padding=p,
                   output_size=size)
    graph = dsl.Model(image, dsl.add(up, dsl.upsample(values, size=size)))
    model = to_onnx(graph, opset)
    check(model)
    assert {"MaxPool", "Mod", "MaxUnpool"} <= {n.op_type for n in model.graph.node}
    result = verify(graph, model, batches=(1, 3))
    assert result.ok and max(d.max_abs for d in result.differences) < 1e-5, str(result)
