"""Dynamic loss scaling for half-precision training, with ``torch.amp.GradScaler``'s semantics.

float16 gradients underflow to zero below 6e-8, so the loss gradient is multiplied by ``scale``
before backward and the parameter gradients divided by it after. A step whose gradients hold an
inf or NaN (the scale was too large) is skipped and the scale halves; after ``growth_interval``
finite steps in a row it doubles. Starts at 2^16.
"""

from __future__ import annotations

from typing import Any

from cnngraph.arrays import namespace
from cnngraph.errors import TrainingError


class LossScaler:
    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        if not (init_scale > 0 and growth_factor > 1 and 0 < backoff_factor < 1 and growth_interval >= 1):
            raise TrainingError("loss scaler: need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 "
                                "and growth_interval >= 1")
        self.scale, self.growth_factor, self.backoff_factor = float(init_scale), growth_factor, backoff_factor
        self.growth_interval, self.growth_tracker, self.skipped = growth_interval, 0, 0

    def unscale(self, grads: dict[str, Any]) -> bool:
        """Divide every gradient by the scale (replacing the arrays); whether all of them are finite.
        The check stays on the device until one boolean comes back."""
        inverse = 1.0 / self.scale
        finite = None
        for key, grad in grads.items():
            grads[key] = grad * grad.dtype.type(inverse)
            ok = namespace(grad).isfinite(grads[key]).all()
            finite = ok if finite is None else finite & ok
        return True if finite is None else bool(finite)

    def update(self, finite: bool) -> None:
        """After a step: back off on an overflow (the step was skipped), grow after a run of finite steps."""
        if not finite:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            self.skipped += 1
            return
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            self.scale *= self.growth_factor
            self.growth_tracker = 0

    def state(self) -> dict:
        return {"scale": self.scale, "growth_tracker": self.growth_tracker, "skipped": self.skipped}

    def load_state(self, state: dict) -> None:
        self.scale, self.growth_tracker = float(state["scale"]), int(state["growth_tracker"])
        self.skipped = int(state["skipped"])
