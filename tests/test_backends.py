"""Backends as objects: the registry, kernel resolution and plans, host/device discipline, the
node-by-node check, out-of-memory errors and half-precision training steps."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnngraph
from cnngraph.backends import kernels
from cnngraph.backends.devices import all_backends, backend_of, get_backend
from cnngraph.backends.kernels import Implementation
from cnngraph.backends.randomness import Randomness
from cnngraph.backends.strict import MixingError, StrictArray
from cnngraph.cli import main
from cnngraph.errors import BackendCheckError, BackendError, DeviceMemoryError
from cnngraph.frontends import dsl
from tests.backends import BACKENDS


def tanh_net():
    x = dsl.input("x", (3, 6, 6))
    a = dsl.relu(dsl.conv2d(x, 4, 3, padding=1, name="conv"), name="r1")
    b = dsl.tanh(a, name="t")
    return dsl.Model(x, dsl.relu(dsl.conv2d(b, 2, 1, name="head"), name="r2"))


def x_batch(n=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, 6, 6)).astype(np.float32)


@pytest.fixture
def strict_kernel(monkeypatch):
    """Register an implementation for the strict backend for the length of one test."""

    def register(op, forward, **kw):
        monkeypatch.setitem(kernels._IMPLS, ("strict", op, ""), Implementation(op, "strict", forward, **kw))

    return register


# -- the registry ---------------------------------------------------------------------------
def test_backends_command_says_what_runs_here(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[2:] if line.split()[1:2] in (["yes"], ["no"])]
    assert [r[0] for r in rows] == ["numpy", "cupy", "onnxruntime", "strict"] and rows[0][1] == "yes"
    why = get_backend("cupy").unavailable()
    assert rows[1][1] == "yes" if why is None else f"cupy cannot run here: {why}" in out


def test_unknown_backend_and_dtype_are_typed_errors():
    with pytest.raises(BackendError, match="unknown backend 'cupi'; did you mean cupy"):
        cnngraph.compile(tanh_net(), backend="cupi")
    with pytest.raises(BackendError, match="runs dtypes float32, float64, float16, not 'int8'"):
        cnngraph.compile(tanh_net(), dtype="int8")


@pytest.mark.skipif(get_backend("cupy").unavailable() is None, reason="cupy runs here")
def test_cupy_without_a_device_says_why():
    with pytest.raises(BackendError, match="backend 'cupy' cannot run here: "):
        cnngraph.compile(tanh_net(), backend="cupy")
    assert main(["run", "lenet5", "--backend", "cupy"]) == 1


# -- host and device -------------------------------------------------------------------------
def test_strict_arrays_refuse_numpy_as_cupy_arrays_do():
    backend = get_backend("strict")
    host = np.arange(6.0)
    a = backend.asarray(host)
    host[0] = 99.0  # the device copy must not follow the host array
    assert float(a[0]) == 0.0 and isinstance(a[0], StrictArray)
    with pytest.raises(TypeError, match="implicit conversion"):
        np.asarray(a)
    for mix in (lambda: a + host, lambda: host * a, lambda: backend.xp.maximum(a, host)):
        with pytest.raises(MixingError):
            mix()
    with pytest.raises(MixingError):
        a[:] = host
    assert isinstance(backend.to_host(a), np.ndarray) and backend_of(a) is backend and backend_of(host).name == "numpy"


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_are_the_backends_arrays_until_asked_for_numpy(backend):
    model = cnngraph.compile(tanh_net(), backend=backend)
    device = model.run(x_batch())["r2"]
    host = model.run(x_batch(), to_host=True)["r2"]
    assert get_backend(backend).is_array(device) and isinstance(host, np.ndarray)
    again = model.run(model.backend.asarray(x_batch()))["r2"]  # device inputs are taken as they are
    reference = cnngraph.compile(tanh_net()).run(x_batch())["r2"]
    np.testing.assert_array_equal(host, reference)
    np.testing.assert_array_equal(model.backend.to_host(again), reference)


def test_every_backend_has_a_name_dtypes_and_an_answer_about_availability():
    for backend in all_backends():
        assert backend.name and backend.summary and "float32" in backend.dtypes
        assert backend.unavailable() is None or isinstance(backend.unavailable(), str)


# -- kernel resolution and plans -------------------------------------------------------------
def test_a_backend_kernel_runs_what_it_supports_and_the_generic_one_the_rest(strict_kernel):
    plans = []

    def prepare(xp, node, shapes, dtype):
        plans.append((node.name, shapes))
        return {"scale": 1.0}

    def relu(xp, inputs, params, attrs, ctx):
        assert ctx.plan == {"scale": 1.0}
        return xp.maximum(inputs[0], 0) * ctx.plan["scale"]

    strict_kernel("ReLU", relu, prepare=prepare,
                  supports=lambda node, dtype: None if node.name == "r1" else "only r1, for this test")
    model = cnngraph.compile(tanh_net(), backend="strict", passes="none")
    assert model.kernels() == {"conv": "generic", "r1": "strict", "t": "generic", "head": "generic",
                               "r2": "generic"}  # 3 input channels: Winograd's cost rule leaves the conv to the GEMM
    assert [f for f in model.fallbacks() if f[1] == "strict"] == [("r2", "strict", "only r1, for this test")]
    for batch in (2, 2, 5):
        np.testing.assert_array_equal(model.run(x_batch(batch), to_host=True)["r2"],
                                      cnngraph.compile(tanh_net(), passes="none").run(x_batch(batch))["r2"])
    assert plans == [("r1", ((2, 4, 6, 6),)), ("r1", ((5, 4, 6, 6),))]  # once per node and batch size


def test_training_resolves_forward_and_backward_as_a_pair(strict_kernel, capsys):
    strict_kernel("ReLU", lambda xp, inputs, params, attrs, ctx: xp.maximum(inputs[0], 0))
    assert cnngraph.compile(tanh_net(), backend="strict", passes="none").kernels()["r1"] == "strict"
    trained = cnngraph.compile(tanh_net(), backend="strict", train=True)
    assert trained.kernels()["r1"] == "generic"
    assert ("r1", "strict", "it has no backward kernel") in trained.fallbacks()
    assert main(["compile", "lenet5", "--backend", "strict", "--report"]) == 0
    assert "kernels on strict:" in capsys.readouterr().out


def test_the_check_names_the_first_layer_that_strays(strict_kernel):
    strict_kernel("Tanh", lambda xp, inputs, params, attrs, ctx: xp.tanh(inputs[0]) * 1.01)
    with pytest.raises(BackendCheckError, match=r"strict/float32, layer 't' \(Tanh\): output differs from the NumPy "
                                                r"float64 reference by 0.01 .*tolerance 0.0001.*reference: mean"):
        cnngraph.compile(tanh_net(), backend="strict", check=True)
    fused = kernels.get_kernel("FusedConv2d")  # what LeNet-5's conv + tanh become
    strict_kernel("FusedConv2d", lambda xp, inputs, params, attrs, ctx: fused(xp, inputs, params, attrs, ctx) * 1.01)
    assert main(["run", "lenet5", "--backend", "strict", "--check"]) == 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_check_passes_a_correct_backend_and_reports_each_node(backend, dtype):
    model = cnngraph.compile(tanh_net(), backend=backend, dtype=dtype, check=True)
    assert [name for name, _ in model.check_errors] == [n.name for n in model.graph.nodes]
    assert max(err for _, err in model.check_errors) > 0  # the rounding of float32 or float16 shows; a check of nothing would not


def test_out_of_memory_names_the_layer_the_batch_and_one_that_fits(strict_kernel):
    def exhausted(xp, inputs, params, attrs, ctx):
        raise MemoryError("simulated")

    strict_kernel("Tanh", exhausted)
    model = cnngraph.compile(tanh_net(), backend="strict")
    with pytest.raises(DeviceMemoryError, match=r"layer 't' \(Tanh\): out of strict memory at batch 4 .*"
                                                r"MiB of activations per sample.*try a batch of about \d+"):
        model.run(x_batch(4))


# -- randomness on the device ------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_masks_are_drawn_on_the_device_and_resume_exactly(backend):
    x = dsl.input("x", (50,))
    graph = dsl.Model(x, dsl.dropout(x, 0.5, name="d"))
    model = cnngraph.compile(graph, backend=backend, train=True)
    ones = np.ones((4, 50), np.float32)
    first = model.backend.to_host(model.forward(ones)["d"])
    state = model.random.state()
    second = model.backend.to_host(model.forward(ones)["d"])
    model.random.load_state(state)
    np.testing.assert_array_equal(model.backend.to_host(model.forward(ones)["d"]), second)
    assert not np.array_equal(first, second) and set(np.unique(first)) == {0.0, 2.0}
    host = Randomness(get_backend("numpy"), 0)
    np.testing.assert_array_equal(first, (host.uniform((4, 50)) >= 0.5) * 2.0)  # the same stream as NumPy's


# -- half precision ------------------------------------------------------------------------------
def test_float16_stores_half_and_keeps_float32_masters_and_statistics():
    x = dsl.input("x", (3, 6, 6))
    graph = dsl.Model(x, dsl.batch_norm(dsl.conv2d(x, 4, 3, name="conv"), name="bn"))
    model = cnngraph.compile(graph, dtype="float16", train=True)
    out = model.forward(x_batch())
    assert out["bn"].dtype == np.float16
    assert {p.dtype for p in model.params.values()} == {np.dtype(np.float32)}
    model.backward({"bn": np.ones(out["bn"].shape, np.float16)})
    assert {g.dtype for g in model.grads.values()} == {np.dtype(np.float32)}
    assert model.params["bn.running_mean"].any()  # the statistics moved, in float32


def test_an_overflowing_step_is_skipped_and_the_scale_backs_off():
    from cnngraph.train.losses import MeanSquaredError
    from cnngraph.train.optim import SGD

    model = cnngraph.compile(tanh_net(), dtype="float16", train=True)
    assert model.scaler.scale == 2.0**16
    before = {k: v.copy() for k, v in model.params.items()}
    model.scaler.scale = 2.0**40  # the scaled gradients overflow float16
    target = np.zeros((2, 2, 6, 6), np.float32)
    model.train_step(x_batch(), target, MeanSquaredError(), SGD(lr=0.1))
    assert model.scaler.scale == 2.0**39 and model.scaler.skipped == 1
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())
    model.scaler.scale = 2.0**10
    model.train_step(x_batch(), target, MeanSquaredError(), SGD(lr=0.1))
    assert model.scaler.growth_tracker == 1 and model.scaler.skipped == 1
    assert any(not np.array_equal(before[k], v) for k, v in model.params.items())


@pytest.mark.parametrize("backend", BACKENDS)
def test_to_graph_gives_the_trained_parameters_back_as_a_graph(backend, tmp_path):
    from cnngraph import io
    from cnngraph.train.losses import MeanSquaredError
    from cnngraph.train.optim import SGD

    model = cnngraph.compile(tanh_net(), backend=backend, train=True)
    model.train_step(x_batch(), np.zeros((2, 2, 6, 6), np.float32), MeanSquaredError(), SGD(lr=0.5))
    graph = model.to_graph()
    for key, value in model.params.items():
        np.testing.assert_array_equal(graph.params[key], model.backend.to_host(value))
        assert isinstance(graph.params[key], np.ndarray)
    assert not np.array_equal(graph.params["conv.weight"], tanh_net().params["conv.weight"])  # it trained
    io.save(graph, tmp_path / "trained.cng")
    np.testing.assert_array_equal(cnngraph.compile(io.load(tmp_path / "trained.cng"), passes="none").run(x_batch())["r2"],
                                  model.run(x_batch(), to_host=True)["r2"])
