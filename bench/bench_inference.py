"""Inference throughput, in one run: cnngraph on a backend (without and with the default pass
pipeline), cnngraph's onnxruntime backend, onnxruntime on the exported file and PyTorch eager.

    python bench/bench_inference.py [--models resnet18 resnet50] [--batches 1 8] [--repeat 5]
                                    [--backend numpy|cupy|strict] [--dtype float32|float16]

On ``--backend cupy`` the input is put on the GPU once, every timed run ends with a device
synchronisation, and PyTorch runs on CUDA (in float16 too with ``--dtype float16``).
onnxruntime (CPU, ``ORT_ENABLE_ALL``) runs the file ``cnngraph export`` writes for the same graph;
cnngraph's ``onnxruntime`` backend (float32) is the same engine on the same graph, so its column over
the file's is the backend's own overhead. PyTorch eager (when installed) runs torchvision's layout with the graph's weights copied in. All
three see the same input, and the table shows how far their outputs are apart, so the ratios
compare one computation. A benchmark, not a test: it prints numbers and asserts nothing. Each case
is warmed up once, then timed ``--repeat`` times; the median is reported. The timing and the three
runners are ``cnngraph.benchmark``'s, which ``cnngraph bench MODEL`` uses too.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile

from rich.console import Console
from rich.table import Table

from cnngraph import models
from cnngraph.analysis import total_macs
from cnngraph.backends.devices import get_backend
from cnngraph.benchmark import cnngraph_runner, compare, onnxruntime_runner, random_input, torch_runner, versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", default="numpy", help="cnngraph's backend (default numpy)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    args = parser.parse_args()

    console = Console(width=None if sys.stdout.isatty() else 230)  # logs get the whole table
    console.print(", ".join(f"{k} {v}" for k, v in versions().items()) +
                  f", {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    table = Table("model", "batch", "no passes img/s", "cnngraph img/s", "GFLOP/s", "onnxruntime img/s",
                  "ort backend img/s", "PyTorch img/s", "no passes / onnxruntime", "cnngraph / onnxruntime",
                  "ort backend / onnxruntime", "cnngraph / PyTorch", "max rel diff", title=f"inference, {args.dtype}, 224x224, cnngraph on {args.backend} "
                                        f"(cnngraph = default passes)")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            graph = models.build(name)
            macs = total_macs(graph)
            runners = {"cnngraph": cnngraph_runner(graph, args.backend, args.dtype, "default"),
                       "no passes": cnngraph_runner(graph, args.backend, args.dtype, "none"),
                       "onnxruntime": onnxruntime_runner(graph, folder),
                       "ort backend": ort_backend_runner(graph, args.dtype),
                       "torch": torch_runner(graph, args.backend, args.dtype)}
            for batch in args.batches:
                timings, difference = compare(runners, random_input(graph, batch), 1, args.repeat)
                rates = {side: batch / t.median for side, t in timings.items()}
                table.add_row(name, str(batch), f"{rates['no passes']:.1f}", f"{rates['cnngraph']:.1f}",
                              f"{2 * macs * rates['cnngraph'] / 1e9:.1f}",
                              *(_rate(rates, s) for s in ("onnxruntime", "ort backend", "torch")),
                              _ratio(rates, "onnxruntime", "no passes"), _ratio(rates, "onnxruntime"),
                              _ratio(rates, "onnxruntime", "ort backend"), _ratio(rates, "torch"),
                              f"{difference:.1e}")
    console.print(table)


def ort_backend_runner(graph, dtype: str):
    """cnngraph's onnxruntime backend, where it runs (float32, onnxruntime installed); else None."""
    backend = get_backend("onnxruntime")
    if backend.unavailable() is not None or dtype not in backend.dtypes:
        return None
    return cnngraph_runner(graph, backend.name, dtype, "default")


def _rate(rates: dict, side: str) -> str:
    return f"{rates[side]:.1f}" if side in rates else "-"


def _ratio(rates: dict, side: str, ours: str = "cnngraph") -> str:
    return f"{rates[ours] / rates[side]:.2f}x" if side in rates and ours in rates else "-"


if __name__ == "__main__":
    main()
