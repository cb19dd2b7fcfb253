"""The intermediate representation: a DAG of single-output nodes over named values.

Every node produces exactly one value, named after the node; graph inputs are values too.
Weights live beside the graph in ``Graph.params`` (keyed ``<node>.<role>``, the torchvision
state_dict names), so passes can fold them and loaders can match checkpoints by name.
The batch dimension is symbolic (``"N"``) everywhere: nothing bakes a batch size in. An input may lead
with another dimension name instead (``"R"`` regions): see ``cnngraph.types``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from cnngraph.errors import GraphError
from cnngraph.ops import get_op
from cnngraph.types import BATCH, Dim, TensorType, is_number_dtype, is_symbol

__all__ = ["BATCH", "Dim", "TensorType", "Node", "Graph"]  # the types stay importable from here

@dataclass
class Node:
    """One operation. ``params`` maps a role ("weight", "bias", ...) to a key of Graph.params."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    type: TensorType | None = None



class Graph:
    """Inputs, nodes in topological order, outputs, and the parameters beside them."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: dict[str, TensorType] = {}
        self.nodes: list[Node] = []
        self.outputs: list[str] = []
        self.params: dict[str, np.ndarray] = {}
        self.training = False
        self.info = None  # a model_info.ModelInfo: classes, preprocessing, where the weights came from
        self._index: dict[str, Node] = {}

    # -- construction -------------------------------------------------------------
    def add_input(self, name: str, ttype: TensorType) -> None:
        self._check_new_name(name)
        self.inputs[name] = ttype

    def add_node(self, node: Node) -> Node:
        self._check_new_name(node.name)
        self.nodes.append(node)
        self._index[node.name] = node
        return node

    def append(self, name: str, op: str, inputs: list[str], **attrs) -> str:
        """Extend a built graph by one node, typed by the next ``verify()``; returns the value's name."""
        self.add_node(Node(name, op, list(inputs), attrs))
        return name

    def append_constant(self, name: str, value: np.ndarray) -> str:
        """A Constant node holding ``value`` (a buffer, keyed ``<name>.value``); returns the value's name."""
        self.params[f"{name}.value"] = value
        self.add_node(Node(name, "Constant", [], {"shape": value.shape}, {"value": f"{name}.value"}))
        return name

    def _check_new_name(self, name: str) -> None:
        if name in self.inputs or name in self._index:
            raise GraphError(f"duplicate name '{name}': every input and node needs its own name")

    def remove_node(self, name: str) -> None:
        node = self._index.pop(name)
        self.nodes.remove(node)

    def replace_uses(self, old: str, new: str) -> None:
        """Point every consumer (and graph output) of value ``old`` at ``new``."""
        for node in self.nodes:
            node.inputs = [new if v == old else v for v in node.inputs]
        self.outputs = [new if v == old else v for v in self.outputs]

    def reindex(self) -> None:
        """Rebuild the name index after a pass edited ``nodes`` directly."""
        self._index = {n.name: n for n in self.nodes}

    # -- queries -----------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self._index[name]
        except KeyError:
            raise GraphError(f"no node named '{name}' in graph '{self.name}'") from None

    def has_value(self, name: str) -> bool:
        return name in self.inputs or name in self._index

    def type_of(self, value: str) -> TensorType:
        if value in self.inputs:
            return self.inputs[value]
        node = self.node(value)
        if node.type is None:
            raise GraphError(f"value '{value}' has no inferred type yet")
        return node.type

    def users(self) -> dict[str, list[Node]]:
        """For every value, the nodes that read it (in schedule order)."""
        table: dict[str, list[Node]] = {v: [] for v in self.inputs}
        table.update({n.name: [] for n in self.nodes})
        for node in self.nodes:
            for v in node.inputs:
                table.setdefault(v, []).append(node)
        return table

    def param_count(self, trainable_only: bool = True) -> int:
        """Number of parameters; buffers (BN running stats) count only when asked."""
        total = 0
        for node in self.nodes:
            specs = self.param_specs(node)
            for role, key in node.params.items():
                if not trainable_only or specs[role].trainable:
                    total += int(self.params[key].size)
        return total

    def param_specs(self, node: Node) -> dict:
        """What ``node``'s op declares for each parameter role (shape, initialiser, trainable)."""
        return {s.role: s for s in get_op(node.op).param_specs(node.attrs, [self.type_of(v) for v in node.inputs])}

    def to_networkx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.inputs, kind="input")
        for node in self.nodes:
            g.add_node(node.name, kind="node", op=node.op)
            g.add_edges_from((v, node.name) for v in node.inputs)
        return g

    def copy(self) -> "Graph":
        """A deep copy of the structure sharing the parameter arrays (in a new dict).

        Passes replace parameter arrays, never write into them, so sharing is safe and copying
        VGG's 138M weights is avoided; executors take private copies of what they run.
        """
        params, self.params = self.params, {}
        try:
            clone = copy.deepcopy(self)
        finally:
            self.params = params
        clone.params = dict(params)
        return clone

    # -- checking ----------------------------------------------------------------
    def retyped(self) -> "Graph":
        """``verify`` after forgetting every recorded type: for an edit that changes types downstream (a new
        head width, an input turned into computed values), which verify would refuse as disagreements."""
        for node in self.nodes:
            node.type = None
        return self.verify()

    def verify(self) -> "Graph":
        """Re-infer every shape and check names, arity, order, cycles and parameters."""
        for name, t in self.inputs.items():
            if not t.shape or not is_symbol(t.shape[0]) or any(not isinstance(d, int) or d < 1 for d in t.shape[1:]):
                raise GraphError(f"input '{name}': shape {t.shape} must be (N, positive sizes...), or another "
                                 f"dimension name first, such as (R, 5) for a list of boxes")
            if not is_number_dtype(t.dtype):
                raise GraphError(f"input '{name}': dtype {t.dtype!r} is not a number type (float32, float64, "
                                 f"float16, int64, ...)")
        seen = set(self.inputs)
        names: set[str] = set(self.inputs)
        defined_later = {n.name for n in self.nodes}
        for node in self.nodes:
            if node.name in names and node.name not in self.inputs:
                raise GraphError(f"duplicate node name '{node.name}'")
            if node.name in self.inputs:
                raise GraphError(f"node '{node.name}' has the same name as a graph input")
            names.add(node.name)
            for v in node.inputs:
                if v not in seen:
                    if v in defined_later:
                        raise GraphError(self._order_problem(node, v))
                    raise GraphError(f"layer '{node.name}' ({node.op}) reads '{v}', which no input or node defines")
            op = get_op(node.op)
            in_types = [self.type_of(v) for v in node.inputs]
            attrs = op.normalize(node.name, node.attrs, in_types)
            out = op.infer(node.name, attrs, in_types)
            if node.type is not None and node.type != out:
                raise GraphError(f"layer '{node.name}' ({node.op}) records type {node.type} but its inputs give {out}")
            node.attrs, node.type = attrs, out
            self._verify_params(node)
            seen.add(node.name)
        if not self.outputs:
            raise GraphError(f"graph '{self.name}' has no outputs")
        for v in self.outputs:
            if v not in seen:
                raise GraphError(f"graph output '{v}' is not produced by any node or input")
        self._index = {n.name: n for n in self.nodes}
        return self

    def _order_problem(self, node: Node, value: str) -> str:
        try:
            cycle = nx.find_cycle(self.to_networkx())
            path = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
            return f"the graph has a cycle: {path}"
        except nx.NetworkXNoCycle:
            return f"layer '{node.name}' reads '{value}' before it is computed: nodes are not in topological order"

    def _verify_params(self, node: Node) -> None:
        specs = self.param_specs(node)
        if set(specs) != set(node.params):
            raise GraphError(
                f"layer '{node.name}' ({node.op}) has parameters {sorted(node.params)}, expected {sorted(specs)}"
            )
        for role, key in node.params.items():
            if key not in self.params:
                raise GraphError(f"layer '{node.name}' ({node.op}): parameter '{key}' is missing")
            found = tuple(self.params[key].shape)
            if found != specs[role].shape:
                raise GraphError(
                    f"layer '{node.name}' ({node.op}): parameter '{key}' has shape {found}, expected {specs[role].shape}"
                )

    def toposort(self) -> "Graph":
        """Put nodes into a topological order (for graphs assembled out of order), reporting cycles."""
        g = self.to_networkx()
        try:
            order = list(nx.lexicographical_topological_sort(g, key=self._position_key()))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(g)
            raise GraphError("the graph has a cycle: " + " -> ".join([a for a, _ in cycle] + [cycle[0][0]])) from None
        self.nodes = [self._index[n] for n in order if n in self._index]
        return self

    def _position_key(self):
        pos = {n.name: i for i, n in enumerate(self.nodes)}
        return lambda name: (pos.get(name, -1), name)

    # -- text form -----------------------------------------------------------------
    def __str__(self) -> str:
        lines = [f"graph {self.name}({', '.join(f'%{k}: {t}' for k, t in self.inputs.items())}) {{"]
        for node in self.nodes:
            args = [f"%{v}" for v in node.inputs]
            described = get_op(node.op).describe(node.attrs)
            if described:
                args.append(described)
            lines.append(f"  %{node.name} = {node.op}({', '.join(args)}) -> {node.type}")
        lines.append(f"  return {', '.join('%' + v for v in self.outputs)}")
        lines.append("}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.outputs)} outputs>"

