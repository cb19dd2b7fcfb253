"""Conv2d and ConvTranspose2d: attributes, shapes, parameters (torch layouts), MACs, windows.

Both take one, two or three spatial axes, (N, C, L), (N, C, H, W) or (N, C, D, H, W), as ONNX's
Conv does; the spatial rank comes from the input, and the names keep their 2-D spelling so graphs,
passes and saved files stay as they were. Padding is stored as ONNX orders it: the begins, then the
ends ((top, left, bottom, right) in 2-D).
"""

from __future__ import annotations

import math

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec, Window, conv_out, fmt_shape, fmt_sizes, padded_elements, padded_size
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_list, onnx_table
from cnngraph.types import TensorType

INITS = ("he", "he_fan_out", "glorot", "lecun", "torch", "normal_0.01", "bilinear", "zeros")


class _ConvBase(Op):
    required = ("out_channels", "kernel_size")
    short = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d", "groups": "g"}

    def _common(self, node: str, attrs: dict, inputs: list[TensorType]) -> dict:
        c, r = self.spatial(node, inputs[0])[1], inputs[0].rank - 2
        a = dict(attrs)
        a["out_channels"] = self.ints(node, "out_channels", a["out_channels"], 1, 1)[0]
        a["kernel_size"] = self.window_ints(node, "kernel_size", a["kernel_size"], r)
        a["stride"] = self.window_ints(node, "stride", a["stride"], r)
        a["dilation"] = self.window_ints(node, "dilation", a["dilation"], r)
        a["groups"] = g = self.ints(node, "groups", a["groups"], 1, 1)[0]
        a["bias"] = bool(a["bias"])
        if a["weight_init"] not in INITS:
            raise self.attr_error(node, f"weight_init must be one of {INITS}, got {a['weight_init']!r}")
        if c % g or a["out_channels"] % g:
            raise self.attr_error(
                node, f"groups={g} must divide both in_channels={c} and out_channels={a['out_channels']}"
            )
        return a


@register
class Conv2d(_ConvBase):
    """Cross-correlation over 1 to 3 spatial axes, PyTorch semantics; padding may be "same" (TF
    SAME_UPPER) or "valid"."""

    name = "Conv2d"
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True, "weight_init": "he"}
    writes_into = True  # inherited by FusedConv2d, whose kernels write into a destination too

    def check(self, node, attrs, inputs):
        a = self._common(node, attrs, inputs)
        size = inputs[0].shape[2:]
        kernel, stride, dilation = a["kernel_size"], a["stride"], a["dilation"]
        if a["padding"] == "same":
            a["padding"] = _same_pads(size, kernel, stride, dilation)
        elif a["padding"] == "valid":
            a["padding"] = (0,) * (2 * len(size))
        else:
            a["padding"] = self.pads(node, a["padding"], len(size))
        padded = padded_size(size, a["padding"])
        if any(d * (k - 1) + 1 > p for k, d, p in zip(kernel, dilation, padded)):
            raise self.error(
                node,
                f"kernel {fmt_sizes(kernel)} (dilation {fmt_sizes(dilation)}) is larger than its padded input "
                f"{fmt_sizes(padded)} (input {fmt_shape(inputs[0].shape)}, padding {a['padding']})",
            )
        return a

    def infer(self, node, attrs, inputs):
        n, _, *size = inputs[0].shape
        r = len(size)
        pads = attrs["padding"]
        out = (conv_out(m, k, s, b + e, d) for m, k, s, d, b, e in zip(
            size, attrs["kernel_size"], attrs["stride"], attrs["dilation"], pads[:r], pads[r:]))
        return TensorType((n, attrs["out_channels"], *out), inputs[0].dtype)

    def param_specs(self, attrs, inputs):
        c = inputs[0].shape[1]
        o, g, kernel = attrs["out_channels"], attrs["groups"], attrs["kernel_size"]
        taps = math.prod(kernel)
        fan_in, fan_out = c // g * taps, o // g * taps
        specs = [ParamSpec("weight", (o, c // g, *kernel), attrs["weight_init"], fan_in, fan_out)]
        if attrs["bias"]:
            specs.append(ParamSpec("bias", (o,), "torch_bias", fan_in, fan_out))
        return specs

    def macs(self, attrs, inputs, output):
        c = inputs[0].shape[1]
        return output.per_sample() * (c // attrs["groups"]) * math.prod(attrs["kernel_size"])

    def window(self, attrs, inputs):
        kernel = tuple(d * (k - 1) + 1 for k, d in zip(attrs["kernel_size"], attrs["dilation"]))
        return Window(kernel, attrs["stride"], attrs["padding"][:len(kernel)])

    def workspace(self, attrs, inputs, output):
        """The padded input, and the im2col columns (C*prod(kernel) rows of prod(out)) the GEMM reads."""
        columns = inputs[0].shape[1] * math.prod(attrs["kernel_size"]) * math.prod(output.shape[2:])
        return padded_elements(inputs[0], attrs["padding"]) + columns


@register
class ConvTranspose2d(_ConvBase):
    """Transposed convolution (the gradient of Conv2d) over 1 to 3 spatial axes, PyTorch semantics and
    weight layout."""

    name = "ConvTranspose2d"
    defaults = {
        "stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1, "bias": True,
        "weight_init": "torch",
    }
    short = {**_ConvBase.short, "output_padding": "op"}

    def check(self, node, attrs, inputs):
        a = self._common(node, attrs, inputs)
        r = inputs[0].rank - 2
        a["padding"] = self.pads(node, a["padding"], r)
        a["output_padding"] = self.window_ints(node, "output_padding", a["output_padding"], r, 0)
        for op_, s, d in zip(a["output_padding"], a["stride"], a["dilation"]):
            if op_ >= max(s, d):
                raise self.attr_error(
                    node, f"output_padding {a['output_padding']} must be smaller than stride or dilation"
                )
        if min(self.infer(node, a, inputs).shape[2:]) < 1:
            raise self.error(node, f"padding {a['padding']} leaves no output for input {fmt_shape(inputs[0].shape)}")
        return a

    def infer(self, node, attrs, inputs):
        n, _, *size = inputs[0].shape
        r = len(size)
        out = []
        for m, k, s, d, p0, p1, op_ in zip(
            size, attrs["kernel_size"], attrs["stride"], attrs["dilation"],
            attrs["padding"][:r], attrs["padding"][r:], attrs["output_padding"],
        ):
            out.append((m - 1) * s - p0 - p1 + d * (k - 1) + op_ + 1)
        return TensorType((n, attrs["out_channels"], *out), inputs[0].dtype)

    def param_specs(self, attrs, inputs):
        c = inputs[0].shape[1]
        o, g, kernel = attrs["out_channels"], attrs["groups"], attrs["kernel_size"]
        taps = math.prod(kernel)
        fan_in, fan_out = o // g * taps, c // g * taps  # torch computes fans from dim 1
        specs = [ParamSpec("weight", (c, o // g, *kernel), attrs["weight_init"], fan_in, fan_out)]
        if attrs["bias"]:
            specs.append(ParamSpec("bias", (o,), "torch_bias", fan_in, fan_out))
        return specs

    def macs(self, attrs, inputs, output):
        return inputs[0].per_sample() * (attrs["out_channels"] // attrs["groups"]) * math.prod(attrs["kernel_size"])

    def workspace(self, attrs, inputs, output):
        """The GEMM's columns (O*prod(kernel) rows of prod(in)) and the padded output they scatter into (col2im)."""
        columns = attrs["out_channels"] * math.prod(attrs["kernel_size"]) * math.prod(inputs[0].shape[2:])
        return columns + padded_elements(output, attrs["padding"])

    def window(self, attrs, inputs):
        ks, ss, pads = [], [], []
        r = inputs[0].rank - 2
        for k, s, d, p in zip(attrs["kernel_size"], attrs["stride"], attrs["dilation"], attrs["padding"][:r]):
            k_eff = d * (k - 1) + 1
            k_in = math.ceil(k_eff / s)  # input positions one output position touches
            ks.append(k_in)
            ss.append(1 / s)
            pads.append((k_in - 1) / 2 - (p - (k_eff - 1) / 2) / s)
        return Window(tuple(ks), tuple(ss), tuple(pads))


def _same_pads(size, kernel, stride, dilation) -> tuple[int, ...]:
    """TF/ONNX SAME_UPPER: output = ceil(input / stride), extra padding at the end; (begins..., ends...)."""
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, stride, dilation):
        out = -(-n // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return (*begin, *end)


def onnx_auto_pads(auto_pad: str, size, kernel, stride, dilation) -> tuple[int, ...] | None:
    """Explicit pads (begins..., ends...) for ONNX ``auto_pad`` of a Conv or pool; None for NOTSET (the
    pads attribute holds).

    SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the start.
    """
    if auto_pad == "NOTSET":
        return None
    if auto_pad == "VALID":
        return (0,) * (2 * len(size))
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ValueError(f"auto_pad {auto_pad!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    pads = _same_pads(size, kernel, stride, dilation)
    r = len(size)
    return pads if auto_pad == "SAME_UPPER" else (*pads[r:], *pads[:r])


# -- ONNX --------------------------------------------------------------------------------

def _conv_load(ctx, node, spec):
    a = node.attrs
    auto = a.get("auto_pad", "NOTSET")
    size = ctx.spatial(node, 0)[2:]
    ones = (1,) * len(size)
    pads = ctx.attempt(node, onnx_auto_pads, auto, size, ctx.constant(node, 1).shape[2:],
                       a.get("strides", ones), a.get("dilations", ones)) if auto != "NOTSET" else None
    ctx.import_table(node, spec, consumed=("auto_pad",), **({} if pads is None else {"padding": pads}))


def _conv_transpose_load(ctx, node, spec):
    """``output_shape`` and SAME auto_pad decide the pads from the output size (ONNX ConvTranspose-11)."""
    a = node.attrs
    auto = a.get("auto_pad", "NOTSET")
    if "output_shape" not in a and auto in ("NOTSET", "VALID"):
        return ctx.import_table(node, spec, consumed=("auto_pad",), **({"padding": 0} if auto == "VALID" else {}))
    size = ctx.spatial(node, 0)[2:]
    ones = (1,) * len(size)
    strides = a.get("strides", ones)
    want = a.get("output_shape", [n * s for n, s in zip(size, strides)])[-len(size):]
    total = [
        s * (n - 1) + op + (k - 1) * d + 1 - o
        for n, s, op, k, d, o in zip(size, strides, a.get("output_padding", (0,) * len(size)),
                                     ctx.constant(node, 1).shape[2:], a.get("dilations", ones), want)
    ]
    if min(total) < 0:
        raise ctx.fail(node, f"output_shape {list(want)} is larger than the input allows without output_padding")
    begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    pads = (*begin, *(t - b for t, b in zip(total, begin)))
    ctx.import_table(node, spec, consumed=("auto_pad", "output_shape"), padding=pads)


def _conv_derive(attrs, params, in_types):
    weight = params["weight"]
    return {"out_channels": weight.shape[0], "kernel_size": weight.shape[2:], "bias": "bias" in params}


def _conv_transpose_derive(attrs, params, in_types):
    """The (C_in, O/g, *kernel) weight holds out_channels per group."""
    return {**_conv_derive(attrs, params, in_types), "out_channels": params["weight"].shape[1] * attrs.get("groups", 1)}


WINDOW_ATTRS = (
    OnnxAttr("kernel_size", "kernel_shape", as_list),
    OnnxAttr("stride", "strides", as_list),
    OnnxAttr("padding", "pads", as_list),
    OnnxAttr("dilation", "dilations", as_list),
)
GROUPS = OnnxAttr("groups", "group")
ONNX = onnx_table(
    OnnxOp("Conv2d", "Conv", (*WINDOW_ATTRS, GROUPS), ("weight", "bias"), derive=_conv_derive, load=_conv_load),
    OnnxOp("ConvTranspose2d", "ConvTranspose", (*WINDOW_ATTRS, OnnxAttr("output_padding", "output_padding", as_list),
                                                  GROUPS),
           ("weight", "bias"), derive=_conv_transpose_derive, load=_conv_transpose_load),
)
