"""Random inputs for a graph: what ``run`` without ``--input``, ``export --verify``, ``compile --check`` and
backend checks feed it.

Most inputs take standard normal values. An input that an op reads as indices or boxes gets values that
op accepts, from the op's ``probe`` (RoiAlign's rows are image indices and boxes inside the image); an
integer input no op describes gets zeros, a valid index into anything.
"""

from __future__ import annotations

import numpy as np

from cnngraph.ir import Graph
from cnngraph.ops import get_op


def random_inputs(graph: Graph, batch: int, rng: np.random.Generator, dtype=np.float64) -> dict[str, np.ndarray]:
    """One array per graph input at batch ``batch`` (other named dimensions too); floats in ``dtype``."""
    readers = graph.users()
    feeds = {}
    for name, t in graph.inputs.items():
        shape = t.concrete(batch)
        value = next((v for node in readers[name] for v in [_probe(graph, node, name, shape, batch, rng)]
                      if v is not None), None)
        if np.dtype(t.dtype).kind in "iu":
            feeds[name] = (np.zeros(shape) if value is None else value).astype(t.dtype)
        else:
            feeds[name] = (rng.standard_normal(shape) if value is None else value).astype(dtype)
    return feeds


def _probe(graph: Graph, node, value: str, shape, batch: int, rng: np.random.Generator):
    slot = node.inputs.index(value)
    return get_op(node.op).probe(slot, shape, [graph.type_of(v) for v in node.inputs], node.attrs, batch, rng)
