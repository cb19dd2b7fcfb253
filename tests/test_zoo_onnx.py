"""Every zoo model added for the zoo issue exports to ONNX, passes onnx.checker and matches onnxruntime
at batch 1 and 3 (reduced input sizes and widths, as in tests/zoo_builds.REDUCED). The foundation
models (LeNet-5, AlexNet, VGG-16(-BN), ResNet-18/50) are exported by tests/test_onnx_export.py."""

import pytest

from cnngraph.backends.onnx_export import check, to_onnx
from cnngraph.backends.onnx_verify import TOLERANCE, verify
from tests.zoo_builds import REDUCED, reduced

FOUNDATION = {"lenet5", "alexnet", "vgg16", "vgg16_bn", "resnet18", "resnet50"}


@pytest.mark.parametrize("name", sorted(set(REDUCED) - FOUNDATION))
def test_zoo_model_exports_and_matches_onnxruntime(name, quick_params):
    pytest.importorskip("onnxruntime")
    graph = reduced(name)
    data = to_onnx(graph).SerializeToString()
    check(data)
    result = verify(graph, data, batches=(1, 3))
    assert {d.output for d in result.differences} == set(graph.outputs)
    assert result.ok and max(d.max_rel for d in result.differences) <= TOLERANCE["float32"], str(result)
