"""The NumPy backend's banded direct convolution (backends/kernels/tiled_conv.py).

Oracles: onnxruntime's Conv in float32 and ``onnx.reference``'s in float64 for the convolution, its output plus the residual
through ReLU for the fused epilogue, and ``check=True`` on zoo models (every node against the float64
reference).
"""

from __future__ import annotations

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.kernels import RunContext, fused, tiled_conv
from cnngraph.frontends import dsl
from tests.oracle import onnx_reference, onnxruntime_output, random
from tests.zoo_builds import reduced

CASES = [
    # (N, C, H, W), out, kernel, stride, padding (t, l, b, r), dilation
    ((2, 3, 23, 21), 5, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1)),    # a stem: 7x7/2
    ((1, 6, 12, 12), 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),    # a ResNet downsampling 3x3/2
    ((2, 6, 12, 12), 8, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1)),    # a 1x1/2 shortcut
    ((1, 4, 11, 9), 3, (3, 2), (1, 2), (2, 0, 1, 1), (2, 1)),     # asymmetric pads, dilation, non-square
    ((2, 2, 10, 10), 4, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),    # stride 1 but not 3x3: not Winograd's
]


def conv_case(shape, out, kernel, dtype, seed=0):
    x = random(shape, seed, dtype)
    weight = (random((out, shape[1], *kernel), seed + 1) / np.sqrt(shape[1] * np.prod(kernel))).astype(dtype)
    return x, weight, random((out,), seed + 2, dtype)


def attrs_of(out, kernel, stride, padding, dilation, **fused):
    return dict(out_channels=out, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, groups=1,
                **fused)


def ort_conv(x, weight, bias, kernel, stride, padding, dilation):
    """onnxruntime's Conv in float32; it has no float64 Conv, so ``onnx.reference``'s there."""
    oracle = onnxruntime_output if x.dtype == np.float32 else onnx_reference
    return oracle("Conv", [x], dict(kernel_shape=kernel, strides=stride, pads=padding, dilations=dilation),
                  {"w": weight, "b": bias})


@pytest.mark.parametrize("band_bytes", [1 << 20, 256])  # one band per image, and a band per output row
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-13)])
@pytest.mark.parametrize("shape,out,kernel,stride,padding,dilation", CASES)
def test_matches_onnxruntime(shape, out, kernel, stride, padding, dilation, dtype, tol, band_bytes, monkeypatch):
    monkeypatch.setattr(tiled_conv, "BAND_BYTES", band_bytes)
    monkeypatch.setattr(tiled_conv, "CORES", 1)  # bands by bytes alone
    x, weight, bias = conv_case(shape, out, kernel, dtype)
    attrs = attrs_of(out, kernel, stride, padding, dilation)
    plan = tiled_conv.Plan(x.shape, attrs, x.itemsize)
    assert (len(plan.bands) > 1) == (band_bytes == 256)
    got = tiled_conv.tiled_conv2d(np, x, weight, bias, attrs, plan)
    want = ort_conv(x, weight, bias, kernel, stride, padding, dilation)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("band_bytes", [1 << 20, 256])
def test_residual_and_relu_are_applied_band_by_band_into_a_concat_slice(band_bytes, monkeypatch):
    monkeypatch.setattr(tiled_conv, "BAND_BYTES", band_bytes)
    shape, out, kernel, stride, padding, dilation = CASES[0]
    x, weight, bias = conv_case(shape, out, kernel, np.float32, seed=4)
    want_conv = ort_conv(x, weight, bias, kernel, stride, padding, dilation)
    residual = random(want_conv.shape, 9, np.float32)
    attrs = attrs_of(out, kernel, stride, padding, dilation, residual=True, activation="ReLU", activation_attrs={})
    buffer = np.full((shape[0], out + 4, *want_conv.shape[2:]), np.nan, np.float32)  # an elided Concat's buffer
    plan = tiled_conv.Plan(x.shape, attrs, 4)
    got = tiled_conv.tiled_conv2d(np, x, weight, bias, attrs, plan, out=buffer[:, 2:2 + out],
                                  finish=fused.per_chunk(np, [x, residual], attrs))
    assert np.shares_memory(got, buffer)
    want = np.maximum(want_conv + residual, 0)
    np.testing.assert_allclose(buffer[:, 2:2 + out], want, rtol=0, atol=2e-6 * np.abs(want).max())
    assert np.isnan(buffer[:, :2]).all() and np.isnan(buffer[:, 2 + out:]).all()


def test_the_plan_keeps_the_gemm_weights_for_the_same_arrays_and_remakes_them_for_others():
    """Made once per weights (not copied on every run), and never stale: other weights, or the same weights
    with another bias or none, give onnxruntime's answer for those."""
    shape, out, kernel, stride, padding, dilation = CASES[0]
    x, weight, bias = conv_case(shape, out, kernel, np.float32)
    attrs = attrs_of(out, kernel, stride, padding, dilation)
    plan = tiled_conv.Plan(x.shape, attrs, 4)
    tiled_conv.tiled_conv2d(np, x, weight, bias, attrs, plan)
    assert plan.matrix(np, weight, bias) is plan.matrix(np, weight, bias)
    other = weight[::-1].copy()
    for w, b in [(other, bias), (other, bias[::-1].copy()), (other, None), (weight, bias)]:
        got = tiled_conv.tiled_conv2d(np, x, w, b, attrs, plan)
        want = ort_conv(x, w, np.zeros(out, np.float32) if b is None else b, kernel, stride, padding, dilation)
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())


@pytest.mark.parametrize("batch,cores", [(1, 2), (2, 2), (1, 3), (3, 2), (1, 1)])
def test_bands_are_even_and_a_share_for_every_core(batch, cores, monkeypatch):
    """ResNet's stem (112 output rows, 15 a band by bytes): every core gets as many bands as the others,
    no band is over the byte budget, and band heights differ by a row at most."""
    monkeypatch.setattr(tiled_conv, "CORES", cores)
    attrs = attrs_of(64, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1))
    plan = tiled_conv.Plan((batch, 3, 224, 224), attrs, 4)
    heights = [r1 - r0 for r0, r1 in plan.bands]
    assert plan.bands[0][0] == 0 and plan.bands[-1][1] == 112
    assert all(a[1] == b[0] for a, b in zip(plan.bands, plan.bands[1:]))
    assert batch * len(plan.bands) % cores == 0
    assert max(heights) - min(heights) <= 1 and max(heights) <= tiled_conv.BAND_BYTES // (147 * 112 * 4)


def test_an_activation_without_an_in_place_form_runs_once_over_the_output(monkeypatch):
    monkeypatch.setattr(tiled_conv, "BAND_BYTES", 256)
    shape, out, kernel, stride, padding, dilation = CASES[1]
    x, weight, bias = conv_case(shape, out, kernel, np.float32, seed=5)
    attrs = attrs_of(out, kernel, stride, padding, dilation, residual=False, activation="LeakyReLU",
                     activation_attrs={"alpha": 0.1})
    ctx = RunContext(plan=tiled_conv.Plan(x.shape, attrs, 4))
    got = tiled_conv.fused_conv2d_tiled(np, [x], {"weight": weight, "bias": bias}, attrs, ctx)
    conv = ort_conv(x, weight, bias, kernel, stride, padding, dilation)
    want = np.where(conv >= 0, conv, 0.1 * conv)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())


def stems():
    """Two 7x7/2 stems summed through ReLU (4.3 MiB of windows per image: banded) and a stride-2 3x3 conv
    after them (0.5 MiB: the generic kernel's)."""
    x = dsl.input("x", (3, 176, 176))
    a = dsl.conv2d(x, 8, 7, stride=2, padding=3, name="a")
    b = dsl.conv2d(x, 8, 7, stride=2, padding=3, name="b")
    y = dsl.conv2d(dsl.relu(a + b, name="sum"), 16, 3, stride=2, padding=1, name="small")
    return dsl.Model(x, dsl.global_avg_pool(y, name="pool"), seed=0)


def test_compile_chooses_it_for_large_windows_and_says_why_not_elsewhere():
    model = cnngraph.compile(stems(), check=True)  # every node against the float64 reference
    kernels = model.kernels()
    fused = next(node for node in model.graph.nodes if node.op == "FusedConv2d")
    assert fused.attrs["residual"] and fused.attrs["activation"] == "ReLU"  # its bias, the add and ReLU per band
    assert kernels[fused.name] == "numpy/tiled" and kernels["small"] == "generic"
    assert ("small", "numpy/tiled", "one image's window matrix (0.5 MiB) is under 4 MiB: the generic kernel's "
                                    "single GEMM is as fast") in model.fallbacks()
    assert max(err for _, err in model.check_errors) <= 1e-4


def test_pointwise_grouped_and_float64_convs_keep_the_generic_kernel(quick_params):
    declined = {why for _, impl, why in cnngraph.compile(reduced("resnet50")).fallbacks() if impl == "numpy/tiled"}
    assert any(why.startswith("a 1x1 stride-1 convolution") for why in declined)
    x = dsl.input("x", (4, 9, 9))
    grouped = dsl.Model(x, dsl.conv2d(x, 4, 3, stride=2, groups=2, name="grouped"), seed=0)
    assert ("grouped", "numpy/tiled", "the tiled kernel runs ungrouped convolutions only") in \
        cnngraph.compile(grouped).fallbacks()
    assert "numpy/tiled" not in cnngraph.compile(stems(), dtype="float64").kernels().values()


def test_strict_runs_it_with_device_discipline_and_the_same_numbers():
    strict, numpy_ = cnngraph.compile(stems(), backend="strict"), cnngraph.compile(stems())
    assert "strict/tiled" in strict.kernels().values()
    x = np.random.default_rng(0).standard_normal((2, 3, 176, 176)).astype(np.float32)
    np.testing.assert_array_equal(strict.run(x, to_host=True)["pool"], numpy_.run(x)["pool"])
