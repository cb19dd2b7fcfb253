"""`cnngraph run` with photos (ImageNet preprocessing, top-5 names), segmentation masks and early exits."""

import numpy as np
import pytest
from PIL import Image

import cnngraph
from cnngraph import models
from cnngraph.cli import main
from cnngraph.errors import GraphError
from cnngraph.frontends import dsl
from cnngraph.imagenet import MEAN, STD, class_names
from cnngraph.masks import palette
from cnngraph.model_info import ModelInfo
from cnngraph.photo import prepare_photo
from cnngraph.subgraph import keep_outputs

MODELS = '''
import numpy as np
from cnngraph.frontends import dsl

def ranked(num_classes=1000, input_size=32):
    """Logits 0, 1, ..., 999 whatever the image: the top-5 are classes 999 down to 995."""
    x = dsl.input("image", (3, input_size, input_size))
    g = dsl.Model(x, dsl.linear(dsl.flatten(dsl.global_avg_pool(x)), num_classes, name="fc"))
    g.params["fc.weight"][...] = 0
    g.params["fc.bias"][...] = np.arange(num_classes)
    return g

def channels(num_classes=3, input_size=8):
    """A 'segmentation' whose class scores are the normalised colour channels."""
    x = dsl.input("image", (3, input_size, input_size))
    g = dsl.Model(x, dsl.conv2d(x, 3, 1, bias=False, name="scores"))
    g.params["scores.weight"][...] = np.eye(3).reshape(3, 3, 1, 1)
    return g
'''


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def models_file(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(MODELS)
    return path


def test_preprocessing_resizes_the_shorter_side_crops_the_centre_and_normalises(tmp_path):
    """300x200, white left half: the shorter side goes to 256 (width 384), the 224 crop starts at column 80,
    so the boundary (column 192 after resizing) lands at column 112 of the crop."""
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[:, :150] = 255
    Image.fromarray(rgb).save(tmp_path / "half.png")
    x, _ = prepare_photo(str(tmp_path / "half.png"), (3, 224, 224), ModelInfo())
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    white, black = (1 - MEAN) / STD, -MEAN / STD
    np.testing.assert_allclose(x[0, :, :, :110], np.broadcast_to(white[:, None, None], (3, 224, 110)), rtol=1e-6)
    np.testing.assert_allclose(x[0, :, :, 114:], np.broadcast_to(black[:, None, None], (3, 224, 110)), rtol=1e-6)


def test_photo_top5_prints_imagenet_names(capsys, tmp_path, models_file):
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp_path / "photo.jpg")
    code, out, _ = run_cli(capsys, "run", f"{models_file}:ranked", "--input", tmp_path / "photo.jpg")
    assert code == 0
    names = class_names()
    assert len(names) == 1000 and names[1] == "goldfish" and names[999] == "toilet tissue"
    # softmax of logits 999, 998, ...: e^-k / sum(e^-j) = e^-k (1 - 1/e) = 0.632, 0.233, 0.086, 0.031, 0.012
    probs = ("0.632", "0.233", "0.086", "0.031", "0.012")
    assert "sample 0: top-5 " + ", ".join(f"{names[999 - k]} ({p})" for k, p in enumerate(probs)) in out


def test_segmentation_writes_a_colour_mask(capsys, tmp_path, models_file):
    """Red left half, blue right half: the scores are the colour channels, so the classes are 0 (red
    wins) and 2 (blue wins), which VOC colours black and (0, 128, 0)."""
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4, 0] = 255
    rgb[:, 4:, 2] = 255
    Image.fromarray(rgb).save(tmp_path / "two.png")
    mask = tmp_path / "mask.png"
    code, out, _ = run_cli(capsys, "run", f"{models_file}:channels", "--input", tmp_path / "two.png", "--mask", mask)
    assert code == 0 and f"wrote mask {mask}" in out
    got = np.asarray(Image.open(mask))
    assert got.shape == (8, 8, 3)
    assert (got[:, :3] == 0).all() and (got[:, 5:] == (0, 128, 0)).all()


def test_voc_palette():
    colours = palette(21)
    assert colours[0].tolist() == [0, 0, 0] and colours[1].tolist() == [128, 0, 0]
    assert colours[15].tolist() == [192, 128, 128] and colours[20].tolist() == [0, 64, 128]  # person, tv/monitor


def test_random_batch_of_a_segmentation_model_writes_one_mask_per_sample(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "run", "fc_densenet56", "--input-size", "32", "--batch", "2", "--mask",
                           tmp_path / "m.png")
    assert code == 0
    assert [np.asarray(Image.open(tmp_path / f"m_{i}.png")).shape for i in (0, 1)] == [(32, 32, 3)] * 2


def test_photo_feeds_a_one_or_three_channel_model(capsys, tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "p.png")
    code, out, _ = run_cli(capsys, "run", "lenet5", "--input", tmp_path / "p.png")
    assert code == 0 and "photo p.png: grayscale, resized to 32x32, scaled to [0, 1]" in out
    x = dsl.input("image", (2, 8, 8))
    cnngraph.io.save(dsl.Model(x, dsl.conv2d(x, 2, 1)), tmp_path / "two.cng")
    code, _, err = run_cli(capsys, "run", tmp_path / "two.cng", "--input", tmp_path / "p.png")
    assert code == 1 and "a photo feeds a model taking 1 (grayscale) or 3 (RGB) channels; this one takes 2" in err
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    code, _, err = run_cli(capsys, "run", "alexnet", "--input", tmp_path / "broken.jpg")
    assert code == 1 and "broken.jpg: cannot decode as an image" in err


def test_exit_runs_only_what_the_early_classifier_needs(capsys, tmp_path):
    out_path = tmp_path / "exit2.npy"
    code, out, _ = run_cli(capsys, "run", "msdnet", "--exit", "2", "--batch", "2", "-o", out_path)
    assert code == 0 and "exit 2 of 4: computing" in out and "output 'exit2.linear': shape (2, 10)" in out
    full = models.build("msdnet")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)  # the CLI's seed-0 input
    np.testing.assert_allclose(np.load(out_path), cnngraph.compile(full).run({"image": x})["exit2.linear"],
                               rtol=1e-5, atol=1e-6)
    kept = keep_outputs(full, ["exit2.linear"])
    assert len(kept.nodes) < len(full.nodes) and not any(n.name.startswith("exit3") for n in kept.nodes)
    assert set(kept.params) < set(full.params)
    code, _, err = run_cli(capsys, "run", "msdnet", "--exit", "5")
    assert code == 1 and "--exit 5: model 'msdnet' has 4 output(s), exits 1 to 4" in err


def test_keep_outputs_refuses_unknown_outputs():
    with pytest.raises(GraphError, match=r"has outputs \['fc'\]; cannot keep \['fc7'\]"):
        keep_outputs(models.build("resnet18", input_size=32), ["fc7"])
