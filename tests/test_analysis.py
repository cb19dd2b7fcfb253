"""Receptive fields, effective strides and centres, and the alignment check at joins, against values
derived by hand or published: Yu & Koltun's Table 1, the crop offsets of the reference FCN Caffe
models, the U-Net paper's overlap-tile geometry."""

import pytest

from cnngraph import io, models
from cnngraph.alignment import ALIGNED, OFFSET, STRIDE, SUBPIXEL, alignment_crop, joins
from cnngraph.analysis import receptive_fields
from cnngraph.cli import main
from cnngraph.errors import CnnGraphError
from cnngraph.frontends import dsl


def test_context_module_fields_are_the_papers_table_1(zero_params):
    g = models.build("context_module")
    fields = receptive_fields(g)
    sizes = [fields[f"layer{i}"].size for i in range(1, 9)]
    assert sizes == [(r, r) for r in (3, 5, 9, 17, 33, 65, 67, 67)]
    assert all(fields[f"layer{i}"].jump == (1, 1) and fields[f"layer{i}"].start == (0, 0) for i in range(1, 9))


@pytest.mark.parametrize("variant,crops", [
    ("fcn32s", {("upscore", "image"): 19}),
    ("fcn16s", {("score_pool4", "upscore2"): 5, ("upscore16", "image"): 27}),
    ("fcn8s", {("score_pool4", "upscore2"): 5, ("score_pool3", "upscore_pool4"): 9, ("upscore8", "image"): 31}),
])
def test_fcn_crops_are_the_reference_caffe_offsets(variant, crops, zero_params):
    """voc-fcn{32,16,8}s crop with offsets 19; 5, 27; 5, 9, 31 (Caffe's coord_map computed them):
    the alignment analysis derives the same numbers from kernel, stride and padding alone."""
    g = models.build(variant, input_size=500, width=0.125)
    fields = receptive_fields(g)
    for (source, target), offset in crops.items():
        top, left, _, _ = alignment_crop(g, source, target, fields)
        assert (top, left) == (offset, offset)
    assert all(j.status == ALIGNED for j in joins(g, fields))


def test_unet_valid_padding_geometry(zero_params):
    """Input 572, output 388: the output's pixel 0 is centred on input pixel (572 - 388) / 2 = 92, and
    each skip needs the centre crop the paper draws (568 -> 392, 280 -> 200, 136 -> 104, 64 -> 56)."""
    g = models.build("unet")
    fields = receptive_fields(g)
    assert fields["head"].start == (92, 92) and fields["head"].jump == (1, 1)
    for level, crop in zip((1, 2, 3, 4), (88, 40, 16, 4)):
        assert alignment_crop(g, f"down{level}.relu2", f"up{level}.upconv", fields) == (crop,) * 4
    found = joins(g, fields)
    assert [j.status for j in found] == [ALIGNED] * 4
    assert "'up1.crop' crops 'down1.relu2' at (88, 88): aligned" in [j.describe() for j in found]


def _skip_join(crop_skip):
    """A one-level U-Net: valid 3x3 convs (field centre moves by 1 per conv), pool 2, up-conv 2, join."""
    x = dsl.input("x", (1, 20, 20))
    skip = dsl.conv2d(dsl.conv2d(x, 2, 3, name="c1"), 2, 3, name="c2")  # 16x16, centre 2
    y = dsl.conv2d(dsl.conv2d(dsl.max_pool2d(skip, 2), 2, 3), 2, 3)  # 4x4, centre 2.5 + 2 * 2 = 6.5, jump 2
    up = dsl.conv_transpose2d(y, 2, 2, 2, name="up")  # 8x8, centre 6.5 - 0.25 * 2 * 2 = 6, jump 1
    return dsl.Model(x, dsl.concat([crop_skip(skip, up), up], name="join"))


def test_a_top_left_crop_is_reported_with_the_crop_that_fixes_it():
    """The skip's centre is 2, the upsampled map's 6: the skip must be cropped by 4, the centre crop does it."""
    centred = _skip_join(lambda s, up: dsl.crop(s, like=up, name="crop"))
    assert [j.status for j in joins(centred)] == [ALIGNED]
    corner = _skip_join(lambda s, up: dsl.slice(s, (2, 3), (0, 0), (8, 8), name="crop"))
    (join,) = joins(corner)
    assert join.status == OFFSET
    assert join.describe() == "pixel 4 of 'crop' sits where pixel 0 of 'up' does: crop 'c2' from (4, 4) instead of (0, 0)"
    assert alignment_crop(corner, "c2", "up") == (4, 4, 4, 4)


def test_half_pixel_misalignment_of_a_3x3_transposed_conv_after_a_2x2_pool():
    """Pooled pixel i covers 2i and 2i+1 (centre 2i + 0.5); a k3/s2/p1 transposed conv puts its centre tap on
    output 2i: the output is half a pixel off the skip, and no crop can fix that."""
    x = dsl.input("x", (2, 16, 16))
    up = dsl.conv_transpose2d(dsl.max_pool2d(x, 2), 2, 3, 2, padding=1, output_padding=1, name="up")
    g = dsl.Model(x, dsl.add(x, up, name="join"))
    (join,) = joins(g)
    assert join.status == SUBPIXEL and join.inputs[1].shift == (-0.5, -0.5)
    assert "no crop fixes" in join.describe()
    with pytest.raises(CnnGraphError, match="sub-pixel offset, no crop aligns them"):
        alignment_crop(g, "up", "x")


def test_equal_shapes_at_different_strides_are_caught():
    """A skip cropped instead of downsampled: 8x8 and 8x8, but strides 2 and 1."""
    x = dsl.input("x", (2, 16, 16))
    g = dsl.Model(x, dsl.add(dsl.max_pool2d(x, 2, name="pool"), dsl.crop(x, size=(8, 8), name="crop")))
    (join,) = joins(g)
    assert join.status == STRIDE and "different effective stride ('pool' 2, 'crop' 1)" in join.describe()
    with pytest.raises(CnnGraphError, match="differ in effective stride"):
        alignment_crop(g, "crop", "pool")


def test_alignment_crop_refuses_when_padding_is_needed():
    x = dsl.input("x", (2, 16, 16))
    g = dsl.Model(x, [dsl.conv2d(x, 2, 3, name="valid"), dsl.crop(x, size=(10, 10), name="small")])
    with pytest.raises(CnnGraphError, match=r"must be cropped by \(-2, -2, -2, -2\) .*needs padding"):
        alignment_crop(g, "small", "valid")  # 'small' (10 wide) centres at 3, 'valid' (14 wide) at 1


def test_strided_shortcuts_and_inception_branches_align(zero_params):
    """ResNet's 1x1/2 projection and 3x3/2 (padding 1) conv both centre output 0 on input 0; GoogLeNet's
    branches all pad 'same'; DenseNet concatenates maps of one resolution."""
    for name in ("resnet50", "preact_resnet18", "googlenet", "densenet121", "frrn_a", "gridnet"):
        assert {j.status for j in joins(models.build(name, input_size=64))} == {ALIGNED}, name


def test_grid_sums_after_nearest_upsampling_are_half_a_pixel_off(zero_params):
    """A fabric's coarser edge: a 3x3/2 conv with padding 1 centres coarse pixel i on fine 2i, nearest
    upsampling repeats it on fine 2i and 2i+1 (centre 2i + 0.5): every sum with a coarser edge is off by
    0.5 fine pixel; the sums without one are aligned."""
    g = models.build("fabric")
    for j in joins(g):
        has_coarser = any(i.value.endswith(".coarser") for i in j.inputs)
        assert j.status == (SUBPIXEL if has_coarser else ALIGNED), j.node.name
        if has_coarser:
            assert {abs(i.shift[0]) for i in j.inputs[1:] if i.value.endswith(".coarser")} == {0.5}


def test_tiramisu_transition_up_is_half_a_pixel_off_every_skip(zero_params):
    g = models.build("fc_densenet56", input_size=64)
    skips = [j for j in joins(g) if j.node.name.endswith(".skip")]
    assert len(skips) == 5 and all(j.status == SUBPIXEL for j in skips)
    assert {i.shift for j in skips for i in j.inputs[1:]} == {(0.5, 0.5)}


def test_summary_prints_centres_and_the_alignment_report(capsys, zero_params):
    assert main(["summary", "unet"]) == 0
    out = capsys.readouterr().out
    assert "centre" in out and "Joins: 4 checked, all aligned" in out
    assert "'up1.crop' crops 'down1.relu2' at (88, 88): aligned" in out
    assert main(["summary", "fc_densenet56", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    # joins: 4 concats in each of the 5 down blocks (3 inside, the block output), bottleneck and up blocks
    # 0-3 (3 inside, the new features), the last up block (3 inside, its output), and the 5 skips: 49
    assert "Joins: 49 checked, 5 misaligned (sub-pixel)" in out and "up4.skip" in out


def test_constants_have_no_receptive_field_and_do_not_join():
    """An imported `x - mean` carries a Constant: it must neither crash the analysis nor count as a join."""
    from cnngraph.alignment import joins
    from cnngraph.analysis import receptive_fields

    x = dsl.input("x", (3, 8, 8))
    mean = dsl.constant([[[[0.5]], [[0.4]], [[0.3]]]], name="mean")
    y = dsl.conv2d(dsl.add(x, mean, name="centred"), 4, 3, name="conv")
    g = dsl.Model(x, y)
    fields = receptive_fields(g)
    assert fields["mean"].constant and not fields["centred"].constant
    assert fields["conv"].size == (3, 3)
    assert joins(g) == []


def _se_block(shortcut_kernel):
    """Stem (stride 2), squeeze-and-excitation gating it, two convs (the second stride 2) and a residual Add
    whose shortcut is a stride-2 conv of ``shortcut_kernel`` (1: aligned, 2: half a stride-2 pixel off)."""
    x = dsl.input("x", (3, 32, 32))
    stem = dsl.conv2d(x, 8, 3, stride=2, padding=1, name="stem")
    gate = dsl.conv2d(dsl.relu(dsl.conv2d(dsl.global_avg_pool(stem, name="squeeze"), 2, 1)), 8, 1)
    scaled = dsl.mul(stem, dsl.sigmoid(gate, name="gate"), name="scale")
    y = dsl.conv2d(dsl.conv2d(scaled, 8, 3, padding=1, name="c1"), 8, 3, stride=2, padding=1, name="c2")
    short = dsl.conv2d(scaled, 8, shortcut_kernel, stride=2, name="short")
    return dsl.Model(x, dsl.add(y, short, name="res"))


def test_squeeze_and_excitation_keeps_the_maps_geometry_and_later_joins_are_checked():
    """The (N, C, 1, 1) gate is broadcast over the map: the Mul keeps the stem's field, the stride goes on
    to 4 at c2, and the residual Add after it is checked, aligned or not (the gate's Mul is no spatial join)."""
    g = _se_block(1)
    fields = receptive_fields(g)
    assert fields["gate"].whole and fields["scale"] == fields["stem"]
    assert fields["c2"].jump == (4, 4) and not fields["c2"].whole and fields["c2"].size == (11, 11)  # 3, + 2 * 2, + 2 * 2
    (join,) = joins(g)
    assert join.node.name == "res" and [i.value for i in join.inputs] == ["c2", "short"] and join.status == ALIGNED
    (join,) = joins(_se_block(2))
    assert join.status == SUBPIXEL and join.inputs[1].shift == (-0.25, -0.25)


def test_summary_carries_the_maps_geometry_through_squeeze_and_excitation(capsys, tmp_path):
    """The table shows the gate as global (no stride), the Mul and later layers with the map's field and
    stride, and counts the residual Add as a checked join."""
    path = tmp_path / "se.cng"
    io.save(_se_block(2), path)
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[-3:] for line in out.splitlines()[3:] if line[:1].strip()}
    assert rows["gate"] == ["all", "-", "-"] and rows["scale"] == rows["stem"] == ["3", "2", "0"]
    assert rows["c2"] == ["11", "4", "0"]
    assert "Joins: 1 checked, 1 misaligned (sub-pixel)" in out
