"""--weights on every command that loads a model: the file's parameters reach the output, a file that does
not fit is one error line and exit 1."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from cnngraph import io, models
from cnngraph.cli import main


@pytest.fixture
def weights(tmp_path):
    source = models.build("lenet5", seed=5)
    path = tmp_path / "w.npz"
    np.savez(path, **source.params)
    return source, path


def test_export_writes_the_loaded_weights(tmp_path, weights):
    source, path = weights
    out = tmp_path / "m.onnx"
    assert main(["export", "lenet5", "--weights", str(path), "-o", str(out)]) == 0
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    np.testing.assert_array_equal(stored["c1.weight"], source.params["c1.weight"])


def test_compile_writes_the_loaded_weights(tmp_path, weights):
    source, path = weights
    out = tmp_path / "m.cng"
    assert main(["compile", "lenet5", "--weights", str(path), "--passes", "none", "-o", str(out)]) == 0
    np.testing.assert_array_equal(io.load(out).params["f6.weight"], source.params["f6.weight"])


@pytest.mark.parametrize("command", [["export", "-o", "x.onnx"], ["compile"], ["summary"],
                                     ["bench", "--warmup", "0", "--repeat", "1"]])
def test_weights_that_do_not_fit_are_one_line(tmp_path, weights, capsys, command):
    _, path = weights
    code = main([command[0], "lenet5", "--num-classes", "7", "--weights", str(path), *command[1:]])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"cnngraph {command[0]}: error: ") and err.count("\n") == 1
    assert "mis-shaped 2: output.bias" in err


def test_bench_runs_with_weights(weights, capsys):
    _, path = weights
    assert main(["bench", "lenet5", "--weights", str(path), "--warmup", "0", "--repeat", "1", "--json"]) == 0
    assert '"cnngraph"' in capsys.readouterr().out
