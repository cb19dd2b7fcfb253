"""Run a pipeline of passes: verify after each, optionally check numbers, report what changed.

With ``check=True`` the graph runs on the same random inputs before and after every pass, and
the first pass that moves the outputs past tolerance is named: bisection of a misbehaving
pipeline comes for free. The caller hands in the ``Evaluator`` that runs the graph for the check
and that passes use (constant folding); ``cnngraph.optimize`` supplies the NumPy reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph
from cnngraph.passes import DEFAULT, TRAINING, Evaluator, Outcome, PassContext, get_pass
from cnngraph.probes import random_inputs


class PassCheckError(CnnGraphError):
    """A pass changed what the graph computes."""


@dataclass
class PassReport:
    name: str
    nodes: tuple[int, int]  # before, after
    params: tuple[int, int]  # parameter tensors, before, after
    outcome: Outcome = field(default_factory=Outcome)

    @property
    def changed(self) -> bool:
        return bool(self.outcome.actions)

    def __str__(self) -> str:
        head = (f"{self.name}: nodes {self.nodes[0]} -> {self.nodes[1]}, "
                f"parameter tensors {self.params[0]} -> {self.params[1]}")
        lines = [head] + [f"  {a}" for a in self.outcome.actions]
        lines += [f"  skipped {node}: {why}" for node, why in self.outcome.skipped]
        return "\n".join(lines)


def resolve(passes: str | list[str] | None, training: bool) -> list[str]:
    """``"default"`` (the inference or training list), ``"none"``, or explicit names."""
    if passes in (None, "none"):
        return []
    if passes == "default":
        return list(TRAINING if training else DEFAULT)
    if isinstance(passes, str):
        passes = [p.strip() for p in passes.split(",") if p.strip()]
    for name in passes:
        get_pass(name)  # unknown names fail before anything runs
    return list(passes)


def optimize(graph: Graph, passes: str | list[str] | None, evaluator: Evaluator, check: bool = False,
             rtol: float = 1e-4, seed: int = 0, layouts=None) -> tuple[Graph, list[PassReport]]:
    """Run ``passes`` on a copy of ``graph``; returns the optimised graph and one report per pass.
    ``layouts`` (see PassContext) tells lowering passes what the target backend's kernels can do."""
    graph = graph.copy().verify()
    names = resolve(passes, graph.training)
    ctx = PassContext(evaluator, layouts)
    probe = _probe(graph, seed) if check else None
    reference = evaluator.graph(graph, probe) if check else None
    reports = []
    for name in names:
        before = (len(graph.nodes), len(graph.params))
        outcome = get_pass(name)(graph, ctx)
        graph.verify()
        reports.append(PassReport(name, (before[0], len(graph.nodes)), (before[1], len(graph.params)), outcome))
        if check:
            _compare(name, reference, evaluator.graph(graph, probe), rtol)
    return graph, reports


def _probe(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return random_inputs(graph, 2, rng)


def _compare(name: str, want: dict, got: dict, rtol: float) -> None:
    for key, ref in want.items():
        if key not in got:
            raise PassCheckError(f"pass '{name}' removed graph output '{key}'")
        scale = max(float(np.abs(ref).max()), 1e-12)
        err = float(np.abs(got[key] - ref).max()) / scale
        if err > rtol:
            raise PassCheckError(f"pass '{name}' changed output '{key}': max error {err:.3g} relative to its "
                                 f"largest value (tolerance {rtol:g})")
