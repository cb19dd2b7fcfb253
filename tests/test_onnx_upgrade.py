"""Files older than opset 7 are converted with onnx.version_converter, said so, and refused only
where the converter cannot convert them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, version_converter

import cnngraph
from cnngraph.errors import OnnxImportError, OnnxUpgradeWarning
from cnngraph.frontends.onnx_import import from_model
from tests.onnx_models import feeds_for, model_of, node_model, onnxruntime_run

RNG = np.random.default_rng(0)


def _old(nodes, inputs: dict, opset: int, inits: dict) -> onnx.ModelProto:
    """A model as files of that age are: IR 3, a fixed batch of 1 (the converter's broadcast adapters
    need every dimension known), every initializer also a graph input."""
    model = model_of(nodes, inputs, ["y"], opset=opset, initializers=inits)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    model.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                             for t in model.graph.initializer)
    return model


def _conv_bn_add_opset6() -> onnx.ModelProto:
    """Conv, BatchNormalization with is_test, a broadcast Add of a bias along the last axis, Relu: opset-6 forms."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], is_test=1),
             helper.make_node("Add", ["n", "bias"], ["a"], broadcast=1),
             helper.make_node("Relu", ["a"], ["y"])]
    f = lambda *s: RNG.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = dict(w=f(4, 3, 3, 3), s=f(4), b=f(4), m=f(4), v=np.abs(f(4)) + 0.5, bias=f(6))
    return _old(nodes, {"x": (3, 6, 6)}, 6, inits)


def _gemm_relu_opset5() -> onnx.ModelProto:
    """Gemm with the broadcast flag and Relu with the opset-1 consumed_inputs attribute."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1, broadcast=1),
             helper.make_node("Relu", ["g"], ["y"], consumed_inputs=[0])]
    inits = dict(w=RNG.standard_normal((5, 12)).astype(np.float32), b=RNG.standard_normal(5).astype(np.float32))
    return _old(nodes, {"x": (12,)}, 5, inits)


@pytest.mark.parametrize("make,opset", [(_conv_bn_add_opset6, 6), (_gemm_relu_opset5, 5)])
def test_old_opsets_are_upgraded_and_match_onnxruntime_on_the_upgraded_file(make, opset):
    model = make()
    with pytest.warns(OnnxUpgradeWarning, match=rf"opset {opset} upgraded to opset 7 by onnx.version_converter"):
        from_model(model)
        graph = from_model(model)
    feeds = feeds_for(model, 1)
    want = onnxruntime_run(version_converter.convert_version(model, 7), feeds)[0]
    np.testing.assert_allclose(cnngraph.compile(graph).run(feeds)["y"], want, rtol=1e-5, atol=1e-5)


def test_a_file_the_converter_cannot_upgrade_is_refused_with_its_reason():
    model = node_model("Upsample", [(3, 4, 4)], dict(scales=[1.0, 1.0, 2.0, 2.0]), opset=6)
    with pytest.raises(OnnxImportError, match=r"^old\.onnx: opset 6 cannot be upgraded to opset 7 by "
                       r"onnx\.version_converter: .*Upsample in opset 1 needs to have width_scale") as e:
        from_model(model, "old.onnx")
    assert "\n" not in str(e.value)


def test_cli_prints_the_upgrade(tmp_path):
    path = tmp_path / "old.onnx"
    onnx.save(_conv_bn_add_opset6(), path)
    done = subprocess.run([sys.executable, "-m", "cnngraph.cli", "summary", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{path}: opset 6 upgraded to opset 7 by onnx.version_converter" in done.stderr


def test_an_opset_newer_than_this_onnx_release_is_still_refused():
    model = node_model("Relu", [(3,)])
    model.opset_import[0].version = 99
    with pytest.raises(OnnxImportError, match=r"^new\.onnx: opset 99; supported: 7 to \d+$"):
        from_model(model, "new.onnx")
