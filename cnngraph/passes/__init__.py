"""Graph passes: one per module, each ``fn(graph, ctx) -> Outcome`` editing the graph in place.

A pass registers itself with ``@graph_pass("name")``. It must check its preconditions and, where
they fail, skip with a reason (``Outcome.skip``) rather than guess: those reasons are exactly
where other tools have shipped wrong answers. ``manager.optimize`` runs a pipeline, verifies the
graph after each pass and reports what every pass did.

What a pass needs beyond the graph comes in its ``PassContext``: the core never imports a
backend, so evaluating a node (constant folding) or a whole graph (the manager's numeric check)
goes through the ``Evaluator`` the caller hands in (``cnngraph.optimize`` gives the NumPy one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph, Node
from cnngraph.registry import Registry, import_modules


@dataclass
class Outcome:
    """What one pass did: human-readable actions and (node, reason) pairs it declined."""

    actions: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def did(self, text: str) -> None:
        self.actions.append(text)

    def skip(self, node: str, reason: str) -> None:
        self.skipped.append((node, reason))


class Evaluator(Protocol):
    """Host evaluation in float64, whatever the dtype of the arrays handed in."""

    def node(self, node: Node, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        """``node``'s output for these input arrays and parameters (by role)."""
        ...

    def graph(self, graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs of ``graph`` for these inputs, by output name."""
        ...


@dataclass(frozen=True)
class PassContext:
    """What a pass may use beyond the graph, supplied by whoever runs the pipeline."""

    evaluator: Evaluator
    # The storage layouts the target backend's kernels can run a node in, for lowering passes;
    # None when the pipeline runs for no backend in particular.
    layouts: Callable[[Node], tuple[str, ...]] | None = None


Pass = Callable[[Graph, PassContext], Outcome]
_PASSES: Registry[Pass] = Registry("pass", CnnGraphError)

# The default inference pipeline, in order. Training compiles run TRAINING instead: passes that
# change numerics (BN folding, dropout removal) would be wrong there.
DEFAULT = [
    "dead_code",
    "identity_removal",
    "activation_patterns",
    "constant_folding",
    "transpose_sinking",
    "bn_folding",
    "scale_folding",
    "residual_fusion",
    "activation_fusion",
    "cse",
    "concat_elision",
    "dead_code",
]
TRAINING = ["dead_code", "cse"]


def graph_pass(name: str) -> Callable[[Pass], Pass]:
    return lambda fn: _PASSES.add(name, fn)


def get_pass(name: str) -> Pass:
    return _PASSES.find(name)



import_modules(__name__, __path__, skip=("manager", "util"))
