"""BatchNorm2d (inference and training, PyTorch semantics) and cross-channel LRN."""

from __future__ import annotations

from cnngraph.backends.kernels import kernel
from cnngraph.errors import CnnGraphError
from cnngraph.ops.base import fmt_shape


@kernel("BatchNorm2d")
def batch_norm(xp, inputs, params, attrs, ctx):
    """Normalise with the running statistics, or in training with the batch's (updating the running ones)."""
    x = inputs[0]
    if ctx.training:
        mean, var = _batch_statistics(xp, x, params, attrs["momentum"])
    else:
        mean, var = params["running_mean"], params["running_var"]
    scale = params["weight"] / xp.sqrt(var + attrs["eps"])
    shift = params["bias"] - mean * scale
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    return x * scale.reshape(per_channel) + shift.reshape(per_channel)


def _batch_statistics(xp, x, params, momentum):
    """Batch mean and biased variance; the running stats move towards the mean and *unbiased* variance.

    The running buffers are updated in place, as torch does, so a training run leaves them in the graph.
    """
    count = x.size // x.shape[1]
    if count < 2:
        raise CnnGraphError(
            f"BatchNorm2d in training needs more than one value per channel, got input shape {fmt_shape(x.shape)}"
        )
    axes = (0, *range(2, x.ndim))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    params["running_mean"][...] = (1 - momentum) * params["running_mean"] + momentum * mean
    params["running_var"][...] = (1 - momentum) * params["running_var"] + momentum * var * (count / (count - 1))
    return mean, var


@kernel("LRN")
def lrn(xp, inputs, params, attrs, ctx):
    """Sum of squares over a channel window, one shifted slice per tap of the window."""
    x, size = inputs[0], attrs["size"]
    before = (size - 1) // 2
    squares = xp.pad(x * x, ((0, 0), (before, size - 1 - before), (0, 0), (0, 0)))
    c = x.shape[1]
    total = sum(squares[:, i : i + c] for i in range(size))
    return x / (attrs["k"] + attrs["alpha"] / size * total) ** attrs["beta"]
