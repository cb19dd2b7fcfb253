"""Training the verify task with an embedding loss: identity-balanced batches (P identities x K images, fixed by
the seed, the contrastive pairs laid out as a siamese batch), `cnngraph train --task verify --loss ...` end to end
(the loss falls, the run folder holds what a classifier run's does, resume continues exactly), and bad option
combinations refused in one line."""

import re

import numpy as np
import pytest

from cnngraph import io
from cnngraph.errors import DataError
from cnngraph.train import TrainConfig, Trainer
from cnngraph.train.checkpoint import load as load_checkpoint
from cnngraph.train.data import Dataset, Splits
from cnngraph.train.data.identity_batches import IdentityBatches, siamese_layout
from cnngraph.verification.task import training_graph
from tests.test_verification import cli, small_classifier

LABELS = np.repeat(np.arange(5), [9, 7, 3, 12, 6])  # identity 2 has fewer images than K = 4


def dataset(labels=LABELS):
    x = np.arange(len(labels), dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32)
    return Dataset(x, labels.copy())


def batches(loader):
    return [(x[:, 0, 0, 0].astype(int), y) for x, y in loader]


@pytest.mark.parametrize("pairs", [False, True])
def test_every_batch_holds_p_identities_of_k_images(pairs):
    loader = IdentityBatches(dataset(), 3, 4, np.random.default_rng(5), pairs=pairs)
    epoch = batches(loader)
    assert len(epoch) == len(LABELS) // 12 == len(loader)
    for index, y in epoch:
        np.testing.assert_array_equal(LABELS[index], y)  # x row k is image k: the labels are the images' own
        identities, counts = np.unique(y, return_counts=True)
        assert len(identities) == 3 and set(counts) == {4}
        for c in identities:  # no image twice, unless the identity has fewer than K
            assert len(set(index[y == c])) == min(4, int((LABELS == c).sum()))


def test_the_batches_are_fixed_by_the_seed_and_replayed_from_a_checkpoint():
    first = batches(IdentityBatches(dataset(), 3, 4, np.random.default_rng(5)))
    again = IdentityBatches(dataset(), 3, 4, np.random.default_rng(5))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, batches(again)))
    other = batches(IdentityBatches(dataset(), 3, 4, np.random.default_rng(6)))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    next_epoch = batches(again)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, next_epoch))  # a new draw every epoch
    # mid-epoch: a loader restored from the state after one batch gives the rest of that epoch
    loader = IdentityBatches(dataset(), 2, 2, np.random.default_rng(1))
    it = iter(loader)
    next(it)
    meta, arrays = loader.state()
    rest = [x[:, 0, 0, 0] for x, _ in it]
    restored = IdentityBatches(dataset(), 2, 2, np.random.default_rng(99))
    restored.load_state(meta, arrays)
    replayed = [x[:, 0, 0, 0] for x, _ in restored]
    assert len(rest) == len(replayed) == len(loader) - 1
    assert all(np.array_equal(a, b) for a, b in zip(rest, replayed))


def test_unshuffled_batches_are_the_same_every_epoch():
    loader = IdentityBatches(dataset(), 3, 2, shuffle=False)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches(loader), batches(loader)))


def test_the_siamese_layout_pairs_half_same_half_different_and_uses_every_image_once():
    block = np.arange(24).reshape(3, 8)  # identity p's images are 8p .. 8p + 7
    order = siamese_layout(block)
    np.testing.assert_array_equal(np.sort(order), np.arange(24))
    first, second = order[:12] // 8, order[12:] // 8
    same = first == second
    assert same.sum() == 6 and set(np.flatnonzero(same) % 4) == {0, 2}
    assert set(np.flatnonzero(~same) % 4) == {1, 3} and ((second[~same] - first[~same]) % 3 == 1).all()


@pytest.mark.parametrize("args,message", [
    ((6, 2), "the data has 5 identities"),  # the default where
    ((1, 2), "at least 2"),
    ((3, 1), "--per-identity 1"),
    ((3, 3, True), "an even number"),
])
def test_impossible_batches_are_refused(args, message):
    identities, k, *pairs = args
    with pytest.raises(DataError, match=message):
        IdentityBatches(dataset(), identities, k, pairs=bool(pairs))


def test_of_batch_takes_at_most_every_identity():
    assert IdentityBatches.of_batch(dataset(), 32, 4).identities == 5
    assert IdentityBatches.of_batch(dataset(), 8, 4).batch_size == 8


def bars(rows, per_identity=12, seed=0):
    """1x8x8 images of identities told apart by a bright bar at a row of their own, in noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(rows)), per_identity)
    x = rng.random((len(y), 1, 8, 8), np.float32) * 0.3
    x[np.arange(len(y)), 0, np.asarray(rows)[y], :] += 0.7
    return x, y


def splits():
    x, y = bars([0, 2, 4, 6])
    return Splits(Dataset(x[::2], y[::2]), Dataset(x[1::2], y[1::2]), "bars")


@pytest.mark.parametrize("loss", ["triplet", "contrastive"])
def test_an_embedding_loss_trains_the_normalised_embedding(loss, tmp_path):
    config = TrainConfig(epochs=6, batch=8, lr=0.05, crop=0, task="verify", train_classes="0-3", loss=loss)
    graph = training_graph(small_classifier(), config)
    assert graph.outputs == ["embedding"]
    trainer = Trainer(graph, splits(), config, tmp_path, quiet=True)
    untrained_test_loss, _ = trainer.evaluate()
    history = trainer.fit()
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert np.isnan(history[-1]["test_acc"]) and history[-1]["test_loss"] < 0.5 * untrained_test_loss
    out = trainer.model.run(np.asarray(splits().test.x), to_host=True)["embedding"]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, rtol=1e-5)
    assert io.load(tmp_path / "model.cng").info.classes is None


def test_resuming_an_embedding_run_continues_exactly(tmp_path):
    config = dict(epochs=2, batch=8, lr=0.05, schedule="constant", task="verify", train_classes="0-3", loss="triplet",
                  per_identity=2)
    whole = Trainer(training_graph(small_classifier(), TrainConfig(**config)), splits(), TrainConfig(**config),
                    tmp_path / "whole", quiet=True)
    whole.fit()
    part = Trainer(training_graph(small_classifier(), TrainConfig(**config)), splits(),
                   TrainConfig(**{**config, "epochs": 1}), tmp_path / "part", quiet=True)
    part.fit()
    resumed = Trainer.resume(tmp_path / "part", epochs=2, splits=splits(), quiet=True)
    resumed.fit()
    assert resumed.step_losses == whole.step_losses[len(part.step_losses):]
    want = load_checkpoint(tmp_path / "whole" / "checkpoint.safetensors").arrays["param"]
    for k, v in load_checkpoint(tmp_path / "part" / "checkpoint.safetensors").arrays["param"].items():
        np.testing.assert_array_equal(v, want[k])


def test_cnngraph_train_verify_with_triplet_loss(tmp_path, capsys):
    (tmp_path / "net.py").write_text("from tests.test_verification import small_classifier as net\n")
    x, y = bars([0, 2, 4, 6, 1, 5], per_identity=20)
    np.savez(tmp_path / "six.npz", x=(x[:, 0] * 255).astype(np.uint8), y=y)
    run = tmp_path / "run"
    code, out, err = cli(capsys, "train", f"{tmp_path}/net.py:net", "--data", tmp_path / "six.npz", "--task", "verify",
                         "--train-classes", "0-3", "--epochs", 2, "--batch", 8, "--crop", 0, "--loss", "triplet",
                         "--margin", 0.5, "--per-identity", 4, "--out", run)
    assert code == 0, err
    assert "triplet loss" in out and "open-set verification: ROC AUC" in out and " acc " not in out
    found = {p.name for p in run.iterdir()}
    assert found == {"checkpoint.safetensors", "metrics.csv", "curves.png", "model.cng", "embedding.cng",
                     "verification.json", "roc.png"}
    assert io.load(run / "embedding.cng").outputs == ["embedding"]


@pytest.mark.parametrize("argv,message", [
    (["--loss", "triplet"], "loss triplet trains an embedding: it needs task verify"),
    (["--loss", "contrastive", "--task", "verify", "--train-classes", "0-6", "--per-identity", "3"],
     "--per-identity 3: .* an even number"),
    (["--margin", "0.3", "--task", "verify", "--train-classes", "0-6"], "margin .* needs loss triplet or contrastive"),
    (["--loss", "triplet", "--task", "verify", "--train-classes", "0-6", "--per-identity", "1"], "at least 2 images"),
])
def test_bad_embedding_loss_options_are_one_line(argv, message, capsys, tmp_path):
    code, out, err = cli(capsys, "train", "deepface_small", "--epochs", 1, *argv, "--out", tmp_path / "r")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
