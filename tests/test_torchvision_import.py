"""Issue 13's eleven torchvision families, exported by PyTorch, import, run like onnxruntime on the same file
and summarise with PyTorch's parameter count and geometry (skipped without torchvision; the table at
224x224 is bench/torchvision_import.py)."""

from __future__ import annotations

import pytest

from tests.torchvision_families import FAMILIES, check

SMALL = {"inception_v3": 107}  # its stem and reduction blocks need at least 75 pixels; the rest run at 64
TOLERANCE = 1e-4  # float32 summation order over ~50 layers gives ~1e-6; a wrong op is off by far more


@pytest.mark.parametrize("family", FAMILIES)
def test_torchvision_family_imports_and_matches_onnxruntime(family):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    result = check(torch, torchvision, family, SMALL.get(family, 64))
    assert (result.imports, result.runs) == ("yes", "yes"), result.note
    assert result.max_rel < TOLERANCE
    assert result.summary == "yes", result.note
