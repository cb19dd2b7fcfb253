"""``cnngraph.compile``: verify a graph and lower it to an executor."""

from __future__ import annotations

from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph

BACKENDS = ("numpy",)


def compile(graph: Graph, backend: str = "numpy", dtype: str = "float32", train: bool = False, seed: int = 0):  # noqa: A001
    """Return a compiled model with ``run(inputs) -> outputs`` for ``backend``.

    ``train`` selects training-mode semantics (BatchNorm batch statistics, active Dropout);
    the graph itself is not modified.
    """
    if backend not in BACKENDS:
        raise CnnGraphError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    graph = graph.copy()
    graph.training = train
    graph.verify()
    from cnngraph.backends.executor import NumpyExecutor

    return NumpyExecutor(graph, dtype=dtype, seed=seed)
