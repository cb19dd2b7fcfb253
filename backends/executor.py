"""The executor: one schedule loop over a backend's kernels, shared by inference and training.

It owns the execution plan (schedule order, which implementation runs each node, when each value
dies, which producers write into their slice of an elided Concat's buffer, per-shape kernel plans)
and checks the inputs a user hands it against the graph's types, so a wrong shape fails with the
input's name, not deep in a GEMM. Arrays stay on the backend's device: inputs are copied over
once, outputs come back as the backend's arrays (``run(..., to_host=True)`` gives NumPy ones).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from cnngraph.backends.concat_buffers import ConcatBuffers
from cnngraph.backends.devices import Backend, get_backend
from cnngraph.backends.freed_memory import keep_freed_memory
from cnngraph.backends.kernels import Choice, RunContext, Saved, resolve
from cnngraph.backends.precision import FLOAT32, Precision
from cnngraph.backends.randomness import Randomness
from cnngraph.backends.threads import NodeThreads
from cnngraph.concat_layout import layout
from cnngraph.errors import CnnGraphError, DeviceMemoryError
from cnngraph.ir import BATCH, Graph, Node
from cnngraph.memory import check_budget, last_uses, plan
from cnngraph.types import bind_sizes

Watch = Callable[[Node, Any], None]


@dataclass
class Step:
    """One node of the schedule and the implementation it resolved to."""

    index: int
    node: Node
    choice: Choice
    widen: bool  # half-precision values are widened to float32 around this kernel
    float32_params: bool  # a layer with statistics: its parameters stay float32 under half precision

    @property
    def impl(self):
        return self.choice.impl


@contextlib.contextmanager
def naming(node: Node, direction: str = ""):
    """Kernels do not know their node: errors get the layer's name on the way out."""
    try:
        yield
    except DeviceMemoryError:
        raise
    except CnnGraphError as e:
        raise CnnGraphError(f"layer '{node.name}' ({node.op}){direction}: {e}") from e


class Executor:
    """Runs a verified graph. ``run`` takes a dict (or one array) and returns a dict of outputs."""

    needs_backward = False  # the training executor resolves forward and backward as a pair

    def __init__(self, graph: Graph, backend: str | Backend = "numpy", dtype: str = "float32", seed: int = 0):
        self.backend = get_backend(backend).require()
        self.backend.check_dtype(dtype)
        self.graph, self.xp = graph, self.backend.xp
        self.precision = Precision(dtype)
        self.dtype = self.precision.storage
        self.random = Randomness(self.backend, seed)
        self.sum_across = None  # data parallelism's sum over ranks, for kernels that share statistics (sync BN)
        self.evaluates_training = graph.training  # what run() does: the graph's own mode
        # Private copies: training updates them in place, and the user's graph must not change.
        self.params = {k: self.backend.copy(v, self.precision.master) for k, v in graph.params.items()}
        self.steps = [self._resolve(i, node) for i, node in enumerate(graph.nodes)]
        self._last_use = last_uses(graph)  # each value is freed after its last reader
        self._concats = layout(graph)
        # A shared Concat buffer is let go once the last Concat that reads it has run.
        last = {owner: i for i, node in enumerate(graph.nodes) if (owner := self._concats.owner.get(node.name))}
        self._release = {i: [o for o, j in last.items() if j == i] for i in set(last.values())}
        self._plans: dict[tuple, Any] = {}
        self._fits: set[tuple] = set()  # (named sizes, keeps for backward) already checked against the budget
        self._compute = self._compute_params()
        self._threads = NodeThreads(graph, self.backend.cpu_blas)  # BLAS threads per GEMM size
        if self.backend.cpu_blas:  # every run frees and allocates the same large arrays again
            keep_freed_memory()

    def _resolve(self, index: int, node: Node) -> Step:
        choice = resolve(self.backend.name, node, self.dtype.name, self.needs_backward,
                         [self.graph.type_of(v) for v in node.inputs])
        return Step(index, node, choice, self.precision.widens(choice.impl.dtypes),
                    self.precision.half and Precision.keeps_float32(self.graph, node))

    def to_graph(self) -> Graph:
        """The compiled graph with its parameters as they are now, as NumPy arrays in the graph's dtypes:
        what a custom training loop saves (``cnngraph.io.save(model.to_graph(), "model.cng")``)."""
        graph = self.graph.copy()
        graph.params = {k: self.backend.to_host(v).astype(self.graph.params[k].dtype, copy=False)
                        for k, v in self.params.items()}
        return graph

    def kernels(self) -> dict[str, str]:
        """Which backend's implementation runs each node (``generic``: the kernels written over ``xp``), with
        what a plan built for a run so far says it does differently at that size (a plan's ``label``)."""
        labels: dict[int, list[str]] = {}
        for (index, _), built in self._plans.items():
            if getattr(built, "label", ""):
                labels.setdefault(index, []).append(built.label)
        return {s.node.name: s.impl.name + (f" ({'; '.join(labels[s.index])})" if s.index in labels else "")
                for s in self.steps}

    def fallbacks(self) -> list[tuple[str, str, str]]:
        """(node, implementation, why it declined) for every implementation passed over."""
        return [(s.node.name, name, why) for s in self.steps for name, why in s.choice.declined]

    # -- parameters as kernels see them ----------------------------------------------------
    def _compute_params(self) -> list[dict[str, Any]]:
        """Per step, the arrays its kernel computes with: the live masters, or (half precision) rounded copies."""
        rounded: dict[tuple[str, Any], Any] = {}
        table = []
        for step in self.steps:
            live = {role: self.params[key] for role, key in step.node.params.items()}
            if not self.precision.half or step.float32_params:
                table.append(live)
                continue
            compute = FLOAT32 if step.widen else self.dtype
            for key in step.node.params.values():
                if (key, compute) not in rounded:
                    rounded[key, compute] = self.precision.rounded(self.params[key], compute)
            table.append({role: rounded[key, compute] for role, key in step.node.params.items()})
        return table

    # -- the schedule loop -----------------------------------------------------------------
    def run(self, inputs: Mapping[str, Any] | Any, to_host: bool = False, watch: Watch | None = None) -> dict[str, Any]:
        """Run one batch through the compiled graph.

        Takes ``inputs`` as a dict of graph input name -> array, or one array when the graph has one input:
        batch first, the rest as the input's shape ((N, 3, 224, 224)), real numbers of any dtype (converted to
        the model's). NumPy arrays are copied to the backend; the backend's own arrays are used as they are.
        Returns a dict of output name -> array, in the graph's output order, as the backend's arrays (CuPy on
        cupy), or as NumPy arrays with ``to_host=True``. ``watch(node, value)`` sees every node's output as it
        is computed. A missing input, a wrong shape or dtype raises CnnGraphError naming the input."""
        feeds = self._bind_inputs(inputs)
        outputs, _ = self._forward(feeds, self.evaluates_training, watch=watch)
        outputs = self._detached(outputs, feeds)
        return {k: self.backend.to_host(v) for k, v in outputs.items()} if to_host else outputs

    def _forward(self, feeds: dict[str, Any], training: bool, keep: Callable[[Node], bool] | None = None,
                 watch: Watch | None = None) -> tuple[dict[str, Any], dict[str, Saved]]:
        """Every node once, in schedule order, freeing each value after its last reader. Nodes that
        ``keep`` selects get a stash and keep what their backward declares (the tape)."""
        values = dict(feeds)
        sizes = bind_sizes(self.graph.inputs, {k: v.shape for k, v in feeds.items()})
        batch = sizes.get(BATCH, max(sizes.values(), default=1))  # a graph may have no inputs, or no image batch
        fits = (tuple(sorted(sizes.items())), keep is not None)
        if fits not in self._fits:  # the plan depends on these only: checked once per set of sizes
            check_budget(self.graph, batch, self.dtype.name, keep is not None, {k: v.shape for k, v in feeds.items()},
                         sizes)
            self._fits.add(fits)
        buffers = ConcatBuffers(self.graph, self._concats, self.xp, self.dtype, batch, sizes)
        tape: dict[str, Saved] = {}
        step = None
        try:
            for step, params in zip(self.steps, self._compute):
                node = step.node
                args = [values[v] for v in node.inputs]
                kept = keep is not None and keep(node)
                self._threads.before(step.index, batch)
                with naming(node):
                    ctx = RunContext(self._node_training(node, training), self.random.uniform,
                                     {} if kept else None, plan=self._plan(step, args), sum_across=self.sum_across)
                    out = values[node.name] = self._run_node(step, args, params, ctx, buffers)
                if kept:
                    tape[node.name] = self._saved(step, args, out, ctx)
                if watch is not None:
                    watch(node, out)
                for owner in self._release.get(step.index, ()):
                    buffers.release(owner)
                for v in set(node.inputs):
                    if self._last_use.get(v) == step.index:
                        del values[v]
        except Exception as e:
            if isinstance(e, CnnGraphError) or step is None or not self.backend.is_out_of_memory(e):
                raise
            values.clear()
            tape.clear()
            raise self._out_of_memory(step.node, batch, keep is not None) from e
        finally:
            self._threads.done()
        return {name: values[name] for name in self.graph.outputs}, tape

    def _node_training(self, node: Node, training: bool) -> bool:
        return training

    def _plan(self, step: Step, args: list) -> Any:
        """The implementation's plan for these input shapes, built once (per batch size)."""
        prepare = step.impl.prepare
        if prepare is None:
            return None
        key = (step.index, tuple(tuple(a.shape) for a in args))
        if key not in self._plans:
            self._plans[key] = prepare(self.xp, step.node, key[1], self.dtype.name)
        return self._plans[key]

    def _run_node(self, step: Step, args: list, params: dict, ctx: RunContext, buffers: ConcatBuffers) -> Any:
        """One node: an elided Concat is a view of its buffer; a placed producer writes into its slice
        (directly when its kernel can, else by a copy)."""
        node = step.node
        if node.name in self._concats.owner:
            return buffers.concat(node.name, args)
        dest = buffers.slot(node.name) if node.name in self._concats.placed else None
        if step.widen:
            args = [self.precision.wide(a) for a in args]
        elif dest is not None and step.impl.writes_into:
            ctx.out = dest
        out = step.impl.forward(self.xp, args, params, node.attrs, ctx)
        if step.widen:
            out = self.precision.narrow(out)
        if dest is not None and out is not dest:
            dest[...] = out
            out = dest
        return out

    def _saved(self, step: Step, args: list, out: Any, ctx: RunContext) -> Saved:
        keeps = step.impl.backward.keeps
        return Saved(shapes=tuple(a.shape for a in args), training=ctx.training, stash=ctx.stash,
                     inputs=tuple(args) if "inputs" in keeps else None,
                     output=out if "output" in keeps else None, plan=ctx.plan)

    def _out_of_memory(self, node: Node, batch: int, training: bool) -> DeviceMemoryError:
        """Say where memory ran out, and which batch would fit, from the memory plan's bytes per sample."""
        per_batch = plan(self.graph, 1, self.dtype.name)
        per_sample = per_batch.unplanned_bytes if training else per_batch.planned_bytes  # training keeps more
        held = sum(int(p.nbytes) for p in self.params.values())
        free = self.backend.free_bytes()
        text = (f"layer '{node.name}' ({node.op}): out of {self.backend.name} memory at batch {batch} "
                f"(about {_mib(per_sample)} of activations per sample{' kept for backward' if training else ''}, "
                f"{_mib(held)} of parameters)")
        if free is not None and per_sample:
            fits = max(int(free // (per_sample * 1.25)), 0)  # a quarter spare for workspaces and fragmentation
            text += f"; {_mib(free)} is free now: try a batch of about {fits}" if fits else \
                f"; {_mib(free)} is free now: not even batch 1 fits"
        return DeviceMemoryError(text)

    # -- what goes in and out ----------------------------------------------------------------
    def _detached(self, outputs: dict[str, Any], feeds: dict[str, Any]) -> dict[str, Any]:
        """Outputs the caller may write to: never its own input arrays or the model's parameters, which an
        Identity, a Reshape or a Constant returns as they are (or as views)."""
        shared = [*feeds.values(), *self.params.values()]
        return {k: v.copy() if any(self.xp.may_share_memory(v, s) for s in shared) else v for k, v in outputs.items()}

    def __call__(self, *arrays: Any) -> Any:
        """``model(x)``, or ``model(a, b)`` for several inputs in the graph's input order, each as ``run`` takes
        it; returns the one output's array bare, several outputs as a tuple in the graph's output order (the
        backend's arrays, as ``run`` returns them)."""
        out = self.run(dict(zip(self.graph.inputs, arrays, strict=True)))
        vals = tuple(out.values())
        return vals[0] if len(vals) == 1 else vals

    def _bind_inputs(self, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
        return bind_inputs(self.graph, self.backend, self.dtype, inputs)


def bind_inputs(graph: Graph, backend: Backend, dtype: Any, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
    """``inputs`` (a dict, or one array for a one-input graph) checked against the graph's input types and
    put on ``backend`` as ``dtype``: a wrong shape fails naming the input, not deep in a kernel."""
    names = list(graph.inputs)
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            raise CnnGraphError(f"the model has inputs {names}: pass a dict of arrays")
        inputs = {names[0]: inputs}
    missing, extra = set(names) - set(inputs), set(inputs) - set(names)
    if missing or extra:
        raise CnnGraphError(f"expected inputs {names}, got {sorted(inputs)}")
    values = {}
    for name in names:
        raw = inputs[name]
        given = raw.dtype if hasattr(raw, "dtype") else np.asarray(raw).dtype
        if given.kind not in "biuf":
            raise CnnGraphError(f"input '{name}': expected real numbers, got an array of dtype {given}")
        declared = np.dtype(graph.inputs[name].dtype)
        values[name] = backend.asarray(raw, dtype=declared if declared.kind in "iu" else dtype)
    try:
        bind_sizes(graph.inputs, {k: v.shape for k, v in values.items()})
    except ValueError as e:
        raise CnnGraphError(str(e)) from None
    return values


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


class NumpyExecutor(Executor):
    """The CPU executor: reference semantics, and fast through BLAS GEMMs."""

    def __init__(self, graph: Graph, dtype: str = "float32", seed: int = 0):
        super().__init__(graph, "numpy", dtype, seed)
