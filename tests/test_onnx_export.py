"""Exporting whole models: the zoo through onnx.checker and onnxruntime at batch 1 and 7, a symbolic
batch, IR names kept, external data, --training, the CLI, and verification that can fail."""

import numpy as np
import onnx
import pytest

import cnngraph
from cnngraph import models
from cnngraph.backends.onnx_export import DEFAULT_OPSET, check, export, to_onnx
from cnngraph.backends.onnx_verify import TOLERANCE, verify
from cnngraph.cli import main
from cnngraph.errors import OnnxExportError, OnnxVerifyError
from cnngraph.frontends import dsl
from tests.onnx_models import onnxruntime_run

ZOO = {  # full width, input sizes as small as each architecture allows
    "lenet5": {}, "alexnet": dict(input_size=64), "vgg16": dict(input_size=32), "vgg16_bn": dict(input_size=32),
    "resnet18": dict(input_size=64), "resnet50": dict(input_size=64),
}


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_passes_the_checker_and_matches_onnxruntime_at_batch_1_and_7(name, quick_params):
    pytest.importorskip("onnxruntime")
    graph = models.build(name, **ZOO[name])
    data = to_onnx(graph).SerializeToString()
    check(data)
    result = verify(graph, data, batches=(1, 7))
    assert [d.batch for d in result.differences] == [1, 7]
    assert result.ok and max(d.max_rel for d in result.differences) <= TOLERANCE["float32"]


def tiny(seed=0):
    x = dsl.input("image", (3, 8, 8))
    y = dsl.relu(dsl.batch_norm(dsl.conv2d(x, 4, 3, padding=1, name="conv"), name="bn"))
    y = dsl.reshape(dsl.max_pool2d(y, 2), (4, 16), name="view")
    return dsl.Model(x, dsl.linear(dsl.flatten(y), 5, name="fc"), name="tiny", seed=seed)


def test_batch_stays_symbolic_and_names_are_the_irs():
    model = to_onnx(tiny())
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*model.graph.input,
                                                                                       *model.graph.output]]
    assert dims == [["N", 3, 8, 8], ["N", 5]]
    assert [v.name for v in model.graph.input] == ["image"] and [v.name for v in model.graph.output] == ["fc"]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert {"conv.weight", "conv.bias", "bn.running_var", "fc.weight", "fc.bias"} <= set(inits)
    assert inits["view/shape"].tolist() == [0, 4, 16]  # 0 copies the batch: none is baked in
    assert [n.op_type for n in model.graph.node if n.name == "flatten"] == ["Flatten"]
    assert {o.version for o in model.opset_import} == {DEFAULT_OPSET}
    for batch in (1, 64):
        x = np.zeros((batch, 3, 8, 8), np.float32)
        assert onnxruntime_run(model, {"image": x})[0].shape == (batch, 5)


@pytest.mark.parametrize("opset,training,match", [
    (12, False, "opset 12 is not supported; choose 13 to"),
    (13, True, "a training export needs opset 14 or later"),
])
def test_opset_out_of_range_is_refused(opset, training, match):
    with pytest.raises(OnnxExportError, match=match):
        to_onnx(tiny(), opset, training)


def test_an_op_without_mapping_is_named(monkeypatch):
    graph = tiny()
    monkeypatch.setattr(graph.node("bn"), "op", "NoSuchMapping")
    monkeypatch.setattr(graph, "verify", lambda: graph)
    with pytest.raises(OnnxExportError, match=r"layer 'bn' \(NoSuchMapping\): the op has no ONNX mapping"):
        to_onnx(graph)


def test_external_data_is_written_beside_the_model_and_runs(tmp_path):
    graph = tiny()
    path = tmp_path / "tiny.onnx"
    export(graph, path, external_data=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx", "tiny.onnx.data"]
    stored = {t.name: t.data_location for t in onnx.load(path, load_external_data=False).graph.initializer}
    assert stored["fc.weight"] == onnx.TensorProto.EXTERNAL and stored["conv.bias"] == onnx.TensorProto.DEFAULT
    assert verify(graph, path).ok


def test_verify_fails_past_the_tolerance_with_the_numbers(tmp_path):
    graph = tiny()
    path = tmp_path / "tiny.onnx"
    export(graph, path)
    graph.params["fc.bias"] = graph.params["fc.bias"] + 1e-2
    with pytest.raises(OnnxVerifyError, match=r"disagree: 'fc' at batch 1: max abs 1\.00e-02, max rel .* \(tolerance "
                                              r"1e-04, float32\)"):
        verify(graph, path)


def test_training_export_verifies_with_batch_statistics():
    x = dsl.input("x", (3, 6, 6))
    y = dsl.dropout(dsl.batch_norm(dsl.conv2d(x, 4, 3), name="bn", momentum=0.3), p=0.5)
    graph = dsl.Model(x, dsl.linear(dsl.flatten(y), 3), seed=1)
    graph.params["bn.running_mean"] += 5.0  # far from the batch statistics, so the modes differ
    model = to_onnx(graph, 17, training=True)
    assert verify(graph, model, batches=(4, 5), training=True).ok
    with pytest.raises(OnnxVerifyError):  # the inference executor on the training export
        verify(graph, model, batches=(4,))


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_export_verify_then_run_the_file(capsys, tmp_path):
    path = tmp_path / "lenet.onnx"
    code, out, _ = run_cli(capsys, "export", "lenet5", "-o", str(path), "--opset", "13", "--verify")
    assert code == 0
    assert f"wrote {path}: lenet5, opset 13, inference" in out and "61,706 parameters" in out
    assert "verified against onnxruntime on numpy: 'output' at batch 1: max abs" in out
    code, out, _ = run_cli(capsys, "run", str(path), "--batch", "2")
    assert code == 0 and "output 'output': shape (2, 10)" in out


@pytest.mark.parametrize("argv,message", [
    (["--opset", "99"], "opset 99 is not supported"),
    (["--training", "--opset", "13"], "a training export needs opset 14"),
])
def test_cli_export_errors_are_one_line(capsys, tmp_path, argv, message):
    path = tmp_path / "x.onnx"
    code, _, err = run_cli(capsys, "export", "lenet5", "-o", str(path), *argv)
    assert code == 1 and message in err and err.strip().count("\n") == 0
    assert not path.exists()


def test_cli_removes_a_file_that_fails_verification(tmp_path, capsys, monkeypatch):
    import cnngraph.backends.onnx_verify as onnx_verify

    def disagree(*args, **kwargs):
        raise OnnxVerifyError("onnxruntime and the NumPy executor disagree")

    monkeypatch.setattr(onnx_verify, "verify", disagree)
    path = tmp_path / "m.onnx"
    assert main(["export", "lenet5", "-o", str(path), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "disagree" in err and f"(removed {path})" in err
    assert not path.exists()


def test_integer_outputs_keep_their_type():
    """MaxPool2dIndices as a graph output exports as int64, and onnxruntime returns torch's indices."""
    x = dsl.input("x", (2, 6, 6))
    idx = dsl.layer("MaxPool2dIndices", [x], name="idx", kernel_size=2)
    graph = dsl.Model(x, [dsl.max_pool2d(x, 2, name="pool"), idx])
    model = to_onnx(graph)
    check(model.SerializeToString())
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [onnx.TensorProto.FLOAT,
                                                                          onnx.TensorProto.INT64]
    feed = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    got = onnxruntime_run(model, {"x": feed})
    want = cnngraph.compile(graph).run(feed)
    np.testing.assert_array_equal(got[1], want["idx"])
    np.testing.assert_array_equal(got[0], want["pool"])
