"""1-D (N, C, L) and 3-D (N, C, D, H, W) convolutions, pools, BatchNorm and resizing: forward against
onnx.reference / onnxruntime, backward against finite differences, both against PyTorch where installed.

The ops are the 2-D ones (Conv2d, MaxPool2d, ...) taking their spatial rank from the input, so these
tables mirror tests/test_ops_conv.py and tests/test_ops_pool.py with one and three spatial axes.
"""

import numpy as np
import pytest

from cnngraph.errors import AttrError, ShapeError
from cnngraph.frontends import dsl
from tests.gradcheck import check_gradients
from tests.oracle import cnngraph_op, onnx_reference, onnxruntime_output, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend
from tests.test_grad_ops import one_op_graph

CONV_CASES = [
    # input (C, *spatial), out, kernel, stride, padding (begins, ends), dilation, groups
    ((3, 11), 4, (3,), (1,), (0, 0), (1,), 1),
    ((4, 12), 6, (5,), (2,), (2, 1), (2,), 2),  # asymmetric pads, dilation, groups
    ((4, 9), 4, (1,), (1,), (0, 0), (1,), 1),  # 1x1 fast path
    ((2, 5, 6, 7), 3, (3, 3, 3), (1, 1, 1), (1, 1, 1, 1, 1, 1), (1, 1, 1), 1),
    ((4, 6, 5, 7), 4, (2, 3, 1), (2, 1, 3), (0, 1, 0, 1, 2, 0), (1, 2, 1), 2),  # every axis different
    ((3, 4, 4, 4), 3, (3, 3, 3), (1, 1, 1), (1, 1, 1, 1, 1, 1), (1, 1, 1), 3),  # depthwise
    ((2, 3, 4, 5), 2, (1, 1, 1), (1, 1, 1), (0, 0, 0, 0, 0, 0), (1, 1, 1), 1),  # 1x1x1 fast path
]


@pytest.mark.parametrize("cs,out,k,s,p,d,g", CONV_CASES)
def test_conv_matches_reference(cs, out, k, s, p, d, g):
    x, w, b = random((2, *cs), 1), random((out, cs[0] // g, *k), 2), random((out,), 3)
    got = cnngraph_op("Conv2d", [x], dict(out_channels=out, kernel_size=k, stride=s, padding=p, dilation=d,
                                          groups=g), {"weight": w, "bias": b})
    want = onnx_reference("Conv", [x], dict(kernel_shape=k, strides=s, pads=p, dilations=d, group=g), {"w": w, "b": b})
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size", [(7,), (5, 6, 7)])
def test_conv_same_padding_keeps_ceil_size(size):
    x, w = random((1, 2, *size)), random((3, 2, *(3,) * len(size)), 1)
    got = cnngraph_op("Conv2d", [x], dict(out_channels=3, kernel_size=3, stride=2, padding="same", bias=False),
                      {"weight": w})
    want = onnx_reference("Conv", [x], dict(kernel_shape=(3,) * len(size), strides=(2,) * len(size),
                                            auto_pad="SAME_UPPER"), {"w": w})
    assert got.shape[2:] == tuple(-(-n // 2) for n in size)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


TRANSPOSE_CASES = [
    # input (C, *spatial), out, kernel, stride, padding, output_padding, dilation, groups
    ((3, 5), 4, (3,), (2,), (1, 0), (1,), (1,), 1),
    ((2, 4), 2, (3,), (1,), (1, 1), (0,), (2,), 1),
    ((4, 3, 3, 2), 2, (2, 2, 2), (2, 2, 2), (0, 0, 0, 0, 0, 0), (0, 0, 0), (1, 1, 1), 1),  # U-Net's x2 upsampler
    ((2, 2, 3, 3), 3, (3, 2, 3), (2, 1, 3), (1, 0, 1, 0, 1, 2), (1, 0, 2), (1, 1, 1), 1),
    ((4, 2, 3, 2), 6, (3, 3, 3), (2, 2, 2), (1, 1, 1, 1, 1, 1), (1, 1, 1), (1, 1, 1), 2),
]


@pytest.mark.parametrize("cs,out,k,s,p,op,d,g", TRANSPOSE_CASES)
def test_conv_transpose_matches_reference(cs, out, k, s, p, op, d, g):
    x, w, b = random((2, *cs), 1), random((cs[0], out // g, *k), 2), random((out,), 3)
    got = cnngraph_op("ConvTranspose2d", [x], dict(out_channels=out, kernel_size=k, stride=s, padding=p,
                                                   output_padding=op, dilation=d, groups=g), {"weight": w, "bias": b})
    attrs = dict(kernel_shape=k, strides=s, pads=p, output_padding=op, dilations=d, group=g)
    if g == 1:
        np.testing.assert_allclose(got, onnx_reference("ConvTranspose", [x], attrs, {"w": w, "b": b}),
                                   rtol=1e-10, atol=1e-10)
    else:  # onnx.reference mis-reshapes grouped weights; onnxruntime (float32 only) is the oracle
        f32 = [a.astype(np.float32) for a in (x, w, b)]
        want = onnxruntime_output("ConvTranspose", f32[:1], attrs, {"w": f32[1], "b": f32[2]})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


POOL_CASES = [
    # op, input shape with batch, IR attributes, ONNX attributes
    ("MaxPool2d", (2, 3, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
     dict(kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1)),
    ("MaxPool2d", (2, 2, 12), dict(kernel_size=2, dilation=2, padding=(1, 0)),
     dict(kernel_shape=[2], strides=[2], pads=[1, 0], dilations=[2])),
    ("AvgPool2d", (2, 3, 10), dict(kernel_size=3, stride=1, padding=1, count_include_pad=False),
     dict(kernel_shape=[3], strides=[1], pads=[1, 1], count_include_pad=0)),
    ("MaxPool2d", (2, 2, 5, 6, 7), dict(kernel_size=(2, 3, 2), stride=(2, 2, 1), padding=(1, 1, 0, 0, 1, 1)),
     dict(kernel_shape=[2, 3, 2], strides=[2, 2, 1], pads=[1, 1, 0, 0, 1, 1])),
    ("MaxPool2d", (1, 2, 5, 5, 5), dict(kernel_size=3, stride=2, ceil_mode=True),
     dict(kernel_shape=[3, 3, 3], strides=[2, 2, 2], ceil_mode=1)),
    ("AvgPool2d", (2, 2, 4, 5, 6), dict(kernel_size=3, stride=2, padding=1),
     dict(kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6, count_include_pad=1)),
    ("AvgPool2d", (2, 2, 4, 5, 6), dict(kernel_size=(2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1, 1, 0, 1),
                                        count_include_pad=False),
     dict(kernel_shape=[2, 3, 3], strides=[1, 2, 2], pads=[0, 1, 1, 1, 0, 1], count_include_pad=0)),
]


@pytest.mark.parametrize("op,shape,attrs,onnx_attrs", POOL_CASES)
def test_pool_matches_reference(op, shape, attrs, onnx_attrs):
    x = random(shape, 4)
    onnx_op = {"MaxPool2d": "MaxPool", "AvgPool2d": "AveragePool"}[op]
    want = onnx_reference(onnx_op, [x], onnx_attrs)
    np.testing.assert_allclose(cnngraph_op(op, [x], attrs), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5, 6)])
def test_global_pools_match_reference(shape):
    x = random(shape, 5)
    np.testing.assert_allclose(cnngraph_op("GlobalAvgPool", [x]), onnx_reference("GlobalAveragePool", [x]),
                               rtol=1e-12, atol=1e-12)
    got = cnngraph_op("MaxPool2d", [x], dict(kernel_size=shape[2:]))  # what GlobalMaxPool imports as
    # onnx.reference's GlobalMaxPool reduces the wrong axes of a 3-D input: onnxruntime is the oracle
    np.testing.assert_array_equal(got.astype(np.float32), onnxruntime_output("GlobalMaxPool", [x.astype(np.float32)]))


@pytest.mark.parametrize("shape", [(4, 3, 6), (3, 3, 2, 3, 4)])
def test_batch_norm_matches_reference(shape):
    x = random(shape, 6)
    c = shape[1]
    params = dict(weight=random((c,), 7), bias=random((c,), 8), running_mean=random((c,), 9),
                  running_var=np.abs(random((c,), 10)) + 0.5)
    got = cnngraph_op("BatchNorm2d", [x], dict(eps=1e-3), params)
    want = onnx_reference("BatchNormalization", [x], dict(epsilon=1e-3),
                          dict(s=params["weight"], b=params["bias"], m=params["running_mean"], v=params["running_var"]))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


RESIZE_CASES = [
    # input shape, IR attributes, ONNX Resize attributes, scales
    ((2, 3, 5), dict(scale_factor=2, mode="nearest"),
     dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"), [1, 1, 2]),
    ((2, 3, 5), dict(scale_factor=3, mode="linear"),
     dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), [1, 1, 3]),
    ((1, 2, 3, 4, 5), dict(scale_factor=(2, 1, 3), mode="nearest"),
     dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"), [1, 1, 2, 1, 3]),
    ((1, 2, 3, 4, 2), dict(scale_factor=2, mode="trilinear"),
     dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), [1, 1, 2, 2, 2]),
    ((1, 2, 3, 2, 2), dict(size=(5, 3, 4), mode="trilinear", align_corners=True),
     dict(mode="linear", coordinate_transformation_mode="align_corners"), None),
]


@pytest.mark.parametrize("shape,attrs,onnx_attrs,scales", RESIZE_CASES)
def test_resize_matches_reference(shape, attrs, onnx_attrs, scales):
    x = random(shape, 11)
    got = cnngraph_op("Upsample", [x], attrs)
    if scales is None:
        extra = {"roi": np.zeros(0), "scales": np.zeros(0), "sizes": np.array([*shape[:2], *attrs["size"]])}
    else:
        extra = {"roi": np.zeros(0), "scales": np.array(scales, np.float32)}
    want = onnx_reference("Resize", [x], onnx_attrs, extra)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


GRAD_CASES = [
    ("Conv2d", [(2, 3, 7)], dict(out_channels=4, kernel_size=3, padding=(2, 1), dilation=2)),
    ("Conv2d", [(2, 4, 7)], dict(out_channels=2, kernel_size=3, stride=2, groups=2)),  # col2im path
    ("Conv2d", [(1, 2, 3, 4, 3)], dict(out_channels=3, kernel_size=(2, 3, 2), padding=(1, 1, 0, 0, 1, 1))),
    ("Conv2d", [(2, 2, 4, 3, 5)], dict(out_channels=2, kernel_size=3, stride=(2, 1, 2), padding=1, bias=False)),
    ("ConvTranspose2d", [(2, 3, 4)], dict(out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1)),
    ("ConvTranspose2d", [(1, 2, 2, 3, 2)], dict(out_channels=2, kernel_size=2, stride=2)),
    ("ConvTranspose2d", [(1, 2, 2, 2, 3)], dict(out_channels=4, kernel_size=(3, 2, 3), stride=(1, 2, 2),
                                                padding=(1, 0, 1, 1, 0, 0), groups=2)),
    ("MaxPool2d", [(2, 2, 9)], dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("MaxPool2d", [(1, 2, 4, 5, 4)], dict(kernel_size=(2, 3, 2), stride=(2, 1, 2), padding=(1, 1, 0, 0, 1, 1))),
    ("AvgPool2d", [(2, 2, 8)], dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AvgPool2d", [(1, 2, 4, 5, 4)], dict(kernel_size=3, stride=2, padding=1)),
    ("GlobalAvgPool", [(2, 3, 5)], {}),
    ("GlobalAvgPool", [(1, 2, 3, 2, 4)], {}),
    ("BatchNorm2d", [(3, 2, 5)], {}),
    ("BatchNorm2d", [(2, 2, 3, 2, 3)], {}),
    ("Upsample", [(2, 2, 4)], dict(scale_factor=2, mode="linear")),
    ("Upsample", [(1, 2, 2, 3, 2)], dict(scale_factor=(2, 1, 2), mode="nearest")),
    ("Upsample", [(1, 2, 2, 3, 2)], dict(size=(3, 4, 4), mode="trilinear", align_corners=True)),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[f"{c[0]}-{len(c[1][0]) - 2}d-{i}" for i, c in enumerate(GRAD_CASES)])
def test_backward_matches_finite_differences(case):
    op, shapes, attrs = case
    graph, inputs = one_op_graph(op, shapes, attrs)
    check_gradients(graph, inputs)


@pytest.mark.parametrize("axes", [1, 3])
def test_bn_folding_and_fusion_work_on_sequences_and_volumes(axes):
    """conv -> BN -> ReLU and conv -> BN -> + skip -> ReLU become FusedConv2d nodes, and the pipeline's own
    numeric check (the NumPy reference before and after each pass) holds."""
    import cnngraph

    conv = {1: dsl.conv1d, 3: dsl.conv3d}[axes]
    x = dsl.input("x", (3, *(6,) * axes))
    y = dsl.relu(dsl.batch_norm(conv(x, 4, 3, padding=1, bias=False, name="c1"), name="bn1"))
    z = dsl.batch_norm(conv(y, 4, 3, padding=1, name="c2"), name="bn2")
    graph = dsl.Model(x, dsl.relu(z + y), seed=5)
    for key in [k for k in graph.params if "running" in k]:
        graph.params[key] = np.abs(random(graph.params[key].shape, 14)).astype(np.float32) + 0.5
    optimised, reports = cnngraph.optimize(graph, "default", check=True)
    assert [n.op for n in optimised.nodes] == ["FusedConv2d", "FusedConv2d"]
    last = optimised.nodes[-1]
    assert last.attrs["residual"] and last.attrs["activation"] == "ReLU" and last.attrs["kernel_size"] == (3,) * axes


def test_analysis_counts_3d_parameters_macs_and_fields():
    """A 3x3x3 conv: weights O*C*27, MACs O*C*27 per output voxel; stride 2 doubles the jump on every axis."""
    from cnngraph.analysis import node_stats

    x = dsl.input("x", (2, 8, 8, 8))
    y = dsl.conv3d(x, 4, 3, stride=2, padding=1, name="c")
    y = dsl.max_pool3d(y, 2, name="p")
    stats = {r.node.name: r for r in node_stats(dsl.Model(x, y))}
    assert stats["c"].params == 4 * 2 * 27 + 4
    assert stats["c"].macs == 4 * 4 * 4 * 4 * 2 * 27
    assert stats["p"].macs == 4 * 2 * 2 * 2 * 8
    assert stats["c"].field.size == (3, 3, 3) and stats["c"].field.jump == (2, 2, 2)
    assert stats["p"].field.size == (5, 5, 5) and stats["p"].field.jump == (4, 4, 4)
    assert stats["p"].field.start == (1, 1, 1)  # conv outputs 0 and 1 sit on inputs 0 and 2: the pool between


def test_one_d_alignment_finds_the_crop_a_skip_needs():
    """A valid 1-D conv shifts positions by 1: the skip joined unaligned is reported with its crop."""
    from cnngraph.alignment import OFFSET, alignment_crop, joins

    x = dsl.input("x", (2, 16))
    y = dsl.conv1d(x, 2, 3, name="c")  # valid: 14 positions, first centred on input 1
    skip = dsl.slice(x, axes=(2,), starts=(0,), ends=(14,), name="skip")
    graph = dsl.Model(x, dsl.add(y, skip, name="join"))
    [join] = joins(graph)
    assert join.status == OFFSET and join.inputs[1].shift == (1.0,)
    assert "crop 'x' from (1) instead of (0)" in join.describe()
    assert alignment_crop(graph, "x", "c") == (1, 1)


@pytest.mark.parametrize("make,error,match", [
    (lambda: dsl.conv3d(dsl.input("x", (3, 8, 8)), 4, 3), ShapeError,
     r"layer 'conv3d' \(conv3d\): expects an \(N, C, D, H, W\) input, got shape \(N, 3, 8, 8\)"),
    (lambda: dsl.max_pool1d(dsl.input("x", (3, 8, 8)), 2), ShapeError,
     r"\(max_pool1d\): expects an \(N, C, L\) input"),
    (lambda: dsl.conv1d(dsl.input("x", (3, 8)), 4, (3, 3)), AttrError, r"kernel_size must have 1 values, got 2"),
    (lambda: dsl.conv3d(dsl.input("x", (3, 4, 4, 4)), 4, 5), ShapeError,
     r"kernel 5x5x5 \(dilation 1x1x1\) is larger than its padded input 4x4x4"),
    (lambda: dsl.upsample(dsl.input("x", (3, 4, 4, 4)), 2, mode="bilinear"), AttrError,
     r"mode must be one of \('nearest', 'trilinear'\) for 3 spatial axes, got 'bilinear'"),
    (lambda: dsl.conv_transpose3d(dsl.input("x", (3, 4, 4, 4)), 2, 2, padding=(1, 1, 1, 1)), AttrError,
     r"padding must have 3 values, got 4"),
])
def test_wrong_rank_or_attribute_names_the_layer(make, error, match):
    with pytest.raises(error, match=match):
        make()


# -- PyTorch, where installed: the same layers as torch.nn.functional, forward and backward -------------

TORCH_CASES = [
    ("conv1d", (2, 3, 10), lambda x: dsl.conv1d(x, 4, 3, stride=2, padding=1, dilation=2, name="op"),
     lambda F, x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2)),
    ("conv3d", (2, 4, 5, 4, 6), lambda x: dsl.conv3d(x, 4, (3, 2, 3), stride=(1, 2, 2), padding=1, groups=2,
                                                     name="op"),
     lambda F, x, w, b: F.conv3d(x, w, b, stride=(1, 2, 2), padding=1, groups=2)),
    ("conv_transpose3d", (2, 3, 3, 2, 3), lambda x: dsl.conv_transpose3d(x, 2, 3, stride=2, padding=1,
                                                                         output_padding=1, name="op"),
     lambda F, x, w, b: F.conv_transpose3d(x, w, b, stride=2, padding=1, output_padding=1)),
    ("max_pool3d", (2, 2, 5, 6, 5), lambda x: dsl.max_pool3d(x, 3, stride=2, padding=1, ceil_mode=True, name="op"),
     lambda F, x, w, b: F.max_pool3d(x, 3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool1d", (2, 3, 9), lambda x: dsl.avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False, name="op"),
     lambda F, x, w, b: F.avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False)),
    ("trilinear", (1, 2, 3, 4, 3), lambda x: dsl.upsample(x, scale_factor=2, mode="trilinear", name="op"),
     lambda F, x, w, b: F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)),
]


@pytest.mark.parametrize("name,shape,build,functional", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_forward_and_gradients_match_torch(name, shape, build, functional):
    torch = pytest.importorskip("torch")
    import cnngraph
    from cnngraph.arrays import to_numpy
    from tests.oracle import current_backend

    x = dsl.input("x", shape[1:])
    graph = dsl.Model(x, build(x), seed=3)
    params = {role: graph.params[key] for role, key in graph.node("op").params.items()}
    model = cnngraph.compile(graph, backend=current_backend(), dtype="float64", train=True)
    data = random(shape, 12)
    out = to_numpy(model.forward({"x": data}, input_grads=True)["op"])
    seed = random(out.shape, 13)
    model.backward({"op": seed})

    tx = torch.tensor(data, requires_grad=True)
    tp = {role: torch.tensor(v.astype(np.float64), requires_grad=True) for role, v in params.items()}
    want = functional(torch.nn.functional, tx, tp.get("weight"), tp.get("bias"))
    (want * torch.tensor(seed)).sum().backward()
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(to_numpy(model.input_grads["x"]), tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    for role, key in graph.node("op").params.items():
        np.testing.assert_allclose(to_numpy(model.grads[key]), tp[role].grad.numpy(), rtol=1e-9, atol=1e-10,
                                   err_msg=role)
