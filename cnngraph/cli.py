"""The ``cnngraph`` command: models, summary, run. Errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from cnngraph.errors import CnnGraphError

console = Console()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="zoo name (see `cnngraph models`), file.py:function, or file.cng")
    p.add_argument("--num-classes", type=_positive, help="classifier outputs (zoo and file builders)")
    p.add_argument("--input-size", type=_positive, help="input height and width (zoo and file builders)")


def _load(args):
    from cnngraph.loader import load_model

    kwargs = {k: v for k, v in (("num_classes", args.num_classes), ("input_size", args.input_size)) if v is not None}
    return load_model(args.model, **kwargs)


def cmd_models(args) -> None:
    from cnngraph.models import zoo

    table = Table("model", "family", "description", title="cnngraph model zoo")
    for entry in zoo().values():
        table.add_row(entry.name, entry.family, entry.summary)
    console.print(table)


def _fmt_field(pair, whole=False) -> str:
    if whole:
        return "all"
    a, b = (f"{v:g}" for v in pair)
    return a if a == b else f"{a}x{b}"


def cmd_summary(args) -> None:
    from cnngraph.analysis import node_stats

    graph = _load(args)
    rows = node_stats(graph)
    table = Table("layer", "op", "output", "params", "MACs", "RF", "stride", title=f"{graph.name}")
    for r in rows:
        table.add_row(r.node.name, r.node.op, str(r.node.type.shape).replace("'", ""), f"{r.params:,}",
                      f"{r.macs:,}", _fmt_field(r.field.size, r.field.whole), _fmt_field(r.field.jump))
    console.print(table)
    params, buffers, macs = (sum(getattr(r, a) for r in rows) for a in ("params", "buffers", "macs"))
    act = sum(r.node.type.per_sample() for r in rows) * 4
    for t in graph.inputs.values():
        console.print(f"Input: {t}")
    console.print(f"Total params: {params:,}")
    console.print(f"Non-trainable buffers: {buffers:,}")
    console.print(f"MACs per sample: {macs:,} ({macs / 1e9:.2f} G)")
    console.print(f"Activations per sample (float32, all values kept): {act / 2**20:.1f} MiB")


def cmd_run(args) -> None:
    import cnngraph

    graph = _load(args)
    t0 = time.perf_counter()
    model = cnngraph.compile(graph, backend="numpy", dtype=args.dtype)
    t1 = time.perf_counter()
    feeds = _inputs(graph, args)
    outputs = model.run(feeds)
    t2 = time.perf_counter()
    batch = next(iter(feeds.values())).shape[0]
    console.print(f"{graph.name}: compiled in {1e3 * (t1 - t0):.1f} ms, ran batch {batch} in {1e3 * (t2 - t1):.1f} ms")
    for name, out in outputs.items():
        console.print(f"output '{name}': shape {tuple(out.shape)}")
        if out.ndim == 2 and out.shape[1] >= 5:
            for i, row in enumerate(out):
                top = np.argsort(row)[::-1][:5]
                console.print(f"  sample {i}: top-5 " + ", ".join(f"{k} ({row[k]:.3f})" for k in top))
    if args.output:
        _save_outputs(args.output, outputs)


def _inputs(graph, args) -> dict:
    if args.input:
        if len(graph.inputs) != 1:
            raise CnnGraphError(f"--input takes one array; the model has inputs {list(graph.inputs)}")
        try:
            arr = np.load(args.input, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CnnGraphError(f"--input {args.input}: cannot read as .npy ({e})") from None
        return {next(iter(graph.inputs)): arr}
    rng = np.random.default_rng(args.seed)
    return {name: rng.standard_normal(t.concrete(args.batch)).astype(args.dtype) for name, t in graph.inputs.items()}


def _save_outputs(path: str, outputs: dict) -> None:
    import io as _io

    from cnngraph.io import atomic_write_bytes

    buf = _io.BytesIO()
    if len(outputs) == 1:
        np.save(buf, next(iter(outputs.values())))
    else:
        np.savez(buf, **outputs)
    atomic_write_bytes(path, buf.getvalue())
    console.print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnngraph", description="Declare, compile and run convolutional networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the model zoo")
    p.set_defaults(fn=cmd_models)

    p = sub.add_parser("summary", help="per-layer table: shapes, params, MACs, receptive field")
    _model_args(p)
    p.set_defaults(fn=cmd_summary)

    p = sub.add_parser("run", help="build, compile and run a model on random or given input")
    _model_args(p)
    p.add_argument("--batch", type=_positive, default=1, help="batch size for random input (default 1)")
    p.add_argument("--input", help="input array as .npy (float, shaped like the model input)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random input (default 0)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("-o", "--output", help="write the output to this .npy (.npz for several outputs)")
    p.set_defaults(fn=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except CnnGraphError as e:
        print(f"cnngraph {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnngraph {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
