"""MaxPool2d, AvgPool2d, GlobalAvgPool and AdaptiveAvgPool2d against ONNX (and a hand loop for adaptive)."""

import json
import math

import numpy as np
import pytest

from cnngraph.errors import AttrError, ShapeError
from cnngraph.frontends import dsl
from cnngraph.ops import Window, get_op
from tests.oracle import cnngraph_op, onnx_reference, onnxruntime_output, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend




MAX_CASES = [
    # (C, H, W), kernel, stride, padding (t, l, b, r), dilation, ceil_mode
    ((3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False),
    ((3, 9, 9), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),  # the ResNet stem pool
    ((3, 9, 9), (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), True),  # ceil_mode adds a clipped last window
    ((2, 10, 7), (3, 2), (2, 3), (1, 0, 0, 1), (1, 1), True),  # asymmetric pads, non-square
    ((2, 11, 11), (3, 3), (1, 2), (2, 1, 2, 1), (2, 2), False),  # dilation; pad up to half the dilated kernel
    ((2, 12, 10), (2, 3), (3, 2), (1, 1, 1, 1), (2, 1), True),
    ((2, 5, 5), (2, 2), (2, 2), (1, 1, 1, 1), (1, 1), True),  # ceil window starting in the end padding is dropped
]


@pytest.mark.parametrize("chw,k,s,p,d,ceil", MAX_CASES)
def test_max_pool2d_matches_reference(chw, k, s, p, d, ceil):
    x = random((2, *chw), 1)
    attrs = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    got = cnngraph_op("MaxPool2d", [x], attrs)
    want = onnx_reference("MaxPool", [x], dict(kernel_shape=k, strides=s, pads=p, dilations=d, ceil_mode=int(ceil)))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


AVG_CASES = [
    # (C, H, W), kernel, stride, padding (t, l, b, r), ceil_mode
    ((3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), False),
    ((3, 9, 9), (3, 3), (2, 2), (1, 1, 1, 1), False),
    ((2, 10, 7), (3, 2), (2, 3), (1, 0, 0, 1), False),  # asymmetric pads, non-square
    ((2, 8, 8), (3, 3), (2, 2), (1, 1, 1, 1), True),  # last window hangs past the padded end
    ((2, 10, 7), (3, 2), (2, 3), (1, 0, 0, 1), True),
    ((2, 7, 7), (3, 3), (3, 3), (0, 0, 0, 0), True),  # a window of one real element
    ((2, 5, 5), (2, 2), (2, 2), (1, 1, 1, 1), True),
]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("chw,k,s,p,ceil", AVG_CASES)
def test_avg_pool2d_matches_onnx(chw, k, s, p, ceil, count_include_pad):
    x = random((2, *chw), 2)
    attrs = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=count_include_pad)
    got = cnngraph_op("AvgPool2d", [x], attrs)
    onnx_attrs = dict(kernel_shape=k, strides=s, pads=p, ceil_mode=int(ceil), count_include_pad=int(count_include_pad))
    if ceil:  # onnx.reference misplaces ceil_mode windows (e.g. 7x7, k3, s3); onnxruntime matches torch
        want = onnxruntime_output("AveragePool", [x.astype(np.float32)], onnx_attrs)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        want = onnx_reference("AveragePool", [x], onnx_attrs)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got.shape == want.shape


def test_avg_pool2d_divisors_follow_torch():
    """Width 6, k3 s2, pad 1, ceil: the last window covers padded columns 6..8 of a padded width 8."""
    x = np.ones((1, 1, 1, 6))
    attrs = dict(kernel_size=(1, 3), stride=(1, 2), padding=(0, 1), ceil_mode=True)
    include = cnngraph_op("AvgPool2d", [x], dict(attrs, count_include_pad=True))
    exclude = cnngraph_op("AvgPool2d", [x], dict(attrs, count_include_pad=False))
    np.testing.assert_allclose(include.ravel(), [2 / 3, 1, 1, 1 / 2])  # the window clipped to the padded extent
    np.testing.assert_allclose(exclude.ravel(), [1, 1, 1, 1])


def test_global_avg_pool_matches_reference():
    x = random((2, 3, 5, 7), 3)
    got = cnngraph_op("GlobalAvgPool", [x])
    want = onnx_reference("GlobalAveragePool", [x])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)


def adaptive_loop(x, oh, ow):
    """PyTorch's definition, one cell at a time: rows [floor(i*H/oh), ceil((i+1)*H/oh))."""
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(math.floor(i * h / oh), math.ceil((i + 1) * h / oh))
            cols = slice(math.floor(j * w / ow), math.ceil((j + 1) * w / ow))
            out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return out


@pytest.mark.parametrize("hw,size", [
    ((10, 13), (7, 7)),  # non-divisible: overlapping cells
    ((8, 12), (4, 3)),  # divisible: an ordinary average pool
    ((7, 7), 1),
    ((5, 6), (7, 9)),  # more cells than pixels: cells repeat pixels
    ((9, 9), 3),
])
def test_adaptive_avg_pool2d_matches_hand_loop(hw, size):
    x = random((2, 3, *hw), 4)
    got = cnngraph_op("AdaptiveAvgPool2d", [x], dict(output_size=size))
    want = adaptive_loop(x, *((size, size) if isinstance(size, int) else size))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


SCHEMAS = [
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("MaxPool2d", dict(kernel_size=(2, 3), padding=(1, 0, 0, 1), dilation=(2, 1))),
    ("AvgPool2d", dict(kernel_size=3, padding=(1, 1), count_include_pad=False)),
    ("GlobalAvgPool", {}),
    ("AdaptiveAvgPool2d", dict(output_size=(7, 7))),
]


@pytest.mark.parametrize("op,attrs", SCHEMAS)
def test_attributes_survive_json_and_renormalising(op, attrs):
    t = dsl.layer(op, [dsl.input("x", (3, 10, 13))], **attrs)
    again = get_op(op).normalize("op", json.loads(json.dumps(t.attrs)), [t.parents[0].type])
    assert again == t.attrs



def test_stride_defaults_to_kernel():
    t = dsl.layer("MaxPool2d", [dsl.input("x", (3, 8, 8))], kernel_size=(2, 4))
    assert t.attrs["stride"] == (2, 4) and t.shape == ("N", 3, 4, 2)


def test_windows_and_macs():
    x = dsl.input("x", (4, 8, 8))
    pool = dsl.max_pool2d(x, 3, stride=2, padding=1, dilation=2)
    op = get_op("MaxPool2d")
    assert op.window(pool.attrs, [x.type]) == Window((5, 5), (2, 2), (1, 1))
    assert op.macs(pool.attrs, [x.type], pool.type) == 4 * 3 * 3 * 9
    assert get_op("GlobalAvgPool").window({}, [x.type]).global_
    assert get_op("AdaptiveAvgPool2d").window(dict(output_size=(1, 1)), [x.type]).global_
    adaptive = get_op("AdaptiveAvgPool2d")
    assert adaptive.window(dict(output_size=(4, 3)), [x.type]) == Window((2, 4), (2.0, 8 / 3))
    assert adaptive.macs(dict(output_size=(3, 3)), [x.type], None) == 4 * 10 * 10  # cells of 3, 4 and 3 on both axes


def test_padding_beyond_half_the_kernel_is_refused():
    with pytest.raises(AttrError, match=r"layer 'op' \(MaxPool2d\): padding \(2, 2, 2, 2\) must be at most half"):
        cnngraph_op("MaxPool2d", [random((1, 1, 8, 8))], dict(kernel_size=3, padding=2))
    dsl.max_pool2d(dsl.input("x", (1, 8, 8)), 3, padding=2, dilation=2)  # half of the dilated kernel 5


def test_kernel_larger_than_padded_input_names_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"layer 'op' \(AvgPool2d\): kernel 5x5 is larger than its padded input "
                                         r"4x6 \(input \(N, 2, 2, 4\), padding \(1, 1, 1, 1\)\)"):
        cnngraph_op("AvgPool2d", [random((1, 2, 2, 4))], dict(kernel_size=5, padding=1))


@pytest.mark.parametrize("op,attrs", SCHEMAS)
def test_non_image_input_names_layer_and_shape(op, attrs):
    expected = (r"a 4-D \(N, C, H, W\)" if op == "AdaptiveAvgPool2d"  # the one 2-D-only pool
                else r"an \(N, C, L\), \(N, C, H, W\) or \(N, C, D, H, W\)")
    with pytest.raises(ShapeError, match=rf"layer 'op' \({op}\): expects {expected} input, got shape \(N, 12\)"):
        cnngraph_op(op, [random((1, 12))], attrs)
