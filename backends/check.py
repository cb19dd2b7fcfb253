"""Node-by-node proof across backends and precisions: the first layer whose output strays, and by how much.

The compiled model and the NumPy float64 reference run the same graph on the same inputs; every
node's output is compared in schedule order, relative to the reference's largest magnitude, against
the tolerance of the model's dtype. The first node past it is named with both values' statistics:
errors that creep in layer by layer are told apart from one layer that is wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnngraph.backends.executor import Executor
from cnngraph.errors import BackendCheckError
from cnngraph.probes import random_inputs


def stats(value: np.ndarray) -> str:
    v = value.astype(np.float64)
    return f"mean {v.mean():.4g}, std {v.std():.4g}, min {v.min():.4g}, max {v.max():.4g}"


def compare(model: Executor, seed: int = 0, batch: int = 2) -> list[tuple[str, float]]:
    """Run ``model`` and the reference on the same random inputs; per node (schedule order) the relative
    error. Raises BackendCheckError at the first node past the tolerance of the model's dtype."""
    graph = model.graph
    rng = np.random.default_rng(seed)
    inputs = random_inputs(graph, batch, rng)
    reference = Executor(graph, "numpy", "float64", seed)
    want: dict[str, np.ndarray] = {}
    reference.run(inputs, watch=lambda node, value: want.__setitem__(node.name, np.array(value)))
    got: dict[str, Any] = {}
    model.run({k: v.astype(model.dtype) for k, v in inputs.items()},
              watch=lambda node, value: got.__setitem__(node.name, model.backend.to_host(value)))
    tolerance = model.backend.tolerances[model.dtype.name]  # measured on the zoo: README, float16 table
    errors = []
    for node in graph.nodes:
        if node.name not in got:  # an engine that runs the whole graph (onnxruntime) shows only what ONNX names
            continue
        ref, out = want[node.name], got[node.name]
        if ref.dtype.kind != "f":  # indices: exact in float32 and float64; half precision may break ties
            if model.dtype.itemsize >= 4 and not np.array_equal(ref, out):
                raise BackendCheckError(f"{_where(model, node)}: integer output differs from the reference")
            continue
        scale = max(float(np.abs(ref).max(initial=0.0)), 1e-12)
        err = float(np.abs(out.astype(np.float64) - ref).max(initial=0.0)) / scale
        errors.append((node.name, err))
        if not err <= tolerance:  # NaN fails too
            raise BackendCheckError(
                f"{_where(model, node)}: output differs from the NumPy float64 reference by {err:.3g} relative to "
                f"its largest value (tolerance {tolerance:g} for {model.dtype.name}); reference: {stats(ref)}; "
                f"{model.backend.name}: {stats(out)}")
    return errors


def _where(model: Executor, node) -> str:
    return f"{model.backend.name}/{model.dtype.name}, layer '{node.name}' ({node.op})"
