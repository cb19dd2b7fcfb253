"""The README's Python examples run as written (documentation that cannot rot silently)."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})


# Names the README uses as examples of the user's own files, not files of this repository.
USER_FILES = {"file.py", "path/to/file.py"}


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
