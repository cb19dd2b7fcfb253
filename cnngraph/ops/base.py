"""What every op declares once: attributes, shape inference, parameters, cost, receptive field.

An op is a stateless singleton. ``normalize`` validates the attributes and fills defaults (it is
idempotent, so ``Graph.verify`` can run it again), ``infer`` gives the output type, and the rest
feed analysis and initialisation. Its traits (``activation``, ``in_place``, ``random``,
``writes_into``) are what passes, the memory plan and the concat layout ask of an op, so the core
needs no list of op names and no backend. Kernels live in ``cnngraph.backends.kernels``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from cnngraph.errors import AttrError, ShapeError
from cnngraph.types import TensorType, fmt_shape



@dataclass(frozen=True)
class ParamSpec:
    """A parameter an op needs: its role, shape, default initialiser and fans for that initialiser."""

    role: str
    shape: tuple[int, ...]
    init: str
    fan_in: int = 1
    fan_out: int = 1
    trainable: bool = True


@dataclass(frozen=True)
class Window:
    """How one op maps positions spatially, for receptive-field analysis.

    One entry per spatial axis (L; H, W; or D, H, W). ``kernel`` is the effective kernel (dilation
    applied), ``stride`` may be fractional for upsampling, ``pad`` is the padding before the first
    position. Empty tuples (the default) leave every axis as it is. ``global_`` marks ops that see
    the whole input (global pooling, adaptive pooling to 1x1, flatten+linear).
    """

    kernel: tuple[int, ...] = ()
    stride: tuple[float, ...] = ()
    pad: tuple[float, ...] = ()
    global_: bool = False


IDENTITY_WINDOW = Window()

# Physical layouts of 4-D values. The IR is logically NCHW everywhere; a backend's lowering pass
# (passes/channels_last.py) may mark a node ``layout="NHWC"``: its 4-D inputs and output are then
# stored channels-last, and explicit Layout nodes convert at the boundaries. Any op accepts the mark.
LAYOUT, NCHW, NHWC = "layout", "NCHW", "NHWC"
LAYOUTS = (NCHW, NHWC)

MAX_DIM = 2**31 - 1
"""No size or count an attribute gives may pass int32: GPU kernels index with it, and no tensor that
large fits in memory. A stride of 2^62 is an AttrError at verification, not an OverflowError in a kernel."""
MAX_WINDOW = 2**16
"""Kernel, stride, dilation, padding (pixels) and LRN window (channels): far beyond any network's, and
small enough that the padded copies kernels build stay near the input's size (a padding of 10^9 would
allocate 10^9 rows before the first multiply)."""


class Op:
    """Base schema. Subclasses set ``name``, ``arity`` and ``defaults`` and override what differs."""

    name: ClassVar[str] = ""
    arity: ClassVar[tuple[int, int]] = (1, 1)  # (min, max) number of inputs
    defaults: ClassVar[dict[str, Any]] = {}
    required: ClassVar[tuple[str, ...]] = ()
    short: ClassVar[dict[str, str]] = {}  # attribute abbreviations for the text form
    hidden: ClassVar[tuple[str, ...]] = ("weight_init",)  # attributes left out of the text form

    # -- traits: what passes and planners may assume about the op ----------------------
    activation: ClassVar[bool] = False
    """An element-wise activation that conv/linear epilogues can fuse (FusedConv2d, FusedLinear)."""
    in_place: ClassVar[bool] = False
    """Element-wise: its output may overwrite its input when that input dies here (memory plan)."""
    random: ClassVar[bool] = False
    """Draws randomness in training: two such nodes never merge, and its result is never a constant."""
    broadcasts: ClassVar[bool] = False
    """Element-wise over inputs broadcast NumPy-style: which axis is which matters once shapes differ."""
    writes_into: ClassVar[bool] = False
    """Its kernels can write the output into a destination the executor hands them (a slice of an
    elided Concat's buffer, see ``cnngraph.concat_layout``)."""

    # -- errors ------------------------------------------------------------------
    def error(self, node: str, message: str) -> ShapeError:
        return ShapeError(node, self.name, message)

    def attr_error(self, node: str, message: str) -> AttrError:
        return AttrError(node, self.name, message)

    # -- the schema ----------------------------------------------------------------
    def normalize(self, node: str, attrs: dict, inputs: list[TensorType]) -> dict:
        """Check arity and attribute names, fill defaults, then let the op validate and resolve."""
        lo, hi = self.arity
        if not lo <= len(inputs) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise self.error(node, f"takes {want} inputs, got {len(inputs)}")
        attrs = dict(attrs)
        layout = attrs.pop(LAYOUT, NCHW)
        unknown = set(attrs) - set(self.defaults) - set(self.required)
        if unknown:
            allowed = sorted(set(self.defaults) | set(self.required))
            raise self.attr_error(node, f"unknown attribute(s) {sorted(unknown)}; allowed: {allowed}")
        missing = [a for a in self.required if a not in attrs]
        if missing:
            raise self.attr_error(node, f"missing required attribute(s) {missing}")
        checked = self.check(node, {**self.defaults, **attrs}, inputs)
        if layout != NCHW:
            if layout not in LAYOUTS or not all(t.rank == 4 for t in inputs):
                raise self.attr_error(node, f"layout must be one of {LAYOUTS} (channels-last needs 4-D inputs), "
                                            f"got {layout!r} for inputs of ranks {[t.rank for t in inputs]}")
            checked[LAYOUT] = layout
        return checked

    def check(self, node: str, attrs: dict, inputs: list[TensorType]) -> dict:
        """Validate and canonicalise attributes (tuples, resolved padding). Must be idempotent."""
        return attrs

    def infer(self, node: str, attrs: dict, inputs: list[TensorType]) -> TensorType:
        return inputs[0]

    def param_specs(self, attrs: dict, inputs: list[TensorType]) -> list[ParamSpec]:
        return []

    def macs(self, attrs: dict, inputs: list[TensorType], output: TensorType) -> int:
        """Multiply-accumulates for one sample (batch 1)."""
        return 0

    def window(self, attrs: dict, inputs: list[TensorType]) -> Window:
        return IDENTITY_WINDOW

    def workspace(self, attrs: dict, inputs: list[TensorType], output: TensorType) -> int:
        """Elements per sample the kernels build beside the output (a padded copy, im2col columns): what
        the run's memory budget adds to the planned activations, so a stride and a padding that leave a
        small output cannot hide a huge padded copy."""
        return 0

    def probe(self, slot: int, shape: tuple[int, ...], inputs: list[TensorType], attrs: dict, batch: int,
              rng: Any) -> Any:
        """Random values of ``shape`` this op accepts in input ``slot`` where standard normal ones are not
        (boxes, image indices), for graphs checked on random inputs (``cnngraph.probes``); None: any will do."""
        return None

    def describe(self, attrs: dict) -> str:
        """The attributes for the one-line text form: non-default ones, abbreviated."""
        parts = []
        ordered = [k for k in self.required if k in attrs] + [k for k in attrs if k not in self.required]
        for key in ordered:
            value = attrs[key]
            if isinstance(value, tuple) and value and all(v == value[0] for v in value):
                value = value[0]
            if key in self.hidden or (key in self.defaults and self.defaults[key] == value):
                continue
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            parts.append(f"{self.short.get(key, key)}={shown}")
        return ", ".join(parts)

    # -- helpers shared by the op files ---------------------------------------------
    def image(self, node: str, t: TensorType, what: str = "input") -> tuple[Any, int, int, int]:
        """Unpack an (N, C, H, W) type, or fail naming the node and the shape found."""
        if t.rank != 4:
            raise self.error(node, f"expects a 4-D (N, C, H, W) {what}, got shape {fmt_shape(t.shape)}")
        return t.shape  # type: ignore[return-value]

    def spatial(self, node: str, t: TensorType, what: str = "input") -> tuple:
        """Unpack an (N, C, L), (N, C, H, W) or (N, C, D, H, W) type, or fail naming the node and the shape."""
        if not 3 <= t.rank <= 5:
            raise self.error(node, f"expects an (N, C, L), (N, C, H, W) or (N, C, D, H, W) {what}, "
                                   f"got shape {fmt_shape(t.shape)}")
        return t.shape

    def ints(self, node: str, name: str, value: Any, n: int, minimum: int = 0,
             maximum: int = MAX_DIM) -> tuple[int, ...]:
        """An int or a sequence of ``n`` ints, each in [``minimum``, ``maximum``], as a tuple."""
        if isinstance(value, bool):
            raise self.attr_error(node, f"{name} must be an int or {n} ints, got {value!r}")
        if isinstance(value, int):
            value = (value,) * n
        try:
            out = tuple(int(v) for v in value)
            if any(int(v) != v for v in value):
                raise ValueError
        except (TypeError, ValueError):
            raise self.attr_error(node, f"{name} must be an int or {n} ints, got {value!r}") from None
        if len(out) != n:
            raise self.attr_error(node, f"{name} must have {n} values, got {len(out)}: {value!r}")
        if any(v < minimum for v in out):
            raise self.attr_error(node, f"{name} must be >= {minimum}, got {value!r}")
        if any(v > maximum for v in out):
            raise self.attr_error(node, f"{name} must be <= {maximum:,}, got {value!r}")
        return out

    def window_ints(self, node: str, name: str, value: Any, n: int, minimum: int = 1) -> tuple[int, ...]:
        """A kernel, stride, dilation or window attribute: ``ints`` bounded by MAX_WINDOW."""
        return self.ints(node, name, value, n, minimum, MAX_WINDOW)

    def real(self, node: str, name: str, value: Any, ok: Callable[[float], bool] = math.isfinite,
             rule: str = "a finite number") -> float:
        """A float attribute checked by ``ok``; bools are refused (True is not a momentum)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(float(value)):
            raise self.attr_error(node, f"{name} must be {rule}, got {value!r}")
        return float(value)

    def sample_axis(self, node: str, name: str, value: Any, rank: int) -> int:
        """A per-sample axis as a non-negative int (negative counts from the end); never the batch axis."""
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.attr_error(node, f"{name} must be an int, got {value!r}")
        axis = int(value) + rank if value < 0 else int(value)
        if not 0 <= axis < rank:
            raise self.attr_error(node, f"{name}={value} is out of range for a {rank}-D input")
        if axis == 0:
            raise self.attr_error(node, f"{name}={value} is the batch axis; only per-sample axes are allowed")
        return axis

    def pads(self, node: str, value: Any, n: int = 2) -> tuple[int, ...]:
        """Padding of ``n`` spatial axes as ONNX orders it, the begins then the ends ((top, left, bottom,
        right) in 2-D), from an int, ``n`` values (both sides alike) or ``2n`` values."""
        if isinstance(value, (list, tuple)) and len(value) == 2 * n:
            return self.window_ints(node, "padding", value, 2 * n, 0)
        begins = self.window_ints(node, "padding", value, n, 0)
        return begins + begins


def fmt_sizes(values) -> str:
    """Window and spatial sizes in messages: 5, 3x3, 3x3x3."""
    return "x".join(map(str, values))


def padded_size(size: tuple[int, ...], pads: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial ``size`` padded by (begins..., ends...)."""
    r = len(size)
    return tuple(n + b + e for n, b, e in zip(size, pads[:r], pads[r:]))


def padded_elements(t: TensorType, pads: tuple[int, ...]) -> int:
    """Elements per sample of an (N, C, *spatial) type padded by (begins..., ends...)."""
    return t.shape[1] * math.prod(padded_size(t.shape[2:], pads))


def conv_out(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1, ceil: bool = False) -> int:
    """Output length of a sliding window (conv or pool) along one axis."""
    span = size + pad_total - dilation * (kernel - 1) - 1
    if ceil:
        return -(-span // stride) + 1
    return span // stride + 1
