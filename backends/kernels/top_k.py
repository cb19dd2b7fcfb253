"""TopK's indices: a stable sort, so equal values keep index order as ONNX asks; nothing flows back."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


@kernel("TopK")
def top_k(xp, inputs, params, attrs, ctx):
    x, axis = inputs[0], attrs["axis"]
    order = xp.argsort(-x if attrs["largest"] else x, axis=axis, kind="stable")
    return order[(slice(None),) * axis + (slice(None, attrs["k"]),)].astype(xp.int64, copy=False)


@backward("TopK")
def top_k_backward(xp, grad, saved, params, attrs):
    return [None], {}
