"""Inference throughput, in one run: cnngraph on a backend (without and with the default pass
pipeline), onnxruntime and PyTorch eager.

    python bench/bench_inference.py [--models resnet18 resnet50] [--batches 1 8] [--repeat 5]
                                    [--backend numpy|cupy|strict] [--dtype float32|float16]

On ``--backend cupy`` the input is put on the GPU once, every timed run ends with a device
synchronisation, and PyTorch runs on CUDA (in float16 too with ``--dtype float16``).
onnxruntime (CPU, ``ORT_ENABLE_ALL``) runs the file ``cnngraph export`` writes for the same graph;
PyTorch eager (when installed) runs torchvision's layout with the graph's weights copied in. All
three see the same input, and the table shows how far their outputs are apart, so the ratios
compare one computation. A benchmark, not a test: it prints numbers and asserts nothing. Each case
is warmed up once, then timed ``--repeat`` times; the median is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import cnngraph
from cnngraph import models
from cnngraph.analysis import total_macs
from cnngraph.backends.onnx_export import export

ROOT = Path(__file__).resolve().parents[1]


def time_call(fn, repeat: int) -> float:
    fn()  # warm-up: first-touch allocations, BLAS thread start
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def onnxruntime_runner(graph, folder: str):
    """The exported file in an onnxruntime CPU session at ORT_ENABLE_ALL, or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    path = os.path.join(folder, f"{graph.name}.onnx")
    export(graph, path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = next(iter(graph.inputs))
    return lambda x: session.run(None, {name: x})[0]


def cnngraph_runner(graph, backend: str, dtype: str, passes: str):
    """A compiled model that takes the input on its device and waits for the device before returning."""
    model = cnngraph.compile(graph, backend=backend, dtype=dtype, passes=passes)
    staged = {}

    def run(x):
        if id(x) not in staged:
            staged.clear()
            staged[id(x)] = model.backend.asarray(x, dtype=model.dtype)
        out = model.run(staged[id(x)])
        model.backend.synchronize()
        return model.backend.to_host(next(iter(out.values())))

    return run


def torch_runner(graph, backend: str, dtype: str):
    """PyTorch eager on torchvision's ResNet layout with the graph's weights (on CUDA when cnngraph runs on
    cupy); None without torch (or CUDA, there) or for models other than the ResNets."""
    try:
        import torch
    except ImportError:
        return None
    sys.path.insert(0, str(ROOT))
    from tests.torch_resnet import LAYOUTS, load_graph_params, resnet

    if graph.name not in LAYOUTS:
        return None
    device = "cuda" if backend == "cupy" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        return None
    model = load_graph_params(resnet(graph.name, graph.node("fc").type.shape[1]), graph.params).eval()
    model = model.to(device=device, dtype=getattr(torch, dtype))

    def run(x):
        with torch.inference_mode():
            out = model(torch.from_numpy(x).to(device=device, dtype=getattr(torch, dtype)))
            return out.float().cpu().numpy()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", default="numpy", help="cnngraph's backend (default numpy)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    args = parser.parse_args()

    console = Console(width=None if sys.stdout.isatty() else 160)  # logs get the whole table
    console.print(f"cnngraph {cnngraph.__version__}, numpy {np.__version__}, {_versions()}, "
                  f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    table = Table("model", "batch", "no passes img/s", "cnngraph img/s", "GFLOP/s", "onnxruntime img/s",
                  "PyTorch img/s", "no passes / onnxruntime", "cnngraph / onnxruntime", "cnngraph / PyTorch",
                  "max rel diff", title=f"inference, {args.dtype}, 224x224, cnngraph on {args.backend} "
                                        f"(cnngraph = default passes)")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            graph = models.build(name)
            macs = total_macs(graph)
            runners = {"cnngraph": cnngraph_runner(graph, args.backend, args.dtype, "default"),
                       "no passes": cnngraph_runner(graph, args.backend, args.dtype, "none"),
                       "onnxruntime": onnxruntime_runner(graph, folder),
                       "torch": torch_runner(graph, args.backend, args.dtype)}
            for batch in args.batches:
                x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
                rates, outputs = {}, {}
                for side, run in runners.items():
                    if run is not None:
                        outputs[side] = run(x)
                        rates[side] = batch / time_call(lambda run=run: run(x), args.repeat)
                table.add_row(name, str(batch), f"{rates['no passes']:.1f}", f"{rates['cnngraph']:.1f}",
                              f"{2 * macs * rates['cnngraph'] / 1e9:.1f}",
                              *(_rate(rates, s) for s in ("onnxruntime", "torch")),
                              _ratio(rates, "onnxruntime", "no passes"),
                              *(_ratio(rates, s) for s in ("onnxruntime", "torch")), _difference(outputs))
    console.print(table)


def _versions() -> str:
    found = []
    for module in ("onnxruntime", "torch"):
        try:
            found.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            found.append(f"{module} not installed")
    return ", ".join(found)


def _rate(rates: dict, side: str) -> str:
    return f"{rates[side]:.1f}" if side in rates else "-"


def _ratio(rates: dict, side: str, ours: str = "cnngraph") -> str:
    return f"{rates[ours] / rates[side]:.2f}x" if side in rates else "-"


def _difference(outputs: dict) -> str:
    """The largest difference of any side from cnngraph's output, relative to its largest magnitude."""
    ref = outputs["cnngraph"]
    worst = max((np.abs(out - ref).max() for out in outputs.values()), default=0.0)
    return f"{worst / np.abs(ref).max():.1e}"


if __name__ == "__main__":
    main()
