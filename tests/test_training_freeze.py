"""Freezing for transfer learning: frozen parameters stay put, and a frozen BatchNorm behaves as at
inference (running statistics, no updates), as Keras does for a non-trainable BatchNormalization."""

import numpy as np

import cnngraph
from cnngraph.frontends import dsl
from cnngraph.train.losses import CrossEntropy
from cnngraph.train.optim import SGD


def net():
    x = dsl.input("x", (3, 8, 8))
    y = dsl.relu(dsl.batch_norm(dsl.conv2d(x, 4, 3, padding=1, bias=False, name="conv"), name="bn"))
    return dsl.Model(x, dsl.linear(dsl.flatten(dsl.global_avg_pool(y)), 3, name="fc"))


def test_frozen_feature_extractor_keeps_weights_and_running_statistics():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 3, 8, 8)) * 3 + 1, rng.integers(0, 3, 6)
    model = cnngraph.compile(net(), train=True)
    model.freeze(["conv.weight", "bn.weight", "bn.bias"])
    before = {k: v.copy() for k, v in model.params.items()}
    expected = model.run(x)["fc"]  # inference semantics
    np.testing.assert_allclose(model.forward(x)["fc"], expected, rtol=1e-6)
    model.train_step(x, y, CrossEntropy(), SGD(lr=0.1))
    for key in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        np.testing.assert_array_equal(model.params[key], before[key], err_msg=key)
    assert not np.array_equal(model.params["fc.weight"], before["fc.weight"])


def test_unfrozen_batchnorm_still_uses_batch_statistics():
    x = np.random.default_rng(1).standard_normal((6, 3, 8, 8)) * 3 + 1
    model = cnngraph.compile(net(), train=True)
    model.freeze(["conv.weight"])
    mean = model.params["bn.running_mean"].copy()
    model.forward(x)
    assert not np.array_equal(model.params["bn.running_mean"], mean)
