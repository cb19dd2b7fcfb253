"""Inference pooling reduces one spatial axis at a time (pool.py ``_reduce_separable``).

Oracles: onnxruntime's MaxPool and AveragePool in float32 (and ``onnx.reference`` in float64, which
onnxruntime's CPU pools do not take), and the training forward, which still walks the window tap
by tap for its argmax: both must give the same maxima bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnngraph.backends.kernels import RunContext
from cnngraph.backends.kernels.pool import avg_pool2d, max_pool2d
from tests.oracle import onnx_reference, onnxruntime_output, random

CASES = [
    # (N, C, H, W), kernel, stride, padding (t, l, b, r), ceil_mode
    ((2, 4, 16, 16), (3, 3), (2, 2), (1, 1, 1, 1), False),   # ResNet's stem pool
    ((1, 3, 11, 9), (3, 2), (2, 3), (1, 0, 0, 1), True),     # non-square, asymmetric, ceil
    ((1, 2, 7, 7), (1, 1), (2, 2), (0, 0, 0, 0), False),     # a 1x1 window: a strided pick
    ((1, 2, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), False),     # VGG's 2x2/2
]


def oracle(op, x, attrs):
    return (onnxruntime_output if x.dtype == np.float32 else onnx_reference)(op, [x], attrs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k,s,p,ceil", CASES)
def test_max_and_average_match_onnx(shape, k, s, p, ceil, dtype):
    x = random(shape, 1, dtype)
    attrs = dict(kernel_size=k, stride=s, padding=p, dilation=(1, 1), ceil_mode=ceil, count_include_pad=False)
    onnx_attrs = dict(kernel_shape=k, strides=s, pads=p, ceil_mode=int(ceil))
    got = max_pool2d(np, [x], {}, attrs, RunContext())
    np.testing.assert_array_equal(got, oracle("MaxPool", x, onnx_attrs))
    assert got.dtype == dtype and not np.shares_memory(got, x)
    if not ceil:  # onnx.reference misplaces ceil_mode average windows (tests/test_ops_pool.py)
        want = oracle("AveragePool", x, dict(onnx_attrs, count_include_pad=0))
        np.testing.assert_allclose(avg_pool2d(np, [x], {}, attrs, RunContext()), want, rtol=1e-6, atol=1e-6)


def test_inference_maxima_equal_the_training_forward_including_nan():
    x = random((2, 3, 12, 12), 2, np.float32)
    x[0, 1, 4, 5] = np.nan  # a NaN wins its windows on both paths, as in PyTorch
    attrs = dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), dilation=(1, 1), ceil_mode=False)
    inference = max_pool2d(np, [x], {}, attrs, RunContext())
    training = max_pool2d(np, [x], {}, attrs, RunContext(training=True, stash={}))
    np.testing.assert_array_equal(inference, training)
    assert np.isnan(inference[0, 1, 2, 2:4]).all() and np.isnan(inference).sum() == 2  # row 4 in one window row, column 5 in two
