"""Optimizers and schedules against torch.optim, step for step on the same gradients (float64); on the
strict (device) backend, the same updates as on NumPy, with state created on and restored to the device."""

import math

import numpy as np
import pytest

from cnngraph.arrays import to_numpy
from cnngraph.backends.devices import get_backend
from cnngraph.backends.strict import MixingError, StrictArray
from cnngraph.errors import TrainingError
from cnngraph.train.optim import SGD, Adam, AdamW, RMSProp
from cnngraph.train.schedules import Cosine, LinearWarmup, Schedule, StepDecay

SHAPES = {"conv.weight": (4, 3, 3, 3), "conv.bias": (4,), "bn.weight": (4,), "bn.bias": (4,), "fc.weight": (5, 8)}
STEPS = 12


def start():
    rng = np.random.default_rng(1)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(STEPS)]
    return params, grads


CASES = [
    (SGD, "SGD", {"lr": 0.1}),
    (SGD, "SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    (SGD, "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (Adam, "Adam", {"lr": 0.01}),
    (Adam, "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    (AdamW, "AdamW", {"lr": 0.01}),
    (AdamW, "AdamW", {"lr": 0.01, "weight_decay": 0.3}),
    (RMSProp, "RMSprop", {"lr": 0.01, "weight_decay": 0.05}),
    (RMSProp, "RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5}),
]


def torch_run(torch_name, kwargs, params, grads, factor=lambda step: 1.0):
    """torch's optimizer with our no-decay rule as a param group of one-axis parameters at weight_decay 0."""
    torch = pytest.importorskip("torch")
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    decay = [t for t in tensors.values() if t.ndim > 1]
    exempt = [t for t in tensors.values() if t.ndim <= 1]
    opt = getattr(torch.optim, torch_name)([{"params": decay}, {"params": exempt, "weight_decay": 0.0}], **kwargs)
    history = []
    for step, g in enumerate(grads):
        for group in opt.param_groups:
            group["lr"] = kwargs["lr"] * factor(step)
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        opt.step()
        history.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    return history


def our_run(opt, params, grads, factor=lambda step: 1.0):
    base, history = opt.lr, []
    for step, g in enumerate(grads):
        opt.lr = base * factor(step)
        opt.step(params, g)
        history.append({k: v.copy() for k, v in params.items()})
    return history


def assert_same_history(ours, theirs):
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-14, err_msg=f"step {step + 1}, {key}")


@pytest.mark.parametrize("cls,torch_name,kwargs", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_matches_torch_step_for_step(cls, torch_name, kwargs):
    params, grads = start()
    theirs = torch_run(torch_name, kwargs, params, grads)
    assert_same_history(our_run(cls(**kwargs), params, grads), theirs)


def on_device(backend, params, grads):
    return {k: backend.copy(v) for k, v in params.items()}, [{k: backend.asarray(v) for k, v in g.items()} for g in grads]


@pytest.mark.parametrize("cls,torch_name,kwargs", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_on_the_strict_backend_updates_equal_numpy(cls, torch_name, kwargs):
    strict = get_backend("strict")
    params, grads = start()
    expected = our_run(cls(**kwargs), {k: v.copy() for k, v in params.items()}, grads)
    opt = cls(**kwargs)
    ours = our_run(opt, *on_device(strict, params, grads))
    for step, (a, b) in enumerate(zip(ours, expected, strict=True)):
        for key in a:
            np.testing.assert_array_equal(strict.to_host(a[key]), b[key], err_msg=f"step {step + 1}, {key}")
    assert all(isinstance(v, StrictArray) for slot, table in opt.state.items() if slot != "step" for v in table.values())
    assert all(type(v) is np.ndarray for v in opt.state_dict().values())  # checkpoints get host arrays


@pytest.mark.parametrize("cls", [SGD, Adam, RMSProp])
def test_state_restored_onto_the_device_continues_exactly(cls):
    strict = get_backend("strict")
    kwargs = {"lr": 0.05, "momentum": 0.9} if cls is not Adam else {"lr": 0.05}
    params, grads = start()
    straight = our_run(cls(**kwargs), *on_device(strict, params, grads))
    params, grads = on_device(strict, params, grads)
    first = cls(**kwargs)
    our_run(first, params, grads[:5])
    saved = first.state_dict()
    stays_on_host = cls(**kwargs)
    stays_on_host.load_state_dict(saved)
    with pytest.raises(MixingError):  # host state cannot meet device parameters: the device must be asked for
        stays_on_host.step(params, grads[5])
    second = cls(**kwargs)
    second.load_state_dict(saved, to_device=strict.copy)
    resumed = our_run(second, params, grads[5:])
    for key in params:
        assert np.array_equal(to_numpy(resumed[-1][key]), to_numpy(straight[-1][key])), key


def test_one_axis_parameters_are_not_decayed_and_override_works():
    zero = {k: np.zeros(s) for k, s in SHAPES.items()}
    params = {k: np.ones(s) for k, s in SHAPES.items()}
    SGD(lr=1.0, weight_decay=0.5).step(params, zero)
    assert all(params[k].min() == 0.5 for k in ("conv.weight", "fc.weight"))
    assert all(params[k].min() == 1.0 for k in ("conv.bias", "bn.weight", "bn.bias"))
    params = {k: np.ones(s) for k, s in SHAPES.items()}
    SGD(lr=1.0, weight_decay=0.5, no_decay={"fc.weight"}).step(params, zero)
    assert params["fc.weight"].min() == 1.0 and params["bn.weight"].min() == 0.5


def test_with_schedule_matches_torch_scheduler_driven_lr():
    params, grads = start()
    schedule = LinearWarmup(4, start_factor=0.25) * Cosine(STEPS)
    kwargs = {"lr": 0.1, "momentum": 0.9}
    theirs = torch_run("SGD", kwargs, params, grads, schedule)
    assert_same_history(our_run(SGD(**kwargs), params, grads, schedule), theirs)


def test_frozen_parameters_keep_value_and_no_state():
    params, grads = start()
    opt = Adam(lr=0.1)
    before = params["conv.weight"].copy()
    opt.step(params, {k: g for k, g in grads[0].items() if k != "conv.weight"})
    assert np.array_equal(params["conv.weight"], before)
    assert not any(k.endswith("/conv.weight") for k in opt.state_dict())


@pytest.mark.parametrize("cls", [SGD, Adam, RMSProp])
def test_state_dict_round_trip_continues_exactly(cls):
    kwargs = {"lr": 0.05, "momentum": 0.9} if cls is not Adam else {"lr": 0.05}
    params, grads = start()
    straight = our_run(cls(**kwargs), {k: v.copy() for k, v in params.items()}, grads)
    first = cls(**kwargs)
    our_run(first, params, grads[:5])
    second = cls(**kwargs)
    second.load_state_dict({k: v.copy() for k, v in first.state_dict().items()})
    resumed = our_run(second, params, grads[5:])
    for key in params:
        assert np.array_equal(resumed[-1][key], straight[-1][key])


def test_bad_settings_and_state_are_refused():
    with pytest.raises(TrainingError, match="sgd: momentum must be in"):
        SGD(momentum=1.5)
    with pytest.raises(TrainingError, match="nesterov needs momentum"):
        SGD(nesterov=True)
    with pytest.raises(TrainingError, match="adam: lr must be a finite number >= 0"):
        Adam(lr=float("nan"))
    with pytest.raises(TrainingError, match="does not belong to adam"):
        Adam().load_state_dict({"momentum/x": np.zeros(1)})


# -- schedules ---------------------------------------------------------------------------------

def torch_factors(make, steps):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = make(torch.optim.lr_scheduler, opt)
    factors = []
    for _ in range(steps):
        factors.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return factors


@pytest.mark.parametrize("ours,make", [
    (StepDecay(3, 0.5), lambda s, o: s.StepLR(o, 3, 0.5)),
    (Cosine(10), lambda s, o: s.CosineAnnealingLR(o, 10)),
    (Cosine(10, 0.1), lambda s, o: s.CosineAnnealingLR(o, 10, eta_min=0.1)),
    (LinearWarmup(4, 0.1), lambda s, o: s.LinearLR(o, 0.1, 1.0, 4)),
    (LinearWarmup(3) * Cosine(10), lambda s, o: s.ChainedScheduler([s.LinearLR(o, 1 / 3, 1.0, 3),
                                                                      s.CosineAnnealingLR(o, 10)])),
], ids=["step", "cosine", "cosine-min", "warmup", "warmup*cosine"])
def test_schedules_match_torch(ours, make):
    theirs = torch_factors(make, 10)
    assert [ours(t) for t in range(10)] == pytest.approx(theirs, rel=1e-12, abs=1e-15)


def test_schedule_hand_values():
    assert Schedule()(7) == 1.0
    assert Cosine(4)(2) == pytest.approx(0.5) and Cosine(4)(9) == pytest.approx(0.0)  # flat after the end
    assert StepDecay(2, 0.1)(5) == pytest.approx(0.01)
    assert LinearWarmup(2, 0.5)(1) == 0.75 and LinearWarmup(2, 0.5)(10) == 1.0
    with pytest.raises(TrainingError, match="step_size must be a positive integer"):
        StepDecay(0)
    assert math.isclose((LinearWarmup(2, 0.5) * StepDecay(1, 0.5))(1), 0.375)


# -- closed forms, no torch needed: two steps on a 1x1 kernel and a bias, worked by hand ----------------
# The gradients are 2 then 1 for both parameters; every expected number is derived in the comment
# beside it. The tolerance 1e-12 is rounding only: each bug these guard against (Adam without bias
# correction, eps added before the correction, AdamW's decay without the learning rate, L2 instead of
# decoupled decay, Nesterov ignored) moves a parameter by 0.01 or more.
HAND_GRADS = [{"w": np.array([[2.0]]), "b": np.array([2.0])}, {"w": np.array([[1.0]]), "b": np.array([1.0])}]


def two_hand_steps(opt):
    params = {"w": np.array([[1.0]]), "b": np.array([1.0])}
    history = []
    for g in HAND_GRADS:
        opt.step(params, {k: v.copy() for k, v in g.items()})
        history.append((params["w"].item(), params["b"].item()))
    return history


def test_adam_one_step_by_hand_has_bias_correction():
    # beta1 = 0.5, beta2 = 0.96, eps = 0.5 (large, so where eps goes shows), lr = 0.1, no decay.
    # step 1: m = 0.5 * 2 = 1, v = 0.04 * 4 = 0.16; m^ = 1 / (1 - 0.5) = 2, sqrt(v^) = sqrt(0.16 / 0.04) = 2
    #         p = 1 - 0.1 * 2 / (2 + 0.5) = 0.92        (no bias correction: 1 - 0.1 * 1 / (0.4 + 0.5))
    # step 2: m = 0.5 * 1 + 0.5 * 1 = 1, v = 0.96 * 0.16 + 0.04 * 1 = 0.1936 (sqrt 0.44);
    #         m^ = 1 / (1 - 0.25) = 4/3, sqrt(v^) = 0.44 / sqrt(1 - 0.9216) = 0.44 / 0.28 = 11/7
    #         p = 0.92 - 0.1 * (4/3) / (11/7 + 1/2) = 0.92 - 0.1 * 56/87
    history = two_hand_steps(Adam(lr=0.1, betas=(0.5, 0.96), eps=0.5))
    first, second = 0.92, 0.92 - 0.1 * 56 / 87
    np.testing.assert_allclose(history, [(first, first), (second, second)], rtol=0, atol=1e-12)


def test_adamw_decays_the_weight_by_lr_times_decay_and_leaves_the_bias():
    # As above with weight_decay 0.5: the kernel first shrinks by (1 - lr * wd) = 0.95, then takes the Adam
    # step (the gradient is not touched). step 1: w = 1 * 0.95 - 0.08 = 0.87 (decay without lr: 0.5 - 0.08;
    # L2 on the gradient: 1 - 0.1 * 2.5 / 3). step 2: w = 0.87 * 0.95 - 0.1 * 56/87. The bias is not decayed.
    history = two_hand_steps(AdamW(lr=0.1, betas=(0.5, 0.96), eps=0.5, weight_decay=0.5))
    w1, b1 = 0.87, 0.92
    w2, b2 = w1 * 0.95 - 0.1 * 56 / 87, b1 - 0.1 * 56 / 87
    np.testing.assert_allclose(history, [(w1, b1), (w2, b2)], rtol=0, atol=1e-12)


def test_adam_weight_decay_is_l2_on_the_gradient():
    # Adam (not W) with weight_decay 0.5: step 1 sees g = 2 + 0.5 * 1 = 2.5, so m^ = 2.5, sqrt(v^) = 2.5:
    # w = 1 - 0.1 * 2.5 / (2.5 + 0.5) = 11/12; the bias (one axis) is not decayed: 0.92 as without decay.
    w1, b1 = two_hand_steps(Adam(lr=0.1, betas=(0.5, 0.96), eps=0.5, weight_decay=0.5))[0]
    assert (w1, b1) == (pytest.approx(11 / 12, abs=1e-12), pytest.approx(0.92, abs=1e-12))


def test_sgd_nesterov_and_weight_decay_by_hand():
    # lr 0.1, momentum 0.5, weight decay 0.1 (the kernel only), torch's rules: the buffer starts at the
    # first gradient; Nesterov steps along g + momentum * buf.
    # kernel: g1 = 2 + 0.1 * 1 = 2.1, buf = 2.1, step 2.1 + 1.05 = 3.15 -> w = 0.685
    #         g2 = 1 + 0.1 * 0.685 = 1.0685, buf = 1.05 + 1.0685 = 2.1185, step 1.0685 + 1.05925 -> w = 0.472225
    # bias:   buf = 2, step 3 -> 0.7; buf = 1 + 1 = 2, step 1 + 1 = 2 -> 0.5   (plain momentum: 0.8, 0.6)
    history = two_hand_steps(SGD(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1))
    np.testing.assert_allclose(history, [(0.685, 0.7), (0.472225, 0.5)], rtol=0, atol=1e-12)
    plain = two_hand_steps(SGD(lr=0.1, momentum=0.5))
    np.testing.assert_allclose(plain, [(0.8, 0.8), (0.6, 0.6)], rtol=0, atol=1e-12)


def test_rmsprop_by_hand():
    # lr 0.1, alpha 0.75, eps 0.5: step 1: s = 0.25 * 4 = 1, p = 1 - 0.1 * 2 / (1 + 0.5) = 13/15;
    # step 2: s = 0.75 + 0.25 = 1, p = 13/15 - 0.1 * 1 / 1.5 = 0.8. No bias correction in RMSProp.
    history = two_hand_steps(RMSProp(lr=0.1, alpha=0.75, eps=0.5))
    np.testing.assert_allclose(history, [(13 / 15, 13 / 15), (0.8, 0.8)], rtol=0, atol=1e-12)
