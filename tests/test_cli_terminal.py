"""The CLI in a terminal of 80 columns and piped: tables fit, no row wraps, no colour codes; segmentation
models get training advice. Each command runs as a user runs it (a subprocess), checked by exit code."""

import numpy as np
import pytest

from cnngraph import models
from tests.cli_process import cnngraph as cli
from tests.cli_process import one_line_error

TINY = '''
from cnngraph.frontends import dsl

def tiny(num_classes=4):
    x = dsl.input("image", (1, 8, 8))
    y = dsl.relu(dsl.conv2d(x, 4, 3, padding=1, name="conv"))
    return dsl.Model(x, dsl.linear(dsl.flatten(dsl.max_pool2d(y, 2)), num_classes, name="fc"), name="tiny")
'''


def fits(done, columns: int = 80) -> list[str]:
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout, "colour codes in piped output"
    lines = done.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > columns]
    assert not too_wide, too_wide
    return lines


def test_summary_resnet50_fits_80_columns_one_row_per_layer():
    lines = fits(cli("summary", "resnet50"))
    graph = models.build("resnet50")
    rows = [line.split() for line in lines]
    by_name = {r[0]: r for r in rows if r}
    assert all(by_name[n.name][1] == n.op for n in graph.nodes)  # every layer's row whole on one line
    assert by_name["conv1"][2:] == ["64x112x112", "9.41K", "118M", "7", "2", "0"]
    assert "Total params: 25,557,032" in lines  # torchvision's published count


@pytest.mark.parametrize("argv", [
    ("models",), ("backends",), ("summary", "densenet121", "--depth", "2"),
    ("profile", "lenet5", "--repeat", "1", "--warmup", "0"),
    ("bench", "lenet5", "--repeat", "1", "--warmup", "0"),
])
def test_tables_fit_80_columns(argv):
    lines = fits(cli(*argv))
    assert len(lines) > 3


def test_models_table_names_every_zoo_model_on_its_own_row():
    lines = fits(cli("models"))
    names = {line.split()[0] for line in lines if line.startswith("  ") and line[2] != " "}
    assert names == set(models.zoo())


def test_train_output_fits_80_columns(tmp_path):
    (tmp_path / "net.py").write_text(TINY)
    rng = np.random.default_rng(0)
    y = np.arange(40) % 4
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 255, (40, 8, 8)).astype(np.uint8), y=y)
    lines = fits(cli("train", f"{tmp_path}/net.py:tiny", "--data", tmp_path / "d.npz", "--epochs", 2, "--batch", 8,
                     "--out", tmp_path / "run"))
    assert sum(line.startswith("epoch ") for line in lines) == 2


def test_piped_output_never_wraps_a_name():
    """Without COLUMNS, piped output has no width limit: a long layer name stays whole, on its layer's row."""
    done = cli("summary", "densenet121", columns=None)
    assert done.returncode == 0 and "\x1b[" not in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("features.denseblock3.denselayer10.conv2 "))
    assert row.split()[1] == "Conv2d"


@pytest.mark.parametrize("model", ["fcn8s", "segnet"])
def test_train_on_a_segmentation_model_gives_segmentation_advice(model):
    line = one_line_error(cli("train", model, "--data", "digits"), "train")
    assert f"{model} is a segmentation model" in line and "PixelCrossEntropy" in line and "masks (N, H, W)" in line


def test_the_segmentation_advice_trains():
    """What the advice says to write runs, and the loss on the batch falls."""
    import cnngraph
    from cnngraph.frontends import dsl
    from cnngraph.train import SGD, PixelCrossEntropy

    x = dsl.input("image", (3, 8, 8))
    graph = dsl.Model(x, dsl.conv2d(dsl.relu(dsl.conv2d(x, 4, 3, padding=1)), 3, 1), seed=0)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    masks = images.argmax(axis=1)  # the class is the brightest channel
    masks[:, 0, 0] = 255
    model = cnngraph.compile(graph, train=True)
    losses = [model.train_step(images, masks, PixelCrossEntropy(), SGD(lr=0.1, momentum=0.9)) for _ in range(5)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
