"""Convolutions on the CuPy backend through the cuDNN frontend (``pip install nvidia-cudnn-frontend``).

NOT YET RUN ON A GPU: written against ``shared/gpu/cudnn_conv_example.py`` (which ran on the H200)
and the frontend's documented Python API, in a session without a device. Until a GPU session has
run ``pytest -m gpu`` with it, treat it as unproven; the generic kernels remain every backend's
fallback, and resolution picks them (reporting why) wherever this one declines a node.

One cuDNN graph per node and input shapes, built by ``prepare`` (so the executor caches it per batch
size): a ``FusedConv2d`` is one graph, conv -> bias -> residual add -> activation. Tensors are
declared with logical NCHW dims and the strides of their storage: contiguous NCHW, or for nodes the
channels_last pass lowered, NHWC (the layout cuDNN's tensor cores read). The workspace comes
from CuPy's memory pool and the handle runs on CuPy's current stream. Training convolutions use
the data- and weight-gradient graphs, built on first use and kept with the forward plan.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from cnngraph.backends.kernels import ANY_LAYOUT, backward, kernel
from cnngraph.ops.base import LAYOUT, NHWC

DTYPES = ("float16", "float32")
ACTIVATIONS = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}  # cuDNN pointwise ops they map to
_HANDLES: dict[int, Any] = {}  # one cuDNN handle per device


def _cudnn() -> Any:
    try:
        return importlib.import_module("cudnn")
    except ImportError:
        return None


def supports(node, dtype: str) -> str | None:
    """Why cuDNN does not run this node here, or None."""
    if _cudnn() is None:
        return "the cuDNN frontend is not installed (pip install nvidia-cudnn-frontend)"
    if dtype not in DTYPES:
        return f"cuDNN convolutions run {' and '.join(DTYPES)} here, not {dtype}"
    if len(node.attrs["kernel_size"]) != 2:
        return f"only 2-D convolutions are wired to cuDNN, not {len(node.attrs['kernel_size'])}-D ones"
    if node.attrs["groups"] != 1:
        return "grouped convolutions are not wired to cuDNN yet"
    act = node.attrs.get("activation")
    if act is not None and act not in ACTIVATIONS:
        return f"the {act} epilogue is not wired to cuDNN yet"
    return None


def contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return strides[::-1]


def channels_last_strides(shape: tuple[int, ...]) -> list[int]:
    """Strides of logical (N, C, H, W) dims over (N, H, W, C) storage."""
    n, c, h, w = shape
    return [h * w * c, 1, w * c, c]


def logical(shape: tuple[int, ...], nhwc: bool) -> tuple[int, ...]:
    """The logical NCHW dims of an array stored as ``shape``."""
    return (shape[0], shape[3], shape[1], shape[2]) if nhwc else tuple(shape)


def physical(shape: tuple[int, ...], nhwc: bool) -> tuple[int, ...]:
    return (shape[0], shape[2], shape[3], shape[1]) if nhwc else tuple(shape)


def output_shape(x_shape, weight_shape, attrs) -> tuple[int, int, int, int]:
    n, _, h, w = x_shape
    o, _, kh, kw = weight_shape
    pt, pl, pb, pr = attrs["padding"]
    (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
    return n, o, (h + pt + pb - dh * (kh - 1) - 1) // sh + 1, (w + pl + pr - dw * (kw - 1) - 1) // sw + 1


@dataclass
class Plan:
    """A built cuDNN graph, its tensors by role, and what it needs to run."""

    graph: Any
    tensors: dict[str, Any]
    workspace: int
    out_shape: tuple[int, ...]  # as stored
    grads: dict[str, Plan] = field(default_factory=dict)  # data and weight gradients, built on first use


class _Builder:
    """A cuDNN graph over contiguous NCHW tensors of one dtype, float32 inside."""

    def __init__(self, dtype: str, nhwc: bool = False):
        self.cudnn, self.nhwc = _cudnn(), nhwc
        self.io = getattr(self.cudnn.data_type, "HALF" if dtype == "float16" else "FLOAT")
        self.graph = self.cudnn.pygraph(io_data_type=self.io, intermediate_data_type=self.cudnn.data_type.FLOAT,
                                        compute_data_type=self.cudnn.data_type.FLOAT, handle=handle())
        self.tensors: dict[str, Any] = {}

    def tensor(self, role: str, shape, activation: bool = True) -> Any:
        """A tensor of logical NCHW ``shape``; activations in the graph's storage layout, weights contiguous."""
        strides = channels_last_strides(shape) if activation and self.nhwc else contiguous_strides(shape)
        self.tensors[role] = self.graph.tensor(name=role, dim=list(shape), stride=strides, data_type=self.io)
        return self.tensors[role]

    def geometry(self, attrs) -> dict:
        pt, pl, pb, pr = attrs["padding"]
        return dict(pre_padding=[pt, pl], post_padding=[pb, pr], stride=list(attrs["stride"]),
                    dilation=list(attrs["dilation"]))

    def finish(self, out, shape, activation: bool = True) -> Plan:
        nhwc = activation and self.nhwc
        strides = channels_last_strides(shape) if nhwc else contiguous_strides(shape)
        out.set_output(True).set_data_type(self.io).set_dim(list(shape)).set_stride(strides)
        self.tensors["out"] = out
        self.graph.build([self.cudnn.heur_mode.A, self.cudnn.heur_mode.FALLBACK])
        return Plan(self.graph, self.tensors, max(1, self.graph.get_workspace_size()), physical(shape, nhwc))


def handle() -> Any:
    cupy = importlib.import_module("cupy")
    device = cupy.cuda.Device().id
    if device not in _HANDLES:
        _HANDLES[device] = _cudnn().create_handle()
    return _HANDLES[device]


def prepare(xp, node, shapes, dtype: str) -> Plan:
    """The forward graph: conv, then the node's bias, residual add and activation, fused."""
    attrs = node.attrs
    b = _Builder(dtype, attrs.get(LAYOUT) == NHWC)
    x_shape = logical(shapes[0], b.nhwc)
    weight_shape = _weight_shape(node, x_shape)
    y = b.graph.conv_fprop(image=b.tensor("x", x_shape), weight=b.tensor("weight", weight_shape, False),
                           **b.geometry(attrs))
    out = output_shape(x_shape, weight_shape, attrs)
    if attrs["bias"]:
        y = b.graph.bias(input=y, bias=b.tensor("bias", (1, out[1], 1, 1), False))
    if attrs.get("residual"):
        y = b.graph.add(a=y, b=b.tensor("residual", out))
    if attrs.get("activation"):
        y = getattr(b.graph, ACTIVATIONS[attrs["activation"]])(input=y)
    return b.finish(y, out)


def _weight_shape(node, x_shape) -> tuple[int, int, int, int]:
    kh, kw = node.attrs["kernel_size"]
    return node.attrs["out_channels"], x_shape[1] // node.attrs["groups"], kh, kw


def execute(xp, plan: Plan, arrays: dict[str, Any], dtype) -> Any:
    """Run a built graph on CuPy's current stream; returns the new output array."""
    out = xp.empty(plan.out_shape, dtype=dtype)
    h = handle()
    _cudnn().set_stream(handle=h, stream=xp.cuda.get_current_stream().ptr)
    feeds = {plan.tensors[role]: xp.ascontiguousarray(a) for role, a in arrays.items()}
    feeds[plan.tensors["out"]] = out
    plan.graph.execute(feeds, xp.empty(plan.workspace, dtype=xp.uint8), handle=h)
    return out


def _arrays(inputs, params, attrs) -> dict[str, Any]:
    arrays = {"x": inputs[0], "weight": params["weight"]}
    if attrs["bias"]:
        arrays["bias"] = params["bias"].reshape(1, -1, 1, 1)
    if attrs.get("residual"):
        arrays["residual"] = inputs[1]
    return arrays


def forward(xp, inputs, params, attrs, ctx):
    return execute(xp, ctx.plan, _arrays(inputs, params, attrs), inputs[0].dtype)


for _op in ("Conv2d", "FusedConv2d"):
    kernel(_op, backend="cupy", dtypes=DTYPES, supports=supports, prepare=prepare, layouts=ANY_LAYOUT)(forward)


def _gradient_plan(plan: Plan, which: str, node_attrs, x_shape, weight_shape, dtype: str) -> Plan:
    """The data-gradient (conv_dgrad) or weight-gradient (conv_wgrad) graph for one forward plan (training
    graphs stay NCHW, see passes/channels_last.py)."""
    if which not in plan.grads:
        b = _Builder(dtype)
        dy = b.tensor("dy", plan.out_shape)
        if which == "dx":
            g = b.graph.conv_dgrad(loss=dy, filter=b.tensor("weight", weight_shape, False), **b.geometry(node_attrs))
            plan.grads[which] = b.finish(g, x_shape)
        else:
            g = b.graph.conv_wgrad(image=b.tensor("x", x_shape), loss=dy, **b.geometry(node_attrs))
            plan.grads[which] = b.finish(g, weight_shape, False)
    return plan.grads[which]


@backward("Conv2d", keeps=("inputs",), backend="cupy")
def conv2d_backward(xp, grad, saved, params, attrs):
    x, weight, dtype = saved.inputs[0], params["weight"], grad.dtype.name
    dx, grads = None, {}
    if saved.need_inputs[0]:
        dx_plan = _gradient_plan(saved.plan, "dx", attrs, x.shape, weight.shape, dtype)
        dx = execute(xp, dx_plan, {"dy": grad, "weight": weight}, grad.dtype)
    if "weight" in saved.need_params:
        dw_plan = _gradient_plan(saved.plan, "dw", attrs, x.shape, weight.shape, dtype)
        grads["weight"] = execute(xp, dw_plan, {"dy": grad, "x": x}, grad.dtype)
    if "bias" in saved.need_params:
        grads["bias"] = grad.sum(axis=(0, 2, 3))
    return [dx], grads
