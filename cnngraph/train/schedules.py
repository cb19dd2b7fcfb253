"""Learning-rate schedules: pure functions ``schedule(step) -> factor`` on the base learning rate.

A schedule keeps no state, so a checkpoint needs only the step number and a resumed run follows
the same curve. ``step`` counts optimizer steps from 0; the factor at step k is torch's after k
calls of ``scheduler.step()``. Schedules compose by multiplication, which is torch's
``ChainedScheduler``: ``LinearWarmup(500) * Cosine(10_000)`` warms up, then anneals.
"""

from __future__ import annotations

import math

from cnngraph.errors import TrainingError


class Schedule:
    """Base: the constant factor 1; ``a * b`` multiplies two schedules."""

    def __call__(self, step: int) -> float:
        return 1.0

    def __mul__(self, other: Schedule) -> Schedule:
        return Product(self, other)

    @staticmethod
    def _positive(name: str, value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingError(f"schedule: {name} must be a positive integer, got {value!r}")
        return value


class Product(Schedule):
    def __init__(self, *parts: Schedule):
        self.parts = parts

    def __call__(self, step: int) -> float:
        return math.prod(part(step) for part in self.parts)


class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``step_size`` steps (``StepLR``)."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = self._positive("step_size", step_size), float(gamma)

    def __call__(self, step: int) -> float:
        return self.gamma ** (step // self.step_size)


class Cosine(Schedule):
    """Half a cosine from 1 down to ``min_factor`` over ``total`` steps, then flat (``CosineAnnealingLR``)."""

    def __init__(self, total: int, min_factor: float = 0.0):
        self.total, self.min_factor = self._positive("total", total), float(min_factor)

    def __call__(self, step: int) -> float:
        progress = min(step, self.total) / self.total
        return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * progress)) / 2


class LinearWarmup(Schedule):
    """Ramp linearly from ``start_factor`` to 1 over ``steps`` steps, then 1 (``LinearLR``)."""

    def __init__(self, steps: int, start_factor: float = 1 / 3):
        self.steps = self._positive("steps", steps)
        if not 0 < start_factor <= 1:
            raise TrainingError(f"schedule: start_factor must be in (0, 1], got {start_factor!r}")
        self.start_factor = float(start_factor)

    def __call__(self, step: int) -> float:
        return self.start_factor + (1 - self.start_factor) * min(step, self.steps) / self.steps
