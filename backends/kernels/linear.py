"""Linear as one GEMM against torch's (out, in) weight; its backward is two more."""

from __future__ import annotations

from cnngraph.backends.kernels import backward, kernel


@kernel("Linear")
def linear(xp, inputs, params, attrs, ctx):
    out = xp.matmul(inputs[0], params["weight"].T)
    if "bias" in params:
        out += params["bias"]
    return out


@backward("Linear", keeps=("inputs",))
def linear_backward(xp, grad, saved, params, attrs):
    grads = {}
    if "weight" in saved.need_params:
        grads["weight"] = xp.matmul(grad.T, saved.inputs[0])
    if "bias" in saved.need_params:
        grads["bias"] = grad.sum(axis=0)
    dx = xp.matmul(grad, params["weight"]) if saved.need_inputs[0] else None
    return [dx], grads
