"""Winograd F(2x2, 3x3) and F(4x4, 3x3): the NumPy backend's kernel for stride-1 3x3 convolutions.

Oracles: the direct im2col convolution in float64 (the reference, itself checked against onnxruntime
and ``onnx.reference`` in tests/test_ops_conv.py) and PyTorch's conv2d where torch is installed;
``check=True`` on whole zoo models, node by node against the float64 reference.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnngraph
from cnngraph.backends import chunks
from cnngraph.backends.kernels import winograd
from cnngraph.backends.kernels.conv import conv2d_forward, weight_grad as conv_weight_grad
from cnngraph.backends.threads import blas
from cnngraph.frontends import dsl
from tests.zoo_builds import reduced

# Worst relative error (to the output's largest magnitude) in float32, documented in the README
FLOAT32_BOUND = {2: 2e-6, 4: 2e-5}


DIRECT_BELOW = winograd.DIRECT_BELOW  # the tests of direct plans put it back
WINOGRAD_WEIGHT_GRAD = winograd.winograd_weight_grad


@pytest.fixture(autouse=True)
def _threads_and_every_size(monkeypatch):
    """Test models are small: their maps would give few tile columns, whose plans run the direct kernel.
    Two cores, whatever the machine, so that batches of 2 or more go in several chunks."""
    monkeypatch.setattr(winograd, "DIRECT_BELOW", 0)
    monkeypatch.setattr(chunks, "CORES", 2)
    yield
    blas.restore()  # the kernel picks BLAS threads per GEMM; leave the process as it was


def case(n, c, o, h, w, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)
    return x, weight, rng.standard_normal(o)


def direct(x, weight, bias, padding):
    return conv2d_forward(np, x, weight, bias, (1, 1), padding, (1, 1), 1)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape,padding", [
    ((2, 3, 5, 9, 9), (1, 1, 1, 1)),      # 9x9 output: the last tile overhangs
    ((1, 8, 4, 16, 16), (1, 1, 1, 1)),     # whole tiles: written straight into the output
    ((3, 4, 6, 7, 10), (0, 0, 0, 0)),      # valid convolution, non-square
    ((1, 5, 3, 6, 6), (2, 0, 1, 2)),       # asymmetric padding
])
def test_matches_the_direct_convolution(m, shape, padding, monkeypatch):
    monkeypatch.setattr(winograd, "tile_size", lambda batch, out_hw: m)
    x, weight, bias = case(*shape)
    plan = winograd.Plan(x.shape, padding)
    assert plan.m == m
    want = direct(x, weight, bias, padding)
    got64 = winograd.winograd_conv2d(np, x, plan.filters(np, weight), bias, plan)  # float64: the algorithm is exact up to rounding
    np.testing.assert_allclose(got64, want, rtol=0, atol=1e-12 * np.abs(want).max())
    plan32 = winograd.Plan(x.shape, padding)
    got32 = winograd.winograd_conv2d(np, x.astype(np.float32), plan32.filters(np, weight.astype(np.float32)),
                                     None, plan32)
    want = direct(x, weight, None, padding)
    assert got32.dtype == np.float32
    assert np.abs(got32 - want).max() / np.abs(want).max() <= FLOAT32_BOUND[m]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape,padding", [
    ((3, 3, 5, 9, 9), (1, 1, 1, 1)),       # the last tile overhangs: the output gradient is padded to whole tiles
    ((2, 4, 6, 7, 10), (0, 0, 0, 0)),      # valid convolution, non-square
    ((2, 5, 3, 6, 6), (2, 0, 1, 2)),       # asymmetric padding
])
def test_weight_gradient_matches_the_direct_one(m, shape, padding, monkeypatch):
    """The adjoint of the forward's transforms against the float64 im2col weight gradient (checked by finite
    differences in tests/test_grad_ops.py); one image per chunk, so the chunks' sum is covered too."""
    monkeypatch.setattr(winograd, "tile_size", lambda batch, out_hw: m)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    x, weight, _ = case(*shape)
    plan = winograd.Plan(x.shape, padding)
    grad = np.random.default_rng(5).standard_normal(direct(x, weight, None, padding).shape)
    attrs = {"groups": 1, "kernel_size": (3, 3), "stride": (1, 1), "dilation": (1, 1), "padding": padding}
    want = conv_weight_grad(np, grad, x, attrs)
    np.testing.assert_allclose(winograd.winograd_weight_grad(np, x, grad, plan), want, rtol=0,
                               atol=1e-12 * np.abs(want).max())
    got32 = winograd.winograd_weight_grad(np, x.astype(np.float32), grad.astype(np.float32), plan)
    assert got32.dtype == np.float32
    assert np.abs(got32 - want).max() / np.abs(want).max() <= FLOAT32_BOUND[m]


def test_a_batch_in_several_chunks_gives_the_same_output(monkeypatch):
    x, weight, bias = case(5, 4, 6, 9, 9)
    plan = winograd.Plan(x.shape, (1, 1, 1, 1))
    whole = winograd.winograd_conv2d(np, x, plan.filters(np, weight), bias, plan)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    assert winograd.images_per_chunk(plan, 4, 8, plan.filters(np, weight).nbytes) == 1
    chunked = winograd.winograd_conv2d(np, x, plan.filters(np, weight), bias, plan)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12 * np.abs(whole).max())  # GEMMs of other widths


def test_the_weight_gradient_goes_winograd_with_enough_tile_columns_per_channel():
    plan = winograd.Plan((1, 16, 8, 8), (1, 1, 1, 1))  # F(2x2): 16 tiles per image
    assert (plan.m, plan.tiles) == (2, (4, 4))
    assert winograd.weight_grad_pays(plan, 8, 12, 16)      # 128 columns, 8 per channel of the larger side
    assert not winograd.weight_grad_pays(plan, 7, 12, 16)


def test_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    x, weight, bias = case(2, 16, 8, 12, 12, seed=3)
    plan = winograd.Plan(x.shape, (1, 1, 1, 1))
    got = winograd.winograd_conv2d(np, x, plan.filters(np, weight), bias, plan)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias),
                                      padding=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_writes_into_a_strided_destination():
    x, weight, bias = case(2, 3, 4, 8, 8)
    buffer = np.full((2, 10, 8, 8), np.nan)
    plan = winograd.Plan(x.shape, (1, 1, 1, 1))
    out = winograd.winograd_conv2d(np, x, plan.filters(np, weight), bias, plan, out=buffer[:, 3:7])
    assert np.shares_memory(out, buffer)
    np.testing.assert_allclose(buffer[:, 3:7], direct(x, weight, bias, (1, 1, 1, 1)), atol=1e-12)
    assert np.isnan(buffer[:, :3]).all() and np.isnan(buffer[:, 7:]).all()


def test_the_filter_transform_is_done_once_per_plan():
    x, weight, _ = case(1, 4, 4, 8, 8)
    plan = winograd.Plan(x.shape, (1, 1, 1, 1))
    first = plan.filters(np, weight)
    assert plan.filters(np, weight) is first and first.shape == ((plan.m + 2) ** 2, 4, 4)


def test_tile_size_follows_the_columns_each_gemm_gets():
    assert winograd.tile_size(1, (56, 56)) == 4
    assert winograd.tile_size(1, (14, 14)) == 4   # 16 tiles
    assert winograd.tile_size(1, (7, 7)) == 2     # 4 tiles of 4x4: F(2x2) reads smaller filters
    assert winograd.tile_size(8, (7, 7)) == 4


def test_compile_chooses_it_for_stride_one_3x3_and_says_why_not_elsewhere(quick_params):
    model = cnngraph.compile(reduced("resnet18"), check=True)
    chosen = model.kernels()
    nodes = {node.name: node for node in model.graph.nodes}
    for name, impl in chosen.items():
        node = nodes[name]
        eligible = node.op in ("Conv2d", "FusedConv2d") and node.attrs["kernel_size"] == (3, 3) \
            and node.attrs["stride"] == (1, 1)
        assert (impl == "numpy/winograd") == eligible, name
    reasons = {(node, why) for node, impl, why in model.fallbacks() if impl == "numpy/winograd"}
    assert ("conv1", "Winograd runs 3x3 convolutions of stride 1 and dilation 1 only") in reasons
    assert max(err for _, err in model.check_errors) <= 1e-4


@pytest.mark.parametrize("name", ["densenet121", "googlenet", "unet"])
def test_check_passes_on_models_with_concat_slices_and_odd_maps(name, quick_params):
    model = cnngraph.compile(reduced(name), check=True)  # raises BackendCheckError past 1e-4
    assert "numpy/winograd" in model.kernels().values()


def test_float16_is_computed_in_float32_within_its_tolerance(quick_params):
    model = cnngraph.compile(reduced("resnet18"), dtype="float16", check=True)  # 1e-2, tests/test_float16.py
    assert "numpy/winograd" in model.kernels().values()


def test_strict_runs_it_with_device_discipline_and_the_same_numbers(quick_params):
    graph = reduced("resnet18")
    strict, numpy_ = cnngraph.compile(graph, backend="strict"), cnngraph.compile(graph)
    assert {k: v.replace("strict/", "numpy/") for k, v in strict.kernels().items()} == numpy_.kernels()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(strict.run(x, to_host=True)["fc"], numpy_.run(x)["fc"])


def test_the_reference_precision_keeps_the_direct_convolution(quick_params):
    graph = reduced("resnet18")
    for model in (cnngraph.compile(graph, dtype="float64"), cnngraph.compile(graph, dtype="float64", train=True)):
        assert not any("winograd" in impl for impl in model.kernels().values())
    declined = cnngraph.compile(graph, dtype="float64").fallbacks()
    assert any(why == "float64 is the reference precision: it keeps the direct convolution"
               for _, impl, why in declined if impl == "numpy/winograd")


def chain():
    x = dsl.input("x", (16, 12, 12))  # channels enough for the cost rule (C^2 >= 16 O) to choose Winograd
    y = dsl.relu(dsl.conv2d(x, 16, 3, padding=1, name="a"), name="ra")
    y = dsl.relu(dsl.conv2d(y, 12, 3, padding=(2, 0), name="b"), name="rb")   # the gradient's padding (0, 2)
    y = dsl.conv2d(y, 4, 3, stride=2, name="c")                                # stride 2: direct
    return dsl.Model(x, dsl.linear(dsl.flatten(y), 3, name="fc"), seed=1)


@pytest.mark.parametrize("batch,winograd_weight_grads", [(2, 0), (16, 2)])
def test_training_gradients_match_the_float64_direct_path(batch, winograd_weight_grads, monkeypatch):
    """The training variant (fresh filters every call, the input gradient through Winograd, and at batch 16
    the weight gradients of both 3x3 layers too: enough tile columns per channel) against the generic
    kernels in float64, whose backward tests/test_grad_ops.py checks by finite differences."""
    calls = []
    monkeypatch.setattr(winograd, "winograd_weight_grad",
                        lambda *args: calls.append(1) or WINOGRAD_WEIGHT_GRAD(*args))
    x = np.random.default_rng(0).standard_normal((batch, 16, 12, 12))
    head = np.random.default_rng(1).standard_normal((batch, 3))
    ours = cnngraph.compile(chain(), train=True)
    assert ours.kernels() == {"a": "numpy/winograd-train", "ra": "generic", "b": "numpy/winograd-train",
                              "rb": "generic", "c": "generic", "flatten": "generic", "fc": "generic"}
    reference = cnngraph.compile(chain(), dtype="float64", train=True)
    for step in range(2):  # after an update the filters must follow the new weights
        outs = [model.forward(x.astype(model.dtype))["fc"] for model in (ours, reference)]
        np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=2e-5 * np.abs(outs[1]).max())
        for model in (ours, reference):
            model.backward({"fc": head.astype(model.dtype)})
        for key, want in reference.grads.items():
            got = ours.grads[key]
            assert np.abs(got - want).max() <= 2e-5 * np.abs(want).max(), key
        for model in (ours, reference):
            for key, g in model.grads.items():
                model.params[key] -= (0.5 * g).astype(model.params[key].dtype)
    assert len(calls) == 2 * winograd_weight_grads


def test_the_cost_rule_leaves_few_input_channels_to_the_direct_kernel(quick_params):
    """SSD's stem convs (3 -> 16, 16 -> 32) ran 4x and 3.4x slower through Winograd: C^2 < 16 O declines it,
    in inference and in training (its forward is the same convolution); check=True still covers every node."""
    x = dsl.input("x", (3, 16, 16))
    y = dsl.relu(dsl.conv2d(x, 16, 3, padding=1, name="few"), name="r1")
    y = dsl.relu(dsl.conv2d(y, 16, 3, padding=1, name="enough"), name="r2")   # 16^2 >= 16 * 16
    graph = dsl.Model(x, dsl.global_avg_pool(y), seed=0)
    model = cnngraph.compile(graph, check=True)
    assert model.kernels()["few"] == "generic" and model.kernels()["enough"] == "numpy/winograd"
    assert ("few", "numpy/winograd", "3 input channels for 16 outputs: the direct GEMM is faster "
                                     "(Winograd wants C^2 >= 16 O)") in model.fallbacks()
    trained = cnngraph.compile(graph, train=True).kernels()
    assert trained["few"] == "generic" and trained["enough"] == "numpy/winograd-train"
    assert winograd.slower_than_direct(graph.node("enough"), [graph.type_of("r1")]) is None


def direct_plans_model():
    """Two 3x3 convolutions (one fused with a ReLU) on an 8x8 map: F(2x2)'s 16 tile columns per image, or
    at batch 8 and more F(4x4)'s 4 per image."""
    x = dsl.input("x", (16, 8, 8))
    y = dsl.conv2d(dsl.relu(dsl.conv2d(x, 16, 3, padding=1, name="a"), name="a.relu"), 16, 3, padding=1, name="b")
    return dsl.Model(x, y, seed=0)


@pytest.mark.parametrize("batch,label", [(1, " (direct at batch 1: 16 tile columns)"), (8, "")])
def test_direct_plans_run_the_direct_kernel_where_few_tile_columns_and_say_so(batch, label, monkeypatch):
    """Below DIRECT_BELOW tile columns a plan computes directly; the kernel report names it for the batch
    sizes run so far. Both paths against the float64 reference."""
    monkeypatch.setattr(winograd, "DIRECT_BELOW", DIRECT_BELOW)
    model = cnngraph.compile(direct_plans_model())
    x = np.random.default_rng(0).standard_normal((batch, 16, 8, 8))
    got = model.run({"x": x.astype(np.float32)}, to_host=True)["b"]
    assert model.kernels() == {"a": "numpy/winograd" + label, "b": "numpy/winograd" + label}
    reference = cnngraph.compile(direct_plans_model(), dtype="float64").run({"x": x})["b"]
    np.testing.assert_allclose(got, reference, rtol=0, atol=FLOAT32_BOUND[4] * np.abs(reference).max())


def test_direct_plans_train_with_the_direct_gradients(monkeypatch):
    """A training step whose plans go direct (forward, and the input gradient's own plan) gives the float64
    generic kernels' outputs and gradients."""
    monkeypatch.setattr(winograd, "DIRECT_BELOW", DIRECT_BELOW)
    rng = np.random.default_rng(1)
    x, head = rng.standard_normal((1, 16, 8, 8)), rng.standard_normal((1, 16, 8, 8))
    ours = cnngraph.compile(direct_plans_model(), train=True)
    reference = cnngraph.compile(direct_plans_model(), dtype="float64", train=True)
    outs = [model.forward(x.astype(model.dtype))["b"] for model in (ours, reference)]
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=2e-6 * np.abs(outs[1]).max())
    assert ours.kernels()["b"] == "numpy/winograd-train (direct at batch 1: 16 tile columns)"
    for model in (ours, reference):
        model.backward({"b": head.astype(model.dtype)})
    for key, want in reference.grads.items():
        assert np.abs(ours.grads[key] - want).max() <= 2e-6 * np.abs(want).max(), key
