"""The float16 tolerance table: per zoo family, how far float16 (and float32) runs are from float64.

For each family (the reduced builds the tests use), the node-by-node check (``cnngraph.backends.check``)
gives every node's error relative to the reference's largest magnitude; this prints the worst node
and the final output for float16 and float32, as a Markdown table. Not a test: tests/test_float16.py
asserts the tolerance.  Usage: python bench/float16_error.py [--backend numpy]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cnngraph
from cnngraph.backends import check

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reduced zoo builds the tests use
from tests.test_float16 import FAMILIES  # noqa: E402
from tests.zoo_builds import reduced  # noqa: E402


def errors(graph, backend: str, dtype: str) -> tuple[float, float, str]:
    model = cnngraph.compile(graph, backend=backend, dtype=dtype)
    try:
        per_node = check.compare(model)
    except cnngraph.CnnGraphError as e:
        return float("nan"), float("nan"), str(e).split(":")[0]
    node, worst = max(per_node, key=lambda e: e[1])
    return worst, per_node[-1][1], node


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="numpy")
    args = p.parse_args()
    print(f"| model | float16 worst node | float16 output | float32 worst node | float32 output |  ({args.backend})")
    print("|---|---|---|---|---|")
    for name in [*FAMILIES, "segnet"]:
        graph = reduced(name)
        h_worst, h_out, h_node = errors(graph, args.backend, "float16")
        f_worst, f_out, _ = errors(graph, args.backend, "float32")
        half = f"{h_worst:.1e} ({h_node})" if h_worst == h_worst else f"fails: {h_node}"
        print(f"| {name} | {half} | {h_out:.1e} | {f_worst:.1e} | {f_out:.1e} |")


if __name__ == "__main__":
    main()
