"""The onnxruntime backend: the optimised graph exported in memory and run in an InferenceSession.

Oracle: the NumPy executor on the same graph and input (the reference every backend is checked
against), within the export tolerance; ``check=True`` compares every node against the float64 reference.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.onnx_verify import TOLERANCE
from cnngraph.cli import main
from cnngraph.errors import BackendError
from tests.zoo_builds import reduced

ort = pytest.importorskip("onnxruntime")


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121", "unet"])
def test_outputs_match_the_numpy_executor(name, quick_params):
    graph = reduced(name)
    ours = cnngraph.compile(graph, backend="onnxruntime")
    reference = cnngraph.compile(graph, backend="numpy")
    for batch in (1, 3):  # one session, any batch: the export keeps it symbolic
        x = {k: np.random.default_rng(batch).standard_normal(t.concrete(batch)).astype(np.float32)
             for k, t in graph.inputs.items()}
        got, want = ours.run(x), reference.run(x, to_host=True)
        assert set(got) == set(want) == set(graph.outputs)
        for out in graph.outputs:
            assert isinstance(got[out], np.ndarray) and got[out].shape == want[out].shape
            assert rel(got[out], want[out]) <= TOLERANCE["float32"]


def test_check_compares_every_node_against_the_reference(quick_params):
    model = cnngraph.compile(reduced("resnet18"), backend="onnxruntime", check=True)
    checked = [name for name, _ in model.check_errors]
    assert checked == [node.name for node in model.graph.nodes]  # every node's value is named in the export
    assert max(err for _, err in model.check_errors) <= 1e-4
    assert set(model.kernels().values()) == {f"onnxruntime/{model.providers[0]}"}


def test_watch_sees_each_node_in_schedule_order_and_the_same_outputs(quick_params):
    model = cnngraph.compile(reduced("resnet18"), backend="onnxruntime")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    seen = []
    watched = model.run(x, watch=lambda node, value: seen.append((node.name, value.shape)))
    assert [name for name, _ in seen] == [node.name for node in model.graph.nodes]
    assert seen[-1][1] == (2, 1000)
    np.testing.assert_allclose(watched["fc"], model.run(x)["fc"], rtol=1e-5, atol=1e-6)


def test_training_is_refused_with_a_typed_error():
    with pytest.raises(BackendError, match="backend 'onnxruntime' runs inference only"):
        cnngraph.compile(reduced("lenet5"), backend="onnxruntime", train=True)


def test_an_op_without_onnx_mapping_is_named(monkeypatch):
    graph = reduced("lenet5")
    monkeypatch.setattr(graph.node("c1"), "op", "NoSuchMapping")
    monkeypatch.setattr(type(graph), "verify", lambda self: self)
    monkeypatch.setattr(cnngraph.compiler, "optimize", lambda graph, *a, **k: (graph, []))
    with pytest.raises(BackendError, match=r"onnxruntime' cannot run 'lenet5'.*layer 'c1' \(NoSuchMapping\): "
                                           r"the op has no ONNX mapping"):
        cnngraph.compile(graph, backend="onnxruntime")


def test_other_dtypes_and_bad_inputs_are_typed_errors():
    with pytest.raises(BackendError, match="runs dtypes float32, not 'float64'"):
        cnngraph.compile(reduced("lenet5"), backend="onnxruntime", dtype="float64")
    model = cnngraph.compile(reduced("lenet5"), backend="onnxruntime")
    with pytest.raises(cnngraph.errors.CnnGraphError, match=r"input 'image': expected shape \(N, 1, 32, 32\)"):
        model(np.zeros((1, 3, 32, 32), np.float32))


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")  # onnxruntime's own
def test_cuda_is_asked_for_when_offered_and_a_missing_one_is_reported(monkeypatch):
    """With onnxruntime-gpu the CUDA provider is requested first; what the session really got is
    ``session.get_providers()``, and a provider it could not create is reported as a fallback."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    model = cnngraph.compile(reduced("lenet5"), backend="onnxruntime")
    assert model.requested == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert model.providers == model.session.get_providers()
    if "CUDAExecutionProvider" not in model.providers:
        assert model.fallbacks() == [("(all)", "CUDAExecutionProvider",
                                      "onnxruntime could not create it here (no device or CUDA libraries)")]
    assert model(np.zeros((1, 1, 32, 32), np.float32)).shape == (1, 10)


def test_the_cli_runs_it_and_lists_it(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a refused training run must leave nothing behind either way
    assert main(["backends"]) == 0
    assert any(line.startswith("onnxruntime  yes") for line in capsys.readouterr().out.splitlines())
    assert main(["run", "lenet5", "--backend", "onnxruntime", "--check"]) == 0
    assert "ran batch 1" in capsys.readouterr().out
    assert main(["train", "lenet5", "--backend", "onnxruntime", "--epochs", "1"]) != 0
    assert "runs inference only" in capsys.readouterr().err


def test_without_onnxruntime_it_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(BackendError, match=r"backend 'onnxruntime' cannot run here: onnxruntime is not installed "
                                           r"\(pip install -e \"\.\[cpu\]\"\)"):
        cnngraph.compile(reduced("lenet5"), backend="onnxruntime")
