"""The formats the fuzz suite mutates: a small valid example of each, and the loader that reads it.

Each format is a set of files (``{relative path: bytes}``) and a target that loads them the way a
user's command would, running the model where the format is a model. A mutation changes one of the
files; the promise under test is that the target returns or raises a CnnGraphError.
"""

from __future__ import annotations

import gzip
import io as bytes_io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

FormatFiles = dict[str, bytes]


@dataclass(frozen=True)
class Format:
    name: str
    files: Callable[[], FormatFiles]
    target: Callable[[Path, str], object]  # (folder holding the files, the mutated file) -> result


def small_graph():
    """Every op family the kernels window over (conv, pool, LRN, resize), in a graph that runs in ~1 ms."""
    from cnngraph.frontends import dsl

    x = dsl.input("x", (1, 8, 8))
    y = dsl.relu(dsl.conv2d(x, 2, 3, padding=1, name="conv"))
    y = dsl.lrn(y, 3, name="lrn")
    y = dsl.max_pool2d(y, 2, name="pool")
    y = dsl.upsample(y, scale_factor=2, name="up")
    y = dsl.linear(dsl.flatten(dsl.avg_pool2d(y, 2, name="avg")), 3, name="fc")
    return dsl.Model(x, y, name="small", seed=0)


def _run(graph) -> object:
    """Run at batch 1 on zeros, the input checked against the budget first as ``cnngraph run`` does."""
    import cnngraph
    from cnngraph.limits import array_bytes, check_bytes

    model = cnngraph.compile(graph, passes="none")
    shape = graph.inputs[next(iter(graph.inputs))].concrete(1)
    check_bytes(array_bytes(shape, 4), f"input {shape}")
    return model.run(np.zeros(shape, np.float32))


# -- models and weights ------------------------------------------------------------------------
def _onnx_files() -> FormatFiles:
    """The small graph as exported, and a hand-made model whose weights are folded at import."""
    import tempfile

    from cnngraph.backends.onnx_export import export

    with tempfile.TemporaryDirectory() as folder:
        export(small_graph(), Path(folder) / "m.onnx", opset=17)
        return {"m.onnx": (Path(folder) / "m.onnx").read_bytes(), "fold.onnx": _folding_model()}


def _folding_model() -> bytes:
    """``x.view(x.size(0), -1)`` into a Gemm whose weight is a ConstantOfShape, bias an Expand of a Tile,
    with a Range beside it: the ops that make sizes from values. Constants are int64_data, not raw
    bytes, so the protobuf mutations reach their values."""
    from onnx import TensorProto, helper

    def ints(name, values):
        return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)

    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
        helper.make_node("ConstantOfShape", ["w_shape"], ["w"], name="fill",
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.01])),
        helper.make_node("Tile", ["one", "reps"], ["tiled"]),
        helper.make_node("Cast", ["tiled"], ["tiled_f"], to=TensorProto.FLOAT),
        helper.make_node("Expand", ["tiled_f", "b_shape"], ["b"]),
        helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1),
    ]
    constants = [helper.make_tensor("zero", TensorProto.INT64, [], [0]), ints("axes", [0]), ints("minus_one", [-1]),
                 ints("w_shape", [5, 48]), ints("one", [1]), ints("reps", [5]), ints("b_shape", [5]),
                 helper.make_tensor("start", TensorProto.INT64, [], [0]),
                 helper.make_tensor("limit", TensorProto.INT64, [], [10]),
                 helper.make_tensor("delta", TensorProto.INT64, [], [1])]
    graph = helper.make_graph(nodes, "fold", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _onnx_target(root: Path, mutated: str):
    from cnngraph.frontends import onnx_import

    return _run(onnx_import.load(root / mutated))


def _cng_files() -> FormatFiles:
    import tempfile

    from cnngraph import io
    from cnngraph.model_info import ModelInfo

    graph = small_graph()  # with info, so that mutations reach its checks too
    graph.info = ModelInfo(task="classification", classes=["a", "b", "c"], channels=1, size=[8, 8], mean=[0.5],
                           std=[0.25], resize="stretch", weights="trained", source="fuzz")
    with tempfile.TemporaryDirectory() as folder:
        io.save(graph, Path(folder) / "m.cng")
        return {"m.cng": (Path(folder) / "m.cng").read_bytes()}


def _cng_target(root: Path, _: str):
    from cnngraph import io

    return _run(io.load(root / "m.cng"))


def _npz(**arrays) -> bytes:
    buffer = bytes_io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _weights_files() -> FormatFiles:
    return {"w.npz": _npz(**small_graph().params)}


def _weights_target(root: Path, _: str):
    from cnngraph.weights import load_weights

    return load_weights(small_graph(), root / "w.npz")


# -- datasets ----------------------------------------------------------------------------------
def _images(n: int, side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side), dtype=np.uint8)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _idx_files() -> FormatFiles:
    labels = np.arange(10, dtype=np.uint8) % 3
    return {"train-images-idx3-ubyte": _idx(_images(10, 6, 0)), "train-labels-idx1-ubyte": _idx(labels),
            "t10k-images-idx3-ubyte.gz": gzip.compress(_idx(_images(4, 6, 1)), mtime=0),
            "t10k-labels-idx1-ubyte.gz": gzip.compress(_idx(labels[:4]), mtime=0)}


def _cifar_files() -> FormatFiles:
    def batch(seed: int) -> bytes:
        records = np.random.default_rng(seed).integers(0, 256, (2, 3073), dtype=np.uint8)
        records[:, 0] %= 10
        return records.tobytes()

    files = {f"data_batch_{i}.bin": batch(i) for i in range(1, 6)}
    return {**files, "test_batch.bin": batch(6), "batches.meta.txt": "\n".join(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]).encode()}


def _npz_data_files() -> FormatFiles:
    return {"d.npz": _npz(x=_images(10, 6, 0), y=np.arange(10) % 3)}


def _encoded(kind: str, seed: int, size: tuple[int, int] = (6, 5)) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = bytes_io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=kind)
    return buffer.getvalue()


def _folder_files() -> FormatFiles:
    kinds = [("png", "PNG"), ("bmp", "BMP"), ("gif", "GIF"), ("jpg", "JPEG"), ("ppm", "PPM")]
    return {f"{label}/{i}.{ext}": _encoded(kind, 10 * c + i)
            for c, label in enumerate(("cat", "dog")) for i, (ext, kind) in enumerate(kinds)}


def _photo_files() -> FormatFiles:
    return {"p.bmp": _encoded("BMP", 0, (40, 30)), "p.png": _encoded("PNG", 1, (30, 40)),
            "p.jpg": _encoded("JPEG", 2, (40, 30))}


def _dataset(shape: tuple[int, int, int], file: str | None = None):
    def target(root: Path, _: str):
        from cnngraph.train.data import load_dataset

        return load_dataset(str(root / file if file else root), shape)

    return target


def _photo_target(root: Path, mutated: str):
    from cnngraph.model_info import ModelInfo
    from cnngraph.photo import prepare_photo

    return prepare_photo(str(root / mutated), (3, 32, 32), ModelInfo())[0]


FORMATS = {f.name: f for f in (
    Format("ONNX", _onnx_files, _onnx_target),
    Format("npz weights", _weights_files, _weights_target),
    Format(".cng", _cng_files, _cng_target),
    Format("MNIST IDX", _idx_files, _dataset((1, 6, 6))),
    Format("CIFAR-10 binary", _cifar_files, _dataset((3, 32, 32))),
    Format("image folder", _folder_files, _dataset((3, 8, 8))),
    Format("npz dataset", _npz_data_files, _dataset((1, 6, 6), "d.npz")),
    Format("photo", _photo_files, _photo_target),
)}
