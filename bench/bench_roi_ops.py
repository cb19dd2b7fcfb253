"""RoiPool and RoiAlign forward: cnngraph's NumPy executor against onnxruntime on the exported node.

    python bench/bench_roi_ops.py [--regions 128] [--channels 256] [--size 38] [--repeat 5]

Fast R-CNN's shapes by default: a VGG-16 conv5 map of a 600-pixel image (2 images, 256 channels
38x38, stride 16) and 128 regions pooled to 7x7 (RoiAlign with 2x2 samples per bin). Each line gives
the median of ``--repeat`` runs after one warm-up, and the ratio; the outputs are compared first.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort

import cnngraph
from cnngraph.benchmark import time_call
from cnngraph.backends.onnx_export import to_onnx
from cnngraph.frontends import dsl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", type=int, default=128)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--size", type=int, default=38)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, args.channels, args.size, args.size)).astype(np.float32)
    corner = rng.uniform(0, args.size * 16 * 0.8, (args.regions, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(16, 200, (args.regions, 2))], axis=1)
    feeds = {"x": x, "rois": np.concatenate([rng.integers(0, 2, (args.regions, 1)), boxes], axis=1).astype(np.float32)}
    for op, attrs in [("RoiPool", {"output_size": 7, "spatial_scale": 1 / 16}),
                      ("RoiAlign", {"output_size": 7, "spatial_scale": 1 / 16, "sampling_ratio": 2})]:
        features, rois = dsl.input("x", x.shape[1:]), dsl.input("rois", (5,), leading="R")
        graph = dsl.Model([features, rois], dsl.layer(op, [features, rois], name="roi", **attrs))
        model = cnngraph.compile(graph)
        session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(model.run(feeds)["roi"], session.run(None, feeds)[0], rtol=1e-4, atol=1e-4)
        ours = time_call(lambda: model.run(feeds), repeat=args.repeat).median
        theirs = time_call(lambda: session.run(None, feeds), repeat=args.repeat).median
        print(f"{op}: cnngraph {ours * 1e3:.1f} ms, onnxruntime {theirs * 1e3:.1f} ms, ratio {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
