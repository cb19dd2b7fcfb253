"""float16 training on NumPy: the loss scaler against torch.amp.GradScaler and by hand, an overflow injected
into a real step (skipped, scale backed off), and a short Trainer run that learns."""

import numpy as np
import pytest

import cnngraph
from cnngraph.train import SGD, CrossEntropy, TrainConfig, Trainer
from cnngraph.train.scaler import LossScaler
from tests.test_train_loop import CONFIG, blobs, tiny_net, tiny_splits

# finite (True) or overflowing (False) gradients, step by step; with growth every 3 finite steps in a row
PATTERN = [True, True, True, True, False, True, True, True, False, False, True, True, True, True]
GROWTH_INTERVAL = 3
# by hand: x2 after steps 3, 8 and 13 (three finite in a row), x0.5 at the overflows of steps 5, 9 and 10
HAND_SCALES = [2.0**e for e in (16, 16, 17, 17, 16, 16, 16, 17, 16, 15, 15, 15, 16, 16)]


def our_scales():
    scaler = LossScaler(growth_interval=GROWTH_INTERVAL)
    scales, stepped = [], []
    for finite in PATTERN:
        grad = np.array([1.0, 2.0 if finite else np.inf], np.float32) * np.float32(scaler.scale)
        grads = {"p": grad}
        ok = scaler.unscale(grads)
        scaler.update(ok)
        if ok:
            np.testing.assert_array_equal(grads["p"], [1.0, 2.0])  # unscaled
        scales.append(scaler.scale)
        stepped.append(ok)
    return scales, stepped, scaler


def test_loss_scaler_matches_torch_grad_scaler():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", growth_interval=GROWTH_INTERVAL)
    scales, stepped = [], []
    for finite in PATTERN:
        opt.zero_grad()
        scaler.scale((p * torch.tensor([1.0, 2.0 if finite else float("inf")])).sum()).backward()
        before = p.detach().clone()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        stepped.append(not torch.equal(before, p.detach()))
    ours, our_stepped, _ = our_scales()
    assert ours == scales and our_stepped == stepped


def test_loss_scaler_by_hand():
    assert (LossScaler().scale, LossScaler().growth_interval) == (2.0**16, 2000)
    scales, stepped, scaler = our_scales()
    assert scales == HAND_SCALES and stepped == PATTERN and scaler.skipped == 3


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning")
def test_an_overflowing_step_is_skipped_and_the_scale_backs_off():
    class OverflowOnce(CrossEntropy):
        calls = 0

        def __call__(self, logits, labels):
            self.calls += 1
            value, grad = super().__call__(logits, labels)
            return value, grad * np.float32(1e30) if self.calls == 1 else grad  # scaled, it overflows float16

    data = blobs(12)
    model = cnngraph.compile(tiny_net(dropout=0), train=True, dtype="float16")
    model.scaler.scale = 2.0**8  # these gradients do not overflow at 2^8 on their own
    optimizer, loss = SGD(lr=0.1, momentum=0.9), OverflowOnce()
    trainable = model.trainable
    before = {k: model.params[k].copy() for k in trainable}
    model.train_step(data.x, data.y, loss, optimizer)
    assert (model.scaler.scale, model.scaler.skipped, model.scaler.growth_tracker) == (2.0**7, 1, 0)
    assert all(np.array_equal(model.params[k], before[k]) for k in trainable) and not optimizer.state_dict()
    model.train_step(data.x, data.y, loss, optimizer)
    assert (model.scaler.scale, model.scaler.skipped, model.scaler.growth_tracker) == (2.0**7, 1, 1)
    assert all(model.params[k].dtype == np.float32 for k in trainable)  # float32 masters
    assert not any(np.array_equal(model.params[k], before[k]) for k in trainable)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_short_float16_run_lowers_the_loss(tmp_path):
    trainer = Trainer(tiny_net(), tiny_splits(), TrainConfig(**{**CONFIG, "epochs": 2, "dtype": "float16"}), tmp_path)
    history = trainer.fit()
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"] and history[-1]["test_acc"] > 0.9
    assert trainer.model.dtype == np.float16 and trainer.model.scaler.scale >= 2.0**14
