"""Inference timing that compares like with like: cnngraph on a backend, onnxruntime on the file
``cnngraph export`` writes for the same graph, and PyTorch eager where this checkout has a PyTorch
twin of the model (``tests/torch_resnet.py``: the ResNets), all on one input, so the ratios compare
one computation and the outputs' difference says so. Used by ``cnngraph bench`` and
``bench/bench_inference.py``. A benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import cnngraph
from cnngraph.analysis import total_macs
from cnngraph.backends.onnx_export import export
from cnngraph.ir import Graph

Runner = Callable[[np.ndarray], np.ndarray]  # input on the host -> first output on the host
CHECKOUT = Path(__file__).resolve().parents[1]  # the repository, when cnngraph runs from a checkout


@dataclass
class Timing:
    """Seconds per call over the timed repeats (after the warm-up calls)."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: how far a single measurement can be trusted."""
        return (max(self.samples) - min(self.samples)) / self.median

    def as_dict(self) -> dict:
        return {"median_s": self.median, "min_s": min(self.samples), "max_s": max(self.samples),
                "spread": self.spread, "samples_s": self.samples}


def time_call(fn: Callable[[], object], warmup: int = 1, repeat: int = 5) -> Timing:
    """Warm up (first-touch allocations, BLAS thread start, kernel plans), then time ``repeat`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return Timing(samples)


def random_input(graph: Graph, batch: int, seed: int = 0) -> np.ndarray:
    """Standard normal float32 data shaped like the graph's (single) input at ``batch``."""
    shape = next(iter(graph.inputs.values())).shape[1:]
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def cnngraph_runner(graph: Graph, backend: str, dtype: str, passes: str | list[str] = "default") -> Runner:
    """A compiled model that keeps the input on its device and waits for the device before returning."""
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


def onnxruntime_runner(graph: Graph, folder: str) -> Runner | None:
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


def torch_runner(graph: Graph, backend: str, dtype: str) -> Runner | None:
    """PyTorch eager on torchvision's ResNet layout with the graph's weights (on CUDA when cnngraph runs on
    cupy); None without torch (or CUDA there), outside a checkout, or for models other than the ResNets."""
    try:
        import torch
    except ImportError:
        return None
    if not (CHECKOUT / "tests" / "torch_resnet.py").exists():
        return None
    sys.path.insert(0, str(CHECKOUT))
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


def relative_difference(outputs: dict[str, np.ndarray], reference: str = "cnngraph") -> float:
    """The largest difference of any side's output from ``reference``'s, relative to its largest magnitude."""
    ref = outputs[reference].astype(np.float64)
    worst = max((np.abs(out - ref).max() for out in outputs.values()), default=0.0)
    return float(worst / np.abs(ref).max())


SETTLE_S = 0.3
"""The pause before each side is timed. OpenBLAS's worker threads spin for about 0.1 s after their last GEMM
(measured 2026-11-30: a full core for 100 ms after a batch of yolo_v1_small); a side timed inside that
window shares its cores with them: onnxruntime timed right after cnngraph took 6.9 ms a batch instead of
1.5, which made cnngraph look 0.94x of it instead of 0.2x."""


def compare(runners: dict[str, Runner | None], x: np.ndarray, warmup: int, repeat: int) -> tuple[dict, float]:
    """Each runner's Timing on ``x`` (those that are None are left out) and how far their outputs are apart;
    each side starts ``SETTLE_S`` after the previous one's last call, on cores its threads no longer hold."""
    timings, outputs = {}, {}
    for side, run in runners.items():
        if run is not None:
            time.sleep(SETTLE_S)
            outputs[side] = run(x)
            timings[side] = time_call(lambda run=run: run(x), warmup, repeat)
    return timings, relative_difference(outputs)


def versions() -> dict[str, str]:
    """What the comparison ran against: numpy, onnxruntime and torch versions (or "not installed")."""
    found = {"cnngraph": cnngraph.__version__, "numpy": np.__version__}
    for module in ("onnxruntime", "torch"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            found[module] = "not installed"
    return found


def bench(graph: Graph, backend: str = "numpy", dtype: str = "float32", batch: int = 1, warmup: int = 1,
          repeat: int = 5, passes: str | list[str] = "default") -> dict:
    """``cnngraph bench``'s measurement as plain data: per side the timing and images/s, cnngraph's
    throughput over each other side's, cnngraph's achieved GFLOP/s (2 x MACs / time), the outputs' distance."""
    with tempfile.TemporaryDirectory() as folder:
        runners = {"cnngraph": cnngraph_runner(graph, backend, dtype, passes),
                   "onnxruntime": onnxruntime_runner(graph, folder),
                   "pytorch": torch_runner(graph, backend, dtype)}
        timings, difference = compare(runners, random_input(graph, batch), warmup, repeat)
    ours = timings["cnngraph"].median
    macs = total_macs(graph)
    return {"model": graph.name, "backend": backend, "dtype": dtype, "batch": batch, "warmup": warmup,
            "repeat": repeat, "macs_per_sample": macs, "versions": versions(),
            "sides": {side: {**t.as_dict(), "images_per_s": batch / t.median} for side, t in timings.items()},
            "ratios": {f"cnngraph/{side}": t.median / ours for side, t in timings.items() if side != "cnngraph"},
            "gflops": 2 * macs * batch / ours / 1e9, "max_rel_diff": difference,
            "not_run": sorted(set(runners) - set(timings))}
