"""Per-edge on/off for the grid generators (fabrics, GridNet): which connections a user pruned.

An edge is named by the node it enters and its kind, e.g. ``(scale, layer, kind)``; a node with no live
input disappears, and so do the edges leaving it, so pruning can cut whole regions of a grid.
"""

from __future__ import annotations

from typing import Iterable

from cnngraph.errors import GraphError
from cnngraph.frontends import dsl


def disabled_set(model: str, disabled: Iterable, kinds: tuple[str, ...], axes: dict[str, int]) -> set:
    """Validate ``disabled`` as (i, j, kind) triples inside a grid whose two ``axes`` map names to
    sizes (e.g. {"scale": 4, "layer": 8}); return them as a set."""
    (a, n), (b, m) = axes.items()
    out = set()
    for edge in disabled:
        try:
            i, j, kind = edge
        except (TypeError, ValueError):
            raise GraphError(f"{model}: a disabled edge is ({a}, {b}, kind), got {edge!r}") from None
        if kind not in kinds or not (0 <= i < n and 0 <= j < m):
            raise GraphError(f"{model}: disabled edge {edge!r} does not exist: {a} 0..{n - 1}, {b} 0..{m - 1}, "
                             f"kind one of {kinds}")
        out.add((i, j, kind))
    return out


def live_sum(terms: list):
    """The sum of a node's live incoming edges (None where an edge is off), or None if none is live."""
    live = [t for t in terms if t is not None]
    if len(live) > 1:
        return dsl.add(*live, name="sum")
    return live[0] if live else None


def require(node, model: str, where: tuple[int, int], disabled: set):
    """The output node, or an error saying the pruning cut it off."""
    if node is None:
        raise GraphError(f"{model}: the disabled edges {sorted(disabled)} cut every path from the input to "
                         f"the output node {where}")
    return node
