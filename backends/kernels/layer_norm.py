"""LayerNorm, and the per-sample normalisation (and its gradient) GroupNorm and InstanceNorm share.

The forward stashes the normalised values and 1/std for the backward, so it keeps no input.
"""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


def normalize(xp, x, axes, eps):
    """(x - mean) / sqrt(var + eps) over ``axes`` (biased variance), and 1 / sqrt(var + eps)."""
    centred = x - x.mean(axis=axes, keepdims=True)
    inv_std = 1 / xp.sqrt((centred * centred).mean(axis=axes, keepdims=True) + eps)
    return centred * inv_std, inv_std


def normalize_backward(grad_hat, x_hat, inv_std, axes):
    """d/dx of the normalisation, given the gradient w.r.t. its output: the mean and the variance
    depend on x too, which removes the gradient's mean and its projection on x_hat."""
    mean = grad_hat.mean(axis=axes, keepdims=True)
    return inv_std * (grad_hat - mean - x_hat * (grad_hat * x_hat).mean(axis=axes, keepdims=True))


def _trailing(x, axis):
    return tuple(range(axis, x.ndim))


@kernel("LayerNorm")
def layer_norm(xp, inputs, params, attrs, ctx):
    x_hat, inv_std = normalize(xp, inputs[0], _trailing(inputs[0], attrs["axis"]), attrs["eps"])
    if ctx.stash is not None:
        ctx.stash.update(x_hat=x_hat, inv_std=inv_std)
    out = x_hat * params["weight"]
    return out + params["bias"] if "bias" in params else out


@backward("LayerNorm")
def layer_norm_backward(xp, grad, saved, params, attrs):
    x_hat, leading = saved.stash["x_hat"], tuple(range(attrs["axis"]))
    grads = {"weight": (grad * x_hat).sum(axis=leading)}
    if "bias" in params:
        grads["bias"] = grad.sum(axis=leading)
    axes = _trailing(grad, attrs["axis"])
    return [normalize_backward(grad * params["weight"], x_hat, saved.stash["inv_std"], axes)], grads
