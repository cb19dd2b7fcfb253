"""The CLI: zoo listing, summary totals, run with random and .npy input, one-line errors."""

import subprocess
import sys

import numpy as np
import pytest

from cnngraph.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    import cnngraph

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"cnngraph {cnngraph.__version__}\n"


def test_models_lists_the_zoo(capsys):
    code, out, _ = run_cli(capsys, "models")
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ") and line[2] != " "}
    assert code == 0
    assert lines["resnet50"][1:4] == ["25.6M", "3x224x224", "classify"]  # 25,557,032 (torchvision)
    assert lines["lenet5"][1:3] == ["61.7K", "1x32x32"]
    assert lines["unet"][1:4] == ["31.0M", "1x572x572", "segment"]
    assert lines["msdnet"][3:5] == ["4", "outputs"]


def test_models_builds_with_zero_parameters_and_restores_the_initialiser(capsys):
    from cnngraph import models
    from cnngraph.frontends import dsl

    drawn = dsl.initialize
    assert run_cli(capsys, "models")[0] == 0
    assert dsl.initialize is drawn and models.build("lenet5").params["c1.weight"].any()


def test_summary_prints_total_params_comma_grouped(capsys):
    code, out, _ = run_cli(capsys, "summary", "resnet50")
    assert code == 0
    assert "Total params: 25,557,032" in out
    assert "layer4.2.conv3" in out


def test_run_prints_shape_and_top5_and_writes_output(capsys, tmp_path):
    out_path = tmp_path / "out.npy"
    code, out, _ = run_cli(capsys, "run", "lenet5", "--batch", "3", "-o", str(out_path))
    assert code == 0
    assert "shape (3, 10)" in out and "sample 2: top-5" in out
    assert np.load(out_path).shape == (3, 10)


def test_run_reads_npy_input(capsys, tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    code, out, _ = run_cli(capsys, "run", "lenet5", "--input", str(path))
    assert code == 0 and "shape (2, 10)" in out and "--batch" not in out
    code, out, _ = run_cli(capsys, "run", "lenet5", "--input", str(path), "--batch", "3")
    assert code == 0 and "--batch 3 sizes random input only: --input" in out and "runs as batch 2" in out
    np.save(path, x[:, :, :16])
    code, _, err = run_cli(capsys, "run", "lenet5", "--input", str(path))
    assert code == 1 and "input 'image': expected shape (N, 1, 32, 32), got (2, 1, 16, 32)" in err


def test_python_file_models(capsys, tmp_path):
    src = tmp_path / "net.py"
    src.write_text(
        "from cnngraph.frontends import dsl\n"
        "def tiny(num_classes=3):\n"
        "    x = dsl.input('x', (1, 8, 8))\n"
        "    return dsl.Model(x, dsl.linear(dsl.flatten(dsl.conv2d(x, 2, 3)), num_classes))\n"
    )
    code, out, _ = run_cli(capsys, "run", f"{src}:tiny", "--num-classes", "5")
    assert code == 0 and "shape (1, 5)" in out
    code, _, err = run_cli(capsys, "run", f"{src}:missing")
    assert code == 1 and "has no function 'missing'" in err


def test_unknown_model_is_one_line_with_suggestion(capsys):
    code, out, err = run_cli(capsys, "summary", "resnet5")
    assert code == 1
    assert err.strip().count("\n") == 0 and "did you mean" in err and "Traceback" not in err


def test_console_script_help_and_bad_arguments():
    for cmd in ([], ["run"], ["summary"]):
        res = subprocess.run([sys.executable, "-m", "cnngraph.cli", *cmd, "--help"], capture_output=True, text=True)
        assert res.returncode == 0 and "usage: cnngraph" in res.stdout
    res = subprocess.run([sys.executable, "-m", "cnngraph.cli", "run", "lenet5", "--batch", "0"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "must be a positive integer" in res.stderr


@pytest.mark.parametrize("model", ["resnet18"])
def test_run_zoo_model_default_batch(capsys, model):
    code, out, _ = run_cli(capsys, "run", model, "--input-size", "64", "--batch", "2")
    assert code == 0 and "shape (2, 1000)" in out


def test_summary_depth_folds_layers_into_scopes(capsys):
    code, out, _ = run_cli(capsys, "summary", "resnet18", "--depth", "1")
    lines = out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:lines.index("") if "" in lines else None]
            if line and not line.startswith(("output:", "Input"))}
    assert code == 0 and "layer1.0" not in rows and "layer1.0.conv1" not in rows
    assert rows["layer1"][:3] == ["14", "64x56x56", "148K"]  # 147,968
    assert [rows[f"layer{i}"][2] for i in (2, 3, 4)] == ["526K", "2.10M", "8.39M"]
    assert "Total params: 11,689,512" in lines
    code, out, _ = run_cli(capsys, "summary", "resnet18", "--depth", "2")
    assert code == 0 and "\nlayer1.0 " in out and "\nlayer1 " not in out
