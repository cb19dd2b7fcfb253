"""Models that remember what they were trained on: the info in .cng and ONNX files, written by `cnngraph train`,
used by `cnngraph run` (class names, photos prepared as in training, random weights flagged), checked on load.

Oracles: Pillow and NumPy preparing the photo and computing the channel statistics independently, the compiled
model run on that input in Python, and onnxruntime reading the exported file's metadata."""

import json

import numpy as np
import onnx
import pytest
from PIL import Image
from safetensors.numpy import save_file

import cnngraph
from cnngraph import io
from cnngraph.errors import ModelFileError
from cnngraph.frontends import dsl
from cnngraph.imagenet import top_classes
from cnngraph.model_info import ModelInfo
from cnngraph.photo import prepare_photo
from tests.cli_process import cnngraph as cli
from tests.cli_process import one_line_error

NET = '''
from cnngraph.frontends import dsl

def rgb(num_classes=2):
    x = dsl.input("image", (3, 8, 8))
    y = dsl.relu(dsl.conv2d(x, 4, 3, padding=1, name="conv"))
    return dsl.Model(x, dsl.linear(dsl.flatten(dsl.max_pool2d(y, 2)), num_classes, name="fc"), name="rgb")
'''


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """lenet5 trained one epoch on the shipped digits by the CLI, and a photo of a digit."""
    folder = tmp_path_factory.mktemp("digits")
    done = cli("train", "lenet5", "--data", "digits", "--epochs", 1, "--out", folder / "run")
    assert done.returncode == 0, done.stderr
    ink = np.full((60, 45, 3), 20, np.uint8)
    ink[10:50, 20:26] = 250  # a bright "1" on a dark ground, as the digits are
    Image.fromarray(ink).save(folder / "one.png")
    return folder


def test_train_records_class_names_input_and_the_training_normalisation(digits_run):
    from cnngraph.train import load_dataset

    info = io.load(digits_run / "run" / "model.cng").info
    assert info.classes == [str(d) for d in range(10)] and info.task == "classification"
    assert (info.channels, info.size, info.resize, info.weights) == (1, [32, 32], "stretch", "trained")
    x = load_dataset("digits", (1, 32, 32)).train.x.astype(np.float64)
    np.testing.assert_allclose(info.mean, [x.mean()], rtol=1e-6)
    np.testing.assert_allclose(info.std, [x.std()], rtol=1e-5)
    done = cli("summary", digits_run / "run" / "model.cng", columns=None)
    assert done.returncode == 0
    assert f"Model info: weights trained (digits); 10 classes (0, 1, 2, 3, 4, ...); inputs normalised with mean " \
           f"{x.mean():.3g}, std {x.std():.3g}" in done.stdout


def test_run_prepares_a_colour_photo_as_the_digits_and_prints_class_names(digits_run):
    model_path, photo = digits_run / "run" / "model.cng", digits_run / "one.png"
    done = cli("run", model_path, "--input", photo)
    assert done.returncode == 0, done.stderr
    graph = io.load(model_path)
    info = graph.info
    gray = np.asarray(Image.open(photo).convert("L").resize((32, 32), Image.BILINEAR), np.float32) / 255
    oracle = ((gray - info.mean[0]) / info.std[0])[None, None].astype(np.float32)
    np.testing.assert_allclose(prepare_photo(str(photo), (1, 32, 32), info)[0], oracle, rtol=1e-6, atol=1e-6)
    logits = cnngraph.compile(graph).run(oracle, to_host=True)[graph.outputs[0]][0]
    expected = ", ".join(f"{name} ({p:.3f})" for name, p in top_classes(logits, info.classes))
    assert f"sample 0: top-5 {expected}" in done.stdout
    assert "photo one.png: grayscale, resized to 32x32, normalised (training mean/std)" in done.stdout
    assert "weights: trained (digits)" in done.stdout and "random" not in done.stdout


def test_image_folder_names_become_the_class_names(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(("cat", "dog")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 60, (12, 10, 3), dtype=np.uint8)
                pixels[..., 2 * c] += 180
                Image.fromarray(pixels).save(tmp_path / "data" / split / name / f"{i}.png")
    done = cli("train", f"{tmp_path}/net.py:rgb", "--data", tmp_path / "data", "--epochs", 1, "--batch", 4,
               "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    info = io.load(tmp_path / "run" / "model.cng").info
    assert info.classes == ["cat", "dog"] and (info.channels, info.size, info.grayscale) == (3, [8, 8], False)
    train = np.stack([np.asarray(Image.open(p).convert("RGB").resize((8, 8), Image.BILINEAR), np.float64) / 255
                      for p in sorted((tmp_path / "data" / "train").glob("*/*.png"))])
    np.testing.assert_allclose(info.mean, train.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(info.std, train.std(axis=(0, 1, 2)), rtol=1e-5)
    ran = cli("run", tmp_path / "run" / "model.cng", "--input", tmp_path / "data" / "test" / "dog" / "0.png")
    assert ran.returncode == 0, ran.stderr
    assert "top-2 " in ran.stdout and "cat (" in ran.stdout and "dog (" in ran.stdout


def test_random_weights_say_so_in_every_file_type(tmp_path):
    assert cli("compile", "lenet5", "-o", tmp_path / "random.cng").returncode == 0
    assert cli("export", "lenet5", "-o", tmp_path / "random.onnx").returncode == 0
    meta = json.loads(onnx.load(str(tmp_path / "random.onnx")).metadata_props[0].value)
    assert meta["weights"] == "random"
    import onnxruntime as ort

    props = ort.InferenceSession(str(tmp_path / "random.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(props["cnngraph.info"])["weights"] == "random"
    for model in ("lenet5", tmp_path / "random.cng", tmp_path / "random.onnx"):
        done = cli("run", model)
        assert done.returncode == 0 and "weights: random initialisation (zoo model lenet5)" in done.stdout, done.stdout
    weights = tmp_path / "w.npz"
    np.savez(weights, **io.load(tmp_path / "random.cng").params)
    done = cli("run", "lenet5", "--weights", weights)
    assert "weights: loaded (w.npz)" in done.stdout and "random" not in done.stdout


def test_files_without_info_load_and_say_their_origin_is_unknown(tmp_path):
    x = dsl.input("image", (3, 8, 8))
    graph = dsl.Model(x, dsl.linear(dsl.flatten(x), 5, name="fc"))
    io.save(graph, tmp_path / "old.cng")  # no info: the bytes an older cnngraph wrote
    assert io.load(tmp_path / "old.cng").info is None
    done = cli("run", tmp_path / "old.cng")
    assert done.returncode == 0 and "weights: origin not recorded in this model" in done.stdout
    foreign = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 4, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3, 4, 4])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.save(foreign, tmp_path / "foreign.onnx")
    done = cli("run", tmp_path / "foreign.onnx")
    assert done.returncode == 0 and "weights: imported (foreign.onnx)" in done.stdout


def test_info_survives_compile_and_export_import(tmp_path):
    x = dsl.input("image", (1, 8, 8))
    graph = dsl.Model(x, dsl.linear(dsl.flatten(x), 3, name="fc"))
    graph.info = ModelInfo(task="classification", classes=["a", "b", "c"], channels=1, size=[8, 8], mean=[0.5],
                           std=[0.25], resize="stretch", weights="trained", source="mine")
    io.save(cnngraph.compile(graph).graph, tmp_path / "m.cng")
    assert io.load(tmp_path / "m.cng").info == graph.info
    from cnngraph.backends.onnx_export import export
    from cnngraph.frontends import onnx_import

    export(graph, tmp_path / "m.onnx")
    assert onnx_import.load(tmp_path / "m.onnx").info == graph.info


def _with_info(tmp_path, doc) -> str:
    x = dsl.input("image", (1, 8, 8))
    graph = dsl.Model(x, dsl.linear(dsl.flatten(x), 3, name="fc"))
    meta = {"format": "cnngraph", "version": "1", "graph": json.dumps(io.graph_to_json(graph)),
            "info": doc if isinstance(doc, str) else json.dumps(doc)}
    path = tmp_path / "bad.cng"
    save_file({k: np.ascontiguousarray(v) for k, v in graph.params.items()}, str(path), metadata=meta)
    return str(path)


@pytest.mark.parametrize("doc,message", [
    ({"classes": ["a", "b"]}, "model info names 2 classes, the graph's output 'fc' is (N, 3)"),
    ({"classes": "abc"}, "model info 'classes' must be a list"),
    ({"classes": ["a"] * (2**20 + 1)},
     "model info 'classes' must be a list of at most 1,048,576 values, found 1,048,577"),
    ({"classes": ["a", 7, "c"]}, "model info 'classes[1]' must be text"),
    ({"mean": [float("nan")], "std": [1.0]}, "model info 'mean[0]' must be a finite number, found nan"),
    ({"mean": [0.5], "std": [0.0]}, "model info 'std[0]' must be a finite number > 0"),
    ({"mean": [0.5]}, "'mean' and 'std' must come together"),
    ({"channels": 3}, "model info says 3 input channels, the graph takes (N, 1, 8, 8)"),
    ({"size": [8, 8, 8]}, "model info 'size' must be a list of at most 2 values"),
    ({"weights": "magic"}, "model info 'weights' must be one of random, trained, imported, loaded, found 'magic'"),
    ([1, 2], "model info must be an object, found list"),
    ("{not json", "corrupt cnngraph model (JSONDecodeError"),
])
def test_bad_info_is_one_typed_error_naming_the_file_and_field(tmp_path, doc, message):
    path = _with_info(tmp_path, doc)
    with pytest.raises(ModelFileError, match="bad.cng: ") as caught:
        io.load(path)
    assert message in str(caught.value)


def test_bad_info_in_the_cli_is_one_line(tmp_path):
    done = cli("run", _with_info(tmp_path, {"classes": ["a", "b"]}))
    assert "bad.cng: model info names 2 classes" in one_line_error(done, "run")


def test_a_colour_model_trained_on_gray_images_gets_a_gray_photo(tmp_path):
    """Digits repeated into a 3-channel model: a colour photo is converted to gray and repeated, as in training."""
    from cnngraph.train import TrainConfig, Trainer, load_dataset

    x = dsl.input("image", (3, 8, 8))
    graph = dsl.Model(x, dsl.linear(dsl.flatten(x), 10, name="fc"))
    Trainer(graph, load_dataset("digits", (3, 8, 8)), TrainConfig(epochs=1), tmp_path, quiet=True).fit()
    info = io.load(tmp_path / "model.cng").info
    assert info.grayscale is True and len(info.mean) == 3 and info.mean[0] == info.mean[2]
    rgb = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    got, how = prepare_photo(str(tmp_path / "colour.png"), (3, 8, 8), info)
    gray = np.asarray(Image.fromarray(rgb).convert("L").resize((8, 8), Image.BILINEAR), np.float32) / 255
    oracle = np.stack([(gray - m) / s for m, s in zip(info.mean, info.std)])[None]
    np.testing.assert_allclose(got, oracle, rtol=1e-5, atol=1e-6)
    assert how.startswith("grayscale in 3 channels, resized to 8x8")
