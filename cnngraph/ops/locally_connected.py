"""LocallyConnected2d: a convolution without weight sharing, as DeepFace's L4-L6 (Taigman et al., 2014).

Every output position (i, j) has its own (O, C, kh, kw) filter and its own bias, so the weight is
(OH, OW, O, C, kh, kw): ``weight[i, j]`` is the Conv2d filter used at that position, and the bias is
(O, OH, OW), one per output value, as Keras' ``LocallyConnected2D`` unties it. ONNX has no such op;
it exports as patch extraction (a grouped Conv whose fixed filters are one-hot, one per kernel tap)
followed by an Einsum with the per-position weights, and an Add of the bias. The importer folds the
Conv and Einsum back into this op (the bias stays an Add of a constant: see ``_load_einsum``).
"""

from __future__ import annotations

import numpy as np

from cnngraph.ops import register
from cnngraph.ops.base import Op, ParamSpec, Window, conv_out, fmt_shape, padded_elements
from cnngraph.ops.onnx_mapping import OnnxOp, onnx_table
from cnngraph.types import TensorType

EINSUM = "nkhw,hwok->nohw"  # patches (N, C*kh*kw, OH, OW) against weights (OH, OW, O, C*kh*kw)


@register
class LocallyConnected2d(Op):
    """Unshared 2-D filters: ``out[n, o, i, j] = sum_{c,ki,kj} w[i, j, o, c, ki, kj] * x_pad[n, c, i*sh+ki, j*sw+kj]
    + b[o, i, j]``. Padding is an int, (ph, pw) or (top, left, bottom, right); no dilation or groups."""

    name = "LocallyConnected2d"
    required = ("out_channels", "kernel_size")
    defaults = {"stride": 1, "padding": 0, "bias": True, "weight_init": "he"}
    short = {"kernel_size": "k", "stride": "s", "padding": "p"}

    def check(self, node, attrs, inputs):
        _, c, h, w = self.image(node, inputs[0])
        a = dict(attrs)
        a["out_channels"] = self.ints(node, "out_channels", a["out_channels"], 1, 1)[0]
        a["kernel_size"] = self.window_ints(node, "kernel_size", a["kernel_size"], 2)
        a["stride"] = self.window_ints(node, "stride", a["stride"], 2)
        a["padding"] = self.pads(node, a["padding"])
        a["bias"] = bool(a["bias"])
        if a["weight_init"] not in ("he", "glorot", "lecun", "torch"):
            raise self.attr_error(node, f"weight_init must be one of he, glorot, lecun, torch, got {a['weight_init']!r}")
        (kh, kw), (pt, pl, pb, pr) = a["kernel_size"], a["padding"]
        if kh > h + pt + pb or kw > w + pl + pr:
            raise self.error(node, f"kernel {kh}x{kw} is larger than its padded input {h + pt + pb}x{w + pl + pr} "
                                   f"(input {fmt_shape(inputs[0].shape)}, padding {a['padding']})")
        return a

    def infer(self, node, attrs, inputs):
        n, _, h, w = inputs[0].shape
        return TensorType((n, attrs["out_channels"], *self.positions(attrs, inputs[0])), inputs[0].dtype)

    @staticmethod
    def positions(attrs, t: TensorType) -> tuple[int, int]:
        """(OH, OW): how many filters the layer holds along each spatial axis."""
        _, _, h, w = t.shape
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel_size"], attrs["stride"], attrs["padding"]
        return conv_out(h, kh, sh, pt + pb), conv_out(w, kw, sw, pl + pr)

    def param_specs(self, attrs, inputs):
        c, o = inputs[0].shape[1], attrs["out_channels"]
        (kh, kw), (oh, ow) = attrs["kernel_size"], self.positions(attrs, inputs[0])
        fan_in, fan_out = c * kh * kw, o * kh * kw
        specs = [ParamSpec("weight", (oh, ow, o, c, kh, kw), attrs["weight_init"], fan_in, fan_out)]
        if attrs["bias"]:
            specs.append(ParamSpec("bias", (o, oh, ow), "zeros", fan_in, fan_out))
        return specs

    def macs(self, attrs, inputs, output):
        kh, kw = attrs["kernel_size"]
        _, o, oh, ow = output.shape
        return o * oh * ow * inputs[0].shape[1] * kh * kw

    def window(self, attrs, inputs):
        return Window(attrs["kernel_size"], attrs["stride"], attrs["padding"][:2])

    def workspace(self, attrs, inputs, output):
        """The padded input and the patches (C*kh*kw rows of OH*OW) the per-position GEMMs read."""
        kh, kw = attrs["kernel_size"]
        _, _, oh, ow = output.shape
        return padded_elements(inputs[0], attrs["padding"]) + inputs[0].shape[1] * kh * kw * oh * ow


def patch_filters(channels: int, kh: int, kw: int, dtype=np.float32) -> np.ndarray:
    """(C*kh*kw, 1, kh, kw) one-hot filters: a Conv with ``group=C`` copies tap (ki, kj) of channel c
    into output channel c*kh*kw + ki*kw + kj, the order of the weight's flattened (C, kh, kw) axes."""
    taps = np.eye(kh * kw, dtype=dtype).reshape(kh * kw, 1, kh, kw)
    return np.tile(taps, (channels, 1, 1, 1))


# -- ONNX --------------------------------------------------------------------------------

def _export(ex, node, spec):
    x = node.inputs[0]
    c = ex.type(x).shape[1]
    a = node.attrs
    (kh, kw), weight = a["kernel_size"], ex.graph.params[node.params["weight"]]
    oh, ow, o = weight.shape[:3]
    filters = ex.initializer(f"{node.name}/patch_filters", patch_filters(c, kh, kw))
    patches = ex.add_node("Conv", [x, filters], [f"{node.name}/patches"], f"{node.name}/patches",
                          group=c, kernel_shape=[kh, kw], strides=list(a["stride"]), pads=list(a["padding"]))
    flat = ex.initializer(f"{node.name}/weight", weight.reshape(oh, ow, o, -1))
    out = f"{node.name}/einsum" if a["bias"] else node.name
    ex.add_node("Einsum", [patches, flat], [out], out, equation=EINSUM)
    if a["bias"]:
        ex.add_node("Add", [out, ex.param(node.params["bias"])], [node.name], node.name)


def _load_einsum(ctx, node):
    """An Einsum is read only as this op's export: patches from a one-hot grouped Conv (imported as a
    Conv2d, dropped once nothing reads it) against constant per-position weights. The bias Add that
    follows is imported by Add's own importer, as an Add of a constant."""
    equation = "".join(str(node.attrs.get("equation", "")).split())
    if equation != EINSUM or ctx.is_constant(node, 0) or not ctx.is_constant(node, 1):
        raise ctx.fail(node, f"Einsum is supported only as a locally connected layer's export: equation "
                             f"'{EINSUM}' on patches from a one-hot grouped Conv and constant weights; got "
                             f"equation {equation!r}")
    producer = ctx.value(node, 0)
    conv = None if producer in ctx.graph.inputs else ctx.graph.node(producer)
    x = conv.inputs[0] if conv is not None and conv.op == "Conv2d" else None
    weight = ctx.graph.params[conv.params["weight"]] if x is not None else None
    c = ctx.graph.type_of(x).shape[1] if x is not None else 0
    kh, kw = conv.attrs["kernel_size"] if x is not None else (0, 0)
    extracts = (x is not None and "bias" not in conv.params and conv.attrs["dilation"] == (1, 1)
                and conv.attrs["groups"] == c and weight.shape == (c * kh * kw, 1, kh, kw)
                and np.array_equal(weight, patch_filters(c, kh, kw, weight.dtype)))
    if not extracts:
        raise ctx.fail(node, f"input 0 ('{node.inputs[0]}') must be patches from a grouped Conv with one-hot "
                             f"filters (a locally connected layer's export)")
    flat = ctx.constant(node, 1)
    _, _, oh, ow = conv.type.shape
    if flat.ndim != 4 or flat.shape[:2] != (oh, ow) or flat.shape[3] != c * kh * kw:
        raise ctx.fail(node, f"weights of shape {flat.shape}; expected ({oh}, {ow}, O, {c * kh * kw})")
    weight = flat.reshape(oh, ow, flat.shape[2], c, kh, kw)
    attrs = {"out_channels": flat.shape[2], "kernel_size": (kh, kw), "stride": conv.attrs["stride"],
             "padding": conv.attrs["padding"], "bias": False}
    ctx.emit(node, "LocallyConnected2d", [x], attrs, {"weight": weight})


ONNX = onnx_table(OnnxOp("LocallyConnected2d", None, export=_export), imports={"Einsum": _load_einsum})
