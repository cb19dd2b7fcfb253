"""The training executor: a forward that keeps what backward needs, and backward in reverse schedule order.

What is kept is declared by each op's backward kernel (``@backward(op, keeps=...)``): its inputs,
its output, or only its input shapes, plus whatever the forward kernel stashed (max-pool argmax,
dropout mask, BatchNorm statistics). Every other activation is freed as soon as the schedule is
done with it, exactly as in inference. Nodes that no gradient can reach usefully (no trainable
parameter at or before them, and no input gradient asked for) keep nothing and are skipped by
backward: a frozen feature extractor costs a forward pass only.

``run`` / ``__call__`` evaluate in inference mode (running statistics, no dropout) and keep nothing.
Forward runs the executor's one schedule loop; under half precision ``train_step`` scales the
loss (``cnngraph.train.scaler``) and skips steps whose gradients overflow.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Mapping

from cnngraph.backends.devices import Backend
from cnngraph.backends.executor import Executor, Step, Watch, naming
from cnngraph.errors import CnnGraphError
from cnngraph.ir import Graph, Node
from cnngraph.ops.base import fmt_shape
from cnngraph.train.clip import clip_grad_norm
from cnngraph.train.scaler import LossScaler


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

    needs_backward = True

    def __init__(self, graph: Graph, backend: str | Backend = "numpy", dtype: str = "float32", seed: int = 0):
        super().__init__(graph, backend, dtype, seed)
        self.evaluates_training = False  # run() evaluates; forward() trains
        self._all_trainable = list(dict.fromkeys(k for node in graph.nodes for k in self._trainable_keys(node)))
        self._frozen: set[str] = set()
        self.grads: dict[str, Any] = {}
        self.input_grads: dict[str, Any] = {}
        self._tape: dict | None = None
        self._training_keys: list[str] = []
        self.scaler = LossScaler() if self.precision.half else None
        self.gradient_sync = None  # data parallelism: sums gradients over ranks as backward makes them

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
                input_grads: bool = False, watch: Watch | None = None) -> dict[str, Any]:
        """Run in training mode (batch statistics, running-stat updates, dropout), keeping what backward needs.

        ``training=False`` runs with inference semantics but still keeps what backward needs (frozen
        BatchNorm, saliency maps). ``input_grads=True`` makes the next backward fill ``input_grads``.
        ``watch(node, value)`` sees every node's output as it is computed (the training profile).
        The outputs (and the inputs) may be among what is kept: do not modify them in place before backward.
        """
        feeds = self._bind_inputs(inputs)
        self._training_keys = self.trainable
        reaches = self._reaches(input_grads)
        self._compute = self._compute_params()  # the optimizer moved the masters since the last forward
        outputs, tape = self._forward(feeds, training, keep=lambda node: reaches[node.name], watch=watch)
        self._tape, self._reach, self._out_shapes = tape, reaches, {k: v.shape for k, v in outputs.items()}
        return outputs

    def _node_training(self, node: Node, training: bool) -> bool:
        return training and not self._frozen_norm(node)

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

    def kept(self) -> dict[str, list[str]]:
        """What the last forward keeps for backward, per node: "inputs", "output" and stash entries."""
        if self._tape is None:
            return {}
        return {
            name: [k for k in ("inputs", "output") if getattr(s, k) is not None] + sorted(s.stash)
            for name, s in self._tape.items()
        }

    # -- backward ------------------------------------------------------------------------
    def backward(self, grad_outputs: Mapping[str, Any], watch: Watch | None = None) -> dict[str, Any]:
        """Gradients of the loss, given its gradient w.r.t. some outputs, for every trainable parameter.

        Nodes run in reverse schedule order; where a value has several users (residual, dense and
        fabric joins, or one node reading it twice) their gradients are summed. Consumes the tape.
        ``watch(node, input_grads)`` sees each node's input gradients as its backward returns them.
        """
        if self._tape is None:
            raise CnnGraphError("backward needs a forward first (each forward allows one backward)")
        tape, self._tape = self._tape, None
        values, by_key = _Sums(), _Sums()
        for name, grad in grad_outputs.items():
            values.add(name, self._seed(name, grad))
        trainable = set(self._training_keys)
        if self.gradient_sync is not None:
            self.gradient_sync.begin(self._training_keys)
        try:
            self._backward_steps(tape, values, by_key, trainable, watch)
        finally:
            self._threads.done()
        self.input_grads = {v: values.total[v] for v in self.graph.inputs if v in values.total}
        self.grads = {k: self._grad_or_zeros(by_key.total.get(k), k) for k in self._training_keys}
        if self.gradient_sync is not None:
            self.grads = self.gradient_sync.finish(self.grads)
        return self.grads

    def _backward_steps(self, tape: dict, values: _Sums, by_key: _Sums, trainable: set[str],
                        watch: Watch | None) -> None:
        """Every kept node's backward, in reverse schedule order, summing gradients per value and per key."""
        for step, params in zip(reversed(self.steps), reversed(self._compute)):
            node = step.node
            saved, grad = tape.pop(node.name, None), values.pop(node.name)
            if saved is None or grad is None:
                continue
            saved.need_inputs = tuple(self._reach[v] for v in node.inputs)
            saved.need_params = frozenset(r for r, k in node.params.items() if k in trainable)
            self._threads.before(step.index, grad.shape[0] if grad.ndim else 1)
            with naming(node, " backward"):
                dins, dparams = self._backward_step(step, grad, saved, params)
            if watch is not None:
                watch(node, dins)
            for v, need, d, shape in zip(node.inputs, saved.need_inputs, dins, saved.shapes):
                if need and d is not None:  # None: nothing flows back (integer indices)
                    values.add(v, self._checked(node, v, d, shape))
            for role in saved.need_params:
                by_key.add(node.params[role], dparams[role])
            if self.gradient_sync is not None:
                self.gradient_sync.node_done(node.name, by_key.total)

    def _backward_step(self, step: Step, grad: Any, saved, params: dict) -> tuple[list, dict]:
        """One node's backward. Around a float32 kernel, half-precision gradients are widened and the results
        rounded back (parameter gradients through the storage dtype); parameter gradients always reach
        the optimizer in the masters' dtype."""
        p = self.precision
        if not step.widen:
            dins, dparams = step.impl.backward.fn(self.xp, grad, saved, params, step.node.attrs)
            return dins, {r: d.astype(p.master, copy=False) for r, d in dparams.items()} if p.half else dparams
        dins, dparams = step.impl.backward.fn(self.xp, p.wide(grad), saved.mapped(p.wide), params, step.node.attrs)
        rounded = (lambda d: d) if step.float32_params else (lambda d: p.rounded(d, p.master))
        return [None if d is None else p.narrow(d) for d in dins], {r: rounded(d) for r, d in dparams.items()}

    def _overflow_expected(self):
        """Under loss scaling an overflow is an expected event the scaler handles: NumPy need not warn."""
        return self.xp.errstate(over="ignore", invalid="ignore") if self.scaler is not None and \
            hasattr(self.xp, "errstate") else contextlib.nullcontext()

    def _seed(self, name: str, grad: Any) -> Any:
        if name not in self._out_shapes:
            raise CnnGraphError(f"gradient given for '{name}', which is not an output of '{self.graph.name}'; "
                                f"outputs: {list(self._out_shapes)}")
        grad = self.backend.asarray(grad, dtype=self.dtype)
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
    def train_step(self, x: Mapping[str, Any] | Any, y: Any, loss: Callable, optimizer: Any,
                   max_grad_norm: float | None = None) -> float:
        """forward, ``value, grad = loss(output, y)``, backward, ``optimizer.step(params, grads)``; the loss value.

        With one graph output the loss gets that array and returns the gradient w.r.t. it. With several
        it gets the dict of outputs and returns a dict of gradients by output name (outputs it leaves
        out get none). ``max_grad_norm`` clips the gradients' total 2-norm before the update, after the
        loss scale is taken off (``cnngraph.train.clip``, as ``torch.nn.utils.clip_grad_norm_``).
        """
        outputs = self.forward(x)
        single = len(outputs) == 1
        wide = {k: self.precision.wide(v) for k, v in outputs.items()}  # losses compute in float32
        value, grad = loss(next(iter(wide.values())) if single else wide, y)
        grads = {self.graph.outputs[0]: grad} if single else grad
        if self.scaler is not None:
            grads = {k: g * self.scaler.scale for k, g in grads.items()}
        with self._overflow_expected():
            self.backward(grads)
        if self.scaler is not None:
            finite = self.scaler.unscale(self.grads)
            self.scaler.update(finite)
            if not finite:  # an overflow at this scale: no update, a smaller scale next step
                return float(value)
        if max_grad_norm is not None:
            clip_grad_norm(self.grads, max_grad_norm)
        optimizer.step(self.params, self.grads)
        return float(value)
