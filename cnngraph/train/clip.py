"""Gradient clipping by total norm, with ``torch.nn.utils.clip_grad_norm_``'s semantics.

One 2-norm over all gradients together (the norm of the per-array norms); when it exceeds
``max_norm`` every gradient is scaled by ``max_norm / (norm + 1e-6)``, so the update keeps its
direction and only its length is capped. Computed with the gradients' own array module: the
coefficient never leaves the device, and the one wait is for the norm handed back.
"""

from __future__ import annotations

import math
from typing import Any

from cnngraph.arrays import namespace
from cnngraph.errors import TrainingError


def clip_grad_norm(grads: dict[str, Any], max_norm: float) -> float:
    """Scale ``grads`` (replacing the arrays) to a total 2-norm of at most ``max_norm``; the norm before clipping."""
    if not (isinstance(max_norm, (int, float)) and math.isfinite(max_norm) and max_norm > 0):
        raise TrainingError(f"clip_grad_norm: max_norm must be a finite number > 0, got {max_norm!r}")
    if not grads:
        return 0.0
    xp = namespace(next(iter(grads.values())))
    total = xp.linalg.norm(xp.stack([xp.linalg.norm(g.ravel()) for g in grads.values()]))
    coefficient = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for key, grad in grads.items():
        grads[key] = grad * coefficient.astype(grad.dtype)
    return float(total)
