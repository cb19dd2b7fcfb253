"""The bench scripts (``bench/*.py``, not a package) as modules and as commands, for their tests."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load(name: str):
    """``bench/<name>.py`` imported as a module (its ``main`` not run)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, *arguments: str) -> subprocess.CompletedProcess:
    """``python bench/<name>.py ARGUMENTS``, its output captured."""
    return subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *arguments], capture_output=True, text=True,
                          timeout=300)
