"""`cnngraph run MODEL`: build, compile and run on random or given input; top-5 for classifiers."""

import time

import numpy as np

from cnngraph.cli.common import add_model_args, console, load, positive
from cnngraph.errors import CnnGraphError

HELP = "build, compile and run a model on random or given input"


def add_arguments(p) -> None:
    add_model_args(p)
    p.add_argument("--batch", type=positive, default=1, help="batch size for random input (default 1)")
    p.add_argument("--input", help="input array as .npy (float, shaped like the model input)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random input (default 0)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("-o", "--output", help="write the output to this .npy (.npz for several outputs)")


def run(args) -> None:
    import cnngraph

    graph = load(args)
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
