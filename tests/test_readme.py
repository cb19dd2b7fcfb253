"""The README's Python examples run as written and show what their comments say (documentation that
cannot rot silently): each block runs, then the check keyed by a line of it compares the values and
printed lines its comments promise."""

import contextlib
import io
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def dsl_example(ns, printed):
    graph = ns["graph"]
    assert graph.inputs["image"].shape == ("N", 3, 32, 32)  # "the batch dimension stays symbolic"
    assert printed[0].startswith("graph resnet_tiny(%image: f32[N,3,32,32])")
    assert len(printed) == len(graph.nodes) + 3  # "one line per node" between the header, return and brace
    assert any(n.name.startswith("layer2.") for n in graph.nodes)  # "hierarchical names: layer2.conv2d"
    assert ns["logits"].shape == (4, 10) and np.isfinite(ns["logits"]).all()


def onnx_example(ns, printed):
    import cnngraph

    assert re.fullmatch(r"'fc' at batch 1: max abs \S+, max rel \S+; 'fc' at batch 7: .*\(tolerance 1e-04, float32\)",
                        printed[0])  # "max abs/rel per batch"
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64))
    want = cnngraph.compile(ns["graph"], dtype="float64", passes="none")(x)
    got = cnngraph.compile(ns["again"], dtype="float64", passes="none")(x)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())  # the same network back


def alignment_example(ns, printed):
    assert "up1.concat 'up1.crop' crops 'down1.relu2' at (16, 16): aligned" in printed
    assert "(16, 16, 16, 16)" in printed


def training_example(ns, printed):
    from cnngraph import models

    accuracy, *losses = printed[-4:]  # after the Trainer's own progress lines
    assert 0.0 <= float(accuracy) <= 1.0
    assert len(losses) == 3 and all(math.isfinite(float(v)) for v in losses)
    fresh = models.build("lenet5").params
    trained = ns["trained"].params
    assert trained.keys() == fresh.keys() and any(not np.array_equal(trained[k], fresh[k]) for k in fresh)


CHECKS = {'graph = dsl.Model(x, y, name="resnet_tiny", seed=0)': dsl_example,
          "again = onnx_import.load(path)": onnx_example,
          'print(alignment_crop(unet, "down1.relu2", "up1.upconv"))': alignment_example,
          "trained = model.to_graph()": training_example}


def test_readme_has_python_examples_and_each_is_checked():
    assert BLOCKS
    assert all(sum(key in block for block in BLOCKS) == 1 for key in CHECKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_and_shows_its_comments(index, tmp_path, monkeypatch):
    block, namespace, out = BLOCKS[index], {}, io.StringIO()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp folders: the test's own
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"README.md[python block {index}]", "exec"), namespace)
    for key, check in CHECKS.items():
        if key in block:
            check(namespace, out.getvalue().splitlines())


# Names the README uses as examples of the user's own files, not files of this repository.
USER_FILES = {"file.py", "path/to/file.py", "ImageSets/Main/train.txt", "val.txt"}  # and a VOC folder's split lists


def test_every_file_the_readme_names_is_in_the_repository():
    """A path in backticks (a folder of this repository, or a .py/.sh/.md/.txt/.gz file name) exists here;
    nothing points outside the repository."""
    root = Path(__file__).resolve().parents[1]
    tops = ("cnngraph/", "backends/", "frontends/", "models/", "tests/", "bench/", ".ci/", "../")
    named = set()
    for token in re.findall(r"`([^`\s]+)`", README):
        path = token.split(":")[0]
        if path.startswith(tops) or re.fullmatch(r"[\w./-]+\.(py|sh|md|txt|gz|toml)", path):
            named.add(path)
    assert not [p for p in named if p.startswith("../")], "the README points outside the repository"
    everything = {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts}
    missing = [p for p in sorted(named - USER_FILES)
               if p.rstrip("/") not in everything and not any(f.endswith("/" + p.rstrip("/")) for f in everything)]
    assert not missing, missing
