"""The executor: a schedule of kernels over an array module (``xp``), shared by NumPy and CuPy.

It owns the execution plan (schedule order, when each value dies, which producers write into their
slice of an elided Concat's buffer) and checks the inputs a user hands it against the graph's types,
so a wrong shape fails with the input's name, not deep in a GEMM.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from cnngraph.backends.concat_buffers import ConcatBuffers
from cnngraph.backends.kernels import RunContext, get_kernel
from cnngraph.concat_layout import layout
from cnngraph.errors import CnnGraphError
from cnngraph.ir import BATCH, Graph
from cnngraph.memory import last_uses
from cnngraph.ops.base import fmt_shape

DTYPES = ("float32", "float64")


class Executor:
    """Runs a verified graph. ``run`` takes a dict (or one array) and returns a dict of outputs."""

    backend = "generic"

    def __init__(self, graph: Graph, xp: Any, dtype: str = "float32", seed: int = 0):
        if dtype not in DTYPES:
            raise CnnGraphError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.graph = graph
        self.xp = xp
        self.dtype = np.dtype(dtype)
        self.ctx = RunContext(training=graph.training, rng=np.random.default_rng(seed))
        # Private copies: training updates them in place, and the user's graph must not change.
        self.params = {k: xp.array(v, dtype=self.dtype) for k, v in graph.params.items()}
        self._steps = [
            (node, get_kernel(node.op), {role: self.params[key] for role, key in node.params.items()})
            for node in graph.nodes
        ]
        self._last_use = last_uses(graph)  # each value is freed after its last reader
        self._concats = layout(graph)
        # A shared Concat buffer is let go once the last Concat that reads it has run.
        last = {owner: i for i, node in enumerate(graph.nodes) if (owner := self._concats.owner.get(node.name))}
        self._release = {i: [o for o, j in last.items() if j == i] for i in set(last.values())}

    def run(self, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
        feeds = self._bind_inputs(inputs)
        values = dict(feeds)
        batch = next(iter(values.values())).shape[0] if values else 1  # a graph may have no inputs
        buffers = ConcatBuffers(self.graph, self._concats, self.xp, self.dtype, batch)
        for i, (node, fn, params) in enumerate(self._steps):
            args = [values[v] for v in node.inputs]
            try:
                values[node.name] = self._step(node, fn, args, params, buffers)
            except CnnGraphError as e:  # kernels do not know their node; say which layer failed
                raise CnnGraphError(f"layer '{node.name}' ({node.op}): {e}") from e
            for owner in self._release.get(i, ()):
                buffers.release(owner)
            for v in set(node.inputs):
                if self._last_use.get(v) == i:
                    del values[v]
        return self._detached({name: values[name] for name in self.graph.outputs}, feeds)

    def _detached(self, outputs: dict[str, Any], feeds: dict[str, Any]) -> dict[str, Any]:
        """Outputs the caller may write to: never its own input arrays or the model's parameters, which an
        Identity, a Reshape or a Constant returns as they are (or as views)."""
        shared = [*feeds.values(), *self.params.values()]
        return {k: v.copy() if any(self.xp.may_share_memory(v, s) for s in shared) else v for k, v in outputs.items()}

    def _step(self, node, fn, args: list, params: dict, buffers: ConcatBuffers) -> Any:
        """One node: an elided Concat is a view of its buffer; a placed producer writes into its slice."""
        if node.name in self._concats.owner:
            return buffers.concat(node.name, args)
        if node.name not in self._concats.placed:
            return fn(self.xp, args, params, node.attrs, self.ctx)
        self.ctx.out = dest = buffers.slot(node.name)
        try:
            out = fn(self.xp, args, params, node.attrs, self.ctx)
        finally:
            self.ctx.out = None
        if out is not dest:
            raise CnnGraphError("kernel declared writes_into but did not return its destination")
        return out

    def __call__(self, *arrays: Any) -> Any:
        """Positional inputs in graph order; one output comes back bare, several as a tuple."""
        out = self.run(dict(zip(self.graph.inputs, arrays, strict=True)))
        vals = tuple(out.values())
        return vals[0] if len(vals) == 1 else vals

    def _bind_inputs(self, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
        names = list(self.graph.inputs)
        if not isinstance(inputs, Mapping):
            if len(names) != 1:
                raise CnnGraphError(f"the model has inputs {names}: pass a dict of arrays")
            inputs = {names[0]: inputs}
        missing, extra = set(names) - set(inputs), set(inputs) - set(names)
        if missing or extra:
            raise CnnGraphError(f"expected inputs {names}, got {sorted(inputs)}")
        values, batch = {}, None
        for name in names:
            raw = inputs[name]
            dtype = raw.dtype if hasattr(raw, "dtype") else np.asarray(raw).dtype
            if dtype.kind not in "biuf":
                raise CnnGraphError(f"input '{name}': expected real numbers, got an array of dtype {dtype}")
            arr = self.xp.asarray(raw, dtype=self.dtype)
            want = self.graph.inputs[name].shape
            ok = arr.ndim == len(want) and all(w == BATCH or w == d for w, d in zip(want, arr.shape))
            if not ok:
                raise CnnGraphError(f"input '{name}': expected shape {fmt_shape(want)}, got {fmt_shape(arr.shape)}")
            if batch is not None and arr.shape[0] != batch:
                raise CnnGraphError(f"input '{name}' has batch {arr.shape[0]}, other inputs have {batch}")
            batch = arr.shape[0]
            values[name] = arr
        return values


class NumpyExecutor(Executor):
    """The CPU executor: reference semantics, and fast through BLAS GEMMs."""

    backend = "numpy"

    def __init__(self, graph: Graph, dtype: str = "float32", seed: int = 0):
        super().__init__(graph, np, dtype, seed)
