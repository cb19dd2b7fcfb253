"""GroupNorm and InstanceNorm (GroupNorm with a group per channel): statistics over (N, groups, rest)."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel
from cnngraph.backends.kernels.layer_norm import normalize, normalize_backward
from cnngraph.backends.kernels.norm import _per_channel, _reduced_axes


def _groups(attrs, x):
    return attrs.get("num_groups", x.shape[1])


def _forward(xp, inputs, params, attrs, ctx):
    x = inputs[0]
    grouped = x.reshape(x.shape[0], _groups(attrs, x), -1)
    x_hat, inv_std = normalize(xp, grouped, (2,), attrs["eps"])
    x_hat = x_hat.reshape(x.shape)
    if ctx.stash is not None:
        ctx.stash.update(x_hat=x_hat, inv_std=inv_std)
    return x_hat * params["weight"].reshape(_per_channel(x)) + params["bias"].reshape(_per_channel(x))


def _backward(xp, grad, saved, params, attrs):
    x_hat, axes = saved.stash["x_hat"], _reduced_axes(grad)
    grads = {"weight": (grad * x_hat).sum(axis=axes), "bias": grad.sum(axis=axes)}
    shape = (grad.shape[0], _groups(attrs, grad), -1)
    grad_hat = (grad * params["weight"].reshape(_per_channel(grad))).reshape(shape)
    dx = normalize_backward(grad_hat, x_hat.reshape(shape), saved.stash["inv_std"], (2,))
    return [dx.reshape(grad.shape)], grads


for _op in ("GroupNorm", "InstanceNorm"):
    kernel(_op)(_forward)
    backward(_op)(_backward)
