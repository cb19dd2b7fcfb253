"""Conv2d and ConvTranspose2d against onnx.reference over a table of attribute combinations."""

import numpy as np
import pytest

from cnngraph.errors import ShapeError, AttrError
from tests.oracle import cnngraph_op, onnx_reference, onnxruntime_output, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend

CONV_CASES = [
    # (C, H, W), out, kernel, stride, padding(t,l,b,r), dilation, groups, bias
    ((3, 9, 9), 4, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    ((3, 9, 9), 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, False),
    ((4, 10, 7), 6, (3, 2), (1, 2), (2, 0, 1, 1), (1, 1), 2, True),  # asymmetric pads, groups
    ((4, 11, 11), 4, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 4, True),  # depthwise, dilation
    ((6, 8, 8), 6, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # 1x1 fast path
    ((2, 12, 12), 3, (5, 5), (3, 2), (1, 2, 0, 1), (1, 2), 1, True),
]


@pytest.mark.parametrize("chw,out,k,s,p,d,g,bias", CONV_CASES)
def test_conv2d_matches_reference(chw, out, k, s, p, d, g, bias):
    x = random((2, *chw), 1)
    w = random((out, chw[0] // g, *k), 2)
    b = random((out,), 3)
    params = {"weight": w, **({"bias": b} if bias else {})}
    got = cnngraph_op("Conv2d", [x], dict(out_channels=out, kernel_size=k, stride=s, padding=p, dilation=d,
                                          groups=g, bias=bias), params)
    inits = {"w": w, **({"b": b} if bias else {})}
    want = onnx_reference("Conv", [x], dict(kernel_shape=k, strides=s, pads=p, dilations=d, group=g), inits)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv2d_same_padding_keeps_ceil_size(stride):
    x = random((1, 2, 7, 8))
    w = random((3, 2, 3, 3), 1)
    got = cnngraph_op("Conv2d", [x], dict(out_channels=3, kernel_size=3, stride=stride, padding="same",
                                          bias=False), {"weight": w})
    want = onnx_reference("Conv", [x], dict(kernel_shape=(3, 3), strides=(stride, stride),
                                            auto_pad="SAME_UPPER"), {"w": w})
    assert got.shape[2:] == (-(-7 // stride), -(-8 // stride))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


TRANSPOSE_CASES = [
    # (C, H, W), out, kernel, stride, padding, output_padding, dilation, groups
    ((3, 5, 5), 4, (3, 3), (1, 1), (0, 0, 0, 0), (0, 0), (1, 1), 1),
    ((4, 4, 6), 2, (4, 4), (2, 2), (1, 1, 1, 1), (0, 0), (1, 1), 1),  # FCN-style x2 upsampler
    ((4, 5, 5), 6, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1), 2),
    ((2, 4, 4), 3, (3, 2), (3, 2), (0, 1, 2, 0), (2, 1), (1, 1), 1),
    ((2, 4, 4), 2, (3, 3), (1, 1), (1, 1, 1, 1), (0, 0), (2, 2), 1),
]


@pytest.mark.parametrize("chw,out,k,s,p,op,d,g", TRANSPOSE_CASES)
def test_conv_transpose2d_matches_reference(chw, out, k, s, p, op, d, g):
    x = random((2, *chw), 1)
    w = random((chw[0], out // g, *k), 2)
    b = random((out,), 3)
    got = cnngraph_op("ConvTranspose2d", [x], dict(out_channels=out, kernel_size=k, stride=s, padding=p,
                                                   output_padding=op, dilation=d, groups=g),
                      {"weight": w, "bias": b})
    attrs = dict(kernel_shape=k, strides=s, pads=p, output_padding=op, dilations=d, group=g)
    if g == 1:
        want = onnx_reference("ConvTranspose", [x], attrs, {"w": w, "b": b})
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    else:  # onnx.reference mis-reshapes grouped weights; onnxruntime (float32 only) is the oracle
        f32 = [a.astype(np.float32) for a in (x, w, b)]
        want = onnxruntime_output("ConvTranspose", f32[:1], attrs, {"w": f32[1], "b": f32[2]})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_kernel_larger_than_padded_input_names_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"layer 'op' \(Conv2d\).*kernel 7x7.*larger than its padded input 5x5"):
        cnngraph_op("Conv2d", [random((1, 3, 5, 5))], dict(out_channels=2, kernel_size=7))


def test_groups_must_divide_channels():
    with pytest.raises(AttrError, match="groups=2 must divide"):
        cnngraph_op("Conv2d", [random((1, 3, 5, 5))], dict(out_channels=4, kernel_size=1, groups=2))
