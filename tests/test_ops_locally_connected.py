"""LocallyConnected2d: forward against explicit loops and PyTorch's unfold, backward against finite
differences (every backend), ONNX export run by onnxruntime, import back as the op, and its analysis."""

import numpy as np
import pytest

import cnngraph
from cnngraph.analysis import node_stats, receptive_fields
from cnngraph.backends.onnx_export import check, to_onnx
from cnngraph.errors import OnnxImportError, ShapeError
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model
from tests.gradcheck import check_gradients
from cnngraph.ops.locally_connected import EINSUM
from tests.oracle import cnngraph_op, onnx_node_model, op_backend, random  # noqa: F401 - op_backend runs each test per backend
from tests.onnx_models import onnxruntime_run
from tests.test_grad_ops import one_op_graph

CASES = [  # per-sample input shape, attributes
    ((3, 6, 7), dict(out_channels=4, kernel_size=3)),
    ((2, 7, 6), dict(out_channels=3, kernel_size=(3, 2), stride=2, padding=1)),
    ((2, 5, 5), dict(out_channels=2, kernel_size=2, stride=(1, 2), padding=(0, 1, 2, 1), bias=False)),
]


def looped(x, weight, bias, stride, padding):
    """The definition, one output value at a time."""
    pt, pl, pb, pr = padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow, o, c, kh, kw = weight.shape
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, weight[i, j])
    return out if bias is None else out + bias


def params_for(shape, attrs, seed=3):
    graph = dsl.Model(x := dsl.input("x", shape), dsl.layer("LocallyConnected2d", [x], name="op", **attrs))
    node = graph.node("op")
    return {role: random(graph.params[key].shape, seed + k) for k, (role, key) in enumerate(node.params.items())}, node


@pytest.mark.parametrize("shape,attrs", CASES)
def test_forward_matches_the_definition(shape, attrs):
    x = random((2, *shape), 1)
    params, node = params_for(shape, attrs)
    got = cnngraph_op("LocallyConnected2d", [x], attrs, params)
    want = looped(x, params["weight"], params.get("bias"), node.attrs["stride"], node.attrs["padding"])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_forward_matches_torch_unfold():
    """torch has no locally connected layer; its unfold (im2col) with a per-position contraction is one."""
    torch = pytest.importorskip("torch")
    shape, attrs = CASES[1]
    x = random((3, *shape), 4)
    params, node = params_for(shape, attrs)
    oh, ow, o = params["weight"].shape[:3]
    cols = torch.nn.functional.unfold(torch.from_numpy(x), attrs["kernel_size"], padding=attrs["padding"],
                                      stride=attrs["stride"])  # (N, C*kh*kw, OH*OW)
    w = torch.from_numpy(params["weight"].reshape(oh * ow, o, -1))
    want = torch.einsum("nkp,pok->nop", cols, w).reshape(3, o, oh, ow) + torch.from_numpy(params["bias"])
    np.testing.assert_allclose(cnngraph_op("LocallyConnected2d", [x], attrs, params), want.numpy(), rtol=1e-12)


def test_with_one_filter_everywhere_it_is_a_convolution():
    shape, attrs = CASES[1]
    x = random((2, *shape), 5)
    params, _ = params_for(shape, attrs)
    conv_w = random((3, 2, 3, 2), 6)
    params["weight"][...] = conv_w
    params["bias"][...] = np.array([0.5, -1, 2]).reshape(3, 1, 1)
    conv = cnngraph_op("Conv2d", [x], dict(attrs), {"weight": conv_w, "bias": np.array([0.5, -1, 2])})
    np.testing.assert_allclose(cnngraph_op("LocallyConnected2d", [x], attrs, params), conv, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,attrs", CASES)
def test_backward_matches_finite_differences(shape, attrs):
    check_gradients(*one_op_graph("LocallyConnected2d", [(2, *shape)], attrs))


def test_parameters_macs_and_receptive_field():
    x = dsl.input("x", (16, 63, 63))
    y = dsl.locally_connected2d(dsl.conv2d(x, 16, 3, stride=2, name="conv"), 16, 9, name="lc")
    graph = dsl.Model(x, y)
    stats = {s.node.name: s for s in node_stats(graph)}
    assert graph.node("lc").type.shape[1:] == (16, 23, 23)
    assert stats["lc"].params == 23 * 23 * 16 * (16 * 9 * 9) + 16 * 23 * 23
    assert stats["lc"].macs == 23 * 23 * 16 * 16 * 9 * 9
    field = receptive_fields(graph)["lc"]
    assert (field.size, field.jump) == ((3 + 8 * 2, 3 + 8 * 2), (2, 2))  # 9 taps of the stride-2 conv's 3x3 fields


@pytest.mark.parametrize("shape,attrs", CASES)
def test_onnx_export_runs_in_onnxruntime_and_imports_back_as_the_op(shape, attrs):
    x = dsl.input("x", shape)
    graph = dsl.Model(x, dsl.relu(dsl.locally_connected2d(x, name="lc", **attrs)), seed=2)
    model = to_onnx(graph, opset=17)
    check(model)
    assert [n.op_type for n in model.graph.node][:2] == ["Conv", "Einsum"]
    feeds = {"x": random((3, *shape), 7, np.float32)}
    want = cnngraph.compile(graph)(feeds["x"])
    np.testing.assert_allclose(onnxruntime_run(model.SerializeToString(), feeds)[0], want, rtol=1e-5, atol=1e-5)
    back = from_model(model)
    assert [n.op for n in back.nodes].count("LocallyConnected2d") == 1
    assert "Conv2d" not in [n.op for n in back.nodes]  # the patch extraction folded into the op
    np.testing.assert_allclose(cnngraph.compile(back)(feeds["x"]), want, rtol=1e-6, atol=1e-6)


def test_shape_and_import_errors_name_the_layer():
    x = dsl.input("x", (2, 4, 4))
    with pytest.raises(ShapeError, match=r"layer 'lc' \(LocallyConnected2d\): kernel 5x5 is larger than its padded "
                                         r"input 4x4"):
        dsl.locally_connected2d(x, 3, 5, name="lc")
    graph = dsl.Model(x, dsl.locally_connected2d(x, 3, 3, name="lc", bias=False))
    model = to_onnx(graph)
    filters = next(t for t in model.graph.initializer if t.name == "lc/patch_filters")  # break them
    filters.raw_data = np.zeros((18, 1, 3, 3), np.float32).tobytes()
    with pytest.raises(OnnxImportError, match=r"node 'lc' \(Einsum\): input 0 .* one-hot filters"):
        from_model(model)
    plain = onnx_node_model("Einsum", [random((2, 3), 0, np.float32)], {"equation": "nk,ko->no"},
                            {"w": random((3, 4), 1, np.float32)})
    with pytest.raises(OnnxImportError, match=r"Einsum is supported only as a locally connected layer's export"):
        from_model(plain)
    plain = onnx_node_model("Einsum", [random((2, 18, 2, 2), 0, np.float32)], {"equation": EINSUM},
                            {"w": random((2, 2, 3, 18), 1, np.float32)})
    with pytest.raises(OnnxImportError, match=r"input 0 \('in0'\) must be patches from a grouped Conv"):
        from_model(plain)
