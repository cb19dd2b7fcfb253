"""``cnngraph.compile`` and ``cnngraph.optimize``: verify a graph, optimise it, lower it to a backend.

This is the glue between the core (IR, ops, passes), which never imports a backend, and the
backends: it hands the pass pipeline the NumPy reference evaluator and builds the executor.
"""

from __future__ import annotations

from cnngraph.ir import Graph


def optimize(graph: Graph, passes: str | list[str] | None = "default", check: bool = False, rtol: float = 1e-4,
             seed: int = 0, backend: str = "numpy", dtype: str = "float32"):
    """Run a pass pipeline on a copy of ``graph`` (see ``cnngraph.passes.manager.optimize``), evaluating
    on the host with the NumPy reference in float64; returns the optimised graph and the per-pass reports.
    Lowering passes (``channels_last``) lower for ``backend``'s kernels at ``dtype``."""
    from cnngraph.backends import kernels
    from cnngraph.backends.devices import get_backend
    from cnngraph.backends.reference import NumpyReference
    from cnngraph.passes import manager

    prefers = get_backend(backend).prefers

    def layouts(node):  # what the backend's kernels run the node in, the backend's preference first
        found = kernels.layouts(backend, node, dtype, graph.training)
        return tuple(sorted(found, key=lambda layout: layout != prefers))

    return manager.optimize(graph, passes, NumpyReference(), check=check, rtol=rtol, seed=seed, layouts=layouts)


def compile(graph: Graph, backend: str = "numpy", dtype: str = "float32", train: bool = False,  # noqa: A001
            passes: str | list[str] | None = "default", check: bool = False, seed: int = 0):
    """Return a compiled model with ``run(inputs) -> outputs`` on ``backend`` ("numpy", "cupy", "strict").

    ``dtype`` is what activations are stored in: "float32", "float64" or "float16" (float32 master
    weights and BatchNorm statistics, and in training dynamic loss scaling). ``train`` selects
    training-mode semantics (BatchNorm batch statistics, active Dropout) and gives a model with
    ``forward`` / ``backward`` / ``train_step``; its default pipeline never folds BN or drops Dropout.
    ``passes`` is "default", "none" or a list of pass names (see ``cnngraph.passes``); a backend's
    lowering passes follow them. ``check=True`` runs the graph before and after every pass, then the
    compiled model against the NumPy float64 reference node by node, and fails naming the first pass
    or layer that moves the numbers past tolerance. The input graph is never modified; the model
    keeps the optimised graph (``.graph``), the per-pass reports (``.report``) and, after a check,
    the per-node relative errors (``.check_errors``).
    """
    from cnngraph.backends import check as backend_check
    from cnngraph.backends.devices import get_backend
    from cnngraph.passes.manager import resolve

    target = get_backend(backend).require()
    target.check_dtype(dtype)
    graph = graph.copy()
    graph.training = train
    graph, report = optimize(graph, resolve(passes, train) + list(target.lowering), check=check, seed=seed,
                             backend=target.name, dtype=dtype)
    model = target.compiled(graph, dtype, seed, train)
    model.report = report
    model.check_errors = backend_check.compare(model, seed) if check else None
    return model
