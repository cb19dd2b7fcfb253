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
it (its slice of an elided Concat's buffer, see ``cnngraph.concat_layout``; which producers get a
slice is the op schema's ``writes_into`` trait) and returns that array; the executor sets it only
for such kernels and copies any other implementation's result into the slice.

Kernels are registered per backend: ``@kernel(op)`` is the generic implementation every backend
falls back to, ``@kernel(op, backend="cupy", ...)`` one that only that backend uses, with what it
``supports`` (a node and dtype it declines gets a reason), the dtypes it computes in natively, and
an optional ``prepare(xp, node, shapes, dtype) -> plan`` run once per node and input shapes (the
executor caches it per batch size and hands it over as ``ctx.plan``). A backward registers beside
its forward under the same backend: ``resolve`` picks forward and backward as one pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from cnngraph.errors import CnnGraphError
from cnngraph.ops.base import LAYOUT, NCHW, NHWC
from cnngraph.registry import import_modules

Kernel = Callable[..., Any]
GENERIC = "generic"  # the implementations written once over ``xp``: every backend's fallback
KEEPABLE = ("inputs", "output")


@dataclass
class RunContext:
    """What a kernel may need beyond its inputs: the mode, device randomness, the node's stash and plan."""

    training: bool = False
    random: Callable[[tuple[int, ...]], Any] | None = None  # uniform [0, 1) float32 on the device, per shape
    stash: dict | None = None
    out: Any = None  # the destination of a writes_into kernel, or None: return a fresh array
    plan: Any = None  # what the implementation's prepare step built for this node and these shapes
    sum_across: Callable[[list], list] | None = None  # data parallelism: arrays summed over ranks (sync BN)


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
    plan: Any = None

    def mapped(self, fn: Callable[[Any], Any]) -> Saved:
        """A copy with ``fn`` applied to the kept arrays (widening half-precision ones for a float32 kernel)."""
        return replace(self, inputs=None if self.inputs is None else tuple(fn(a) for a in self.inputs),
                       output=None if self.output is None else fn(self.output))


@dataclass(frozen=True)
class BackwardKernel:
    fn: Kernel
    keeps: tuple[str, ...]


@dataclass
class Implementation:
    """One backend's kernels for one op: a forward, its backward if it has one, and what it supports."""

    op: str
    backend: str
    forward: Kernel
    backward: BackwardKernel | None = None
    writes_into: bool = False
    dtypes: tuple[str, ...] = ("float32", "float64")  # other float dtypes are widened to float32 around it
    supports: Callable[[Any, str], str | None] | None = None  # (node, dtype) -> why not, or None
    prepare: Callable[..., Any] | None = None  # (xp, node, input shapes, dtype) -> plan
    cost_rule: Callable[[Any, list], str | None] | None = None  # (node, input types) -> why another is faster
    layouts: tuple[str, ...] = (NCHW,)  # the storage of 4-D values it reads and writes
    variant: str = ""  # tells apart one backend's implementations of one op (e.g. "nhwc")

    @property
    def name(self) -> str:
        """How reports name it: the backend, and the variant where there is one ("generic/nhwc")."""
        return f"{self.backend}/{self.variant}" if self.variant else self.backend

    def declines(self, node, dtype: str, training: bool, layout: bool = True, input_types: list | None = None
                 ) -> str | None:
        """Why this implementation cannot run ``node`` (in training: forward and backward), or None.
        ``layout=False`` asks about everything but the node's layout (what a lowering pass may choose).
        With ``input_types`` (the node's input TensorTypes) its cost rule may decline shapes it runs slower."""
        if training and self.backward is None:
            return "it has no backward kernel"
        wanted = node.attrs.get(LAYOUT, NCHW)
        if layout and wanted not in self.layouts:
            return f"it runs {'/'.join(self.layouts)}, the node is lowered to {wanted}"
        why = self.supports(node, dtype) if self.supports is not None else None
        if why is None and input_types is not None and self.cost_rule is not None:
            return self.cost_rule(node, input_types)
        return why


@dataclass
class Choice:
    """The implementation a node resolved to, and each one tried first with why it declined."""

    impl: Implementation
    declined: list[tuple[str, str]] = field(default_factory=list)


_IMPLS: dict[tuple[str, str, str], Implementation] = {}  # (backend, op, variant) -> implementation
_PENDING_BACKWARD: dict[tuple[str, str, str], BackwardKernel] = {}
ANY_LAYOUT = (NCHW, NHWC)  # element-wise kernels: storage order does not matter to them


def kernel(op_name: str, writes_into: bool = False, *, backend: str = GENERIC,
           dtypes: tuple[str, ...] = ("float32", "float64"), supports: Callable | None = None,
           prepare: Callable | None = None, layouts: tuple[str, ...] = (NCHW,),
           variant: str = "", cost_rule: Callable | None = None) -> Callable[[Kernel], Kernel]:
    """Decorator registering the forward kernel of ``op_name`` for ``backend`` (``writes_into``: it honours ``ctx.out``)."""

    def wrap(fn: Kernel) -> Kernel:
        key = (backend, op_name, variant)
        if key in _IMPLS:
            raise RuntimeError(f"kernel for op {op_name} registered twice for backend {backend} ({variant!r})")
        _IMPLS[key] = Implementation(op_name, backend, fn, _PENDING_BACKWARD.pop(key, None), writes_into,
                                     tuple(dtypes), supports, prepare, cost_rule, tuple(layouts), variant)
        return fn

    return wrap


def backward(op_name: str, keeps: tuple[str, ...] = (), *, backend: str = GENERIC,
             variant: str = "") -> Callable[[Kernel], Kernel]:
    """Decorator registering the backward kernel of ``op_name`` beside its forward, and what it needs kept."""
    unknown = set(keeps) - set(KEEPABLE)
    if unknown:
        raise RuntimeError(f"backward of {op_name}: cannot keep {sorted(unknown)}; choose from {KEEPABLE}")

    def wrap(fn: Kernel) -> Kernel:
        key, bwd = (backend, op_name, variant), BackwardKernel(fn, tuple(keeps))
        impl = _IMPLS.get(key)
        if (impl is not None and impl.backward is not None) or key in _PENDING_BACKWARD:
            raise RuntimeError(f"backward kernel for op {op_name} registered twice for backend {backend}")
        if impl is None:
            _PENDING_BACKWARD[key] = bwd  # the forward follows in the same module
        else:
            impl.backward = bwd
        return fn

    return wrap


def implementations(backend: str, op_name: str) -> list[Implementation]:
    """In resolution order: the backend's own, then the generic ones (each in registration order)."""
    return [impl for owner in dict.fromkeys((backend, GENERIC)) for (b, op, _), impl in _IMPLS.items()
            if b == owner and op == op_name]


def layouts(backend: str, node, dtype: str, training: bool) -> tuple[str, ...]:
    """The storage layouts some implementation on ``backend`` could run ``node`` in (for lowering passes)."""
    found = [lay for impl in implementations(backend, node.op)
             if impl.declines(node, dtype, training, layout=False) is None for lay in impl.layouts]
    return tuple(dict.fromkeys(found))


def resolve(backend: str, node, dtype: str, training: bool, input_types: list | None = None) -> Choice:
    """The first implementation that runs ``node`` on ``backend`` at ``dtype`` (with a backward, in training),
    and, given ``input_types``, whose cost rule does not expect another to be faster on those shapes."""
    declined = []
    for impl in implementations(backend, node.op):
        why = impl.declines(node, dtype, training, input_types=input_types)
        if why is None:
            return Choice(impl, declined)
        declined.append((impl.name, why))
    where = f"layer '{node.name}' ({node.op})"
    if not declined:
        raise CnnGraphError(f"{where}: no kernel for op '{node.op}'")
    if training and all(why == "it has no backward kernel" for _, why in declined):
        raise CnnGraphError(f"{where} cannot be trained: the op has no backward kernel (fused ops come from "
                            f"inference passes; train=True's default passes never fuse)")
    tried = "; ".join(f"{name}: {why}" for name, why in declined)
    raise CnnGraphError(f"{where}: no kernel runs it on backend '{backend}' at {dtype} ({tried})")


def get_kernel(op_name: str) -> Kernel:
    """The generic forward kernel of ``op_name`` (fused kernels call their parts through it)."""
    impl = _IMPLS.get((GENERIC, op_name, ""))
    if impl is None:
        raise NotImplementedError(f"no kernel for op '{op_name}'")
    return impl.forward


def into(ctx: RunContext, result: Any) -> Any:
    """``result``, or its copy in ``ctx.out`` when a destination is set: for paths that compute elsewhere."""
    if ctx.out is None or result is ctx.out:
        return result
    ctx.out[...] = result
    return ctx.out


import_modules(__name__, __path__)
if _PENDING_BACKWARD:
    raise RuntimeError(f"backward kernels without a forward: {sorted(_PENDING_BACKWARD)}")
