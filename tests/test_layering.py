"""The core's layering, read from the source: it imports nothing from the backends or the compiler
glue (capabilities reach it as op traits or a pass context), the IR imports the op registry at its
top, and the op schemas never import the IR back (that would be an import cycle)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ["ir.py", "types.py", "ops", "passes", "concat_layout.py", "memory.py", "analysis.py", "alignment.py",
        "subgraph.py"]
# The glue and what the package re-exports from it (``from cnngraph import optimize`` is compiler.py too).
GLUE = ("cnngraph.backends", "cnngraph.compiler", "cnngraph.compile", "cnngraph.optimize")


def files(*entries: str) -> list[Path]:
    paths = [ROOT / "cnngraph" / e for e in entries]
    assert all(p.exists() for p in paths), [str(p) for p in paths if not p.exists()]
    return sorted(f for p in paths for f in (p.rglob("*.py") if p.is_dir() else [p]))


def imports(source: str, package: tuple[str, ...]) -> list[tuple[str, int]]:
    """(module, line) for every import in ``source`` (a module of ``package``), at any depth, relative ones
    resolved; ``from a import b`` gives both ``a`` and ``a.b``, since ``b`` may be a module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = list(package[: len(package) - node.level + 1]) if node.level else []
            base = ".".join(anchor + ([node.module] if node.module else []))
            found += [(base, node.lineno)] + [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return found


def imports_of(path: Path) -> list[tuple[str, int]]:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return imports(path.read_text(), parts if parts[-1] == "__init__" else parts[:-1])


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def label(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", files(*CORE), ids=label)
def test_the_core_imports_no_backend_and_no_compiler(path):
    assert [(m, line) for m, line in imports_of(path) if within(m, GLUE)] == []


@pytest.mark.parametrize("path", files("ops"), ids=label)
def test_op_schemas_do_not_import_the_ir(path):
    assert [(m, line) for m, line in imports_of(path) if within(m, ("cnngraph.ir",))] == []


def test_the_ir_imports_only_at_its_top():
    tree = ast.parse((ROOT / "cnngraph" / "ir.py").read_text())
    nested = [n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and n not in tree.body]
    assert nested == []


def test_the_checker_sees_nested_relative_and_package_imports():
    source = "def f():\n    from ..backends import kernels\n    from cnngraph import optimize\n"
    found = [m for m, _ in imports(source, ("cnngraph", "passes"))]
    assert [m for m in found if within(m, GLUE)] == ["cnngraph.backends", "cnngraph.backends.kernels",
                                                       "cnngraph.optimize"]
