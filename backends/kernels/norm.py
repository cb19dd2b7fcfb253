"""BatchNorm2d (inference and training, PyTorch semantics) and cross-channel LRN, with their gradients."""

from __future__ import annotations

from cnngraph.backends.chunks import over_parts
from cnngraph.backends.kernels import backward, kernel
from cnngraph.errors import CnnGraphError
from cnngraph.ops.base import fmt_shape


def _per_channel(x):
    """The shape that broadcasts a (C,) vector along axis 1 of ``x``."""
    return (1, -1) + (1,) * (x.ndim - 2)


def _reduced_axes(x):
    """Every axis but the channels."""
    return (0, *range(2, x.ndim))


@kernel("BatchNorm2d")
def batch_norm(xp, inputs, params, attrs, ctx):
    """Normalise with the running statistics, or in training with the batch's (updating the running ones).

    For backward it stashes the statistics it used (mean and 1/std, per channel); the input is kept too.
    Under data parallelism with synchronised BatchNorm (``ctx.sum_across``) the batch is every rank's
    shard together: the statistics come from sums over the ranks, and backward sums its two
    reductions over them too.
    """
    x = inputs[0]
    count = x.size // x.shape[1]
    per_channel = _per_channel(x)
    out = None
    if ctx.training and ctx.sum_across is not None:
        mean, var, count = _synced_statistics(xp, x, ctx.sum_across)
    elif ctx.training:
        mean, var, out = _normalised_by_batch(xp, x, params, attrs["eps"])
    else:
        mean, var = params["running_mean"], params["running_var"]
    if ctx.training:
        _update_running(params, attrs["momentum"], mean, var, count)
    inv_std = 1 / xp.sqrt(var + attrs["eps"])
    if ctx.stash is not None:
        ctx.stash.update(mean=mean, inv_std=inv_std)
        if ctx.training and ctx.sum_across is not None:
            ctx.stash.update(sum_across=ctx.sum_across, count=count)
    if out is not None:
        return out
    scale = (params["weight"] * inv_std).reshape(per_channel)
    out = xp.multiply(x, scale)
    out += (params["bias"] - mean * scale.reshape(-1)).reshape(per_channel)
    return out


def _normalised_by_batch(xp, x, params, eps):
    """Batch mean and biased variance, and (x - mean) * weight / std + bias, a few channels at a time on
    every core (``over_parts``): the chunk's x - mean stays in cache for its square and its scaling, and
    ``x.var`` would centre x again in a temporary of its own. (``mean`` accumulates float16 in float32.)"""
    c = x.shape[1]
    count = x.size // c
    if count < 2:
        raise CnnGraphError(
            f"BatchNorm2d in training needs more than one value per channel, got input shape {fmt_shape(x.shape)}"
        )
    axes = _reduced_axes(x)
    mean, var, out = xp.empty(c, dtype=x.dtype), xp.empty(c, dtype=x.dtype), xp.empty_like(x)

    def channels(part):
        xs = x[:, part]
        mean[part] = xs.mean(axis=axes)
        centred = xs - mean[part].reshape(_per_channel(x))
        var[part] = xp.square(centred).mean(axis=axes)
        scale = params["weight"][part] / xp.sqrt(var[part] + eps)
        xp.multiply(centred, scale.reshape(_per_channel(x)), out=out[:, part])
        out[:, part] += params["bias"][part].reshape(_per_channel(x))

    over_parts(xp, channels, c, count * x.itemsize, x.size, passes=6)
    return mean, var, out


def _synced_statistics(xp, x, sum_across):
    """Mean and biased variance of the batch all ranks hold together, from per-rank sums of x and x^2 (in
    float64, so the difference of moments keeps float32's precision), and the global count (an array in
    x's dtype: no wait for the host)."""
    axes, wide = _reduced_axes(x), xp.float64
    local = xp.asarray([x.size // x.shape[1]], dtype=wide)
    total, squares, count = sum_across([x.sum(axis=axes, dtype=wide), (x.astype(wide) ** 2).sum(axis=axes), local])
    mean = total / count
    return mean.astype(x.dtype), (squares / count - mean**2).astype(x.dtype), count.astype(x.dtype)


def _update_running(params, momentum, mean, var, count):
    """The running stats move towards the mean and *unbiased* variance, updated in place, as torch does, so a
    training run leaves them in the graph."""
    params["running_mean"][...] = (1 - momentum) * params["running_mean"] + momentum * mean
    params["running_var"][...] = (1 - momentum) * params["running_var"] + momentum * var * (count / (count - 1))


@backward("BatchNorm2d", keeps=("inputs",))
def batch_norm_backward(xp, grad, saved, params, attrs):
    """With batch statistics the mean and variance depend on x, which adds the two centring terms;
    with running statistics the layer is a per-channel affine map.

    With s0 = sum(grad), s1 = sum(grad * (x - mean)) per channel and gain = weight / std, the input
    gradient is gain * grad - (gain / std^2 * s1 / count) * (x - mean) - gain * s0 / count: two
    temporaries and eight passes over the activation, not ten temporaries, a few channels at a time on
    every core (``over_parts``) unless the statistics are synchronised across ranks.
    """
    x, axes = saved.inputs[0], _reduced_axes(grad)
    c = x.shape[1]
    count, synced = x.size // c, "sum_across" in saved.stash
    mean, inv_std = saved.stash["mean"], saved.stash["inv_std"]
    gain = params["weight"] * inv_std
    dx = xp.empty_like(grad) if saved.need_inputs[0] else None
    grad_bias, grad_weight = xp.empty_like(inv_std), xp.empty_like(inv_std)

    def channels(part):
        """The two sums of ``part``'s channels, and without synchronised statistics their input gradient."""
        centred = x[:, part] - mean[part].reshape(_per_channel(x))
        work = xp.multiply(grad[:, part], centred)
        grad_bias[part], grad_weight[part] = grad[:, part].sum(axis=axes), work.sum(axis=axes)
        if dx is not None and not synced:
            _input_grad(xp, grad[:, part], centred, gain[part], inv_std[part],
                        (grad_bias[part], grad_weight[part]) if saved.training else None, count, dx[:, part])

    over_parts(xp, channels, c, count * x.itemsize, x.size, passes=8)
    if dx is not None and synced:  # the centring terms are the global batch's: their sums cross the ranks first
        centred = x - mean.reshape(_per_channel(x))
        _input_grad(xp, grad, centred, gain, inv_std, saved.stash["sum_across"]([grad_bias, grad_weight]),
                    saved.stash["count"], dx)
    return [dx], {"weight": grad_weight * inv_std, "bias": grad_bias}


def _input_grad(xp, grad, centred, gain, inv_std, sums, count, dx):
    """Into ``dx``: gain * grad - (gain / std^2 * s1 / count) * (x - mean) - gain * s0 / count with batch
    statistics (``sums`` = (s0, s1)), gain * grad with running ones; ``centred`` (x - mean) is scratch."""
    per_channel = _per_channel(grad)
    xp.multiply(grad, gain.reshape(per_channel), out=dx)
    if sums is not None:
        centred *= (-gain * inv_std * inv_std * sums[1] / count).reshape(per_channel)
        centred -= (gain * sums[0] / count).reshape(per_channel)
        dx += centred


def _channel_window_sum(xp, v, before, after):
    """For each channel c, the sum of v over channels c - before .. c + after: one shifted slice per tap."""
    c = v.shape[1]
    padded = xp.pad(v, ((0, 0), (before, after), (0, 0), (0, 0)))
    return sum(padded[:, i : i + c] for i in range(before + after + 1))


def _lrn_window(size):
    """Channels before and after c in its window (ONNX: floor((size-1)/2) before, the rest after)."""
    before = (size - 1) // 2
    return before, size - 1 - before


@kernel("LRN")
def lrn(xp, inputs, params, attrs, ctx):
    x, size = inputs[0], attrs["size"]
    total = _channel_window_sum(xp, x * x, *_lrn_window(size))
    return x / (attrs["k"] + attrs["alpha"] / size * total) ** attrs["beta"]


@backward("LRN", keeps=("inputs",))
def lrn_backward(xp, grad, saved, params, attrs):
    """y_c = x_c d_c^-beta with d_c = k + alpha/size * (sum of x_i^2 in c's window), so x_j also reaches
    every y_c whose window holds j: the transposed window (before and after swapped) gathers those."""
    x, size, beta = saved.inputs[0], attrs["size"], attrs["beta"]
    before, after = _lrn_window(size)
    d = attrs["k"] + attrs["alpha"] / size * _channel_window_sum(xp, x * x, before, after)
    scale = d**-beta
    spread = _channel_window_sum(xp, grad * x * scale / d, after, before)
    return [grad * scale - (2 * attrs["alpha"] * beta / size) * x * spread], {}
