"""``cnngraph.compile``: verify a graph, optimise it with passes, and lower it to an executor.

This is the glue between the core and the backends: ``cnngraph.optimize`` hands the pass pipeline
the NumPy reference evaluator, which the core itself never imports.
"""

from __future__ import annotations

from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph

BACKENDS = ("numpy",)


def optimize(graph: Graph, passes: str | list[str] | None = "default", check: bool = False, rtol: float = 1e-4,
             seed: int = 0):
    """Run a pass pipeline on a copy of ``graph`` (see ``cnngraph.passes.manager.optimize``), evaluating
    on the host with the NumPy reference in float64; returns the optimised graph and the per-pass reports."""
    from cnngraph.backends.reference import NumpyReference
    from cnngraph.passes import manager

    return manager.optimize(graph, passes, NumpyReference(), check=check, rtol=rtol, seed=seed)


def compile(graph: Graph, backend: str = "numpy", dtype: str = "float32", train: bool = False,  # noqa: A001
            passes: str | list[str] | None = "default", check: bool = False, seed: int = 0):
    """Return a compiled model with ``run(inputs) -> outputs`` for ``backend``.

    ``train`` selects training-mode semantics (BatchNorm batch statistics, active Dropout); its
    default pipeline never folds BN or drops Dropout. ``passes`` is "default", "none" or a list of pass names (see
    ``cnngraph.passes``); ``check=True`` runs the graph before and after every pass and fails
    naming the first pass that changes the numbers. The input graph is never modified; the
    compiled model keeps the optimised graph (``.graph``) and the per-pass reports (``.report``).
    """
    if backend not in BACKENDS:
        raise CnnGraphError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    graph = graph.copy()
    graph.training = train
    graph, report = optimize(graph, passes, check=check, seed=seed)
    from cnngraph.backends.executor import NumpyExecutor
    from cnngraph.backends.training import TrainingExecutor

    model = (TrainingExecutor if train else NumpyExecutor)(graph, dtype=dtype, seed=seed)
    model.report = report
    return model
