"""Losses against torch.nn.functional (value and gradient, float64), plus hand-derived values and errors;
on the strict (device) backend, the same numbers as on NumPy."""

import math

import numpy as np
import pytest

from cnngraph.backends.devices import get_backend
from cnngraph.backends.strict import StrictArray
from cnngraph.errors import TrainingError
from cnngraph.train.losses import L1, BinaryCrossEntropy, CrossEntropy, MeanSquaredError, MultiMargin, PixelCrossEntropy

rng = np.random.default_rng(0)


def torch_value_and_grad(fn, outputs, *args, **kwargs):
    torch = pytest.importorskip("torch")
    t = torch.tensor(outputs, requires_grad=True)
    value = fn(t, *[torch.tensor(a) for a in args], **kwargs)
    value.backward()
    return value.item(), t.grad.numpy()


def assert_matches(ours, theirs):
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, 2])
def test_cross_entropy_matches_torch(smoothing, weighted, ignore):
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((7, 5)) * 3
    labels = np.array([0, 1, 2, 3, 4, 2, 1])
    weight = rng.uniform(0.5, 2.0, 5) if weighted else None
    ours = CrossEntropy(smoothing, weight, ignore)(logits, labels)
    kwargs = {"label_smoothing": smoothing, "ignore_index": -100 if ignore is None else ignore}
    if weighted:
        kwargs["weight"] = torch.tensor(weight)
    assert_matches(ours, torch_value_and_grad(torch.nn.functional.cross_entropy, logits, labels, **kwargs))


def test_pixelwise_cross_entropy_matches_torch_with_void_label():
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((2, 4, 3, 5))
    labels = rng.integers(0, 4, (2, 3, 5))
    labels[0, 1, :3] = 255
    ours = PixelCrossEntropy(label_smoothing=0.05, weight=[1.0, 2.0, 0.5, 1.5])(logits, labels)
    theirs = torch_value_and_grad(torch.nn.functional.cross_entropy, logits, labels, ignore_index=255,
                                  label_smoothing=0.05, weight=torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64))
    assert_matches(ours, theirs)


def test_cross_entropy_is_stable_for_huge_logits_and_hand_checked():
    value, grad = CrossEntropy()(np.array([[1000.0, 0.0], [0.0, 0.0]]), np.array([0, 1]))
    assert math.isfinite(value) and value == pytest.approx(math.log(2) / 2)  # 0 for the first, log 2 for the second
    np.testing.assert_allclose(grad, [[0.0, 0.0], [0.25, -0.25]], atol=1e-12)


# -- closed forms, no torch needed --------------------------------------------------------------------
# Tolerances 1e-12 are rounding only; the bugs they guard against (smoothing spread as eps/(C-1), class
# weights dropped from the numerator or the denominator of the mean) move the values by 0.01 or more.

def test_label_smoothing_spreads_eps_over_all_c_classes():
    # Sample 1: logits log(1, 2, 3, 4) -> p = (0.1, 0.2, 0.3, 0.4), label 3; sample 2: logits 0 -> p = 1/4, label 0.
    # eps = 0.2, C = 4: q = eps/C = 0.05 on every class plus 1 - eps = 0.8 on the label (0.85 in all).
    # loss_1 = -(0.05 log 0.1 + 0.05 log 0.2 + 0.05 log 0.3 + 0.85 log 0.4), loss_2 = log 4 (q sums to 1);
    # gradient per sample p - q, halved by the mean over 2.
    logits = np.log(np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]]))
    value, grad = CrossEntropy(label_smoothing=0.2)(logits, np.array([3, 0]))
    loss_1 = -(0.05 * math.log(0.1) + 0.05 * math.log(0.2) + 0.05 * math.log(0.3) + 0.85 * math.log(0.4))
    assert value == pytest.approx((loss_1 + math.log(4)) / 2, abs=1e-12)
    np.testing.assert_allclose(grad, np.array([[0.05, 0.15, 0.25, -0.45], [-0.6, 0.2, 0.2, 0.2]]) / 2, atol=1e-12)


def test_class_weighted_mean_divides_by_the_summed_weights():
    # weight (1, 3). Sample A: logits (0, 0), label 0: -log p = log 2, weight 1. Sample B: logits (log 3, 0)
    # -> p = (3/4, 1/4), label 1: -log p = log 4, weight 3. Mean = (1 log 2 + 3 log 4) / (1 + 3) = 7/4 log 2
    # (unweighted 3/2 log 2; weighted sum over N: 7/2 log 2). Gradients w_y (p - onehot) / 4.
    logits = np.array([[0.0, 0.0], [math.log(3), 0.0]])
    value, grad = CrossEntropy(weight=[1.0, 3.0])(logits, np.array([0, 1]))
    assert value == pytest.approx(7 / 4 * math.log(2), abs=1e-12)
    np.testing.assert_allclose(grad, [[-0.125, 0.125], [0.5625, -0.5625]], atol=1e-12)


def test_class_weights_with_smoothing_weigh_every_class_term():
    # torch's rule: q_c = eps/C w_c + (1 - eps) w_y [c = y], divided by w_y. Sample B above, eps = 0.5:
    # q = (0.25 * 1, 0.25 * 3 + 0.5 * 3) = (0.25, 2.25) -> (0.25 log(4/3) + 2.25 log 4) / 3.
    value, _ = CrossEntropy(label_smoothing=0.5, weight=[1.0, 3.0])(np.array([[math.log(3), 0.0]]), np.array([1]))
    assert value == pytest.approx((0.25 * math.log(4 / 3) + 2.25 * math.log(4)) / 3, abs=1e-12)


def test_cross_entropy_keeps_float32():
    value, grad = CrossEntropy()(rng.standard_normal((3, 4)).astype(np.float32), np.array([0, 1, 2]))
    assert grad.dtype == np.float32 and isinstance(value, float)


def test_all_ignored_gives_zero_loss_and_gradient():
    value, grad = PixelCrossEntropy()(np.zeros((1, 3, 2, 2)), np.full((1, 2, 2), 255))
    assert value == 0.0 and not grad.any()


@pytest.mark.parametrize("pos_weight", [None, [0.5, 3.0, 1.0]])
def test_binary_cross_entropy_matches_torch(pos_weight):
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((4, 3)) * 30  # large magnitudes: the stable form matters
    targets = rng.uniform(0, 1, (4, 3))
    kwargs = {} if pos_weight is None else {"pos_weight": torch.tensor(pos_weight, dtype=torch.float64)}
    theirs = torch_value_and_grad(torch.nn.functional.binary_cross_entropy_with_logits, logits, targets, **kwargs)
    assert_matches(BinaryCrossEntropy(pos_weight)(logits, targets), theirs)


@pytest.mark.parametrize("loss,name", [(MeanSquaredError(), "mse_loss"), (L1(), "l1_loss")])
def test_regression_losses_match_torch(loss, name):
    torch = pytest.importorskip("torch")
    x, y = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    y[0, 0, 0] = x[0, 0, 0]  # a zero difference: both give subgradient 0
    assert_matches(loss(x, y), torch_value_and_grad(getattr(torch.nn.functional, name), x, y))


@pytest.mark.parametrize("p,margin", [(1, 1.0), (2, 0.5)])
def test_hinge_matches_torch_multi_margin(p, margin):
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    theirs = torch_value_and_grad(torch.nn.functional.multi_margin_loss, logits, labels, p=p, margin=margin)
    assert_matches(MultiMargin(margin, p)(logits, labels), theirs)


def test_hinge_hand_value():
    # sample 0: label 0, margins 1 - 2 + 0 = -1 (inactive), 1 - 2 + 1.5 = 0.5 -> 0.5 / 3 classes
    value, grad = MultiMargin()(np.array([[2.0, 0.0, 1.5]]), np.array([0]))
    assert value == pytest.approx(0.5 / 3)
    np.testing.assert_allclose(grad, [[-1 / 3, 0.0, 1 / 3]])


@pytest.mark.parametrize("call,message", [
    (lambda: CrossEntropy()(np.zeros((2, 3)), np.array([0, 3])), "label 3 is outside the 3 classes"),
    (lambda: CrossEntropy()(np.zeros((2, 3)), np.array([0.0, 1.0])), "must be integers"),
    (lambda: CrossEntropy()(np.zeros((2, 3)), np.array([0, 1, 2])), "labels have shape (3,), expected (2,)"),
    (lambda: CrossEntropy(weight=[1, 2])(np.zeros((2, 3)), np.array([0, 1])), "weight has 2 entries"),
    (lambda: CrossEntropy(label_smoothing=1.5), "label_smoothing must be in [0, 1]"),
    (lambda: MeanSquaredError()(np.zeros((2, 3)), np.zeros((3, 2))), "targets have shape (3, 2)"),
    (lambda: MultiMargin(p=3), "p must be 1 or 2"),
])
def test_bad_targets_are_named(call, message):
    with pytest.raises(TrainingError) as e:
        call()
    assert message in str(e.value)


# -- on a device: the strict backend computes with NumPy behind arrays that refuse host mixing ------------

def _labels(shape, classes, void=None):
    labels = np.random.default_rng(3).integers(0, classes, shape)
    if void is not None:
        labels.reshape(-1)[::5] = void
    return labels


DEVICE_CASES = [
    (CrossEntropy(0.1), (9, 5), lambda x: _labels(9, 5)),
    (CrossEntropy(0.1, rng.uniform(0.5, 2.0, 5), ignore_index=2), (9, 5), lambda x: _labels(9, 5, 2)),
    (PixelCrossEntropy(weight=[1.0, 2.0, 0.5]), (2, 3, 4, 4), lambda x: _labels((2, 4, 4), 3, 255)),
    (BinaryCrossEntropy([0.5, 3.0, 1.0, 2.0, 1.0]), (9, 5), lambda x: rng.uniform(0, 1, x.shape).astype(x.dtype)),
    (MeanSquaredError(), (9, 5), lambda x: rng.standard_normal(x.shape).astype(x.dtype)),
    (L1(), (9, 5), lambda x: rng.standard_normal(x.shape).astype(x.dtype)),
    (MultiMargin(0.5, 2), (9, 5), lambda x: _labels(9, 5)),
]


@pytest.mark.parametrize("targets_on_device", [False, True], ids=["host-targets", "device-targets"])
@pytest.mark.parametrize("loss,shape,targets", DEVICE_CASES, ids=[type(c[0]).__name__ for c in DEVICE_CASES])
def test_each_loss_on_the_strict_backend_equals_numpy(loss, shape, targets, targets_on_device):
    strict = get_backend("strict")
    logits = (rng.standard_normal(shape) * 3).astype(np.float32)
    y = targets(logits)
    value, grad = loss(logits, y)
    device_value, device_grad = loss(strict.asarray(logits), strict.asarray(y) if targets_on_device else y)
    assert isinstance(device_value, float) and isinstance(device_grad, StrictArray)  # the gradient stays on the device
    assert device_value == value
    np.testing.assert_array_equal(strict.to_host(device_grad), grad)
    assert device_grad.dtype == grad.dtype == np.float32


def test_labels_on_a_device_are_checked_with_the_same_message():
    strict = get_backend("strict")
    with pytest.raises(TrainingError, match="label 3 is outside the 3 classes 0..2"):
        CrossEntropy()(strict.asarray(np.zeros((2, 3), np.float32)), strict.asarray(np.array([0, 3])))
