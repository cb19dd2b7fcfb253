"""Forward and backward kernels, one module per op family, written once against ``xp`` (numpy or cupy).

A forward kernel is ``fn(xp, inputs, params, attrs, ctx) -> array``: ``inputs`` is the list of input
arrays, ``params`` maps a role ("weight", "bias", ...) to its array, ``attrs`` are the node's
normalised attributes, and ``ctx`` is the RunContext (training flag, random generator, stash).

A backward kernel is ``fn(xp, grad, saved, params, attrs) -> (input_grads, param_grads)``: ``grad``
is the gradient of the loss w.r.t. the node's output, ``saved`` is what the forward kept (a Saved),
and it returns one gradient per input (each of its input's shape, or None where nothing flows back,
as into integer indices) and a dict of gradients by role.
It registers with ``@backward(op, keeps=...)``, which declares what the training executor keeps
from the forward: "inputs" (the input arrays), "output" (the output array), or nothing beyond the
input shapes. Anything else it needs (max-pool argmax, dropout mask, batch statistics) the forward
kernel writes into ``ctx.stash``, a per-node dict that exists only when the node will be
differentiated (``ctx.stash is None`` otherwise, so inference kernels do no extra work).

A kernel registered with ``writes_into=True`` puts its result into ``ctx.out`` when the executor sets
it (its slice of an elided Concat's buffer, see ``cnngraph.concat_layout``) and returns that array;
the executor sets it only for such kernels, so every other kernel can ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cnngraph.registry import Registry, import_modules

Kernel = Callable[..., Any]
_KERNELS: Registry[Kernel] = Registry("kernel for op", NotImplementedError, suggest=False)
_BACKWARDS: Registry["BackwardKernel"] = Registry("backward kernel for op", NotImplementedError, suggest=False)
_WRITERS: set[str] = set()
KEEPABLE = ("inputs", "output")


@dataclass
class RunContext:
    """What a kernel may need beyond its inputs: the mode, randomness for dropout, and the node's stash."""

    training: bool = False
    rng: Any = field(default_factory=lambda: np.random.default_rng(0))
    stash: dict | None = None
    out: Any = None  # the destination of a writes_into kernel, or None: return a fresh array


@dataclass
class Saved:
    """What one node's forward kept for its backward, and which gradients the backward owes.

    ``inputs`` and ``output`` are set only when the backward declared it keeps them. ``need_inputs``
    (one flag per input) and ``need_params`` (roles) let a kernel skip work nobody will read, e.g.
    the input gradient of the first convolution; returning it anyway is harmless.
    """

    shapes: tuple[tuple[int, ...], ...]
    training: bool
    stash: dict
    inputs: tuple | None = None
    output: Any = None
    need_inputs: tuple[bool, ...] = ()
    need_params: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BackwardKernel:
    fn: Kernel
    keeps: tuple[str, ...]


def kernel(op_name: str, writes_into: bool = False) -> Callable[[Kernel], Kernel]:
    """Decorator registering the forward kernel of ``op_name`` (``writes_into``: it honours ``ctx.out``)."""

    def wrap(fn: Kernel) -> Kernel:
        _KERNELS.add(op_name, fn)
        if writes_into:
            _WRITERS.add(op_name)
        return fn

    return wrap


def backward(op_name: str, keeps: tuple[str, ...] = ()) -> Callable[[Kernel], Kernel]:
    """Decorator registering the backward kernel of ``op_name`` and what it needs kept from the forward."""
    unknown = set(keeps) - set(KEEPABLE)
    if unknown:
        raise RuntimeError(f"backward of {op_name}: cannot keep {sorted(unknown)}; choose from {KEEPABLE}")

    def wrap(fn: Kernel) -> Kernel:
        _BACKWARDS.add(op_name, BackwardKernel(fn, tuple(keeps)))
        return fn

    return wrap


def get_kernel(op_name: str) -> Kernel:
    return _KERNELS.find(op_name)


def writes_into(op_name: str) -> bool:
    """Whether the kernel of ``op_name`` can write its result into a destination it is given."""
    return op_name in _WRITERS


def into(ctx: RunContext, result: Any) -> Any:
    """``result``, or its copy in ``ctx.out`` when a destination is set: for paths that compute elsewhere."""
    if ctx.out is None or result is ctx.out:
        return result
    ctx.out[...] = result
    return ctx.out


def get_backward(op_name: str) -> BackwardKernel:
    return _BACKWARDS.find(op_name)


import_modules(__name__, __path__)
