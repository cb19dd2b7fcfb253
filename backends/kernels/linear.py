"""Linear as one GEMM against torch's (out, in) weight; its backward is two more."""

from __future__ import annotations

from cnngraph.backends.chunks import on_host, over_chunks
from cnngraph.backends.kernels import backward, kernel


@kernel("Linear")
def linear(xp, inputs, params, attrs, ctx):
    """On a host namespace a share of the output features on each core (``chunks``: workers, not BLAS threads)."""
    x, weight, bias = inputs[0], params["weight"], params.get("bias")
    if not on_host(xp):
        out = xp.matmul(x, weight.T)
        return out if bias is None else xp.add(out, bias, out=out)
    out = xp.empty((*x.shape[:-1], weight.shape[0]), dtype=xp.result_type(x.dtype, weight.dtype))

    def features(part):
        xp.matmul(x, weight[part].T, out=out[..., part])
        if bias is not None:
            out[..., part] += bias[part]

    over_chunks(xp, features, weight.shape[0], weight.shape[0], x.size * weight.shape[0])
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
