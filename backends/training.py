"""The training executor: a forward that keeps what backward needs, and backward in reverse schedule order.

What is kept is declared by each op's backward kernel (``@backward(op, keeps=...)``): its inputs,
its output, or only its input shapes, plus whatever the forward kernel stashed (max-pool argmax,
dropout mask, BatchNorm statistics). Every other activation is freed as soon as the schedule is
done with it, exactly as in inference. Nodes that no gradient can reach usefully (no trainable
parameter at or before them, and no input gradient asked for) keep nothing and are skipped by
backward: a frozen feature extractor costs a forward pass only.

``run`` / ``__call__`` evaluate in inference mode (running statistics, no dropout) and keep nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Mapping

import numpy as np

from cnngraph.backends.executor import Executor
from cnngraph.backends.kernels import RunContext, Saved, get_backward
from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph, Node
from cnngraph.ops.base import fmt_shape


@contextlib.contextmanager
def _naming(node: Node, direction: str = ""):
    """Kernels do not know their node: errors get the layer's name on the way out."""
    try:
        yield
    except CnnGraphError as e:
        raise CnnGraphError(f"layer '{node.name}' ({node.op}){direction}: {e}") from e


class _Sums:
    """Gradients summed per name (a value, or a parameter key shared by several nodes).

    The first contribution is held as it came: it may be a view of, or the very array of, another
    value's gradient (both inputs of an Add get the same one). A second contribution therefore makes
    a new array, which is then private and takes further contributions in place.
    """

    def __init__(self) -> None:
        self.total: dict[str, Any] = {}
        self._private: set[str] = set()

    def add(self, name: str, grad: Any) -> None:
        if name not in self.total:
            self.total[name] = grad
        elif name in self._private:
            self.total[name] += grad
        else:
            self.total[name] = self.total[name] + grad
            self._private.add(name)

    def pop(self, name: str) -> Any:
        self._private.discard(name)
        return self.total.pop(name, None)


class TrainingExecutor(Executor):
    """Forward (training semantics, keeps what backward needs), backward, and one optimisation step.

    ``params`` are the live arrays the kernels read: optimisers update them in place. ``grads`` holds
    a gradient for every key of ``trainable`` after ``backward`` (zeros where none flowed), replaced
    by each call, not accumulated across calls.
    """

    def __init__(self, graph: Graph, xp: Any = np, dtype: str = "float32", seed: int = 0):
        super().__init__(graph, xp, dtype, seed)
        self.backend = getattr(xp, "__name__", self.backend)
        self.ctx.training = False  # run() evaluates; forward() trains
        self._backward = {node.name: self._backward_of(node) for node in graph.nodes}
        self._all_trainable = list(dict.fromkeys(k for node in graph.nodes for k in self._trainable_keys(node)))
        self._frozen: set[str] = set()
        self.grads: dict[str, Any] = {}
        self.input_grads: dict[str, Any] = {}
        self._tape: dict[str, Saved] | None = None
        self._training_keys: list[str] = []

    @staticmethod
    def _backward_of(node: Node):
        try:
            return get_backward(node.op)
        except NotImplementedError:
            raise CnnGraphError(f"layer '{node.name}' ({node.op}) cannot be trained: the op has no backward kernel "
                                f"(fused ops come from inference passes; train=True's default passes never fuse)"
                                ) from None

    def _trainable_keys(self, node: Node) -> list[str]:
        return [node.params[role] for role, spec in self.graph.param_specs(node).items() if spec.trainable]

    # -- which parameters train --------------------------------------------------------
    @property
    def trainable(self) -> list[str]:
        """Keys of the parameters that train: ParamSpec.trainable (not BN running stats), minus frozen ones."""
        return [k for k in self._all_trainable if k not in self._frozen]

    def freeze(self, keys: str | list[str]) -> None:
        """Stop training these parameter keys (transfer learning); backward skips what only they need, and
        a BatchNorm with both its scale and shift frozen switches to its running statistics."""
        self._frozen.update(self._checked_keys(keys))

    def unfreeze(self, keys: str | list[str]) -> None:
        self._frozen.difference_update(self._checked_keys(keys))

    def _checked_keys(self, keys: str | list[str]) -> list[str]:
        keys = [keys] if isinstance(keys, str) else list(keys)
        unknown = [k for k in keys if k not in self._all_trainable]
        if unknown:
            raise CnnGraphError(
                f"cannot (un)freeze {unknown}: not trainable parameters of '{self.graph.name}' "
                f"(running statistics never train)"
            )
        return keys

    # -- forward -------------------------------------------------------------------------
    def forward(self, inputs: Mapping[str, Any] | Any, *, training: bool = True,
                input_grads: bool = False) -> dict[str, Any]:
        """Run in training mode (batch statistics, running-stat updates, dropout), keeping what backward needs.

        ``training=False`` runs with inference semantics but still keeps what backward needs (frozen
        BatchNorm, saliency maps). ``input_grads=True`` makes the next backward fill ``input_grads``.
        The outputs (and the inputs) may be among what is kept: do not modify them in place before backward.
        """
        values = self._bind_inputs(inputs)
        self._training_keys = self.trainable
        reaches = self._reaches(input_grads)
        tape: dict[str, Saved] = {}
        for i, (node, fn, params) in enumerate(self._steps):
            args = [values[v] for v in node.inputs]
            ctx = RunContext(training and not self._frozen_norm(node), self.ctx.rng,
                             {} if reaches[node.name] else None)
            with _naming(node):
                out = values[node.name] = fn(self.xp, args, params, node.attrs, ctx)
            if reaches[node.name]:
                tape[node.name] = self._saved(node, args, out, ctx)
            for v in set(node.inputs):
                if self._last_use.get(v) == i:
                    del values[v]
        outputs = {name: values[name] for name in self.graph.outputs}
        self._tape, self._reach, self._out_shapes = tape, reaches, {k: v.shape for k, v in outputs.items()}
        return outputs

    def _frozen_norm(self, node: Node) -> bool:
        """A BatchNorm whose scale and shift are frozen runs on its running statistics and leaves them
        alone, as Keras does for a non-trainable BatchNormalization: a frozen feature extractor stays
        the network it was trained as, whatever the fine-tuning batches look like."""
        keys = self._trainable_keys(node)
        return node.op == "BatchNorm2d" and bool(keys) and all(k in self._frozen for k in keys)

    def _reaches(self, input_grads: bool) -> dict[str, bool]:
        """Per value: whether a gradient w.r.t. it is useful, i.e. a trainable parameter (or an input whose
        gradient was asked for) lies at or before it."""
        trainable = set(self._training_keys)
        reach = {v: input_grads for v in self.graph.inputs}
        for node in self.graph.nodes:
            reach[node.name] = any(reach[v] for v in node.inputs) or any(
                key in trainable for key in node.params.values()
            )
        return reach

    def _saved(self, node: Node, args: list, out: Any, ctx: RunContext) -> Saved:
        keeps = self._backward[node.name].keeps
        return Saved(
            shapes=tuple(a.shape for a in args), training=ctx.training, stash=ctx.stash,
            inputs=tuple(args) if "inputs" in keeps else None, output=out if "output" in keeps else None,
        )

    def kept(self) -> dict[str, list[str]]:
        """What the last forward keeps for backward, per node: "inputs", "output" and stash entries."""
        if self._tape is None:
            return {}
        return {
            name: [k for k in ("inputs", "output") if getattr(s, k) is not None] + sorted(s.stash)
            for name, s in self._tape.items()
        }

    # -- backward ------------------------------------------------------------------------
    def backward(self, grad_outputs: Mapping[str, Any]) -> dict[str, Any]:
        """Gradients of the loss, given its gradient w.r.t. some outputs, for every trainable parameter.

        Nodes run in reverse schedule order; where a value has several users (residual, dense and
        fabric joins, or one node reading it twice) their gradients are summed. Consumes the tape.
        """
        if self._tape is None:
            raise CnnGraphError("backward needs a forward first (each forward allows one backward)")
        tape, self._tape = self._tape, None
        values, by_key = _Sums(), _Sums()
        for name, grad in grad_outputs.items():
            values.add(name, self._seed(name, grad))
        trainable = set(self._training_keys)
        for node, _, params in reversed(self._steps):
            saved, grad = tape.pop(node.name, None), values.pop(node.name)
            if saved is None or grad is None:
                continue
            saved.need_inputs = tuple(self._reach[v] for v in node.inputs)
            saved.need_params = frozenset(r for r, k in node.params.items() if k in trainable)
            with _naming(node, " backward"):
                dins, dparams = self._backward[node.name].fn(self.xp, grad, saved, params, node.attrs)
            for v, need, d, shape in zip(node.inputs, saved.need_inputs, dins, saved.shapes):
                if need and d is not None:  # None: nothing flows back (integer indices)
                    values.add(v, self._checked(node, v, d, shape))
            for role in saved.need_params:
                by_key.add(node.params[role], dparams[role])
        self.input_grads = {v: values.total[v] for v in self.graph.inputs if v in values.total}
        self.grads = {k: self._grad_or_zeros(by_key.total.get(k), k) for k in self._training_keys}
        return self.grads

    def _seed(self, name: str, grad: Any) -> Any:
        if name not in self._out_shapes:
            raise CnnGraphError(f"gradient given for '{name}', which is not an output of '{self.graph.name}'; "
                                f"outputs: {list(self._out_shapes)}")
        grad = self.xp.asarray(grad, dtype=self.dtype)
        if grad.shape != self._out_shapes[name]:
            raise CnnGraphError(f"gradient for output '{name}' has shape {fmt_shape(grad.shape)}, "
                                f"the output has {fmt_shape(self._out_shapes[name])}")
        return grad

    @staticmethod
    def _checked(node: Node, value: str, grad: Any, shape: tuple) -> Any:
        """A kernel bug would otherwise broadcast silently into the sum."""
        if grad.shape != shape:
            raise CnnGraphError(f"layer '{node.name}' ({node.op}) backward: gradient for input '{value}' "
                                f"has shape {fmt_shape(grad.shape)}, expected {fmt_shape(shape)}")
        return grad

    def _grad_or_zeros(self, grad: Any, key: str) -> Any:
        return self.xp.zeros_like(self.params[key]) if grad is None else grad

    # -- one step ------------------------------------------------------------------------
    def train_step(self, x: Mapping[str, Any] | Any, y: Any, loss: Callable, optimizer: Any) -> float:
        """forward, ``value, grad = loss(output, y)``, backward, ``optimizer.step(params, grads)``; the loss value.

        With one graph output the loss gets that array and returns the gradient w.r.t. it. With several
        it gets the dict of outputs and returns a dict of gradients by output name (outputs it leaves
        out get none).
        """
        outputs = self.forward(x)
        single = len(outputs) == 1
        value, grad = loss(next(iter(outputs.values())) if single else outputs, y)
        self.backward({self.graph.outputs[0]: grad} if single else grad)
        optimizer.step(self.params, self.grads)
        return float(value)
