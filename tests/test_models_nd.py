"""The zoo's N-d models: the 3-D U-Net and the 1-D temporal CNN trained a few steps (the loss falls),
exported to ONNX and verified in onnxruntime, imported back; the TCN's causality and receptive field."""

import os

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.analysis import receptive_fields
from cnngraph.alignment import ALIGNED, CAUSAL, OFFSET, joins
from cnngraph.backends.onnx_export import export
from cnngraph.backends.onnx_verify import verify
from cnngraph.errors import GraphError
from cnngraph.frontends import dsl, onnx_import
from cnngraph.train import Adam, CrossEntropy

pytest.importorskip("onnxruntime")


def volumes(rng, n):
    """Random volumes and their voxel labels: class 1 where the smoothed value is positive."""
    x = rng.standard_normal((n, 1, 16, 16, 16)).astype(np.float32)
    smooth = (x + np.roll(x, 1, axis=2) + np.roll(x, 1, axis=3) + np.roll(x, 1, axis=4)) / 2
    return x, (smooth[:, 0] > 0).astype(np.int64)


def sequences(rng, n):
    """Random sequences labelled by the sign of their last eight steps' sum: inside the TCN's field."""
    x = rng.standard_normal((n, 1, 64)).astype(np.float32)
    return x, (x[:, 0, -8:].sum(axis=1) > 0).astype(np.int64)


def train_then_export(graph, make_data, steps, batch, lr, tmp_path):
    """Adam steps on fresh batches; returns the losses, and the trained graph exported and verified."""
    rng = np.random.default_rng(0)
    model = cnngraph.compile(graph, train=True)
    optimizer = Adam(lr)
    losses = [model.train_step(*make_data(rng, batch), CrossEntropy(), optimizer) for _ in range(steps)]
    trained = model.to_graph()
    path = os.path.join(tmp_path, f"{graph.name}.onnx")
    export(trained, path)
    report = verify(trained, path, batches=(1, 3))  # onnxruntime against the executor; raises past 1e-4
    return losses, trained, path, report


@pytest.mark.parametrize("name,make_data,steps,batch,lr", [
    ("unet3d", volumes, 12, 4, 0.01),
    ("temporal_cnn", sequences, 30, 16, 0.01),
])
def test_trains_exports_verifies_and_imports_back(name, make_data, steps, batch, lr, tmp_path):
    graph = models.build(name, num_classes=2)
    losses, trained, path, report = train_then_export(graph, make_data, steps, batch, lr, tmp_path)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), f"loss did not fall: {losses}"
    assert "max rel" in str(report)
    again = onnx_import.load(path)
    x, _ = make_data(np.random.default_rng(5), 2)
    want = cnngraph.compile(trained)(x)
    np.testing.assert_allclose(cnngraph.compile(again)(x), want, rtol=1e-4, atol=1e-5)


def test_tcn_is_causal():
    """Changing step t changes no output before t: the padding is on the left only."""
    graph = models.build("temporal_cnn", seed=1)
    graph.outputs = ["block3.relu"]  # every step's features, before the head picks the last one
    features = cnngraph.compile(graph, passes=["dead_code"])
    x = np.random.default_rng(2).standard_normal((1, 1, 64)).astype(np.float32)
    later = x.copy()
    later[..., 40:] += 1.0
    a, b = features(x), features(later)
    np.testing.assert_array_equal(a[..., :40], b[..., :40])
    assert not np.allclose(a[..., 40:], b[..., 40:])


def test_tcn_last_step_sees_the_published_field():
    """Bai et al.: 1 + 2 (k - 1) (2^levels - 1) steps; 61 for kernel 3 and four levels, 253 for 5 levels of 4."""
    assert receptive_fields(models.build("temporal_cnn"))["last"].size == (61,)
    graph = models.build("temporal_cnn", levels=5, kernel_size=4, input_size=300)
    assert receptive_fields(graph)["last"].size == (1 + 2 * 3 * 31,)


def test_unet3d_keeps_the_volume_and_refuses_sizes_pooling_cannot_halve():
    graph = models.build("unet3d", input_size=24, depth=3, width=2, num_classes=3)
    assert graph.outputs and graph.type_of(graph.outputs[0]).shape == ("N", 3, 24, 24, 24)
    with pytest.raises(GraphError, match=r"input size 20 must be a positive multiple of 2\^3 = 8.*16 or 24"):
        models.build("unet3d", input_size=20, depth=3)


def test_summary_shows_volumes_with_their_fields(capsys):
    """By hand: two 3x3x3 convs see 5 voxels, a 2x2x2 pool makes it 6 at stride 2 centred on 0.5; two more
    convs at stride 2 add 8 (14), the second pool 2 more (16) at stride 4 centred on 0.5 + 0.5 * 2."""
    from tests.test_cli import run_cli

    code, out, _ = run_cli(capsys, "summary", "unet3d", "--depth", "1")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert code == 0 and "Total params: 72,022" in out and "Joins: 2 checked, all aligned" in out
    assert rows["pool1"][1:] == ["8x8x8x8", "0", "32.8K", "6", "2", "0.5"]  # op, output, params, MACs, RF, jump, ctr
    assert rows["pool2"][1:] == ["16x4x4x4", "0", "8.19K", "16", "4", "1.5"]


def test_tcn_joins_are_causal_and_a_right_padded_block_is_offset():
    """Alignment in 1-D: the TCN's residual joins end at the same step as their skips (causal); padding the
    same convolution on the right instead makes its field end k - 1 steps later, which is an offset."""
    assert {j.status for j in joins(models.build("temporal_cnn"))} == {CAUSAL}
    for padding, status in (((2, 0), CAUSAL), ((0, 2), OFFSET), ((1, 1), ALIGNED)):
        x = dsl.input("x", (4, 16))
        y = dsl.conv1d(x, 4, 3, padding=padding, name="conv")
        graph = dsl.Model([x], [dsl.add(y, x, name="join")], name="block")
        assert [j.status for j in joins(graph)] == [status], padding
