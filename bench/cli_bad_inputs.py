"""The CLI's bad-input count (issue 12): run ``cnngraph`` on hostile or broken inputs, count the runs
that print a traceback, more than one line, or exit with another code than 1 (130 for Ctrl-C).

Each run is a fresh ``python -m cnngraph.cli`` capped at 6 GiB of address space with
CNNGRAPH_MAX_BYTES=2G, in a scratch folder of generated files. Not a test (about a minute);
tests/test_robust_inputs.py holds the fast regression cases.  Usage: python bench/cli_bad_inputs.py
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CAP = 6 * 2**30


def _npy_header(shape) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return out.getvalue()


def _bomb_png(side: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (1, 1)).save(out, format="PNG")
    raw = bytearray(out.getvalue())
    raw[16:24] = side.to_bytes(4, "big") * 2
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    return bytes(raw)


def _onnx(nodes, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _edited_cng(base: Path, edit) -> bytes:
    """A valid .cng whose graph JSON ``edit`` changed (header length kept true)."""
    data = base.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    graph = json.loads(header["__metadata__"]["graph"])
    edit(graph)
    header["__metadata__"]["graph"] = json.dumps(graph)
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data[8 + size:]


def make_files(d: Path) -> None:
    from cnngraph import io as cng
    from cnngraph.frontends import dsl

    (d / "junk.onnx").write_bytes(b"\x08\x07garbage")
    (d / "empty.onnx").write_bytes(b"")
    (d / "junk.cng").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (d / "big.npy").write_bytes(_npy_header((10**12,)))
    (d / "garbage.npy").write_bytes(b"\x93NUMPYgarbage")
    np.save(d / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    (d / "bomb.png").write_bytes(_bomb_png(100_000))
    (d / "junk.npz").write_bytes(b"PK\x03\x04junk")
    with zipfile.ZipFile(d / "header.npz", "w") as z:
        z.writestr("c1.weight.npy", _npy_header((10**12,)) + bytes(16))
    (d / "w.pt").write_bytes(b"x")
    (d / "bad.py").write_text("raise RuntimeError('broken builder file')\n")
    (d / "model.py").write_text("def build(**kw):\n    return 42\n")
    (d / "emptydir").mkdir()
    np.savez(d / "labels.npz", x=np.zeros((10, 8, 8), np.uint8), y=np.array([0] * 9 + [10**12]))
    np.savez(d / "emptyset.npz", x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, int))
    (d / "idx").mkdir()
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = gz.compress(bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (10, 8, 8)))
    bomb += b"".join(gz.compress(bytes(2**20)) for _ in range(1024)) + gz.flush()  # 1 GiB inflated
    (d / "idx" / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    (d / "idx" / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(10))
    (d / "cifar").mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (d / "cifar" / name).write_bytes(np.zeros((3, 3073), np.uint8).tobytes())
    (d / "cifar" / "batches.meta.txt").write_bytes(b"\xff\xfe cat")
    for label in "ab":
        (d / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            (d / "imgs" / label / f"{i}.png").write_bytes(b"not a png")
    shape = numpy_helper.from_array(np.array([40000, 40000], np.int64), "shape")
    onnx.save(_onnx([helper.make_node("ConstantOfShape", ["shape"], ["big"]),
                     helper.make_node("Identity", ["x"], ["y"])], [shape]), d / "fold.onnx")
    onnx.save(_onnx([helper.make_node("Add", ["x", "w"], ["y"])], [TensorProto(name="w", data_type=99, dims=[3])]),
              d / "dtype.onnx")
    x = dsl.input("x", (3, 8, 8))
    cng.save(dsl.Model(x, dsl.conv2d(x, 2, 3, name="conv"), name="small"), d / "base.cng")
    stride = _edited_cng(d / "base.cng", lambda g: g["nodes"][0]["attrs"].update(stride=[2**62, 1]))
    (d / "stride.cng").write_bytes(stride)
    huge = _edited_cng(d / "base.cng", lambda g: g["inputs"][0].update(shape=["N", 3, 10**5, 10**5]))
    (d / "huge.cng").write_bytes(huge)
    (d / "exists.txt").write_text("x")


CASES = [
    ["run", "nosuchmodel"], ["run", "missing.onnx"], ["run", "junk.onnx"], ["run", "empty.onnx"], ["run", "junk.cng"],
    ["summary", "lenet5", "--num-classes", "100000000000"], ["summary", "lenet5", "--num-classes", "1000000000"],
    ["run", "lenet5", "--batch", "1000000000"], ["run", "lenet5", "--input", "big.npy"],
    ["run", "lenet5", "--input", "garbage.npy"], ["run", "lenet5", "--input", "pickled.npy"],
    ["run", "alexnet", "--input", "broken.jpg"], ["run", "alexnet", "--input", "bomb.png"],
    ["run", "lenet5", "--weights", "junk.npz"], ["run", "lenet5", "--weights", "header.npz"],
    ["run", "lenet5", "--weights", "missing.safetensors"], ["run", "lenet5", "--weights", "w.pt"],
    ["run", "bad.py:build"], ["run", "nofile.py:build"], ["run", "model.py:missing"], ["run", "model.py:build"],
    *[["train", "lenet5", "--epochs", "1", "--data", data]
      for data in ("missing_folder", "emptydir", "labels.npz", "emptyset.npz", "idx", "cifar", "imgs", "junk.npz")],
    ["compile", "lenet5", "-o", "/nonexistent/dir/m.cng"], ["export", "lenet5", "-o", "/nonexistent/dir/m.onnx"],
    ["run", "fold.onnx"], ["run", "dtype.onnx"], ["run", "stride.cng"], ["run", "huge.cng"],
    ["train", "lenet5", "--epochs", "1", "--out", "exists.txt"], ["run", "msdnet", "--exit", "5"],
]
INTERRUPTS = (0.05, 0.2, 0.5)  # Ctrl-C this many seconds into `cnngraph run lenet5`


def run(folder: Path, argv: list[str], interrupt_after: float | None = None) -> tuple[int | str, str]:
    env = {**os.environ, "CNNGRAPH_MAX_BYTES": "2G", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))  # noqa: E731
    p = subprocess.Popen([sys.executable, "-m", "cnngraph.cli", *argv], cwd=folder, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=cap)
    if interrupt_after is not None:
        time.sleep(interrupt_after)
        p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        return "hang", p.communicate()[1].decode(errors="replace")
    return p.returncode, err.decode(errors="replace")


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        make_files(folder)
        runs = [(argv, 1, *run(folder, argv)) for argv in CASES]
        runs += [(["run", "lenet5", f"(Ctrl-C after {t} s)"], 130, *run(folder, ["run", "lenet5"], t))
                 for t in INTERRUPTS]
    bad = 0
    for argv, expected, code, err in runs:
        lines = err.strip().splitlines()
        ok = code == expected and len(lines) == 1 and "Traceback" not in err
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {' '.join(argv)[:60]:60} {code}  {(lines[-1] if lines else '')[:140]}")
    print(f"{bad} of {len(runs)} bad-input cases printed a traceback, more than one line or an unexpected exit code")


if __name__ == "__main__":
    main()
