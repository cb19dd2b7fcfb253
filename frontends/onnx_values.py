"""Values the ONNX importer knows before run time, evaluated at two probe batch sizes.

Exporters compute shapes inside the graph (``Shape -> Gather -> Concat -> Reshape`` for
``x.view(x.size(0), -1)``), so a constant may depend on the batch. The importer evaluates every
constant subgraph twice, at two batch sizes, with ``onnx.reference`` (which knows every opset's
semantics): what agrees is a plain constant, and a shape whose first entry follows the batch keeps
the batch symbolic. Anything else depends on the batch in a way the IR cannot hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from cnngraph.ir import TensorType

SYMBOLIC_PROBES = (2, 3)  # two batch sizes no literal dimension can match both of


@dataclass(frozen=True)
class Folded:
    """An ONNX value known at import time: ``at[k]`` is its value at batch size ``probes[k]``."""

    name: str
    at: tuple[np.ndarray, np.ndarray]
    probes: tuple[int, int]

    @property
    def batch_dependent(self) -> bool:
        a, b = self.at
        return a.shape != b.shape or not np.array_equal(a, b)

    @property
    def value(self) -> np.ndarray:
        """The value; callers check ``batch_dependent`` first."""
        return self.at[0]

    def per_sample(self) -> tuple[int, ...]:
        """A shape vector led by the batch size, without it; ValueError for anything else."""
        a, b = (tuple(int(v) for v in np.ravel(x)) for x in self.at)
        return per_sample_shape(self.name, (a, b), self.probes)


def probe_array(t: TensorType, batch: int) -> np.ndarray:
    """Zeros of ``t``'s shape at ``batch``, as a broadcast view: shape ops measure it without copying."""
    return np.broadcast_to(np.zeros((), dtype=t.dtype), t.concrete(batch))


def evaluate(node: onnx.NodeProto, opset: int, feeds: dict[str, np.ndarray]) -> list[np.ndarray | None]:
    """Run one node with onnx.reference at ``opset`` (None for outputs the node leaves unnamed).

    The node goes in wrapped in a function: that is how onnx.reference takes the opset (a bare
    NodeProto runs at the newest). Exceptions propagate for the caller to name the node.
    """
    outputs = [o for o in node.output if o]
    fn = helper.make_function("cnngraph", "fold", list(feeds), outputs, [node], [helper.make_opsetid("", opset)])
    results = dict(zip(outputs, ReferenceEvaluator(fn).run(None, feeds, attributes={})))
    return [np.asarray(results[o]) if o else None for o in node.output]


def per_sample_shape(name: str, shapes: tuple[tuple[int, ...], tuple[int, ...]], probes: tuple[int, int]) -> tuple:
    """A shape measured at both probes, without its batch; ValueError unless it is (batch, fixed sizes...)."""
    a, b = shapes
    if not a or a[0] != probes[0] or b[0] != probes[1] or a[1:] != b[1:]:
        raise ValueError(f"'{name}' is {a} at batch {probes[0]} and {b} at batch {probes[1]}; the IR needs "
                         "the batch first and fixed sizes after it")
    return tuple(a[1:])
