"""Upsample against ONNX Resize (opset 17), as torch.onnx exports F.interpolate."""

import json

import numpy as np
import pytest

from cnngraph.errors import AttrError, ShapeError
from cnngraph.frontends import dsl
from cnngraph.ops import Window, get_op
from tests.oracle import cnngraph_op, onnx_reference, onnxruntime_output, random
from tests.oracle import op_backend  # noqa: F401 - each test runs on every backend




def resize(x, mode, transform, scales=None, sizes=None):
    """ONNX Resize of H and W by ``scales`` (given as the third input) or to ``sizes`` (the fourth)."""
    attrs = dict(mode=mode, coordinate_transformation_mode=transform)
    if mode == "nearest":
        attrs["nearest_mode"] = "floor"
    inits = {"roi": np.array([], np.float32)}
    if sizes is None:
        inits["scales"] = np.array([1, 1, *scales], np.float32)
    else:
        inits["scales"] = np.array([], np.float32)
        inits["sizes"] = np.array([*x.shape[:2], *sizes], np.int64)
    return onnx_reference("Resize", [x], attrs, inits)


RESIZES = [
    # (H, W), the scale_factor or size given to Upsample
    ((5, 6), dict(scale_factor=2)),
    ((5, 6), dict(scale_factor=(1.5, 2.5))),
    ((5, 6), dict(scale_factor=1.75)),  # output 8x10: the grid follows 1/scale, not in/out
    ((9, 7), dict(scale_factor=0.5)),
    ((5, 6), dict(size=(8, 13))),
    ((6, 20), dict(size=(20, 6))),  # in/out = 3/10: exact integer indices for nearest
    ((9, 7), dict(size=(4, 3))),
    ((5, 6), dict(size=(1, 1))),
]


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def onnx_resize(x, mode, transform, given):
    """Pass the same thing the Upsample got: scales (float32, exact for these) or sizes."""
    if "size" in given:
        return resize(x, mode, transform, sizes=given["size"])
    return resize(x, mode, transform, scales=_pair(given["scale_factor"]))


@pytest.mark.parametrize("hw,given", RESIZES)
def test_nearest_matches_asymmetric_floor(hw, given):
    x = random((2, 3, *hw), 1)
    attrs = dict(mode="nearest", **given)
    got = cnngraph_op("Upsample", [x], attrs)
    want = onnx_resize(x, "nearest", "asymmetric", given)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_nearest_to_a_size_picks_exact_pixels():
    """14 -> 18 rows: row 9 reads 9 * 14 / 18 = 7 exactly. onnx.reference divides by the float scale
    18/14 and lands on 6.999..., pixel 6; torch and onnxruntime (float32 scales) pick 7, as exact
    integer arithmetic does, so onnxruntime is the oracle here."""
    x = random((1, 2, 14, 21), 5)
    got = cnngraph_op("Upsample", [x], dict(size=(18, 27)))
    attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    inits = dict(roi=np.array([], np.float32), scales=np.array([], np.float32), sizes=np.array([1, 2, 18, 27]))
    want = onnxruntime_output("Resize", [x.astype(np.float32)], attrs, inits)
    np.testing.assert_array_equal(got.astype(np.float32), want)
    np.testing.assert_array_equal(got[:, :, 9], x[:, :, 7][:, :, np.arange(27) * 21 // 27])


@pytest.mark.parametrize("transform", ["half_pixel", "pytorch_half_pixel"])
@pytest.mark.parametrize("hw,given", RESIZES)
def test_bilinear_matches_half_pixel(hw, given, transform):
    x = random((2, 3, *hw), 2)
    attrs = dict(mode="bilinear", **given)
    got = cnngraph_op("Upsample", [x], attrs)
    if transform == "pytorch_half_pixel" and 1 in got.shape[2:]:
        pytest.skip("pytorch_half_pixel samples pixel 0 for a 1-pixel output, as older torch did; "
                    "torch now samples the centre, like half_pixel")
    want = onnx_resize(x, "linear", transform, given)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hw,given", RESIZES)
def test_bilinear_align_corners_matches_reference(hw, given):
    x = random((2, 3, *hw), 3)
    attrs = dict(mode="bilinear", align_corners=True, **given)
    got = cnngraph_op("Upsample", [x], attrs)
    # align_corners depends on the sizes alone; given scales, onnx.reference divides by the fractional
    # in*scale instead of the integer output size (torch and onnxruntime use the integer), so pass sizes.
    want = resize(x, "linear", "align_corners", sizes=got.shape[2:])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("given,size,scale", [
    (dict(scale_factor=1.75), (8, 10), (1.75, 1.75)),
    (dict(scale_factor=(2, 0.5)), (10, 3), (2.0, 0.5)),
    (dict(size=7), (7, 7), (7 / 5, 7 / 6)),
])
def test_both_size_and_scale_are_stored_and_survive_json(given, size, scale):
    t = dsl.upsample(dsl.input("x", (3, 5, 6)), mode="bilinear", **given)
    assert t.attrs["size"] == size and t.attrs["scale_factor"] == scale
    again = get_op("Upsample").normalize("op", json.loads(json.dumps(t.attrs)), [t.parents[0].type])
    assert again == t.attrs


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_kernel_leaves_input_alone(mode):
    x = random((2, 3, 5, 6), 4)
    before = x.copy()
    cnngraph_op("Upsample", [x], dict(scale_factor=2, mode=mode))
    np.testing.assert_array_equal(x, before)


def test_window_centres_and_macs():
    x = dsl.input("x", (3, 4, 4))
    near, bilinear = dsl.upsample(x, 2), dsl.upsample(x, 2, mode="bilinear")
    corners = dsl.upsample(x, size=7, mode="bilinear", align_corners=True)
    op = get_op("Upsample")
    # centre of output 0 = (k - 1) / 2 - pad: half-pixel puts it at input -0.25, align_corners at 0
    assert op.window(near.attrs, [x.type]) == Window((1, 1), (0.5, 0.5), (0.25, 0.25))
    assert op.window(bilinear.attrs, [x.type]) == Window((2, 2), (0.5, 0.5), (0.75, 0.75))
    assert op.window(corners.attrs, [x.type]) == Window((2, 2), (0.5, 0.5), (0.5, 0.5))
    assert op.macs(bilinear.attrs, [x.type], bilinear.type) == 4 * 3 * 8 * 8
    assert op.macs(near.attrs, [x.type], near.type) == 0


@pytest.mark.parametrize("attrs,error,match", [
    (dict(), AttrError, "give exactly one of scale_factor or size"),
    (dict(scale_factor=2, size=(7, 7)), AttrError,
     r"give exactly one of scale_factor or size \(got \(2.0, 2.0\) and \(7, 7\), which disagree"),
    (dict(scale_factor=2, align_corners=True), AttrError, "align_corners=True needs mode 'bilinear'"),
    (dict(scale_factor=2, mode="bicubic"), AttrError, "mode must be one of"),
    (dict(scale_factor=-1), AttrError, "scale_factor must be a positive number or 2"),
    (dict(scale_factor=0.1), ShapeError, r"scale_factor \(0.1, 0.1\) leaves no output for input \(N, 3, 5, 6\)"),
])
def test_bad_attributes_name_the_layer(attrs, error, match):
    with pytest.raises(error, match=r"layer 'op' \(Upsample\): " + match):
        cnngraph_op("Upsample", [random((1, 3, 5, 6))], attrs)
