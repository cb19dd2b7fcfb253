"""What every subcommand shares: the console, MODEL arguments and loading."""

from __future__ import annotations

import argparse
import os
import sys

from rich import box
from rich.console import Console
from rich.table import Table

PIPED_WIDTH = 1000
"""Piped output (files, CI logs, grep) is never wrapped, so no name or number is split across lines; COLUMNS,
when set, still sets the width, as it does for a terminal."""
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH,
                  highlight=False)


def table(*headers: str, numeric: tuple[str, ...] = (), title: str | None = None) -> Table:
    """A compact table that fits 80 columns where its content allows: a rule under the header, no borders, two
    spaces between columns. Columns named in ``numeric`` are right-aligned and never wrapped; text columns
    wrap (at word boundaries) only when the terminal is too narrow."""
    t = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
              title_justify="left")
    for h in headers:
        t.add_column(h, justify="right" if h in numeric else "left", no_wrap=h in numeric)
    return t


def compact(n: float) -> str:
    """A count to three significant digits in at most five characters: 950, 9.41K, 25.6M, 118M, 4.10G."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.{2 if v < 10 else 1 if v < 100 else 0}f}{suffix}"
    return f"{n:g}"


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def add_model_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    """MODEL and the builder options; ``optional`` for commands that can go without (train --resume)."""
    p.add_argument("model", metavar="MODEL", nargs="?" if optional else None,
                   help="zoo name (see `cnngraph models`), file.py:function, file.cng or file.onnx")
    p.add_argument("--num-classes", type=positive, help="classifier outputs (zoo and file builders)")
    p.add_argument("--input-size", type=positive, help="input height and width (zoo and file builders)")
    p.add_argument("--width", type=positive_float,
                   help="builders that take one: the channel multiplier (0.125: a CPU-sized R-CNN, SSD or FCN) or, "
                        "for U-Net, the first level's channels")


def load(args):
    """The graph named by the MODEL argument, with builder options applied."""
    from cnngraph.loader import load_model

    kwargs = {k: v for k, v in (("num_classes", args.num_classes), ("input_size", args.input_size),
                                ("width", _whole_if_integral(args.width))) if v is not None}
    return load_model(args.model, **kwargs)


def _whole_if_integral(value: float | None) -> float | int | None:
    """U-Net's width counts channels: 8.0 from the command line goes in as 8."""
    return int(value) if value is not None and value.is_integer() else value


def add_weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="FILE",
                   help="load parameters from a .safetensors or .npz file keyed by torchvision's state_dict names")
    p.add_argument("--bn-eps", type=float, default=1e-5, metavar="EPS",
                   help="BatchNorm epsilon when --weights has BatchNorms the ONNX export folded into its "
                        "convolutions (default 1e-5, PyTorch's; torchvision's Inception v3 and GoogLeNet use 1e-3)")


def apply_weights(graph, args):
    """Load ``--weights`` into ``graph`` (in place) when given; returns the graph."""
    if args.weights:
        from cnngraph.weights import load_weights

        load_weights(graph, args.weights, args.bn_eps)
    return graph


def add_backend_arg(p: argparse.ArgumentParser, what: str = "run on") -> None:
    from cnngraph.backends.devices import all_backends

    names = [b.name for b in all_backends()]
    p.add_argument("--backend", choices=names, default="numpy",
                   help=f"the backend to {what} (default numpy; `cnngraph backends` says which can run here)")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    from cnngraph.backends.threads import CROSSOVER_MACS

    p.add_argument("--threads", type=positive, metavar="N",
                   help=f"BLAS threads for the numpy and strict backends' GEMMs (default auto: one thread for a "
                        f"GEMM under {CROSSOVER_MACS:.0e} multiply-accumulates, all {os.cpu_count()} cores above)")


def apply_threads(args) -> None:
    """Fix the BLAS thread count when the command took ``--threads N``; auto otherwise."""
    if getattr(args, "threads", None) is not None:
        from cnngraph.backends.threads import blas

        blas.configure(args.threads)


def add_dtype_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", choices=["float32", "float64", "float16"], default="float32",
                   help="activation dtype; float16 keeps float32 master weights and BatchNorm statistics "
                        "(default float32)")


def add_timing_args(p: argparse.ArgumentParser, repeat_help: str) -> None:
    """What the timing commands (bench, profile) share: the model, how it runs, and how often it is timed."""
    add_model_args(p)
    add_weights_arg(p)
    add_backend_arg(p)
    add_dtype_arg(p)
    add_threads_arg(p)
    p.add_argument("--batch", type=positive, default=1, help="batch size (default 1)")
    p.add_argument("--passes", default="default", help='"default", "none", or a comma-separated list of pass names')
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default 1)")
    p.add_argument("--repeat", type=positive, default=5, help=repeat_help)
