"""Linear as one GEMM against torch's (out, in) weight."""

from __future__ import annotations

from cnngraph.backends.kernels import kernel


@kernel("Linear")
def linear(xp, inputs, params, attrs, ctx):
    out = xp.matmul(inputs[0], params["weight"].T)
    if "bias" in params:
        out += params["bias"]
    return out
