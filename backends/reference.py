"""The host evaluator the core's passes are handed (``cnngraph.passes.Evaluator``): NumPy in float64.

Constant folding evaluates one node with its kernel; the pass manager's numeric check runs a whole
graph with the NumPy executor. ``cnngraph.optimize`` supplies it, so the core never imports a backend.
"""

from __future__ import annotations

import numpy as np

from cnngraph.backends.executor import NumpyExecutor
from cnngraph.backends.kernels import RunContext, get_kernel
from cnngraph.ir import Graph, Node


class NumpyReference:
    """The reference semantics: the generic kernels and the NumPy executor, in float64."""

    def node(self, node: Node, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        args = [a.astype(np.float64) for a in inputs]
        params = {role: p.astype(np.float64) for role, p in params.items()}
        return np.asarray(get_kernel(node.op)(np, args, params, node.attrs, RunContext()))

    def graph(self, graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return NumpyExecutor(graph, dtype="float64").run(inputs)
