"""Forward kernels, one module per op family, written once against ``xp`` (numpy or cupy).

A kernel is ``fn(xp, inputs, params, attrs, ctx) -> array``: ``inputs`` is the list of input
arrays, ``params`` maps a role ("weight", "bias", ...) to its array, ``attrs`` are the node's
normalised attributes, and ``ctx`` is the RunContext (training flag, random generator).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Kernel = Callable[..., Any]
_KERNELS: dict[str, Kernel] = {}


@dataclass
class RunContext:
    """What a kernel may need beyond its inputs: the mode, and randomness for dropout."""

    training: bool = False
    rng: Any = field(default_factory=lambda: np.random.default_rng(0))


def kernel(op_name: str) -> Callable[[Kernel], Kernel]:
    """Decorator registering the forward kernel of ``op_name``."""

    def wrap(fn: Kernel) -> Kernel:
        if op_name in _KERNELS:
            raise RuntimeError(f"kernel for {op_name} registered twice")
        _KERNELS[op_name] = fn
        return fn

    return wrap


def get_kernel(op_name: str) -> Kernel:
    try:
        return _KERNELS[op_name]
    except KeyError:
        raise NotImplementedError(f"no kernel for op '{op_name}'") from None


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_load_all()
