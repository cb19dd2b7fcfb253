"""Flatten, Reshape, Concat, Slice, Pad and Identity against onnx.reference; errors, views and windows."""

import json

import numpy as np
import pytest

from cnngraph.backends.kernels import RunContext, get_kernel
from cnngraph.errors import AttrError, ShapeError
from cnngraph.frontends import dsl
from cnngraph.ir import TensorType
from cnngraph.ops import Window, get_op
from tests.oracle import cnngraph_op, onnx_reference, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend

I64_MAX = np.iinfo(np.int64).max




def _i64(values):
    return np.array(values, dtype=np.int64)


def _check(got, want):
    np.testing.assert_array_equal(got, want)  # pure data movement: exact


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 7), (3, 2, 1)])
def test_flatten(shape):
    x = random(shape)
    _check(cnngraph_op("Flatten", [x]), onnx_reference("Flatten", [x], {"axis": 1}))


@pytest.mark.parametrize("shape,target,onnx_batch", [
    ((2, 3, 4, 5), (12, 5), 0),  # ONNX 0 copies the batch
    ((2, 3, 4, 5), (-1,), 0),
    ((2, 3, 4, 5), (3, -1, 2), 2),  # or the concrete batch
    ((2, 12), (3, 2, 2), 2),
    ((2, 6), (6, 1, 1), 0),
])
def test_reshape(shape, target, onnx_batch):
    x = random(shape)
    want = onnx_reference("Reshape", [x], {}, {"shape": _i64([onnx_batch, *target])})
    _check(cnngraph_op("Reshape", [x], {"shape": target}), want)


@pytest.mark.parametrize("target,error,match", [
    ((7, -1), ShapeError, r"layer 'op' \(Reshape\): cannot reshape \(N, 3, 4, 5\) \(60 elements per sample\) "
                          r"to \(N, 7, -1\)"),
    ((6, 11), ShapeError, r"cannot reshape \(N, 3, 4, 5\) \(60 elements per sample\) to \(N, 6, 11\)"),
    ((-1, -1), AttrError, "at most one -1"),
    ((0, 60), AttrError, "must be positive"),
])
def test_reshape_errors(target, error, match):
    with pytest.raises(error, match=match):
        cnngraph_op("Reshape", [random((1, 3, 4, 5))], {"shape": target})


@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3, 4, 5), (2, 1, 4, 5), (2, 2, 4, 5)], 1),
    ([(2, 3, 4, 5), (2, 3, 2, 5)], 2),
    ([(2, 3, 4, 5), (2, 3, 4, 1)], -1),
    ([(2, 3, 4, 5)], 1),
    ([(2, 3), (2, 4)], -1),
])
def test_concat(shapes, axis):
    xs = [random(s, i) for i, s in enumerate(shapes)]
    _check(cnngraph_op("Concat", xs, {"axis": axis}), onnx_reference("Concat", xs, {"axis": axis}))


def test_concat_spatial_mismatch_names_layer_and_shapes():
    a, b = dsl.input("a", (64, 56, 56)), dsl.input("b", (32, 28, 28))
    with pytest.raises(ShapeError, match=r"^layer 'up\.cat' \(Concat\): cannot concatenate \(N, 64, 56, 56\), "
                                         r"\(N, 32, 28, 28\) along axis 1: all other dimensions must match$"):
        with dsl.scope("up"):
            dsl.concat([a, b], name="cat")


@pytest.mark.parametrize("shapes,axis,error,match", [
    ([(3, 4), (3, 4)], 0, AttrError, "axis=0 is the batch axis"),
    ([(3, 4), (3, 4)], -3, AttrError, "axis=-3 is the batch axis"),
    ([(3, 4), (3, 4)], 3, AttrError, "axis=3 is out of range for a 3-D input"),
    ([(3, 4), (3, 4, 1)], 1, ShapeError, r"cannot concatenate \(N, 3, 4\), \(N, 3, 4, 1\)"),
    ([(3, 4, 5), (3, 4)], 3, ShapeError, r"cannot concatenate \(N, 3, 4, 5\), \(N, 3, 4\) along axis 3"),
])
def test_concat_errors(shapes, axis, error, match):
    with pytest.raises(error, match=match):
        dsl.concat([dsl.input(f"x{i}", s) for i, s in enumerate(shapes)], axis=axis)


SLICES = [
    # axes, starts, ends, steps
    ((2, 3), (1, 0), (5, 4), (1, 2)),
    ((1,), (-3,), (-1,), (1,)),  # negative indices count from the end
    ((3,), (2,), (I64_MAX,), (3,)),  # ONNX's "to the end"
    ((-1, -2), (-100, 1), (100, 6), (2, 2)),  # clamped bounds, negative axes
    ((2,), (5,), (6,), (1,)),
    ((3, 1), (1, 0), (2, 1), (1, 1)),
]


@pytest.mark.parametrize("axes,starts,ends,steps", SLICES)
def test_slice(axes, starts, ends, steps):
    x = random((2, 4, 6, 7))
    got = cnngraph_op("Slice", [x], dict(axes=axes, starts=starts, ends=ends, steps=steps))
    inits = {"starts": _i64(starts), "ends": _i64(ends), "axes": _i64(axes), "steps": _i64(steps)}
    _check(got, onnx_reference("Slice", [x], {}, inits))


@pytest.mark.parametrize("attrs,error,match", [
    (dict(axes=(2,), starts=(4,), ends=(0,), steps=(-1,)), AttrError, r"steps must be >= 1 \(reversing"),
    (dict(axes=(2,), starts=(0,), ends=(3,), steps=(0,)), AttrError, "steps must be >= 1"),
    (dict(axes=(0,), starts=(0,), ends=(1,)), AttrError, "axes=0 is the batch axis"),
    (dict(axes=(2, -2), starts=(0, 0), ends=(1, 1)), AttrError, "each sliced axis once"),
    (dict(axes=(2, 3), starts=(0,), ends=(1, 1)), AttrError, "starts must have 2 values"),
    (dict(axes=(2,), starts=(5,), ends=(9,)), ShapeError, r"\(Slice\): slice 5:9:1 of axis 2 is empty for input "
                                                          r"\(N, 3, 5, 5\)"),
    (dict(axes=(3,), starts=(-2,), ends=(-3,)), ShapeError, "slice -2:-3:1 of axis 3 is empty"),
])
def test_slice_errors(attrs, error, match):
    with pytest.raises(error, match=match):
        cnngraph_op("Slice", [random((1, 3, 5, 5))], attrs)


def test_slice_steps_default_to_one_and_describe_reads_like_numpy():
    given = dict(axes=(3, 2), starts=(0, -4), ends=(I64_MAX, 5))
    attrs = get_op("Slice").normalize("op", given, [TensorType(("N", 3, 6, 8))])
    assert attrs == dict(axes=(3, 2), starts=(0, 2), ends=(8, 5), steps=(1, 1))
    assert get_op("Slice").describe({**attrs, "steps": (2, 1)}) == "[:, :, 2:5, 0:8:2]"


PADS = [
    # padding, mode, value
    (1, "constant", 0.0),
    ((1, 2), "constant", 1.5),
    ((0, 1, 2, 3), "constant", -2.0),
    (2, "reflect", 0.0),
    ((3, 0, 1, 4), "reflect", 0.0),
    ((1, 2), "edge", 0.0),
    ((0, 5, 6, 1), "edge", 0.0),
]


@pytest.mark.parametrize("padding,mode,value", PADS)
def test_pad(padding, mode, value):
    x = random((2, 3, 4, 5))
    got = cnngraph_op("Pad", [x], dict(padding=padding, mode=mode, value=value))
    pt, pl, pb, pr = get_op("Pad").pads("op", padding)
    inits = {"pads": _i64([0, 0, pt, pl, 0, 0, pb, pr])}
    if mode == "constant":
        inits["value"] = np.array(value)
    _check(got, onnx_reference("Pad", [x], {"mode": mode}, inits))


@pytest.mark.parametrize("attrs,shape,error,match", [
    (dict(padding=(1, 4), mode="reflect"), (3, 4, 4), ShapeError,
     r"\(Pad\): reflect padding \(1, 4, 1, 4\) must be smaller than the input's 4x4 \(input \(N, 3, 4, 4\)\)"),
    (dict(padding=1, mode="wrap"), (3, 4, 4), AttrError, "mode must be one of"),
    (dict(padding=1, mode="edge", value=1.0), (3, 4, 4), AttrError, "value=1.0 only applies to mode 'constant'"),
    (dict(padding=-1), (3, 4, 4), AttrError, "padding must be >= 0"),
    (dict(padding=1, value="0"), (3, 4, 4), AttrError, "value must be a finite number"),
    (dict(padding=1), (3, 4), ShapeError, r"expects a 4-D \(N, C, H, W\) input, got shape \(N, 3, 4\)"),
])
def test_pad_errors(attrs, shape, error, match):
    with pytest.raises(error, match=match):
        cnngraph_op("Pad", [random((1, *shape))], attrs)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 7)])
def test_identity(shape):
    x = random(shape)
    _check(cnngraph_op("Identity", [x]), onnx_reference("Identity", [x]))


@pytest.mark.parametrize("op,attrs", [
    ("Flatten", {}),
    ("Reshape", {"shape": (6, 20)}),
    ("Identity", {}),
    ("Slice", dict(axes=(1, 3), starts=(1, 0), ends=(3, 5), steps=(1, 2))),
])
def test_kernel_returns_a_view(op, attrs):
    x = random((2, 3, 4, 10))
    out = get_kernel(op)(np, [x], {}, get_op(op).normalize("op", attrs, [TensorType(("N", 3, 4, 10))]), RunContext())
    assert np.shares_memory(out, x)


@pytest.mark.parametrize("op,attrs,normal", [
    ("Reshape", {"shape": [-1, 4]}, {"shape": (30, 4)}),
    ("Concat", {"axis": -3}, {"axis": 1, "elide": False}),
    ("Slice", dict(axes=[-1], starts=[-3], ends=[I64_MAX], steps=None),
     dict(axes=(3,), starts=(2,), ends=(5,), steps=(1,))),
    ("Pad", {"padding": [1, 2]}, {"padding": (1, 2, 1, 2), "mode": "constant", "value": 0.0}),
])
def test_normalize_is_idempotent_through_json(op, attrs, normal):
    t = [TensorType(("N", 3, 8, 5))]
    once = get_op(op).normalize("op", attrs, t)
    assert once == normal
    assert get_op(op).normalize("op", json.loads(json.dumps(once)), t) == once


def test_windows_map_output_to_input_positions():
    """Output position j reads input j * stride - pad (receptive-field algebra)."""
    t = [TensorType(("N", 3, 10, 10))]
    pad = get_op("Pad").normalize("op", {"padding": (2, 1, 0, 3)}, t)
    assert get_op("Pad").window(pad, t) == Window(pad=(2, 1))
    sl = get_op("Slice").normalize("op", dict(axes=(3, 2), starts=(1, 4), ends=(9, 10), steps=(2, 3)), t)
    assert get_op("Slice").window(sl, t) == Window(stride=(3, 2), pad=(-4, -1))
    channels = get_op("Slice").normalize("op", dict(axes=(1,), starts=(1,), ends=(2,)), t)
    assert get_op("Slice").window(channels, t) == Window()


def test_describe():
    assert get_op("Reshape").describe({"shape": (4, 4)}) == "shape=4,4"  # not collapsed to "shape=4"
    assert get_op("Pad").describe({"padding": (2, 1, 0, 3), "mode": "edge", "value": 0.0}) == "p=2,1,0,3, mode=edge"
    assert get_op("Pad").describe({"padding": (1, 1, 1, 1), "mode": "constant", "value": 0.0}) == "p=1"
