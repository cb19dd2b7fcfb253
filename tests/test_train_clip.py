"""Gradient clipping by total norm: against torch.nn.utils.clip_grad_norm_, a hand computation, the strict
(device) backend, and its place in train_step (after the loss scale is taken off, before the update)."""

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.devices import get_backend
from cnngraph.errors import TrainingError
from cnngraph.frontends import dsl
from cnngraph.train import SGD, CrossEntropy
from cnngraph.train.clip import clip_grad_norm

SHAPES = {"conv.weight": (4, 3, 3, 3), "conv.bias": (4,), "fc.weight": (5, 8)}


def grads(dtype=np.float64, scale=1.0):
    rng = np.random.default_rng(7)
    return {k: (rng.standard_normal(s) * scale).astype(dtype) for k, s in SHAPES.items()}


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("max_norm", [0.5, 1e3], ids=["clipped", "untouched"])
def test_matches_torch_clip_grad_norm(dtype, rtol, max_norm):
    torch = pytest.importorskip("torch")
    ours = grads(dtype)
    tensors = [torch.zeros(s, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(tensors, ours.values()):
        t.grad = torch.tensor(g)
    theirs = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    assert clip_grad_norm(ours, max_norm) == pytest.approx(theirs.item(), rel=rtol)
    for t, g in zip(tensors, ours.values()):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=rtol, atol=0)


def test_hand_computed():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}  # total norm 5
    assert clip_grad_norm(g, 1.0) == 5.0
    np.testing.assert_allclose(g["a"], [3.0 / (5.0 + 1e-6), 0.0], rtol=1e-15)
    np.testing.assert_allclose(g["b"], [[4.0 / (5.0 + 1e-6)]], rtol=1e-15)
    small = {"a": np.array([0.3, 0.4])}
    assert clip_grad_norm(small, 1.0) == pytest.approx(0.5) and np.array_equal(small["a"], [0.3, 0.4])
    with pytest.raises(TrainingError, match="max_norm must be a finite number > 0, got 0"):
        clip_grad_norm(g, 0)


def test_on_the_strict_backend_equals_numpy():
    strict = get_backend("strict")
    host, device = grads(np.float32), {k: strict.asarray(v) for k, v in grads(np.float32).items()}
    assert clip_grad_norm(device, 0.5) == clip_grad_norm(host, 0.5)
    for key, value in host.items():
        np.testing.assert_array_equal(strict.to_host(device[key]), value)


def net():
    x = dsl.input("x", (3, 6, 6))
    y = dsl.relu(dsl.conv2d(x, 4, 3, padding=1, name="conv"))
    return dsl.Model(x, dsl.linear(dsl.flatten(dsl.global_avg_pool(y)), 5, name="fc"), seed=2)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_train_step_caps_the_update_at_max_grad_norm(dtype):
    """With plain SGD at lr 1 the update is the clipped gradient: its norm is max_norm. Under float16 the
    clip sees the unscaled gradients (clipping the scaled ones would leave an update 2^16 times too small)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3, 6, 6)).astype(np.float32) * 4, rng.integers(0, 5, 8)
    model = cnngraph.compile(net(), train=True, dtype=dtype)
    if model.scaler is not None:
        model.scaler.scale = 2.0**8  # 2^16 overflows these gradients: that step would be skipped
    before = {k: v.copy() for k, v in model.params.items()}
    model.train_step(x, y, CrossEntropy(), SGD(lr=1.0), max_grad_norm=1e-3)
    assert model.scaler is None or model.scaler.skipped == 0
    step = np.sqrt(sum(((model.params[k] - before[k]).astype(np.float64) ** 2).sum() for k in before))
    assert step == pytest.approx(1e-3, rel=1e-2)
