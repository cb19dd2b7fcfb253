"""Open-set verification: identities split by class, pairs, the L2-normalised embedding (against NumPy and
onnxruntime), the evaluation on separable and random embeddings, and `cnngraph train --task verify` with
`cnngraph verify` end to end on a small synthetic dataset."""

import json

import numpy as np
import pytest
from PIL import Image

import cnngraph
from cnngraph import io
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.backends.onnx_verify import verify
from cnngraph.cli import main
from cnngraph.errors import DataError, GraphError
from cnngraph.frontends import dsl
from cnngraph.subgraph import keep_outputs
from cnngraph.train.data import Dataset, Splits
from cnngraph.train.data.transforms import Normalize
from cnngraph.verification.embedding import embedding_graph
from cnngraph.verification.open_set import balanced_pairs, evaluate, halves, parse_classes, split_identities
from cnngraph.verification.task import verification_splits
from tests.test_train_cli import files  # noqa: F401 - the fixture


def test_parse_classes():
    assert parse_classes("0-6") == [0, 1, 2, 3, 4, 5, 6]
    assert parse_classes("5-7, 0,2") == [0, 2, 5, 6, 7]
    for bad in ("6-0", "a", "1-", ""):
        with pytest.raises(DataError, match="expected class indices and ranges"):
            parse_classes(bad)


def splits(n=60, classes=5):
    y = np.arange(n) % classes
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)  # image k holds k: where it went is visible
    return Splits(Dataset(x[:40], y[:40]), Dataset(x[40:], y[40:]), "toy")


def test_split_identities_keeps_the_unseen_classes_out_of_training():
    known, unseen = split_identities(splits(), [0, 2, 4])
    assert sorted(np.unique(known.train.y)) == [0, 1, 2] and sorted(np.unique(known.test.y)) == [0, 1, 2]
    assert set(known.train.x.ravel() % 5) == {0, 2, 4}  # image k is of class k % 5, relabelled 0, 1, 2
    np.testing.assert_array_equal(known.train.y, (known.train.x.ravel() % 5) // 2)
    np.testing.assert_array_equal(np.sort(unseen.x.ravel()), [k for k in range(60) if k % 5 in (1, 3)])
    np.testing.assert_array_equal(unseen.y, unseen.x.ravel() % 5)
    with pytest.raises(DataError, match=r"toy has classes 0..4, not \[7\]"):
        split_identities(splits(), [0, 7])
    with pytest.raises(DataError, match="leaves 1 of toy's 5 classes"):
        split_identities(splits(), [0, 1, 2, 3])


def test_halves_and_pairs():
    labels = np.arange(30) % 3
    a, b = halves(labels, 0)
    assert not set(a) & set(b) and len(a) + len(b) == 30
    assert [int((labels[a] == c).sum()) for c in range(3)] == [5, 5, 5]
    i, j = balanced_pairs(labels[a], 1)
    same = labels[a][i] == labels[a][j]
    assert same.sum() == (~same).sum() == 3 * 10  # every same pair (C(5, 2) per identity), as many different
    assert (i < j).all() and len(set(zip(i, j))) == len(i)


def test_evaluation_of_separable_and_of_random_embeddings():
    y = np.repeat(np.arange(4), 25)
    unseen = Dataset(np.zeros((100, 1, 1, 1), np.float32), y)
    rng = np.random.default_rng(0)
    perfect = evaluate(lambda x: np.eye(4)[y] + 0.01 * rng.standard_normal((100, 4)), unseen)
    assert (perfect.auc, perfect.eer, perfect.accuracy, perfect.threshold_accuracy) == (1.0, 0.0, 1.0, 1.0)
    assert 0.02 < perfect.threshold < 1.4  # between same (~0.01) and different (~1.41) distances
    chance = evaluate(lambda x: rng.standard_normal((100, 8)), unseen)
    assert 0.4 < chance.auc < 0.6 and 0.4 < chance.eer < 0.6


def small_classifier(num_classes=4):
    x = dsl.input("image", (1, 8, 8))
    y = dsl.relu(dsl.locally_connected2d(x, 3, 3, stride=2, name="lc"), name="lc_relu")
    y = dsl.relu(dsl.linear(dsl.flatten(y), 6, name="f7"), name="f7_relu")
    return dsl.Model(x, dsl.linear(dsl.dropout(y, 0.5), num_classes, name="f8"), name="small", seed=3)


def test_embedding_is_the_features_normalised_and_exports_to_onnx():
    graph = small_classifier()
    embedding = embedding_graph(graph)
    assert embedding.outputs == ["embedding"] and "f8" not in {n.name for n in embedding.nodes}
    x = np.random.default_rng(1).standard_normal((5, 1, 8, 8)).astype(np.float32)
    cut = graph.copy()
    cut.outputs = ["f7_relu"]
    features = cnngraph.compile(keep_outputs(cut, ["f7_relu"]), dtype="float64")(x)
    got = cnngraph.compile(embedding, dtype="float64")(x)
    np.testing.assert_allclose(got, features / np.linalg.norm(features, axis=1, keepdims=True), rtol=1e-9)  # eps 1e-12
    assert verify(embedding, to_onnx(embedding), batches=(1, 3)).ok
    with pytest.raises(GraphError, match="no layer named 'f9'"):
        embedding_graph(graph, "f9")


@pytest.fixture
def data(files):
    """test_train_cli's four identities (bright rows at each its own place in noisy 8x8 images), and three of
    their images as PNGs."""
    with np.load(files / "four.npz") as arrays:
        x = arrays["x"]
    for name, k in (("a", 2), ("b", 6), ("c", 3)):  # identities 2, 2, 3: never trained on
        Image.fromarray(x[k]).save(files / f"{name}.png")
    return files


def test_an_image_folder_gives_its_unseen_classes_from_both_splits(data):
    with np.load(data / "four.npz") as arrays:
        x, y = arrays["x"], arrays["y"]
    for k, (image, label) in enumerate(zip(x, y)):
        (data / "faces" / f"id{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(data / "faces" / f"id{label}" / f"{k:02d}.png")
    known, unseen = verification_splits(str(data / "faces"), (1, 8, 8), "0-1")
    assert len(known.train) + len(known.test) == 20 and sorted(np.unique(unseen.y)) == [2, 3]
    assert len(unseen) == 20 and unseen.classes == ["id0", "id1", "id2", "id3"]
    np.testing.assert_array_equal(np.sort(unseen.x.reshape(20, -1), axis=0), np.sort(x[y >= 2].reshape(20, -1), axis=0))


def cli(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_verify_then_cnngraph_verify(data, tmp_path, capsys):
    (tmp_path / "net.py").write_text("from tests.test_verification import small_classifier as net\n")
    run = tmp_path / "run"
    code, out, err = cli(capsys, "train", f"{tmp_path}/net.py:net", "--data", data / "four.npz", "--task", "verify",
                         "--train-classes", "0-1", "--epochs", 3, "--batch", 16, "--crop", 0, "--lr", 0.1, "--out", run,
                         "--embedding", "lc_relu")
    assert code == 0, err
    assert "open-set verification: ROC AUC" in out
    settings = json.loads((run / "verification.json").read_text())
    assert settings["train_classes"] == "0-1" and 0 <= settings["eer"] <= 1 and settings["test_pairs"] > 0
    assert (run / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    embedding = io.load(run / "embedding.cng")
    assert embedding.outputs == ["embedding"] and "f7" not in {n.name for n in embedding.nodes}  # cut at lc_relu

    code, out, err = cli(capsys, "verify", run, data / "a.png", data / "c.png")
    assert code == 0, err
    normalize = Normalize(settings["mean"], settings["std"])
    pixels = np.stack([np.asarray(Image.open(data / f"{n}.png"))[None] for n in "ac"]).astype(np.float32) / 255
    e = cnngraph.compile(embedding)(normalize(pixels))
    distance = np.linalg.norm(e[0] - e[1])
    verdict = "same" if distance <= settings["threshold"] else "different"
    assert out.strip() == f"distance {distance:.4f}: {verdict} (threshold {settings['threshold']:.4f})"

    code, out, err = cli(capsys, "verify", run / "embedding.cng", data / "a.png", data / "b.png", "--threshold", 5)
    assert code == 0 and out.startswith("distance ") and out.strip().endswith(": same (threshold 5.0000)")

    code, out, err = cli(capsys, "train", "--resume", run, "--epochs", 4)
    assert code == 0, err
    assert "open-set verification" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "lenet5", "--train-classes", "0-6"], "task verify needs train_classes"),
    (["train", "lenet5", "--task", "verify"], "task verify needs train_classes"),
    (["train", "lenet5", "--embedding", "f6"], "embedding .* needs task verify"),
    (["train", "lenet5", "--task", "verify", "--train-classes", "0-6", "--embedding", "f9"], "no layer named 'f9'"),
    (["train", "lenet5", "--task", "verify", "--train-classes", "0-12"], r"digits .* not \[10, 11, 12\]"),
    (["verify", "lenet5", "a.png", "b.png"], "has no saved threshold: give --threshold"),
])
def test_bad_verification_requests_are_one_line(argv, message, capsys, tmp_path):
    code, out, err = cli(capsys, *argv, *(["--out", tmp_path / "r"] if argv[0] == "train" else []))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err
