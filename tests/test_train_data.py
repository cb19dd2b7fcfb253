"""Dataset readers on small files written here, their errors, and the batch pipeline."""

import gzip

import numpy as np
import pytest
from PIL import Image

from cnngraph.errors import DataError
from cnngraph.train.data import Dataset, load_dataset
from cnngraph.train.data.idx import read_idx
from cnngraph.train.data.loader import Loader
from cnngraph.train.data.transforms import Augment, Normalize, resize

rng = np.random.default_rng(0)


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder, n_train=6, n_test=4, side=28, gz=True):
    folder.mkdir(exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        for kind, arr, rank in (("images", x, 3), ("labels", y, 1)):
            raw = idx_bytes(arr)
            name = f"{prefix}-{kind}-idx{rank}-ubyte"
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
        data[prefix] = (x, y)
    return data


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_gzipped_or_raw(tmp_path, gz):
    data = write_mnist(tmp_path / "mnist", gz=gz)
    splits = load_dataset(str(tmp_path / "mnist"), (1, 28, 28))
    assert np.array_equal(splits.train.x[:, 0], data["train"][0]) and splits.train.x.dtype == np.uint8
    assert np.array_equal(splits.test.y, data["t10k"][1])


def test_idx_types_and_byte_order(tmp_path):
    arr = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    (tmp_path / "a.idx").write_bytes(idx_bytes(arr, 0x0C))
    out = read_idx(tmp_path / "a.idx")
    assert np.array_equal(out, arr) and out.dtype == np.int32


@pytest.mark.parametrize("damage,message", [
    (lambda raw: raw[:-5], "(6, 28, 28) (uint8) needs 4720 bytes, the file has 4715"),
    (lambda raw: b"\x01\x02" + raw[2:], "not an IDX file (expected magic 00 00 <type> <ndim>, found 01 02 08 03)"),
    (lambda raw: raw[:2] + b"\x07" + raw[3:], "found 00 00 07 03"),
    (lambda raw: gzip.compress(raw)[:-10], "corrupt or truncated gzip"),
])
def test_bad_idx_files_say_what_is_wrong(tmp_path, damage, message):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path), (1, 28, 28))
    assert str(path) in str(e.value) and message in str(e.value)


def test_mnist_missing_test_files_and_label_mismatch(tmp_path):
    write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="lacks t10k-images-idx3-ubyte"):
        load_dataset(str(tmp_path), (1, 28, 28))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match="expected 4 labels for 4 images"):
        load_dataset(str(tmp_path), (1, 28, 28))


def cifar_records(n):
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.uint8)
    return x, y, np.concatenate([y[:, None], x.reshape(n, -1)], axis=1).tobytes()


def test_cifar10_binary_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        x, y, raw = cifar_records(3)
        (folder / name).write_bytes(raw)
        batches[name] = (x, y)
    (folder / "batches.meta.txt").write_text("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                        "frog", "horse", "ship", "truck"]) + "\n\n")
    splits = load_dataset(str(tmp_path), (3, 32, 32))
    assert len(splits.train) == 15 and splits.train.classes[9] == "truck"
    assert np.array_equal(splits.train.x[3:6], batches["data_batch_2.bin"][0])
    assert np.array_equal(splits.test.y, batches["test_batch.bin"][1])
    (folder / "data_batch_3.bin").write_bytes(cifar_records(2)[2][:-1])
    with pytest.raises(DataError, match=r"data_batch_3.bin: 6145 bytes is not a whole number of 3073-byte"):
        load_dataset(str(tmp_path), (3, 32, 32))


def test_cifar10_python_pickles_are_refused_with_the_reason(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x80\x02not read")
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path), (3, 32, 32))
    assert "pickles" in str(e.value) and "cifar-10-binary.tar.gz" in str(e.value)


def write_image_folder(root, sizes=((10, 12), (7, 7), (20, 5))):
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            Image.new("RGB", (w, h), (40 * c + 10 * i, 100, 200)).save(root / name / f"{i}.png")


def test_image_folder_classes_sizes_and_split(tmp_path):
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "test", sizes=((9, 9),))
    splits = load_dataset(str(tmp_path), (3, 8, 8))
    assert splits.train.classes == ["cat", "dog"] and splits.train.x.shape == (6, 3, 8, 8)
    assert list(splits.test.y) == [0, 1]
    assert splits.train.x[4, 0, 0, 0] == 40 + 10 and splits.train.x[4, 2, 3, 3] == 200  # dog/1.png, uniform colour
    gray = load_dataset(str(tmp_path / "train"), (1, 8, 8))  # no train/test: a fixed 20% held out
    assert len(gray.train) == 5 and len(gray.test) == 1 and gray.train.x.shape[1] == 1


def test_image_folder_errors_name_the_file(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"dog/broken.png: cannot decode as an image"):
        load_dataset(str(tmp_path), (3, 8, 8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "dog" / "broken.png").unlink()
    with pytest.raises(DataError, match="empty: no images"):
        load_dataset(str(tmp_path), (3, 8, 8))


def test_npz_with_and_without_test_arrays(tmp_path):
    x = rng.integers(0, 256, (10, 6, 6), dtype=np.uint8)
    y = np.arange(10) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    splits = load_dataset(str(tmp_path / "d.npz"), (1, 6, 6))
    assert len(splits.train) == 8 and len(splits.test) == 2
    together = np.concatenate([splits.train.x, splits.test.x])[:, 0]
    assert sorted(map(bytes, together)) == sorted(map(bytes, x))
    np.savez(tmp_path / "e.npz", x=x.astype(np.float32) / 255, y=y, x_test=x[:2, None], y_test=y[:2])
    splits = load_dataset(str(tmp_path / "e.npz"), (1, 6, 6))
    assert len(splits.train) == 10 and splits.train.x.dtype == np.float32 and len(splits.test) == 2


@pytest.mark.parametrize("arrays,message", [
    ({"images": np.zeros((2, 4, 4))}, "expected arrays 'x' and 'y', found ['images']"),
    ({"x": np.zeros((2, 4, 4)), "y": np.zeros(2)}, "labels must be integers, got dtype float64"),
    ({"x": np.zeros((2, 4, 4)), "y": np.zeros(3, int)}, "expected 2 labels for 2 images"),
    ({"x": np.array([None, None]), "y": np.zeros(2, int)},
     "dtype object is not a plain number type (object arrays need pickle"),
    ({"x": np.zeros((4,)), "y": np.zeros(4, int)}, "images must be (N, C, H, W), got shape (4,)"),
    ({"x": np.zeros((2, 4, 4)), "y": np.zeros(2, int), "x_test": np.zeros((1, 4, 4))},
     "has 'x_test' but no 'y_test'"),
])
def test_bad_npz_is_named(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "bad.npz"), (1, 4, 4))
    assert "bad.npz" in str(e.value) and message in str(e.value)


def test_unknown_paths_and_files(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(str(tmp_path / "nope"), (1, 8, 8))
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="must be a .npz"):
        load_dataset(str(tmp_path / "x.csv"), (1, 8, 8))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz"):
        load_dataset(str(tmp_path / "junk.npz"), (1, 8, 8))


def test_digits_fixed_split_resized_for_lenet():
    splits = load_dataset("digits", (1, 32, 32))
    assert (len(splits.train), len(splits.test)) == (1437, 360)
    assert splits.train.x.shape == (1437, 1, 32, 32) and splits.train.x.dtype == np.float32
    assert np.bincount(splits.test.y).min() >= 33 and "Alpaydin" in splits.source
    assert 0.0 <= splits.train.x.min() and splits.train.x.max() <= 1.0


def test_resize_is_bilinear_and_exact_on_constant_images():
    flat = np.full((1, 1, 8, 8), 0.25, np.float32)
    assert np.allclose(resize(flat, (32, 32)), 0.25)
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))[None, None]
    row = resize(ramp, (8, 16))[0, 0, 0]
    # pixel centres align (torch's align_corners=False): output x samples input x / 2 - 1/4, clamped at the edges
    assert np.allclose(row, np.clip(np.arange(16) / 2 - 0.25, 0, 7))


def test_normalize_uses_training_statistics():
    x = rng.integers(0, 256, (50, 3, 4, 4), dtype=np.uint8)
    norm = Normalize.of(x, chunk=7)
    as_float = x.astype(np.float64) / 255
    assert np.allclose(norm.mean, as_float.mean(axis=(0, 2, 3))) and np.allclose(norm.std, as_float.std(axis=(0, 2, 3)))
    out = norm(as_float.astype(np.float32))
    assert np.allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5) and np.allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_augment_crop_and_flip():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4) + 1
    cropped = Augment(crop=1)(x.copy(), np.random.default_rng(3))
    for image, original in zip(cropped, x):
        padded = np.pad(original[0], 1)
        assert any(np.array_equal(image[0], padded[i:i + 4, j:j + 4]) for i in range(3) for j in range(3))
    flipped = Augment(flip=True)(np.repeat(x[:1], 64, axis=0), np.random.default_rng(0))
    mirrored = [np.array_equal(f, x[0, :, :, ::-1]) for f in flipped]
    assert 10 < sum(mirrored) < 54 and all(m or np.array_equal(f, x[0]) for m, f in zip(mirrored, flipped))


def test_loader_shuffles_with_seed_batches_all_and_resumes_mid_epoch():
    data = Dataset(np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1), np.arange(10))
    make = lambda: Loader(data, 4, np.random.default_rng(5), augment=Augment(flip=True))
    straight = make()
    epochs = [[y.tolist() for _, y in straight] for _ in range(2)]
    assert [len(b) for b in epochs[0]] == [4, 4, 2] and sorted(y for batch in epochs[0] for y in batch) == list(range(10))
    assert epochs[0] != epochs[1]
    first = make()
    it = iter(first)
    next(it)
    meta, arrays = first.state()
    resumed = make()
    resumed.load_state(meta, arrays)
    rest = [y.tolist() for _, y in resumed] + [[y.tolist() for _, y in resumed]]
    assert rest[:2] == epochs[0][1:] and rest[2] == epochs[1]
