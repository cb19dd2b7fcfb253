"""Every package folder is listed in pyproject.toml, and the package-dir mapping holds."""

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"cnngraph": "cnngraph", "frontends": "cnngraph.frontends", "backends": "cnngraph.backends",
             "models": "cnngraph.models"}


def _declared():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(cfg["packages"]), cfg["package-dir"]


def test_every_package_folder_is_declared():
    packages, _ = _declared()
    found = set()
    for folder, dotted in TOP_LEVEL.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((dotted, *rel)))
    assert found == packages, f"declared but missing: {packages - found}; present but undeclared: {found - packages}"


def test_package_dir_maps_the_top_level_folders():
    _, mapping = _declared()
    assert mapping == {dotted: folder for folder, dotted in TOP_LEVEL.items()}


def test_installed_package_is_imported_once_under_its_own_name():
    import cnngraph.models
    import cnngraph.ops

    assert Path(cnngraph.models.__file__).parent == ROOT / "models"
    assert Path(cnngraph.ops.__file__).parent == ROOT / "cnngraph" / "ops"
