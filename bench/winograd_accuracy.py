"""How far Winograd convolutions are from the direct path, per dtype and tile size (a report, not a test).

    python bench/winograd_accuracy.py

Per ResNet 3x3 convolution shape (batch 2, He-scaled weights, standard normal input): the largest
difference from the float64 direct convolution, relative to the output's largest magnitude, for
F(2x2, 3x3) and F(4x4, 3x3) computed in float64 and in float32, and for float16 storage (inputs and
outputs rounded to float16, computed in float32, as the NumPy backend runs float16); then the worst
node of whole models compiled with the default kernel choice, from ``check=True``.
"""

from __future__ import annotations

import numpy as np

import cnngraph
from cnngraph import models
from cnngraph.backends.kernels import winograd
from cnngraph.backends.kernels.conv import conv2d_forward

SHAPES = [(64, 56), (128, 28), (256, 14), (512, 7)]  # (channels, map size) of ResNet-18's stride-1 3x3 convs
PAD = (1, 1, 1, 1)


def error(m: int, x: np.ndarray, weight: np.ndarray, compute: type, store: type) -> float:
    want = conv2d_forward(np, x, weight, None, (1, 1), PAD, (1, 1), 1)
    plan = winograd.Plan(x.shape, PAD)
    plan.m = m
    plan.tiles = tuple(-(-size // m) for size in plan.out_hw)
    plan.padding = (1, 1, plan.tiles[0] * m + 2 - x.shape[2] - 1, plan.tiles[1] * m + 2 - x.shape[3] - 1)
    xs = x.astype(store).astype(compute)
    got = winograd.winograd_conv2d(np, xs, plan.filters(np, weight.astype(compute)), None, plan).astype(store)
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def main() -> None:
    rng = np.random.default_rng(0)
    print("| conv (C=O, map) | F(2x2) float64 | F(2x2) float32 | F(4x4) float64 | F(4x4) float32 | "
          "F(4x4) float16 storage | direct float32 |")
    print("|---|---|---|---|---|---|---|")
    for c, size in SHAPES:
        x = rng.standard_normal((2, c, size, size))
        weight = rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))
        want = conv2d_forward(np, x, weight, None, (1, 1), PAD, (1, 1), 1)
        direct32 = conv2d_forward(np, x.astype(np.float32), weight.astype(np.float32), None, (1, 1), PAD, (1, 1), 1)
        row = [error(2, x, weight, np.float64, np.float64), error(2, x, weight, np.float32, np.float32),
               error(4, x, weight, np.float64, np.float64), error(4, x, weight, np.float32, np.float32),
               error(4, x, weight, np.float32, np.float16),
               float(np.abs(direct32 - want).max() / np.abs(want).max())]
        print(f"| {c}, {size}x{size} | " + " | ".join(f"{e:.1e}" for e in row) + " |")
    print()
    print("| model (64x64 input) | dtype | worst node vs float64 reference | Winograd layers |")
    print("|---|---|---|---|")
    for name in ("resnet18", "resnet50"):
        for dtype in ("float32", "float16"):
            model = cnngraph.compile(models.build(name, input_size=64), dtype=dtype, check=True)
            node, err = max(model.check_errors, key=lambda e: e[1])
            count = sum("winograd" in impl for impl in model.kernels().values())
            print(f"| {name} | {dtype} | {err:.1e} ({node}) | {count} |")


if __name__ == "__main__":
    main()
