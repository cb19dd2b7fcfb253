"""Host kernels' own forms of NumPy calls (backends/kernels/windows.py's ``pad_spatial``, activation.py's
``rectified``): the oracle is the NumPy call each one replaces (``numpy.pad``, ``numpy.maximum(x, 0)``)."""

from __future__ import annotations

import numpy as np
import pytest

from cnngraph.backends import strict
from cnngraph.backends.kernels.activation import rectified
from cnngraph.backends.kernels.windows import pad_spatial


@pytest.mark.parametrize("shape,pads", [
    ((2, 3, 5, 4), (1, 2, 0, 3)),       # 2-D, asymmetric, one side unpadded
    ((1, 2, 7), (3, 1)),                # 1-D
    ((1, 2, 3, 4, 2), (1, 0, 2, 0, 1, 1)),  # 3-D
    ((2, 1, 4, 4), (0, 0, 0, 0)),       # nothing to pad: the array itself
])
@pytest.mark.parametrize("value", [2.5, float("-inf")])  # not 0: fresh memory may be zeros already
def test_pad_spatial_matches_numpy_pad(shape, pads, value):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    r = len(pads) // 2
    want = np.pad(x, ((0, 0), (0, 0), *zip(pads[:r], pads[r:])), constant_values=value)
    got = pad_spatial(np, x, pads, value)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(pad_spatial(strict.namespace, strict.namespace.asarray(x), pads, value).get(), want)


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 4, 3, 3), (1, 3, 2, 2, 2)])
def test_rectified_matches_maximum_with_zero(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    x.flat[0], x.flat[-1] = np.nan, -0.0  # NaN propagates, as maximum's does
    want = np.maximum(x, 0)
    np.testing.assert_array_equal(rectified(np, x), want)
    np.testing.assert_array_equal(rectified(strict.namespace, strict.namespace.asarray(x)).get(), want)
    band = x[..., :1] if x.ndim > 1 else x[:3]  # in place on a strided part of a larger array
    expected = np.maximum(band, 0)
    rectified(np, band, out=band)
    np.testing.assert_array_equal(band, expected)
