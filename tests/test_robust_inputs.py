"""Regression tests for issue 12: each class of hostile or corrupt input is one typed error, before
anything large is allocated. The budget is set small (64 MiB) so a refusal is visible."""

import gzip
import io as bytes_io
import os
import tracemalloc
import zipfile
import zlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import cnngraph
from cnngraph import io
from cnngraph.cli import main
from cnngraph.errors import AttrError, CnnGraphError, DataError, DeviceMemoryError, ModelFileError, OnnxImportError
from cnngraph.frontends import dsl, onnx_import
from cnngraph.model_info import ModelInfo
from cnngraph.photo import prepare_photo
from cnngraph.limits import max_bytes
from cnngraph.train.data import load_dataset
from cnngraph.train.data.idx import read_idx
from cnngraph.weights import read_state_dict


@pytest.fixture(autouse=True)
def small_budget(monkeypatch):
    monkeypatch.setenv("CNNGRAPH_MAX_BYTES", "64M")


def test_the_budget_reads_its_variable(monkeypatch):
    assert max_bytes() == 64 * 2**20
    monkeypatch.setenv("CNNGRAPH_MAX_BYTES", "lots")
    with pytest.raises(CnnGraphError, match="CNNGRAPH_MAX_BYTES='lots': expected a number of bytes"):
        max_bytes()
    monkeypatch.delenv("CNNGRAPH_MAX_BYTES")
    assert max_bytes() > 0


# -- npz: labels, headers, archives --------------------------------------------------------------
def test_a_label_of_10_to_the_12_is_refused_not_named(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 4, 4), np.uint8), y=np.array([0, 1, 0, 1, 10**12]))
    with pytest.raises(DataError, match=r"labels must be in \[0, 1,048,576\), found 1000000000000"):
        load_dataset(str(tmp_path / "d.npz"), (1, 4, 4))


def _npz_with_header(path, shape) -> None:
    """An archive whose one member's header claims ``shape`` float32 but holds 16 bytes of data."""
    member = bytes_io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("c1.weight.npy", member.getvalue() + bytes(16))


def test_an_npy_header_claiming_10_to_the_12_elements_is_checked_before_reading(tmp_path):
    _npz_with_header(tmp_path / "w.npz", (10**12,))
    tracemalloc.start()
    with pytest.raises(ModelFileError, match=r"w.npz: array 'c1.weight': header says \(1000000000000,\) float32 "
                                             r"\(4,000,000,000,000 bytes\), the file holds 16 bytes"):
        read_state_dict(tmp_path / "w.npz")
    assert tracemalloc.get_traced_memory()[1] < 2**20
    tracemalloc.stop()


def test_npz_archive_failures_are_typed(tmp_path):
    np.savez(tmp_path / "good.npz", x=np.zeros(3))
    raw = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "odd.npz").write_bytes(raw)
    with zipfile.ZipFile(tmp_path / "odd.npz", "a") as z:
        z.writestr("notes.txt", "hello")
    for name, message in (("cut.npz", "not a readable .npz archive"), ("odd.npz", r"member\(s\) \['notes.txt'\]")):
        with pytest.raises(ModelFileError, match=message):
            read_state_dict(tmp_path / name)
        with pytest.raises(DataError, match=message):
            load_dataset(str(tmp_path / name), (1, 4, 4))


# -- IDX -----------------------------------------------------------------------------------------
def _idx_header(dims) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def test_a_gzip_bomb_is_inflated_only_as_far_as_its_header_asks(tmp_path):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(2**20)
    body = stream.compress(_idx_header([10, 6, 6])) + b"".join(stream.compress(chunk) for _ in range(256))
    bomb.write_bytes(body + stream.flush())  # 256 MiB of zeros in a ~250 KiB file
    tracemalloc.start()
    with pytest.raises(DataError, match=r"needs 376 bytes, the file has more"):
        read_idx(bomb)
    assert tracemalloc.get_traced_memory()[1] < 4 * 2**20
    tracemalloc.stop()


def test_idx_dims_whose_product_wraps_int64_are_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_header([2**16, 2**16, 2**16, 2**16]))  # 2^64 bytes: 0 in int64
    with pytest.raises(DataError, match=r"IDX data \(65536, 65536, 65536, 65536\) \(uint8\) needs 16,777,216.0 TiB"):
        read_idx(path)
    path.write_bytes(_idx_header([2**32 - 1] * 255))  # past any float, too: found by the fuzz suite
    with pytest.raises(DataError, match=r"needs about 2\^8159 bytes"):
        read_idx(path)


def test_truncated_gzip_is_typed(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(_idx_header([2, 3]) + bytes(6))[:-6])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


# -- CIFAR meta, empty datasets, images ------------------------------------------------------------
def test_cifar_meta_that_is_not_utf8_is_typed(tmp_path):
    records = np.zeros((2, 3073), np.uint8).tobytes()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (tmp_path / name).write_bytes(records)
    (tmp_path / "batches.meta.txt").write_bytes(b"cat\n\xff\xfe dog\n")
    with pytest.raises(DataError, match=r"batches.meta.txt: class names are not UTF-8 text"):
        load_dataset(str(tmp_path), (3, 32, 32))


def test_an_empty_dataset_is_typed(tmp_path):
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 4, 4), np.uint8), y=np.zeros(0, int))
    with pytest.raises(DataError, match="no images"):
        load_dataset(str(tmp_path / "e.npz"), (1, 4, 4))


def _bomb_png(path, side: int) -> None:
    """A 1x1 PNG whose header claims ``side`` x ``side`` pixels (CRC fixed, so only the size is wrong)."""
    from PIL import Image

    buffer = bytes_io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    raw = bytearray(buffer.getvalue())
    raw[16:24] = side.to_bytes(4, "big") * 2
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("side", [100_000, 6_000])  # Pillow's own bomb error; then our budget (108 MiB > 64)
def test_a_decompression_bomb_image_is_typed(tmp_path, side):
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    _bomb_png(tmp_path / "cats" / "bomb.png", side)
    _bomb_png(tmp_path / "dogs" / "bomb.png", side)
    with pytest.raises(DataError, match="bomb.png"):
        load_dataset(str(tmp_path), (3, 8, 8))
    with pytest.raises(CnnGraphError, match="--input .*bomb.png"):
        prepare_photo(str(tmp_path / "cats" / "bomb.png"), (3, 32, 32), ModelInfo())


def test_a_png_chunk_claiming_gigabytes_reads_only_what_is_there(tmp_path):
    """Pillow reads as much as an IDAT length claims; from a file object that allocates it first (found by fuzzing)."""
    from PIL import Image

    buffer = bytes_io.BytesIO()
    Image.new("RGB", (6, 5)).save(buffer, format="PNG")
    raw = bytearray(buffer.getvalue())
    raw[33:35] = b"\xb2\xf1"  # IDAT length 0xb2f1.... : about 3 GB, in a 100-byte file
    (tmp_path / "p.png").write_bytes(bytes(raw))
    tracemalloc.start()
    assert prepare_photo(str(tmp_path / "p.png"), (3, 8, 8), ModelInfo())[0].shape == (1, 3, 8, 8)  # the pixels were all there
    assert tracemalloc.get_traced_memory()[1] < 16 * 2**20
    tracemalloc.stop()


# -- op attributes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("build,message", [
    (lambda x: dsl.conv2d(x, 2, 3, stride=2**62), r"stride must be <= 65,536"),
    (lambda x: dsl.conv2d(x, 2, 3, padding=10**9), r"padding must be <= 65,536"),
    (lambda x: dsl.max_pool2d(x, 2, padding=(10**9, 0)), r"padding must be <= 65,536"),
    (lambda x: dsl.lrn(x, 10**9), r"size must be <= 65,536"),
    (lambda x: dsl.linear(dsl.flatten(x), 10**11), r"out_features must be <= 2,147,483,647"),
    (lambda x: dsl.upsample(x, scale_factor=1e300), r"scale_factor must be a positive number or 2, at most"),
])
def test_attributes_the_kernels_cannot_execute_fail_verification(build, message):
    with pytest.raises(AttrError, match=message):
        build(dsl.input("x", (3, 8, 8)))


def test_a_run_past_the_activation_budget_is_refused_before_the_first_kernel():
    x = dsl.input("x", (3, 8, 8))
    graph = dsl.Model(x, dsl.relu(dsl.upsample(x, scale_factor=2000)), name="huge")  # 3 x 16000 x 16000
    model = cnngraph.compile(graph, passes="none")
    with pytest.raises(DeviceMemoryError, match=r"graph 'huge': activations and kernel workspace for input 'x' "
                                                r"\(1, 3, 8, 8\) \(float32\) needs .* GiB, over the 64.0 MiB budget"):
        model.run(np.zeros((1, 3, 8, 8), np.float32))


def test_a_huge_padded_copy_behind_a_small_output_is_refused_before_the_first_kernel():
    x = dsl.input("x", (3, 8, 8))
    y = dsl.conv2d(x, 2, 3, stride=30000, padding=30000, name="conv")  # a 1x1 output of a 60008x60008 copy
    graph = dsl.Model(x, y, name="padded")
    assert graph.node("conv").type.shape == ("N", 2, 3, 3)
    with pytest.raises(DeviceMemoryError, match=r"graph 'padded': activations and kernel workspace .* needs 40.2 GiB"):
        cnngraph.compile(graph, passes="none").run(np.zeros((1, 3, 8, 8), np.float32))


# -- ONNX ----------------------------------------------------------------------------------------------
def _model(nodes, initializers=(), inputs=None) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_constant_of_shape_40000_squared_is_refused_before_folding(tmp_path):
    shape = numpy_helper.from_array(np.array([40000, 40000], np.int64), "shape")
    model = _model([helper.make_node("ConstantOfShape", ["shape"], ["big"], name="fill"),
                    helper.make_node("Identity", ["x"], ["y"])], [shape])
    onnx.save(model, tmp_path / "m.onnx")
    tracemalloc.start()
    with pytest.raises(OnnxImportError, match=r"m.onnx: node 'fill' \(ConstantOfShape\): folding 1,600,000,000 "
                                              r"elements at import needs 11.9 GiB, over the 64.0 MiB budget"):
        onnx_import.load(tmp_path / "m.onnx")
    assert tracemalloc.get_traced_memory()[1] < 16 * 2**20
    tracemalloc.stop()


def test_a_sparse_constant_is_sized_by_its_dims_before_it_densifies(tmp_path):
    sparse = helper.make_sparse_tensor(helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
                                       helper.make_tensor("i", TensorProto.INT64, [1], [0]), [40000, 40000])
    model = _model([helper.make_node("Constant", [], ["big"], name="dense", sparse_value=sparse),
                    helper.make_node("Identity", ["x"], ["y"])])
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(OnnxImportError, match=r"node 'dense' \(Constant\): folding 1,600,000,000 elements"):
        onnx_import.load(tmp_path / "m.onnx")


def test_external_data_outside_the_folder_is_one_line(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "outside.bin").write_bytes(bytes(12))
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../outside.bin"), ("length", "12")):
        weight.external_data.add(key=key, value=value)
    onnx.save(_model([helper.make_node("Add", ["x", "w"], ["y"])], [weight]), tmp_path / "sub" / "m.onnx")
    with pytest.raises(OnnxImportError) as e:
        onnx_import.load(tmp_path / "sub" / "m.onnx")
    assert "sub/m.onnx" in str(e.value) and "\n" not in str(e.value)


def test_a_non_utf8_string_attribute_is_typed(tmp_path):
    node = helper.make_node("Resize", ["x4", "", "scales"], ["y"], name="up", mode=b"\xff\xfenearest")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    x4 = [helper.make_tensor_value_info("x4", TensorProto.FLOAT, ["N", 3, 4, 4])]
    onnx.save(_model([node], [scales], x4), tmp_path / "m.onnx")
    with pytest.raises(OnnxImportError, match=r"node 'up' \(Resize\) attribute 'mode': a string that is not UTF-8"):
        onnx_import.load(tmp_path / "m.onnx")


@pytest.mark.parametrize("data_type,dims,message", [
    (99, [3], r"element type 99; supported: FLOAT"),
    (TensorProto.STRING, [3], r"element type STRING"),
    (TensorProto.FLOAT, [2**62], r"dims \[4611686018427387904\]; each must be in"),
    (TensorProto.FLOAT, [30000, 30000], r"initializer 'w' needs 3.4 GiB, over the 64.0 MiB budget"),
])
def test_unreadable_initializers_are_typed(tmp_path, data_type, dims, message):
    weight = TensorProto(name="w", data_type=data_type, dims=dims)
    onnx.save(_model([helper.make_node("Add", ["x", "w"], ["y"])], [weight]), tmp_path / "m.onnx")
    with pytest.raises(OnnxImportError, match=message):
        onnx_import.load(tmp_path / "m.onnx")


def test_a_stride_of_2_to_the_62_in_onnx_is_typed(tmp_path):
    w = numpy_helper.from_array(np.zeros((2, 3, 3, 3), np.float32), "w")
    x4 = [helper.make_tensor_value_info("x4", TensorProto.FLOAT, ["N", 3, 8, 8])]
    conv = helper.make_node("Conv", ["x4", "w"], ["y"], name="conv", strides=[2**62, 1])
    onnx.save(_model([conv], [w], x4), tmp_path / "m.onnx")
    with pytest.raises(OnnxImportError, match=r"node 'conv' \(Conv\): as Conv2d: .*stride must be <= 65,536"):
        onnx_import.load(tmp_path / "m.onnx")


# -- writes and the CLI ------------------------------------------------------------------------------
def test_temporaries_of_killed_writes_are_removed_by_the_next_write(tmp_path):
    dead = tmp_path / ".m.cng.999999999.abcdefgh.tmp"  # no such pid
    live = tmp_path / f".m.cng.{os.getppid()}.abcdefgh.tmp"
    older = tmp_path / ".m.cng.k2j4h5g6.tmp"  # written before temporaries carried a pid
    for p in (dead, live, older):
        p.write_bytes(b"half a model")
    io.save(dsl.Model(x := dsl.input("x", (3, 4, 4)), dsl.relu(x)), tmp_path / "m.cng")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "m.cng"])


def test_a_cng_whose_graph_json_nests_too_deep_is_typed(tmp_path):
    from safetensors.numpy import save_file

    save_file({}, tmp_path / "deep.cng", metadata={"format": "cnngraph", "version": "1", "graph": "[" * 10**5})
    with pytest.raises(ModelFileError, match="deep.cng: corrupt cnngraph model"):
        io.load(tmp_path / "deep.cng")


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_cli_bad_inputs_are_one_line(capsys, tmp_path, monkeypatch):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage")
    with open(tmp_path / "big.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    cases = [
        (("summary", "lenet5", "--num-classes", 10**11), "out_features must be <= 2,147,483,647"),
        (("summary", "lenet5", "--num-classes", 10**9), "parameter 'output.weight' (1000000000, 84) needs"),
        (("run", tmp_path / "junk.onnx"), "junk.onnx"),
        (("run", "lenet5", "--input", tmp_path / "big.npy"), "big.npy: header says (1000000000000,) float32"),
        (("run", "lenet5", "--batch", 10**9), "random input 'image' (1000000000, 1, 32, 32) needs"),
    ]
    for argv, message in cases:
        code, err = _cli(capsys, *argv)
        assert code == 1 and message in err and err.count("\n") == 1, (argv, err)


def test_the_cli_last_line_of_defence(capsys, monkeypatch):
    from cnngraph.cli import models as models_command

    for error, code, line in ((TypeError("boom"), 1, "cnngraph models: error: TypeError: boom (an internal error"),
                              (MemoryError(), 1, "cnngraph models: error: out of memory"),
                              (KeyboardInterrupt(), 130, "cnngraph models: interrupted")):
        def fail(args, error=error):
            raise error

        monkeypatch.setattr(models_command, "run", fail)
        got, err = _cli(capsys, "models")
        assert got == code and err.startswith(line) and err.count("\n") == 1, err
        got, err = _cli(capsys, "--debug", "models")
        assert got == code and "Traceback (most recent call last)" in err and line in err


def test_ctrl_c_during_start_up_is_one_line(monkeypatch, capsys):
    import cnngraph.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "commands", interrupted)  # the parser imports every command module first
    code, err = _cli(capsys, "run", "lenet5")
    assert code == 130 and err == "cnngraph run: interrupted\n"
