"""PyTorch eval-mode exports: parameters keyed by state_dict names recovered from the node scopes, and a
state_dict whose BatchNorms the exporter folded fits after folding them the same way."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import safetensors.numpy

import cnngraph
from cnngraph.batch_norm_weights import fold_into_convs
from cnngraph.errors import BatchNormFoldWarning, ModelFileError
from cnngraph.frontends import dsl
from cnngraph.frontends.onnx_import import from_model
from cnngraph.frontends.torch_names import is_generated, module_path
from cnngraph.weights import load_weights
from tests.test_onnx_import import randomised_resnet18, torch_export


@pytest.mark.parametrize("node, module", [
    ("/conv1/Conv", "conv1"),
    ("/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"),
    ("/features/features.1/conv/conv.0/conv.0.0/Conv", "features.1.conv.0.0"),
    ("/features/features.0/features.0.0/Conv", "features.0.0"),
    ("/Flatten", None),          # an op at the root: no module
    ("Conv_12", None),           # not a PyTorch scope
    ("//x/Conv", None),          # an empty scope is not a name
])
def test_module_path_from_node_scope(node, module):
    assert module_path(node) == module


def test_only_the_exporters_names_count_as_generated():
    assert is_generated("onnx::Conv_538") and not is_generated("fc.weight")


def _conv_bn_state(rng, eps):
    """A conv's weight, and a BatchNorm whose fold the test computes by hand."""
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    gamma, beta, mean = (rng.standard_normal(4).astype(np.float32) for _ in range(3))
    var = rng.uniform(1e-4, 3, 4).astype(np.float32)  # a tiny variance makes a wrong epsilon visible
    scale = gamma / np.sqrt(var.astype(np.float64) + eps)
    want_w = w * scale[:, None, None, None]
    want_b = beta - mean * scale
    state = {"features.0.weight": w, "features.1.weight": gamma, "features.1.bias": beta,
             "features.1.running_mean": mean, "features.1.running_var": var}
    return state, want_w, want_b


def _folded_graph():
    x = dsl.input("image", (3, 8, 8))
    with dsl.scope("features"):
        y = dsl.conv2d(x, 4, 3, name="0")
    return dsl.Model(x, y, name="folded", seed=0)


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_fold_matches_the_closed_form(eps):
    graph = _folded_graph()
    assert set(graph.params) == {"features.0.weight", "features.0.bias"}
    state, want_w, want_b = _conv_bn_state(np.random.default_rng(0), eps)
    assert fold_into_convs(graph, state, eps) == ["features.1"]
    assert set(state) == {"features.0.weight", "features.0.bias"}
    np.testing.assert_allclose(state["features.0.weight"], want_w, rtol=1e-6)
    np.testing.assert_allclose(state["features.0.bias"], want_b, rtol=1e-5, atol=1e-6)


def test_fold_leaves_a_batchnorm_the_graph_has_and_a_misfit_one():
    graph = _folded_graph()
    state, _, _ = _conv_bn_state(np.random.default_rng(1), 1e-5)
    state["features.1.running_var"] = state["features.1.running_var"][:3]  # not the conv's channel count
    assert fold_into_convs(graph, state) == []
    assert "features.1.weight" in state


def test_unfittable_file_still_names_its_keys(tmp_path):
    path = tmp_path / "w.safetensors"
    safetensors.numpy.save_file({"features.0.weight": np.zeros((4, 3, 3, 3), np.float32)}, str(path))
    with pytest.raises(ModelFileError, match="missing 1: features.0.bias"):
        load_weights(_folded_graph(), path)


def test_eval_export_takes_the_state_dict_it_came_from(tmp_path):
    """The oracle is the PyTorch model: an export made with other weights, given this state_dict, computes
    what PyTorch computes."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    torch.manual_seed(1)
    graph = from_model(torch_export(randomised_resnet18(torch).eval(), x))  # constant folding: BN folded
    model = randomised_resnet18(torch).eval()  # other weights: the test sees the file's weights replaced
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    convs = {k for k in state if k.endswith(".weight") and state[k].ndim == 4}
    assert convs <= set(graph.params) and not any(is_generated(k) for k in graph.params)
    path = tmp_path / "resnet18.safetensors"
    safetensors.numpy.save_file(state, str(path))
    with pytest.warns(BatchNormFoldWarning, match="folded 20 BatchNorms"):
        load_weights(graph, path)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(cnngraph.compile(graph)(x), want, rtol=1e-4, atol=1e-4)


def test_shared_generated_initializer_becomes_one_copy_per_conv():
    """The exporter deduplicates equal folded tensors (all-zero biases of fresh BatchNorms) behind Identity
    nodes; each conv gets its own parameter, so training one does not move the others."""
    torch = pytest.importorskip("torch")
    from tests.torch_resnet import resnet

    x = np.zeros((1, 3, 32, 32), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = from_model(torch_export(resnet("resnet18").eval(), x))
    biases = [graph.params[k] for k in graph.params if k.endswith("conv1.bias")]
    assert len(biases) > 1 and len({id(b) for b in biases}) == len(biases)
