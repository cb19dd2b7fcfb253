"""A functional DSL over symbolic tensors, in the spirit of the Keras functional API.

    x = dsl.input("image", (3, 224, 224))
    with dsl.scope("stem"):
        y = dsl.relu(dsl.conv2d(x, 64, 7, stride=2, padding=3))
    model = dsl.Model(x, dsl.linear(dsl.flatten(dsl.global_avg_pool(y)), 10))

Every call infers its output shape at once, so a mismatch fails on the line that caused it,
naming the layer and the shapes. ``Model`` collects the layers the outputs depend on, gives
unnamed layers names (``relu``, ``relu_1``, ... inside their scope), initialises parameters
(seeded per parameter name) and returns a verified ``Graph``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from cnngraph.errors import GraphError, ShapeError
from cnngraph.init import initialize
from cnngraph.ir import BATCH, Graph, Node, TensorType
from cnngraph.types import is_symbol
from cnngraph.ops import get_op
from cnngraph.ops.base import fmt_shape

_scopes: list[str] = []
_ids = itertools.count()


@dataclass(eq=False)
class Tensor:
    """A symbolic value: the output of a layer (or a graph input) with its inferred type."""

    type: TensorType
    op: str | None = None  # None for graph inputs
    parents: tuple["Tensor", ...] = ()
    attrs: dict = field(default_factory=dict)
    explicit_name: str | None = None
    scope: str = ""
    base: str = ""
    fixed: dict = field(default_factory=dict)  # parameter values given in the DSL (constants), by role
    uid: int = field(default_factory=lambda: next(_ids))

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def name(self) -> str:
        """The explicit name, or the scoped op name until ``Model`` makes it unique (``relu_1``)."""
        return self.explicit_name or f"{self.scope}{self.base}"

    def __add__(self, other: "Tensor") -> "Tensor":
        return add(self, other)

    def __mul__(self, other: "Tensor") -> "Tensor":
        return mul(self, other)

    def __repr__(self) -> str:
        return f"<Tensor {self.name}: {self.type}>"


@contextlib.contextmanager
def scope(name: str | int):
    """Prefix the names of layers made inside: ``with scope("layer1"), scope(0):`` -> ``layer1.0.``."""
    _scopes.append(str(name))
    try:
        yield
    finally:
        _scopes.pop()


def _prefix() -> str:
    return "".join(s + "." for s in _scopes)


def input(name: str, shape: Sequence[int], dtype: str = "float32", leading: str = BATCH) -> Tensor:  # noqa: A001
    """A graph input (as Keras's); ``shape`` excludes the leading dimension, which stays symbolic: the batch
    ``N``, or the name ``leading`` gives, as ``dsl.input("rois", (5,), leading="R")`` for a list of boxes."""
    dims = tuple(int(d) for d in shape)
    if any(d < 1 for d in dims):
        raise GraphError(f"input '{name}': every dimension must be positive, got {tuple(shape)}")
    if not is_symbol(leading):
        raise GraphError(f"input '{name}': the leading dimension must be a name such as 'N' or 'R', got {leading!r}")
    return Tensor(TensorType((leading, *dims), dtype), explicit_name=name, base=name)


def layer(op_name: str, inputs: Sequence[Tensor], name: str | None = None, **attrs) -> Tensor:
    """Apply any registered op: validate attributes and infer the output type now."""
    op = get_op(op_name)
    prefix = _prefix()
    full = f"{prefix}{name}" if name else None
    t = Tensor(TensorType(()), op_name, tuple(inputs), {}, full, prefix, op_name.lower())
    in_types = [i.type for i in inputs]
    t.attrs = op.normalize(t.name, attrs, in_types)
    t.type = op.infer(t.name, t.attrs, in_types)
    return t


# -- convolution and linear ---------------------------------------------------------

SPATIAL = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _for_axes(axes: int, layer_fn: Callable[..., Tensor], name: str) -> Callable[..., Tensor]:
    """``layer_fn`` (whose op takes 1 to 3 spatial axes) as the wrapper for one rank, as PyTorch's
    Conv1d/2d/3d are: an input of another rank is a mistake, caught on the line that made it. Its
    unnamed layers are named after the wrapper (``conv3d``, ``maxpool3d_1``)."""

    @functools.wraps(layer_fn)
    def wrapper(x: Tensor, *args, **kwargs) -> Tensor:
        if x.type.rank != axes + 2:
            raise ShapeError(kwargs.get("name") or f"{_prefix()}{name}", name,
                             f"expects an {SPATIAL[axes]} input, got shape {fmt_shape(x.shape)}")
        out = layer_fn(x, *args, **kwargs)
        out.base = name.replace("_", "")  # conv3d, maxpool1d: the 2-D names stay as they were
        return out

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = f"{layer_fn.__doc__}\n\n    Over {SPATIAL[axes]} inputs only."
    return wrapper


def _conv(x, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
          init="he", name=None) -> Tensor:
    """Convolution (cross-correlation), PyTorch semantics and weight layout (C_out, C_in/groups, *kernel).

    ``padding`` is an int, one per axis, the begins then the ends ((top, left, bottom, right) in 2-D),
    "same" or "valid"."""
    return layer("Conv2d", [x], name, out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                 padding=padding, dilation=dilation, groups=groups, bias=bias, weight_init=init)


def _conv_transpose(x, out_channels, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                    groups=1, bias=True, init="torch", name=None) -> Tensor:
    """Transposed convolution, PyTorch's weight layout (C_in, C_out/groups, *kernel)."""
    return layer("ConvTranspose2d", [x], name, out_channels=out_channels, kernel_size=kernel_size,
                 stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
                 groups=groups, bias=bias, weight_init=init)


conv1d, conv2d, conv3d = (_for_axes(k, _conv, f"conv{k}d") for k in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (
    _for_axes(k, _conv_transpose, f"conv_transpose{k}d") for k in (1, 2, 3))


def locally_connected2d(x, out_channels, kernel_size, stride=1, padding=0, bias=True, init="he",
                        name=None) -> Tensor:
    """A convolution whose filter (and bias) differs at every output position (DeepFace's L4-L6)."""
    return layer("LocallyConnected2d", [x], name, out_channels=out_channels, kernel_size=kernel_size,
                 stride=stride, padding=padding, bias=bias, weight_init=init)


def linear(x, out_features, bias=True, init="torch", name=None) -> Tensor:
    """Fully connected layer on (N, features); flatten images first."""
    return layer("Linear", [x], name, out_features=out_features, bias=bias, weight_init=init)


# -- normalisation and regularisation --------------------------------------------------

def batch_norm(x, eps=1e-5, momentum=0.1, name=None) -> Tensor:
    """Batch normalisation of (N, C) to (N, C, D, H, W): PyTorch's BatchNorm1d, 2d and 3d."""
    return layer("BatchNorm2d", [x], name, eps=eps, momentum=momentum)


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0, name=None) -> Tensor:
    """Local response normalisation across channels (AlexNet)."""
    return layer("LRN", [x], name, size=size, alpha=alpha, beta=beta, k=k)


def dropout(x, p=0.5, name=None) -> Tensor:
    return layer("Dropout", [x], name, p=p)


# -- activations ---------------------------------------------------------------------

def relu(x, name=None) -> Tensor:
    return layer("ReLU", [x], name)


def leaky_relu(x, alpha=0.01, name=None) -> Tensor:
    return layer("LeakyReLU", [x], name, alpha=alpha)


def elu(x, alpha=1.0, name=None) -> Tensor:
    return layer("ELU", [x], name, alpha=alpha)


def clip(x, min=0.0, max=6.0, name=None) -> Tensor:  # noqa: A002 - torch's names
    """Clamp to [min, max]; ReLU6 is the default."""
    return layer("Clip", [x], name, min=min, max=max)


def sigmoid(x, name=None) -> Tensor:
    return layer("Sigmoid", [x], name)


def tanh(x, name=None) -> Tensor:
    return layer("Tanh", [x], name)


def softmax(x, axis=1, name=None) -> Tensor:
    return layer("Softmax", [x], name, axis=axis)


def log_softmax(x, axis=1, name=None) -> Tensor:
    return layer("LogSoftmax", [x], name, axis=axis)


# -- pooling and resizing ----------------------------------------------------------------

def _max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, name=None) -> Tensor:
    """Max pooling; the stride defaults to the kernel, padding counts as -inf."""
    return layer("MaxPool2d", [x], name, kernel_size=kernel_size, stride=stride, padding=padding,
                 dilation=dilation, ceil_mode=ceil_mode)


def _avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
              name=None) -> Tensor:
    """Average pooling; the stride defaults to the kernel."""
    return layer("AvgPool2d", [x], name, kernel_size=kernel_size, stride=stride, padding=padding,
                 ceil_mode=ceil_mode, count_include_pad=count_include_pad)


max_pool1d, max_pool2d, max_pool3d = (_for_axes(k, _max_pool, f"max_pool{k}d") for k in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_for_axes(k, _avg_pool, f"avg_pool{k}d") for k in (1, 2, 3))


def global_avg_pool(x, name=None) -> Tensor:
    """Mean over every spatial axis, keeping each as size 1: (N, C, 1, 1) from an image, (N, C, 1)
    from (N, C, L), (N, C, 1, 1, 1) from a volume."""
    return layer("GlobalAvgPool", [x], name)


def global_max_pool(x, name=None) -> Tensor:
    """Max over every spatial axis, keeping each as size 1 (ONNX's GlobalMaxPool): a max pool whose
    window is the whole input."""
    out = layer("MaxPool2d", [x], name, kernel_size=x.shape[2:])
    out.base = "globalmaxpool"
    return out


def adaptive_avg_pool2d(x, output_size, name=None) -> Tensor:
    return layer("AdaptiveAvgPool2d", [x], name, output_size=output_size)


def upsample(x, scale_factor=None, size=None, mode="nearest", align_corners=False, name=None) -> Tensor:
    """Resize the spatial axes by ``scale_factor`` or to ``size``; mode "nearest", or as PyTorch names
    linear interpolation by rank: "linear" (N, C, L), "bilinear" (N, C, H, W), "trilinear" (N, C, D, H, W)."""
    return layer("Upsample", [x], name, scale_factor=scale_factor, size=size, mode=mode,
                 align_corners=align_corners)


# -- shape, joins and crops ----------------------------------------------------------------

def flatten(x, name=None) -> Tensor:
    """(N, ...) -> (N, features)."""
    return layer("Flatten", [x], name)


def reshape(x, shape, name=None) -> Tensor:
    """Reshape each sample; ``shape`` excludes the batch dimension and may hold one -1."""
    return layer("Reshape", [x], name, shape=tuple(shape))


def add(*xs, name=None) -> Tensor:
    """Element-wise sum of two or more tensors (residual joins, fabric sums); broadcasting allowed."""
    return layer("Add", list(xs), name)


def mul(a, b, name=None) -> Tensor:
    """Element-wise product with broadcasting (e.g. channel attention (N, C, 1, 1) * (N, C, H, W))."""
    return layer("Mul", [a, b], name)


def concat(xs: Sequence[Tensor], axis=1, name=None) -> Tensor:
    """Join along ``axis`` (channels by default): Inception branches, DenseNet, U-Net skips."""
    return layer("Concat", list(xs), name, axis=axis)


def slice(x, axes, starts, ends, steps=None, name=None) -> Tensor:  # noqa: A001 - ONNX's name
    """ONNX-style slice of non-batch axes; ends are clamped like Python slices."""
    steps = steps if steps is not None else [1] * len(axes)
    return layer("Slice", [x], name, axes=tuple(axes), starts=tuple(starts), ends=tuple(ends),
                 steps=tuple(steps))


def crop(x, like: Tensor | None = None, size: Sequence[int] | None = None, name=None) -> Tensor:
    """Centre-crop H and W to ``size`` or to the spatial size of ``like`` (U-Net skips)."""
    if (like is None) == (size is None):
        raise GraphError(f"crop of '{x.name}': give exactly one of like= or size=")
    th, tw = like.shape[2:] if like is not None else size
    h, w = x.shape[2:]
    if th > h or tw > w:
        raise GraphError(f"crop of '{x.name}': target {th}x{tw} is larger than the input {h}x{w}")
    top, left = (h - th) // 2, (w - tw) // 2
    return slice(x, (2, 3), (top, left), (top + th, left + tw), name=name)


def pad(x, padding, mode="constant", value=0.0, name=None) -> Tensor:
    """Pad H and W by an int, (ph, pw) or (top, left, bottom, right); mode constant, reflect or edge."""
    return layer("Pad", [x], name, padding=padding, mode=mode, value=value)


def constant(value, name=None) -> Tensor:
    """A fixed tensor (no batch dimension; it broadcasts), e.g. a (1, 3, 1, 1) normalising mean."""
    value = np.asarray(value, dtype=np.float32)
    t = layer("Constant", [], name, shape=value.shape)
    t.fixed["value"] = value
    return t


def identity(x, name=None) -> Tensor:
    return layer("Identity", [x], name)


# -- detection: regions, boxes and suppression (ops in cnngraph/ops/roi.py, box_decode.py, nms.py, gather_nd.py)

def roi_pool(x, rois, output_size, spatial_scale=1.0, name=None) -> Tensor:
    """Fast R-CNN's RoI max pooling of (N, C, H, W) features over (R, 5) rows (batch_index, x1, y1, x2, y2)."""
    return layer("RoiPool", [x, rois], name, output_size=output_size, spatial_scale=spatial_scale)


def roi_align(x, rois, output_size, spatial_scale=1.0, sampling_ratio=0, mode="avg", coordinate_mode="half_pixel",
              name=None) -> Tensor:
    """Mask R-CNN's RoIAlign (ONNX RoiAlign) over (R, 5) rows (batch_index, x1, y1, x2, y2)."""
    return layer("RoiAlign", [x, rois], name, output_size=output_size, spatial_scale=spatial_scale,
                 sampling_ratio=sampling_ratio, mode=mode, coordinate_mode=coordinate_mode)


def box_decode(deltas, anchors, variances=(1.0, 1.0, 1.0, 1.0), name=None) -> Tensor:
    """Corner boxes from (N, K, 4) regression deltas against (K, 4) anchors (a ``constant``)."""
    return layer("BoxDecode", [deltas, anchors], name, variances=tuple(variances))


def nms(boxes, scores, max_output_boxes_per_class, iou_threshold=0.5, score_threshold=-float("inf"),
        center_point_box=0, name=None) -> Tensor:
    """ONNX NonMaxSuppression: (M, 3) int64 rows (image, class, box) of boxes (N, K, 4) scored (N, C, K)."""
    return layer("NonMaxSuppression", [boxes, scores], name, max_output_boxes_per_class=max_output_boxes_per_class,
                 iou_threshold=iou_threshold, score_threshold=score_threshold, center_point_box=center_point_box)


def cast(x, to, name=None) -> Tensor:
    """ONNX Cast between the graph's float type ("float32") and int64 indices, e.g. NMS's image column."""
    return layer("Cast", [x], name, to=to)


def gather_nd(data, indices, name=None) -> Tensor:
    """ONNX GatherND: the rows of ``data`` that int64 index tuples (..., q) name, e.g. NMS's selection."""
    return layer("GatherND", [data, indices], name)


def hard_sigmoid(x, alpha=0.2, beta=0.5, name=None) -> Tensor:
    """max(0, min(1, alpha * x + beta)); ONNX's defaults (PyTorch's Hardsigmoid is alpha=1/6)."""
    return layer("HardSigmoid", [x], name, alpha=alpha, beta=beta)


def hard_swish(x, name=None) -> Tensor:
    return layer("HardSwish", [x], name)


def silu(x, name=None) -> Tensor:
    """x * sigmoid(x), a.k.a. Swish."""
    return layer("SiLU", [x], name)


def gelu(x, approximate="none", name=None) -> Tensor:
    """``approximate`` "none" (erf) or "tanh", as torch.nn.GELU."""
    return layer("GELU", [x], name, approximate=approximate)


def mish(x, name=None) -> Tensor:
    return layer("Mish", [x], name)


def selu(x, name=None) -> Tensor:
    return layer("Selu", [x], name)


def softplus(x, name=None) -> Tensor:
    return layer("Softplus", [x], name)


def softsign(x, name=None) -> Tensor:
    return layer("Softsign", [x], name)


def prelu(x, num_parameters=1, name=None) -> Tensor:
    """Leaky ReLU with a learnt slope: one, or one per channel (``num_parameters=C``), as torch.nn.PReLU."""
    return layer("PReLU", [x], name, num_parameters=num_parameters)


def exp(x, name=None) -> Tensor:
    return layer("Exp", [x], name)


def log(x, name=None) -> Tensor:
    return layer("Log", [x], name)


def neg(x, name=None) -> Tensor:
    return layer("Neg", [x], name)


def abs(x, name=None) -> Tensor:  # noqa: A001 - ONNX's name
    return layer("Abs", [x], name)


def sqrt(x, name=None) -> Tensor:
    return layer("Sqrt", [x], name)


def reciprocal(x, name=None) -> Tensor:
    return layer("Reciprocal", [x], name)


def erf(x, name=None) -> Tensor:
    return layer("Erf", [x], name)


def pow(a, b, name=None) -> Tensor:  # noqa: A001 - ONNX's name
    """a ** b, broadcast (b is often a constant: ``dsl.pow(x, dsl.constant(2.0))``)."""
    return layer("Pow", [a, b], name)


def maximum(*xs, name=None) -> Tensor:
    """Element-wise maximum of one or more tensors, broadcast."""
    return layer("Max", list(xs), name)


def minimum(*xs, name=None) -> Tensor:
    """Element-wise minimum of one or more tensors, broadcast."""
    return layer("Min", list(xs), name)


def reduce_mean(x, axes, keepdims=True, name=None) -> Tensor:
    """Mean over per-sample ``axes`` (``reduce_mean(x, (2, 3))`` is global average pooling)."""
    return layer("ReduceMean", [x], name, axes=axes, keepdims=keepdims)


def reduce_sum(x, axes, keepdims=True, name=None) -> Tensor:
    return layer("ReduceSum", [x], name, axes=axes, keepdims=keepdims)


def reduce_max(x, axes, keepdims=True, name=None) -> Tensor:
    return layer("ReduceMax", [x], name, axes=axes, keepdims=keepdims)


def reduce_min(x, axes, keepdims=True, name=None) -> Tensor:
    return layer("ReduceMin", [x], name, axes=axes, keepdims=keepdims)


def layer_norm(x, axis=-1, eps=1e-5, bias=True, name=None) -> Tensor:
    """Normalise each sample over axes ``axis`` .. last (``axis=-1``: channels-last, as ConvNeXt)."""
    return layer("LayerNorm", [x], name, axis=axis, eps=eps, bias=bias)


def group_norm(x, num_groups, eps=1e-5, name=None) -> Tensor:
    return layer("GroupNorm", [x], name, num_groups=num_groups, eps=eps)


def instance_norm(x, eps=1e-5, name=None) -> Tensor:
    return layer("InstanceNorm", [x], name, eps=eps)


def tile(x, repeats, name=None) -> Tensor:
    """Repeat each sample ``repeats[i]`` times along its axis i + 1 (the batch is not repeated)."""
    return layer("Tile", [x], name, repeats=tuple(repeats))


# -- composition helpers ------------------------------------------------------------------

def branches(x: Tensor, *fns: Callable[[Tensor], Tensor]) -> list[Tensor]:
    """Apply each function to the same input (Inception-style branches)."""
    return [fn(x) for fn in fns]


def sequential(x: Tensor, *fns: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply functions one after another, like ``nn.Sequential``."""
    for fn in fns:
        x = fn(x)
    return x


# -- the model ---------------------------------------------------------------------------

def Model(inputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor], name: str = "model",
          seed: int = 0, training: bool = False) -> Graph:  # noqa: N802 - reads like a class, as in Keras
    """Collect everything ``outputs`` depends on into a verified Graph with initialised parameters."""
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    layers = _collect(inputs, outputs)
    names = _assign_names(inputs, layers)
    graph = Graph(name)
    graph.training = training
    for t in inputs:
        graph.add_input(names[t], t.type)
    for t in layers:
        specs = get_op(t.op).param_specs(t.attrs, [p.type for p in t.parents])
        node = Node(names[t], t.op, [names[p] for p in t.parents], dict(t.attrs), type=t.type)
        for spec in specs:
            key = f"{node.name}.{spec.role}"
            node.params[spec.role] = key
            graph.params[key] = t.fixed[spec.role] if spec.role in t.fixed else initialize(spec, key, seed)
        graph.add_node(node)
    graph.outputs = [names[t] for t in outputs]
    return graph.verify()


def _collect(inputs: list[Tensor], outputs: list[Tensor]) -> list[Tensor]:
    """The layers outputs depend on, in creation order (a valid topological order)."""
    seen: dict[int, Tensor] = {}
    stack = list(outputs)
    input_ids = {t.uid for t in inputs}
    while stack:
        t = stack.pop()
        if t.uid in seen or t.uid in input_ids:
            continue
        if t.op is None:
            raise GraphError(f"the outputs depend on input '{t.name}', which is not among the Model inputs")
        seen[t.uid] = t
        stack.extend(t.parents)
    return sorted(seen.values(), key=lambda t: t.uid)


def _assign_names(inputs: Iterable[Tensor], layers: list[Tensor]) -> dict[Tensor, str]:
    names: dict[Tensor, str] = {}
    taken: set[str] = set()
    for t in [*inputs, *layers]:
        if t.explicit_name:
            if t.explicit_name in taken:
                raise GraphError(f"two layers are both named '{t.explicit_name}'; names must be unique")
            taken.add(t.explicit_name)
            names[t] = t.explicit_name
    for t in layers:
        if t in names:
            continue
        candidate, k = f"{t.scope}{t.base}", 0
        while candidate in taken:
            k += 1
            candidate = f"{t.scope}{t.base}_{k}"
        taken.add(candidate)
        names[t] = candidate
    return names
