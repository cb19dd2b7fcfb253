"""Importing whole models: the round trip of DSL graphs, PyTorch's own exports against PyTorch, and
every kind of bad input as one typed error (one line from the CLI)."""

import io
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import cnngraph
from cnngraph.backends.executor import NumpyExecutor
from cnngraph.backends.onnx_export import export, to_onnx
from cnngraph.cli import main
from cnngraph.errors import ModelFileError, OnnxImportError
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model, load
from tests.onnx_models import model_of, node_model


def unet_like(seed=0):
    """Branches, a skip concatenation, an upsampling path, a normalising constant and a head."""
    x = dsl.input("image", (3, 16, 16))
    y = dsl.mul(x, dsl.layer("Constant", [], name="scale", shape=(1, 3, 1, 1)))
    down = dsl.max_pool2d(dsl.relu(dsl.batch_norm(dsl.conv2d(y, 8, 3, padding=1, name="enc"))), 2)
    mid = dsl.leaky_relu(dsl.conv2d(down, 8, 3, padding=1, dilation=1, groups=2), 0.1)
    up = dsl.upsample(mid, scale_factor=2, mode="bilinear")
    skip = dsl.concat([up, dsl.conv2d(y, 4, 1)])
    out = dsl.conv_transpose2d(dsl.pad(skip, (1, 0, 0, 1), mode="reflect"), 4, 2, stride=2)
    head = dsl.adaptive_avg_pool2d(dsl.avg_pool2d(out, 3, 2, 1, ceil_mode=True), (5, 3))
    return dsl.Model(x, dsl.softmax(dsl.linear(dsl.flatten(head), 6, name="fc")), name="unet_like", seed=seed)


@pytest.mark.parametrize("opset", [13, 17])
def test_round_trip_dsl_export_import_run_equals_the_original(tmp_path, opset):
    graph = unet_like()
    for key, value in graph.params.items():  # statistics and scales away from their defaults
        graph.params[key] = value + np.random.default_rng(3).uniform(0.1, 0.5, value.shape).astype(np.float32)
    path = tmp_path / "unet.onnx"
    export(graph, path, opset=opset)
    back = load(path)
    assert back.name == "unet_like" and list(back.inputs) == ["image"] and back.outputs == graph.outputs
    assert set(back.params) == set(graph.params)
    for key, value in graph.params.items():
        np.testing.assert_array_equal(back.params[key], value)
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(cnngraph.compile(back)(x), cnngraph.compile(graph)(x), rtol=1e-5, atol=1e-6)


def test_round_trip_keeps_training_mode():
    x = dsl.input("x", (3, 6, 6))
    graph = dsl.Model(x, dsl.dropout(dsl.batch_norm(dsl.conv2d(x, 4, 3), momentum=0.3), p=0.2))
    back = from_model(to_onnx(graph, training=True))
    assert back.training
    assert [(n.op, n.attrs) for n in back.nodes][1:] == [(n.op, n.attrs) for n in graph.nodes][1:]


def assert_matches_torch(module, graph, batches=(1, 3), rtol=1e-4, atol=1e-4):
    """``graph``, imported from ``module``'s export, computes what ``module`` does at each batch size (the
    export saw another one: the batch must stay symbolic)."""
    torch = pytest.importorskip("torch")
    model = cnngraph.compile(graph)
    shape = next(iter(graph.inputs.values())).shape[1:]
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(model(x), want, rtol=rtol, atol=atol)


def torch_export(module, x, **kwargs):
    torch = pytest.importorskip("torch")
    f = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(x),), f, dynamo=False, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, **kwargs)
    return onnx.load_from_string(f.getvalue())


def randomised_resnet18(torch):
    from tests.torch_resnet import resnet

    torch.manual_seed(0)
    model = resnet("resnet18")
    for m in model.modules():  # statistics away from 0 and 1, so folding and modes show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
    return model


@pytest.mark.parametrize("folding", [True, False])
def test_pytorch_resnet18_imports_and_matches_pytorch(folding):
    torch = pytest.importorskip("torch")
    model = randomised_resnet18(torch).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    graph = from_model(torch_export(model, x, do_constant_folding=folding))
    if not folding:  # unfolded, the file keeps the BatchNorms and torchvision's parameter names
        assert {"conv1.weight", "bn1.running_var", "layer4.1.bn2.bias", "fc.weight"} <= set(graph.params)
    assert_matches_torch(model, graph, batches=(1, 5))


def test_pytorch_training_export_imports_in_training_mode():
    torch = pytest.importorskip("torch")
    model = randomised_resnet18(torch).train()
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    graph = from_model(torch_export(model, x, training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False))
    assert graph.training  # so the executor normalises with the batch's statistics
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(NumpyExecutor(graph)(x), want, rtol=1e-4, atol=1e-4)


def test_pytorch_shape_arithmetic_folds_at_every_opset():
    """Normalisation constants, channel shuffle, split, interpolate to a size, x.view(x.size(0), -1)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    class Mixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(48, 5)

        def forward(self, x):
            y = self.conv((x - self.mean) / 0.25)
            n, c, h, w = y.shape
            y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
            a, b = y.split([3, 5], dim=1)
            z = torch.cat([torch.sigmoid(a), F.relu6(b)], 1)
            z = F.interpolate(F.interpolate(z, scale_factor=2.0), size=(10, 12), mode="bilinear")
            z = F.avg_pool2d(F.pad(z, (1, 2, 0, 1), mode="reflect")[:, :, 1:-1, ::2], 3, 2, 1, ceil_mode=True)
            z = F.max_pool2d(z, 2, 1, ceil_mode=True)[:, :3]
            return F.log_softmax(self.fc(z.view(z.size(0), -1)), 1)

    module = Mixed().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 7)).astype(np.float32)
    for opset in (11, 13, 17, 18):
        graph = from_model(torch_export(module, x, opset_version=opset))
        assert {"Shape", "Gather"}.isdisjoint(n.op for n in graph.nodes)
        xb = np.random.default_rng(opset).standard_normal((5, 3, 6, 7)).astype(np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(xb)).numpy()
        np.testing.assert_allclose(cnngraph.compile(graph)(xb), want, rtol=1e-5, atol=1e-5)


# -- bad input -------------------------------------------------------------------------------------

def write(tmp_path, data: bytes, name="bad.onnx"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_truncated_and_foreign_files(tmp_path):
    whole = to_onnx(unet_like()).SerializeToString()
    for data, name in [(whole[: len(whole) // 2], "truncated.onnx"), (b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
                                                                       "image.onnx"), (b"", "empty.onnx")]:
        with pytest.raises(OnnxImportError, match=rf"{name}: not .*ONNX model"):
            load(write(tmp_path, data, name))
    with pytest.raises(ModelFileError, match="missing.onnx: no such file"):
        load(tmp_path / "missing.onnx")


def relu_chain(a="x", b="y"):
    return [helper.make_node("Relu", [a], ["y"], name="first"), helper.make_node("Relu", [b], ["z"], name="second")]


def bad_dtype_model():
    return model_of(relu_chain(), {"x": (3,)}, ["z"], elem=TensorProto.INT64)


BAD = [
    ("cycle", lambda: model_of([helper.make_node("Add", ["x", "z"], ["y"], name="first"),
                                helper.make_node("Relu", ["y"], ["z"], name="second")], {"x": (3,)}, ["z"]),
     r"the graph has a cycle: first -> second -> first"),
    ("missing initializer",
     lambda: model_of([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], {"x": (3, 5, 5)}, ["y"]),
     r"node 'conv' \(Conv\) reads 'w', which no graph input, initializer or node defines \(a missing initializer\?\)"),
    ("rank 6 input", lambda: model_of(relu_chain(), {"x": (3, 4, 5, 6, 7)}, ["z"]),
     r"input 'x' has rank 6; supported: ranks 2 to 5"),
    ("rank 1 input", lambda: model_of(relu_chain(), {"x": ()}, ["z"]), r"input 'x' has rank 1"),
    ("integer input", bad_dtype_model, r"input 'x' has type INT64; supported: FLOAT, DOUBLE"),
    ("unsupported op", lambda: node_model("Hardmax", [(3,)]),
     r"node 'node' \(Hardmax\): unsupported op; supported: Abs, Add, AveragePool, BatchNormalization"),
    ("custom domain", lambda: model_of([helper.make_node("Gelu", ["x"], ["y"], name="g", domain="com.microsoft")],
                                       {"x": (3,)}, ["y"]), r"node 'g' \(Gelu\): op domain 'com.microsoft'"),
    ("batch merged", lambda: node_model("Reshape", [(3, 4)], {}, {"s": np.array([-1], np.int64)}),
     r"node 'node' \(Reshape\): 'y0' is \(24,\) at batch 2 and \(36,\) at batch 3; the IR needs the batch first"),
    ("swish with alpha", lambda: node_model("Swish", [(3,)], dict(alpha=2.0), opset=24),
     r"node 'node' \(Swish\): alpha=2.0; supported: alpha=1 \(SiLU\)"),
    ("prelu slope along W", lambda: node_model("PRelu", [(4, 3, 5)], {}, {"s": np.ones(5, np.float32)}),
     r"\(PRelu\): slope of shape \(5,\) for input \(N, 4, 3, 5\); supported: one slope, or one per channel"),
    ("runtime weight", lambda: node_model("Gemm", [(3,), (3, 2)]),
     r"node 'node' \(Gemm\): input 1 \('x1'\) must be a constant"),
    ("transA", lambda: node_model("Gemm", [(4,)], dict(transA=1), {"w": np.ones((4, 2), np.float32)}),
     r"\(Gemm\): transA=1 would put the batch on the second axis"),
    ("cubic", lambda: node_model("Resize", [(3, 4, 4)], dict(mode="cubic"),
                                 {"r": None, "s": np.array([1, 1, 2, 2], np.float32)}),
     r"\(Resize\): mode 'cubic' with half_pixel coordinates; supported: nearest, or linear with"),
    ("nearest picks other pixels", lambda: node_model("Resize", [(3, 4, 4)], dict(nearest_mode="floor"),
                                                      {"r": None, "s": np.array([1, 1, 3, 3], np.float32)}),
     r"nearest with half_pixel coordinates and floor rounding picks other pixels"),
    ("unknown attribute", lambda: node_model("AveragePool", [(3, 5, 5)], dict(kernel_shape=[2, 2], dilations=[2, 2]),
                                             opset=19),
     r"\(AveragePool\): attribute dilations=\[2, 2\] is not supported; supported: \['auto_pad', 'ceil_mode'"),
    ("second output used", lambda: model_of([helper.make_node("MaxPool", ["x"], ["y", "i"], name="pool",
                                                              kernel_shape=[2, 2])], {"x": (3, 4, 4)}, ["y", "i"]),
     r"node 'pool' \(MaxPool\): output 1 \('i'\) is used, but only the first output is supported"),
    ("gather on batch", lambda: node_model("Gather", [(3,)], {}, {"i": np.int64(0)}),
     r"\(Gather\): gathers along the batch axis"),
    ("ir shape error", lambda: node_model("Conv", [(3, 5)], {}, {"w": np.ones((2, 3, 1, 1), np.float32)}),
     r"node 'node' \(Conv\): as Conv2d: layer 'y0' \(Conv2d\): kernel_size must have 1 values, got 2"),
]


@pytest.mark.parametrize("make,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_models_raise_one_typed_error_naming_the_node(make, match):
    with pytest.raises(OnnxImportError, match=match):
        from_model(make())


def test_dynamic_spatial_size_is_refused():
    model = model_of(relu_chain(), {"x": (3, 5, 5)}, ["z"])
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    with pytest.raises(OnnxImportError, match=r"input 'x': dimension 2 is 'height', known only at run time"):
        from_model(model)


@pytest.mark.parametrize("command", ["run", "summary"])
def test_cli_reports_bad_files_in_one_line(capsys, tmp_path, command):
    path = write(tmp_path, b"not a model at all\n")
    code = main([command, str(path)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"cnngraph {command}: error: {path}: not ") and err.count("\n") == 1
    path = write(tmp_path, bad_dtype_model().SerializeToString(), "int.onnx")
    assert main([command, str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"cnngraph {command}: error: {path}: input 'x' has type INT64; supported: FLOAT, DOUBLE\n"


def test_cli_refuses_builder_options_for_a_file(capsys, tmp_path):
    path = tmp_path / "m.onnx"
    export(unet_like(), path)
    assert main(["run", str(path), "--input-size", "32"]) == 1
    assert "input_size apply to zoo and file builders" in capsys.readouterr().err
