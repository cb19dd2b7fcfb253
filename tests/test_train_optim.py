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
