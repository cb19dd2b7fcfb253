"""The torchvision import table (issue 13): per family, does PyTorch's export import, run, match onnxruntime
on the same file (max |difference| / max |onnxruntime|, batch 2, 224x224; Inception v3 299x299), and
summarise with PyTorch's parameter count and geometry. Needs torch and torchvision (not test extras:
``pip install torch torchvision``). Not a test: tests/test_torchvision_import.py asserts the same at small sizes.

Usage: python bench/torchvision_import.py [FAMILY ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checks the tests use
from tests.torchvision_families import FAMILIES, check  # noqa: E402

SIZES = {"inception_v3": 299}


def main() -> None:
    import torch
    import torchvision

    from cnngraph.frontends.onnx_import import supported_ops

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}; "
          f"{len(supported_ops())} ONNX op types importable")
    print("| family | imports | runs | max rel vs onnxruntime | summary correct | seconds |")
    print("|---|---|---|---|---|---|")
    for family in sys.argv[1:] or FAMILIES:
        start = time.perf_counter()
        r = check(torch, torchvision, family, SIZES.get(family, 224))
        rel = f"{r.max_rel:.1e}" if r.max_rel == r.max_rel else "-"
        summary = r.summary + (f" ({r.note})" if r.note else "")
        print(f"| {family} | {r.imports} | {r.runs} | {rel} | {summary} | {time.perf_counter() - start:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
