"""Whole small networks against PyTorch autograd (CPU, float64): outputs, every parameter gradient,
the input gradient and the BatchNorm running statistics after a training-mode forward.

Each network is written twice, in the DSL and in torch; parameters are copied by key (``<node>.<role>``
maps to attribute ``role`` of the torch module built for ``node``). The nets cover residual joins,
dense (concat) joins, values read by several layers, BatchNorm in training mode (4-D and 2-D),
and dropout with the same mask on both sides.
"""

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.devices import get_backend
from cnngraph.backends.randomness import Randomness
from cnngraph.frontends import dsl
from tests.oracle import random

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional


def residual_net(p=0.0):
    x = dsl.input("x", (3, 12, 12))
    y = dsl.relu(dsl.batch_norm(dsl.conv2d(x, 8, 3, padding=1, bias=False, name="stem"), name="stem_bn"))
    y = dsl.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)
    z = dsl.relu(dsl.batch_norm(dsl.conv2d(y, 8, 3, padding=1, name="a1"), momentum=0.2, name="a1_bn"))
    z = dsl.batch_norm(dsl.conv2d(z, 8, 3, padding=1, name="a2"), name="a2_bn")
    y = dsl.relu(z + y)  # y is read by a1 and by the join
    z = dsl.relu(dsl.batch_norm(dsl.conv2d(y, 16, 3, stride=2, padding=1, name="b1"), name="b1_bn"))
    z = dsl.batch_norm(dsl.conv2d(z, 16, 3, padding=1, name="b2"), name="b2_bn")
    skip = dsl.batch_norm(dsl.conv2d(y, 16, 1, stride=2, bias=False, name="down"), name="down_bn")
    y = dsl.relu(z + skip)
    y = dsl.dropout(dsl.flatten(dsl.global_avg_pool(y)), p, name="drop")
    return dsl.Model(x, dsl.linear(y, 5, name="fc"), seed=1)


def residual_torch(p_mask=None):
    m = nn.ModuleDict(dict(
        stem=nn.Conv2d(3, 8, 3, padding=1, bias=False), stem_bn=nn.BatchNorm2d(8),
        a1=nn.Conv2d(8, 8, 3, padding=1), a1_bn=nn.BatchNorm2d(8, momentum=0.2),
        a2=nn.Conv2d(8, 8, 3, padding=1), a2_bn=nn.BatchNorm2d(8),
        b1=nn.Conv2d(8, 16, 3, stride=2, padding=1), b1_bn=nn.BatchNorm2d(16),
        b2=nn.Conv2d(16, 16, 3, padding=1), b2_bn=nn.BatchNorm2d(16),
        down=nn.Conv2d(8, 16, 1, stride=2, bias=False), down_bn=nn.BatchNorm2d(16),
        fc=nn.Linear(16, 5),
    ))

    def forward(x):
        y = F.relu(m.stem_bn(m.stem(x)))
        y = F.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)
        z = m.a2_bn(m.a2(F.relu(m.a1_bn(m.a1(y)))))
        y = F.relu(z + y)
        z = m.b2_bn(m.b2(F.relu(m.b1_bn(m.b1(y)))))
        y = F.relu(z + m.down_bn(m.down(y)))
        y = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        if p_mask is not None:
            p, mask = p_mask
            y = y * torch.from_numpy(mask) / (1 - p)
        return {"fc": m.fc(y)}

    return m, forward


def dense_net():
    """DenseNet-style concatenations, LRN, average pooling, upsampling, a 2-D BatchNorm in the head."""
    x = dsl.input("x", (3, 8, 8))
    c0 = dsl.lrn(dsl.conv2d(x, 4, 3, padding=1, name="c0"), 3, alpha=0.1, beta=0.75, k=2.0)
    d1 = dsl.conv2d(dsl.relu(dsl.batch_norm(c0, name="d1_bn")), 3, 3, padding=1, name="d1")
    cat1 = dsl.concat([c0, d1])
    d2 = dsl.conv2d(dsl.relu(dsl.batch_norm(cat1, name="d2_bn")), 3, 3, padding=1, name="d2")
    cat2 = dsl.concat([cat1, d2])  # c0 reaches the output through d1, d2 and both joins
    t = dsl.conv2d(dsl.leaky_relu(dsl.batch_norm(cat2, name="t_bn"), 0.1), 6, 1, name="t")
    t = dsl.avg_pool2d(t, 3, stride=2, padding=1, count_include_pad=False)
    up = dsl.upsample(t, scale_factor=2, mode="bilinear")
    gate = dsl.sigmoid(dsl.conv2d(cat2, 6, 1, name="gate"), name="gated")
    y = dsl.adaptive_avg_pool2d(up * gate, (3, 2))
    h = dsl.elu(dsl.batch_norm(dsl.linear(dsl.flatten(y), 7, name="h"), name="h_bn"))
    return dsl.Model(x, [dsl.log_softmax(dsl.linear(h, 4, name="out"), name="logp"), gate], seed=2)


def dense_torch():
    m = nn.ModuleDict(dict(
        c0=nn.Conv2d(3, 4, 3, padding=1), lrn=nn.LocalResponseNorm(3, alpha=0.1, beta=0.75, k=2.0),
        d1_bn=nn.BatchNorm2d(4), d1=nn.Conv2d(4, 3, 3, padding=1),
        d2_bn=nn.BatchNorm2d(7), d2=nn.Conv2d(7, 3, 3, padding=1),
        t_bn=nn.BatchNorm2d(10), t=nn.Conv2d(10, 6, 1), gate=nn.Conv2d(10, 6, 1),
        h=nn.Linear(36, 7), h_bn=nn.BatchNorm1d(7), out=nn.Linear(7, 4),
    ))

    def forward(x):
        c0 = m.lrn(m.c0(x))
        cat1 = torch.cat([c0, m.d1(F.relu(m.d1_bn(c0)))], 1)
        cat2 = torch.cat([cat1, m.d2(F.relu(m.d2_bn(cat1)))], 1)
        t = m.t(F.leaky_relu(m.t_bn(cat2), 0.1))
        t = F.avg_pool2d(t, 3, stride=2, padding=1, count_include_pad=False)
        up = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
        gate = torch.sigmoid(m.gate(cat2))
        y = F.adaptive_avg_pool2d(up * gate, (3, 2))
        h = F.elu(m.h_bn(m.h(torch.flatten(y, 1))))
        return {"logp": F.log_softmax(m.out(h), 1), "gated": gate}

    return m, forward


def unet():
    """Encoder-decoder: reflect padding, transposed conv, a crop (Slice), a skip concat, softmax."""
    x = dsl.input("x", (2, 8, 8))
    e1 = dsl.tanh(dsl.conv2d(x, 4, 3, padding=1, name="e1"))
    e2 = dsl.conv2d(dsl.pad(dsl.avg_pool2d(e1, 2), 1, mode="reflect"), 4, 3, name="e2")
    e2 = dsl.clip(e2, -0.5, 0.5)
    up = dsl.conv_transpose2d(e2, 4, 2, stride=2, name="up")
    cat = dsl.concat([dsl.crop(e1, size=(6, 6)), dsl.crop(up, size=(6, 6))])
    y = dsl.conv2d(dsl.pad(cat, (1, 0, 0, 1), mode="edge"), 3, 2, name="head")
    return dsl.Model(x, dsl.softmax(y, name="prob"), seed=3)


def unet_torch():
    m = nn.ModuleDict(dict(e1=nn.Conv2d(2, 4, 3, padding=1), e2=nn.Conv2d(4, 4, 3),
                           up=nn.ConvTranspose2d(4, 4, 2, stride=2), head=nn.Conv2d(8, 3, 2)))

    def forward(x):
        e1 = torch.tanh(m.e1(x))
        e2 = torch.clamp(m.e2(F.pad(F.avg_pool2d(e1, 2), (1, 1, 1, 1), mode="reflect")), -0.5, 0.5)
        up = m.up(e2)
        cat = torch.cat([e1[:, :, 1:7, 1:7], up[:, :, 1:7, 1:7]], 1)
        y = m.head(F.pad(cat, (0, 1, 1, 0), mode="replicate"))
        return {"prob": torch.softmax(y, 1)}

    return m, forward


def load_params(modules, params):
    """Copy every cnngraph parameter (and buffer) into the torch module named by its node."""
    with torch.no_grad():
        for key, value in params.items():
            node, role = key.rsplit(".", 1)
            getattr(modules[node], role).copy_(torch.from_numpy(value))


def compare_with_torch(graph, torch_net, x, seed=0):
    modules, forward = torch_net
    model = cnngraph.compile(graph, dtype="float64", train=True, seed=seed)
    modules.double().train()
    load_params(modules, model.params)

    ours = model.forward({"x": x}, input_grads=True)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    theirs = forward(tx)
    assert sorted(ours) == sorted(theirs)
    seeds = {name: random(out.shape, 50 + i) for i, (name, out) in enumerate(ours.items())}
    sum((theirs[k] * torch.from_numpy(g)).sum() for k, g in seeds.items()).backward()
    model.backward(seeds)

    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name].detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(model.input_grads["x"], tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    named = {f"{node}.{role}": t for node, mod in modules.items() for role, t in mod.named_parameters()}
    assert sorted(model.grads) == sorted(named)
    for key, param in named.items():
        np.testing.assert_allclose(model.grads[key], param.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=key)
    buffers = {f"{node}.{role}": t for node, mod in modules.items() for role, t in mod.named_buffers()
               if role != "num_batches_tracked"}
    for key, buf in buffers.items():
        np.testing.assert_allclose(model.params[key], buf.numpy(), rtol=1e-12, atol=1e-14, err_msg=key)
    return model


@pytest.mark.parametrize("net,torch_net,shape", [
    (residual_net, residual_torch, (4, 3, 12, 12)),
    (dense_net, dense_torch, (5, 3, 8, 8)),
    (unet, unet_torch, (3, 2, 8, 8)),
], ids=["residual", "dense", "unet"])
def test_network_gradients_match_torch(net, torch_net, shape):
    compare_with_torch(net(), torch_net(), random(shape, 1))


def test_residual_net_with_dropout_uses_the_seeded_mask_like_torch():
    """The mask is the first draw of the model's device randomness seeded with the compile seed; torch
    applies the same mask, so forward and backward agree only if backward reuses the forward's mask."""
    p, seed, x = 0.5, 11, random((4, 3, 12, 12), 2)
    mask = Randomness(get_backend("numpy"), seed).uniform((4, 16)) >= p
    assert not mask.all() and mask.any()
    compare_with_torch(residual_net(p), residual_torch((p, mask)), x, seed=seed)


def test_evaluation_after_training_uses_the_running_statistics_like_torch():
    graph, x = residual_net(), random((4, 3, 12, 12), 3)
    modules, forward = residual_torch()
    model = compare_with_torch(graph, (modules, forward), x)
    modules.eval()
    with torch.no_grad():
        want = forward(torch.from_numpy(x))["fc"].numpy()
    np.testing.assert_allclose(model.run({"x": x})["fc"], want, rtol=1e-10, atol=1e-12)
