"""Conv2d and ConvTranspose2d: attributes, shapes, parameters (torch layouts), MACs, windows."""

from __future__ import annotations

import math

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec, Window, conv_out, fmt_shape, padded_elements
from cnngraph.ops.onnx_mapping import OnnxAttr, OnnxOp, as_list, onnx_table
from cnngraph.types import TensorType

INITS = ("he", "he_fan_out", "glorot", "lecun", "torch", "normal_0.01", "bilinear", "zeros")


class _ConvBase(Op):
    required = ("out_channels", "kernel_size")
    short = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d", "groups": "g"}

    def _common(self, node: str, attrs: dict, inputs: list[TensorType]) -> dict:
        _, c, h, w = self.image(node, inputs[0])
        a = dict(attrs)
        a["out_channels"] = self.ints(node, "out_channels", a["out_channels"], 1, 1)[0]
        a["kernel_size"] = self.window_ints(node, "kernel_size", a["kernel_size"], 2)
        a["stride"] = self.window_ints(node, "stride", a["stride"], 2)
        a["dilation"] = self.window_ints(node, "dilation", a["dilation"], 2)
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
    """2-D cross-correlation, PyTorch semantics; padding may be "same" (TF SAME_UPPER) or "valid"."""

    name = "Conv2d"
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True, "weight_init": "he"}
    writes_into = True  # inherited by FusedConv2d, whose kernels write into a destination too

    def check(self, node, attrs, inputs):
        a = self._common(node, attrs, inputs)
        _, c, h, w = inputs[0].shape
        (kh, kw), (sh, sw), (dh, dw) = a["kernel_size"], a["stride"], a["dilation"]
        if a["padding"] == "same":
            a["padding"] = _same_pads((h, w), (kh, kw), (sh, sw), (dh, dw))
        elif a["padding"] == "valid":
            a["padding"] = (0, 0, 0, 0)
        else:
            a["padding"] = self.pads(node, a["padding"])
        pt, pl, pb, pr = a["padding"]
        if dh * (kh - 1) + 1 > h + pt + pb or dw * (kw - 1) + 1 > w + pl + pr:
            raise self.error(
                node,
                f"kernel {kh}x{kw} (dilation {dh}x{dw}) is larger than its padded input "
                f"{h + pt + pb}x{w + pl + pr} (input {fmt_shape(inputs[0].shape)}, padding {a['padding']})",
            )
        return a

    def infer(self, node, attrs, inputs):
        n, _, h, w = inputs[0].shape
        (kh, kw), (sh, sw), (dh, dw) = attrs["kernel_size"], attrs["stride"], attrs["dilation"]
        pt, pl, pb, pr = attrs["padding"]
        oh = conv_out(h, kh, sh, pt + pb, dh)
        ow = conv_out(w, kw, sw, pl + pr, dw)
        return TensorType((n, attrs["out_channels"], oh, ow), inputs[0].dtype)

    def param_specs(self, attrs, inputs):
        c = inputs[0].shape[1]
        o, g = attrs["out_channels"], attrs["groups"]
        kh, kw = attrs["kernel_size"]
        fan_in, fan_out = c // g * kh * kw, o // g * kh * kw
        specs = [ParamSpec("weight", (o, c // g, kh, kw), attrs["weight_init"], fan_in, fan_out)]
        if attrs["bias"]:
            specs.append(ParamSpec("bias", (o,), "torch_bias", fan_in, fan_out))
        return specs

    def macs(self, attrs, inputs, output):
        c = inputs[0].shape[1]
        kh, kw = attrs["kernel_size"]
        _, o, oh, ow = output.shape
        return o * oh * ow * (c // attrs["groups"]) * kh * kw

    def window(self, attrs, inputs):
        (kh, kw), (dh, dw) = attrs["kernel_size"], attrs["dilation"]
        return Window((dh * (kh - 1) + 1, dw * (kw - 1) + 1), attrs["stride"], attrs["padding"][:2])

    def workspace(self, attrs, inputs, output):
        """The padded input, and the im2col columns (C*kh*kw rows of OH*OW) the GEMM reads."""
        kh, kw = attrs["kernel_size"]
        _, _, oh, ow = output.shape
        return padded_elements(inputs[0], attrs["padding"]) + inputs[0].shape[1] * kh * kw * oh * ow


@register
class ConvTranspose2d(_ConvBase):
    """Transposed convolution (the gradient of Conv2d), PyTorch semantics and weight layout."""

    name = "ConvTranspose2d"
    defaults = {
        "stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1, "bias": True,
        "weight_init": "torch",
    }
    short = {**_ConvBase.short, "output_padding": "op"}

    def check(self, node, attrs, inputs):
        a = self._common(node, attrs, inputs)
        a["padding"] = self.pads(node, a["padding"])
        a["output_padding"] = self.window_ints(node, "output_padding", a["output_padding"], 2, 0)
        for op_, s, d in zip(a["output_padding"], a["stride"], a["dilation"]):
            if op_ >= max(s, d):
                raise self.attr_error(
                    node, f"output_padding {a['output_padding']} must be smaller than stride or dilation"
                )
        oh, ow = self.infer(node, a, inputs).shape[2:]
        if oh < 1 or ow < 1:
            raise self.error(node, f"padding {a['padding']} leaves no output for input {fmt_shape(inputs[0].shape)}")
        return a

    def infer(self, node, attrs, inputs):
        n, _, h, w = inputs[0].shape
        out = []
        for size, k, s, d, p0, p1, op_ in zip(
            (h, w), attrs["kernel_size"], attrs["stride"], attrs["dilation"],
            attrs["padding"][:2], attrs["padding"][2:], attrs["output_padding"],
        ):
            out.append((size - 1) * s - p0 - p1 + d * (k - 1) + op_ + 1)
        return TensorType((n, attrs["out_channels"], *out), inputs[0].dtype)

    def param_specs(self, attrs, inputs):
        c = inputs[0].shape[1]
        o, g = attrs["out_channels"], attrs["groups"]
        kh, kw = attrs["kernel_size"]
        fan_in, fan_out = o // g * kh * kw, c // g * kh * kw  # torch computes fans from dim 1
        specs = [ParamSpec("weight", (c, o // g, kh, kw), attrs["weight_init"], fan_in, fan_out)]
        if attrs["bias"]:
            specs.append(ParamSpec("bias", (o,), "torch_bias", fan_in, fan_out))
        return specs

    def macs(self, attrs, inputs, output):
        _, c, h, w = inputs[0].shape
        kh, kw = attrs["kernel_size"]
        return c * h * w * (attrs["out_channels"] // attrs["groups"]) * kh * kw

    def workspace(self, attrs, inputs, output):
        """The GEMM's columns (O*kh*kw rows of H*W) and the padded output they scatter into (col2im)."""
        _, _, h, w = inputs[0].shape
        kh, kw = attrs["kernel_size"]
        return attrs["out_channels"] * kh * kw * h * w + padded_elements(output, attrs["padding"])

    def window(self, attrs, inputs):
        ks, ss, pads = [], [], []
        for k, s, d, p in zip(attrs["kernel_size"], attrs["stride"], attrs["dilation"], attrs["padding"][:2]):
            k_eff = d * (k - 1) + 1
            k_in = math.ceil(k_eff / s)  # input positions one output position touches
            ks.append(k_in)
            ss.append(1 / s)
            pads.append((k_in - 1) / 2 - (p - (k_eff - 1) / 2) / s)
        return Window(tuple(ks), tuple(ss), tuple(pads))


def _same_pads(hw, kernel, stride, dilation) -> tuple[int, int, int, int]:
    """TF/ONNX SAME_UPPER: output = ceil(input / stride), extra padding at the end."""
    begin, end = [], []
    for size, k, s, d in zip(hw, kernel, stride, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return (begin[0], begin[1], end[0], end[1])


def onnx_auto_pads(auto_pad: str, hw, kernel, stride, dilation) -> tuple[int, int, int, int] | None:
    """Explicit pads for ONNX ``auto_pad`` of a Conv or pool; None for NOTSET (the pads attribute holds).

    SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the start.
    """
    if auto_pad == "NOTSET":
        return None
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ValueError(f"auto_pad {auto_pad!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    t, l, b, r = _same_pads(hw, kernel, stride, dilation)
    return (t, l, b, r) if auto_pad == "SAME_UPPER" else (b, r, t, l)


# -- ONNX --------------------------------------------------------------------------------

def _conv_load(ctx, node, spec):
    a = node.attrs
    auto = a.get("auto_pad", "NOTSET")
    pads = ctx.attempt(node, onnx_auto_pads, auto, ctx.image(node, 0)[2:], ctx.constant(node, 1).shape[2:],
                       a.get("strides", (1, 1)), a.get("dilations", (1, 1))) if auto != "NOTSET" else None
    ctx.import_table(node, spec, consumed=("auto_pad",), **({} if pads is None else {"padding": pads}))


def _conv_transpose_load(ctx, node, spec):
    """``output_shape`` and SAME auto_pad decide the pads from the output size (ONNX ConvTranspose-11)."""
    a = node.attrs
    auto = a.get("auto_pad", "NOTSET")
    if "output_shape" not in a and auto in ("NOTSET", "VALID"):
        return ctx.import_table(node, spec, consumed=("auto_pad",), **({"padding": 0} if auto == "VALID" else {}))
    hw = ctx.image(node, 0)[2:]
    strides = a.get("strides", (1, 1))
    want = a.get("output_shape", [n * s for n, s in zip(hw, strides)])[-2:]
    total = [
        s * (n - 1) + op + (k - 1) * d + 1 - o
        for n, s, op, k, d, o in zip(hw, strides, a.get("output_padding", (0, 0)), ctx.constant(node, 1).shape[2:],
                                     a.get("dilations", (1, 1)), want)
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
    """The (C_in, O/g, kh, kw) weight holds out_channels per group."""
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
