"""ONNX -> IR: models made by PyTorch, Keras (tf2onnx), Caffe2 or the ONNX zoo, opsets 7 to newest
(older files are converted first, see onnx_upgrade).

The importer walks the nodes in order and keeps, for every ONNX value, either the IR value that
computes it at run time or a ``Folded`` constant. A node whose inputs are all constant is folded
at once (so ``Shape -> Gather -> Concat -> Reshape`` chains and ``ConstantOfShape`` weights reach
the IR as plain shapes and parameters); every other node goes to its op family's importer, found
through the ONNX mapping tables in ``cnngraph/ops`` (the same tables the exporter reads). Those
importers see this module's ``Importer`` as ``ctx``: its public methods are their whole toolkit.

Anything the IR cannot represent raises ``OnnxImportError`` naming the file, the node, its op type
and what is supported. Parameters keep their initializer names where they are used as stored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from cnngraph.errors import CnnGraphError, OnnxImportError
from cnngraph.frontends import onnx_reading, onnx_upgrade, torch_names
from cnngraph.frontends.onnx_fold_size import output_elements
from cnngraph.frontends.onnx_tensors import attribute, boundary_error, tensor_array, type_name
from cnngraph.frontends.onnx_values import Folded, evaluate, per_sample_shape, probe_array
from cnngraph.ir import Graph, Node, TensorType
from cnngraph.limits import check_bytes
from cnngraph.model_info import MAX_TEXT, ONNX_KEY, ModelInfo, task_of
from cnngraph.ops import get_op
from cnngraph.ops.onnx_mapping import TRAINING, OnnxAttr, OnnxOp, importable, importer, reads_indices

SHAPE_ONLY = ("Shape", "Size")  # folded even from runtime inputs: they read only the (probed) shape
NEVER_FOLD = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
              "If", "Loop", "Scan", "SequenceMap")  # subgraphs: a fold whose size (and run time) nothing bounds
FOLD_ITEMSIZE = 8  # bytes per folded element at most (float64, int64)
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)


def load(path: str | os.PathLike) -> Graph:
    """Import the ONNX file at ``path`` as a verified Graph."""
    return from_model(onnx_reading.read(path), os.fspath(path))


def from_model(model: onnx.ModelProto, source: str = "<onnx model>") -> Graph:
    """Import an in-memory ModelProto; ``source`` names it in error messages. Whatever a malformed
    file provokes that no check below names becomes an OnnxImportError naming the file."""
    try:
        graph = Importer(model, source).run()
    except (CnnGraphError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - the import boundary: onnx and protobuf raise any type
        raise boundary_error(source, e) from None
    graph.info = onnx_info(model, graph, source)
    return graph


def onnx_info(model: onnx.ModelProto, graph: Graph, source: str) -> ModelInfo:
    """The info cnngraph's exporter wrote into the file's metadata_props (checked, as any header); for other
    files, only that the weights were imported from ``source``."""
    props = {p.key: p.value for p in model.metadata_props}
    if ONNX_KEY not in props:
        return ModelInfo(task=task_of(graph), weights="imported", source=os.path.basename(source)[:MAX_TEXT])
    try:
        doc = json.loads(props[ONNX_KEY])
    except (json.JSONDecodeError, RecursionError) as e:
        raise OnnxImportError(f"{source}: metadata '{ONNX_KEY}' is not JSON ({e})") from None
    return ModelInfo.from_json(doc, source).check_against(graph, source)


def _initializers(g: onnx.GraphProto) -> set[str]:
    """The file's weights, as opposed to what it computes: its initializers, and the Identity copies by which
    PyTorch's exporter lets modules share one stored tensor when their values are equal."""
    names = {t.name for t in g.initializer}
    for node in g.node:
        if node.op_type == "Identity" and node.input and node.input[0] in names:
            names.update(node.output)
    return names


def supported_ops() -> list[str]:
    """Every ONNX op type the importer reads (more fold when their inputs are constant)."""
    return sorted({*importable(), *SHAPE_ONLY, "Cast", "Constant", "ConstantOfShape"})


@dataclass
class OnnxNode:
    """One ONNX node as importers see it: attributes decoded to Python values."""

    proto: onnx.NodeProto
    opset: int
    source: str = "<onnx model>"
    attrs: dict = field(init=False)

    def __post_init__(self):
        where = f"{self.source}: node '{self.name}' ({self.op_type}) attribute"
        self.attrs = {a.name: attribute(a, f"{where} '{a.name}'") for a in self.proto.attribute}

    @property
    def op_type(self) -> str:
        return self.proto.op_type

    @property
    def name(self) -> str:
        return self.proto.name or self.proto.output[0]

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)


class Importer:
    """The walk over one model, and the toolkit op-family importers use (``ctx``)."""

    def __init__(self, model: onnx.ModelProto, source: str):
        self.source = source
        self.model = model = onnx_upgrade.upgraded(model, source)
        self.opset = onnx_reading.opset_of(model, source)
        g = model.graph
        self.graph = Graph(g.name or Path(source).stem or "onnx_model")
        self.inputs = onnx_reading.input_types(g, source)
        self.probes = onnx_reading.probe_batches(g, list(self.inputs), source)
        self.values: dict[str, str | Folded] = {}
        self.outputs = [o.name for o in g.output]
        self.read = {v for n in g.node for v in n.input} | set(self.outputs)
        self.initializers = _initializers(g)

    # -- the walk ----------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.model.graph
        for name, t in self.inputs.items():
            self.graph.add_input(name, t)
            self.values[name] = name
        for t in g.initializer:
            self._fold_initializer(t)
        for proto in onnx_reading.ordered_nodes(g, set(self.values), self.source):
            self._lower(OnnxNode(proto, self.opset, self.source))
        self._bind_outputs()
        return self._pruned()

    def _fold_initializer(self, t: onnx.TensorProto) -> None:
        """A constant; copied out of the file's buffer, since parameters are written in place (training)."""
        value = tensor_array(t, f"{self.source}: initializer '{t.name}'", os.path.dirname(self.source)).copy()
        self.values[t.name] = Folded(t.name, (value, value), self.probes)

    def _lower(self, node: OnnxNode) -> None:
        if node.proto.domain not in ("", "ai.onnx"):
            raise self.fail(node, f"op domain '{node.proto.domain}'; supported: the standard ONNX domain")
        inputs = [v for v in node.inputs if v]
        if node.op_type in SHAPE_ONLY or (node.op_type not in NEVER_FOLD and all(self._known(v) for v in inputs)):
            self._fold(node)
        elif node.op_type == "Cast":
            self._cast(node)
        else:
            load = importer(node.op_type)
            if load is None:
                raise self.fail(node, f"unsupported op; supported: {', '.join(supported_ops())}")
            try:
                load(self, node)
            except (KeyError, IndexError, TypeError, ValueError) as e:  # a malformed node: say which
                raise self.fail(node, f"malformed or unsupported ({type(e).__name__}: {e})") from None
        for k, out in enumerate(node.outputs):
            if out and out not in self.values and out in self.read:
                raise self.fail(node, f"output {k} ('{out}') is used, but only the first output is supported")

    def _known(self, value: str) -> bool:
        return isinstance(self.values[value], Folded)

    def _fold(self, node: OnnxNode) -> None:
        for name, at in zip(node.outputs, self._probe(node)):
            if name:
                self.values[name] = Folded(name, at, self.probes)

    def _probe(self, node: OnnxNode) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every output at both probe batch sizes (once when nothing depends on the batch)."""
        runs = []
        for k, batch in enumerate(self.probes):
            if k and not self._batch_dependent(node):
                return [(a, a) for a in runs[0]]
            feeds = {}
            for v in filter(None, node.inputs):
                value = self.values[v]
                feeds[v] = value.at[k] if isinstance(value, Folded) else probe_array(self.graph.type_of(value), batch)
            self._check_fold_size(node, [feeds.get(v) if v else None for v in node.inputs])
            try:
                runs.append(evaluate(node.proto, self.opset, feeds))
            except Exception as e:  # noqa: BLE001 - onnx.reference raises anything; name the node instead
                raise self.fail(node, f"cannot evaluate at import time ({type(e).__name__}: {e})") from None
            folded = sum(int(a.nbytes) for a in runs[-1] if a is not None)
            check_bytes(folded, f"{self.source}: node '{node.name}' ({node.op_type}): folded constant", OnnxImportError)
        return list(zip(*runs))

    def _check_fold_size(self, node: OnnxNode, inputs: list) -> None:
        """Refuse a fold past the size budget before it allocates (ConstantOfShape [40000, 40000])."""
        elements = self.attempt(node, output_elements, node.op_type, node.attrs, inputs)
        check_bytes(elements * FOLD_ITEMSIZE, f"{self.source}: node '{node.name}' ({node.op_type}): folding "
                    f"{elements:,} elements at import", OnnxImportError)

    def _batch_dependent(self, node: OnnxNode) -> bool:
        """Whether the node's outputs may differ between the probe batch sizes (a runtime input, or a
        constant computed from the batch)."""
        values = [self.values[v] for v in node.inputs if v]
        return self.probes[0] != self.probes[1] and any(not isinstance(v, Folded) or v.batch_dependent for v in values)

    def _cast(self, node: OnnxNode) -> None:
        """The IR computes in one float type, so a float cast of a float value changes nothing; nor does an
        integer cast that only inputs of indices read (RoiAlign's batch_indices: ``OnnxOp.index_inputs``).
        Between int64 indices (NonMaxSuppression's) and floats the IR's Cast converts."""
        to, integer = node.attrs.get("to"), self.type(node, 0).dtype == "int64"
        if to in FLOAT_TYPES and integer:
            self.emit(node, "Cast", [self.value(node, 0)], {"to": "float32"})
        elif to == onnx.TensorProto.INT64 and not integer and not self._read_as_indices(node.outputs[0]):
            self.emit(node, "Cast", [self.value(node, 0)], {"to": "int64"})
        elif to in FLOAT_TYPES or to == onnx.TensorProto.INT64 or self._read_as_indices(node.outputs[0]):
            self.bind(node, self.value(node, 0))
        else:
            raise self.fail(node, f"casts a runtime value to {type_name(to or 0)}; supported: casts to FLOAT, "
                                  f"DOUBLE, FLOAT16 and INT64")

    def _read_as_indices(self, value: str) -> bool:
        readers = [(n.op_type, i) for n in self.model.graph.node for i, v in enumerate(n.input) if v == value]
        return bool(readers) and value not in self.outputs and all(reads_indices(*r) for r in readers)

    def _bind_outputs(self) -> None:
        """Graph outputs keep their ONNX names: an Identity where the value was renamed or folded."""
        for name in self.outputs:
            if name not in self.values:
                raise OnnxImportError(f"{self.source}: graph output '{name}' is not computed by any node")
            value = self.values[name]
            if isinstance(value, Folded):
                self._materialize(value, name)
            elif value != name:
                self.graph.add_node(Node(name, "Identity", [value], {}, {}, self.graph.type_of(value)))
        self.graph.outputs = list(self.outputs)

    def _pruned(self) -> Graph:
        """Drop nodes no output depends on (dead branches of the file) and their parameters."""
        needed, stack = set(), list(self.graph.outputs)
        while stack:
            v = stack.pop()
            if v not in needed and v not in self.graph.inputs:
                needed.add(v)
                stack.extend(self.graph.node(v).inputs)
        self.graph.nodes = [n for n in self.graph.nodes if n.name in needed]
        keys = {k for n in self.graph.nodes for k in n.params.values()}
        self.graph.params = {k: v for k, v in self.graph.params.items() if k in keys}
        try:
            return self.graph.verify()
        except CnnGraphError as e:
            raise OnnxImportError(f"{self.source}: the imported graph does not verify: {e}") from None

    # -- the toolkit for op-family importers ---------------------------------------------------
    def fail(self, node: OnnxNode, message: str) -> OnnxImportError:
        """The error to raise: one line naming the file, the node and its op type."""
        return OnnxImportError(f"{self.source}: node '{node.name}' ({node.op_type}): {' '.join(message.split())}")

    def attempt(self, node: OnnxNode, fn, *args):
        """``fn(*args)``, its ValueError reported against ``node``."""
        try:
            return fn(*args)
        except ValueError as e:
            raise self.fail(node, str(e)) from None

    def has_input(self, node: OnnxNode, i: int) -> bool:
        return i < len(node.inputs) and bool(node.inputs[i])

    def is_constant(self, node: OnnxNode, i: int) -> bool:
        return self._known(node.inputs[i])

    def folded(self, node: OnnxNode, i: int) -> Folded:
        """Input ``i`` as a constant, possibly batch-dependent (a shape computed with Shape)."""
        if not self.has_input(node, i) or not self.is_constant(node, i):
            what = f"'{node.inputs[i]}'" if self.has_input(node, i) else "missing"
            raise self.fail(node, f"input {i} ({what}) must be a constant (an initializer or computable at import)")
        return self.values[node.inputs[i]]

    def initializer(self, node: OnnxNode, i: int) -> Folded:
        """Input ``i`` as a constant that does not depend on the batch (a weight, an attribute input)."""
        value = self.folded(node, i)
        if value.batch_dependent:
            raise self.fail(node, f"input {i} ('{value.name}') depends on the batch size; the IR needs it fixed")
        return value

    def constant(self, node: OnnxNode, i: int) -> np.ndarray:
        return self.initializer(node, i).value

    @staticmethod
    def array(value: Folded | np.ndarray) -> np.ndarray:
        return value.value if isinstance(value, Folded) else np.asarray(value)

    def type(self, node: OnnxNode, i: int) -> TensorType:
        value = self.values[node.inputs[i]]
        return TensorType(value.value.shape) if isinstance(value, Folded) else self.graph.type_of(value)

    def image(self, node: OnnxNode, i: int) -> tuple:
        """(N, C, H, W) of input ``i``, or an error naming the shape found."""
        t = self.type(node, i)
        if t.rank != 4:
            raise self.fail(node, f"input {i} has shape {t.shape}; supported: 4-D (N, C, H, W) inputs")
        return t.shape

    def spatial(self, node: OnnxNode, i: int) -> tuple:
        """(N, C, L), (N, C, H, W) or (N, C, D, H, W) of input ``i``, or an error naming the shape found."""
        t = self.type(node, i)
        if not 3 <= t.rank <= 5:
            raise self.fail(node, f"input {i} has shape {t.shape}; supported: 3-D to 5-D (N, C, *spatial) inputs")
        return t.shape

    def value(self, node: OnnxNode, i: int) -> str:
        """The IR value of input ``i``; a constant becomes a Constant node the first time it is used."""
        value = self.values[node.inputs[i]]
        if not isinstance(value, Folded):
            return value
        ir = self._materialize(self.initializer(node, i), self._fresh(value.name))
        self.values[node.inputs[i]] = ir
        return ir

    def constant_value(self, node: OnnxNode, array: np.ndarray, suffix: str) -> str:
        """A new Constant node holding ``array``, named after ``node``."""
        return self._materialize(Folded(suffix, (array, array), self.probes), self._fresh(f"{node.name}/{suffix}"))

    def _materialize(self, value: Folded, name: str) -> str:
        """A Constant node for ``value``: trainable, and keyed by its own name, when it is an initializer."""
        array = self._float(value.value, name)
        trainable = value.name in self.initializers
        named = trainable and not torch_names.is_generated(value.name) and value.name not in self.graph.params
        key = value.name if named else self._fresh_key(f"{name}.value")
        self.graph.params[key] = array
        attrs = {"shape": array.shape, "trainable": trainable}
        self.graph.add_node(Node(name, "Constant", [], attrs, {"value": key}, TensorType(array.shape)))
        return name

    def bind(self, node: OnnxNode, ir_value: str, k: int = 0) -> str:
        """Make ONNX output ``k`` of ``node`` the IR value ``ir_value`` (no new node)."""
        self.values[node.outputs[k]] = ir_value
        return ir_value

    def emit(self, node: OnnxNode, op: str, inputs: list[str], attrs: dict | None = None,
             params: dict | None = None, output: int | str = 0) -> str:
        """Add IR node ``op`` for ``node``; ``output`` k binds ONNX output k, a string names an intermediate.

        ``params`` map roles to Folded constants (which keep their names) or arrays.
        """
        name = self._node_name(node, output)
        in_types = [self.graph.type_of(v) for v in inputs]
        schema = get_op(op)
        try:
            attrs = schema.normalize(name, dict(attrs or {}), in_types)
            out = schema.infer(name, attrs, in_types)
            specs = {s.role: s for s in schema.param_specs(attrs, in_types)}
        except CnnGraphError as e:
            raise self.fail(node, f"as {op}: {e}") from None
        if set(specs) != set(params or {}):
            raise self.fail(node, f"as {op}: has parameters {sorted(params or {})}, expected {sorted(specs)}")
        keys = {}
        for role, p in (params or {}).items():
            array = self._float(self.array(p), f"{name}.{role}")
            if array.shape != specs[role].shape:
                raise self.fail(node, f"as {op}: {role} has shape {array.shape}, expected {specs[role].shape}")
            keys[role] = self._param_key(p, array, self._default_key(node, name, role))
        self.graph.add_node(Node(name, op, list(inputs), attrs, keys, out))
        if isinstance(output, int):
            self.bind(node, name, output)
        return name

    def table_value(self, node: OnnxNode, a: OnnxAttr):
        """The raw ONNX value of table attribute ``a``: an attribute, or a constant input from its opset on."""
        if a.input is not None and node.opset >= a.since:
            return self.constant(node, a.input) if self.has_input(node, a.input) else a.default
        return node.attrs.get(a.onnx, a.default)

    def import_table(self, node: OnnxNode, spec: OnnxOp, consumed: tuple = (), **overrides) -> str:
        """Lower ``node`` by its family's table. ``overrides`` are IR attribute values a custom importer
        worked out; ``consumed`` names the attributes (or input indices) it read for them."""
        n_data = len(node.inputs) if spec.data is None else spec.data
        as_inputs = [a for a in spec.attrs if a.input is not None and node.opset >= a.since]
        claimed = {*range(n_data + len(spec.params)), *(a.input for a in as_inputs)}
        claimed |= {c for c in consumed if isinstance(c, int)}
        known = {a.onnx for a in spec.attrs if a not in as_inputs} | set(spec.fixed) | set(spec.ignore)
        known |= {c for c in consumed if isinstance(c, str)}
        for key in sorted(set(node.attrs) - known):
            raise self.fail(node, f"attribute {key}={node.attrs[key]!r} is not supported; supported: {sorted(known)}")
        for i, v in enumerate(node.inputs):
            if v and i not in claimed:
                raise self.fail(node, f"input {i} ('{v}') is not supported")
        for key, want in spec.fixed.items():
            if node.attrs.get(key, want) != want:
                raise self.fail(node, f"{key}={node.attrs[key]}; supported: {key}={want}")
        attrs = dict(overrides)
        for a in spec.attrs:
            raw = None if a.ir in attrs else self.table_value(node, a)
            if raw is not None:
                attrs[a.ir] = self.attempt(node, a.load, raw)
        params = {role: self.initializer(node, n_data + k) for k, role in enumerate(spec.params)
                  if self.has_input(node, n_data + k)}
        if spec.derive:
            in_types = [self.type(node, i) for i in range(n_data)]
            attrs.update(spec.derive(attrs, {r: p.value for r, p in params.items()}, in_types))
        if attrs.pop(TRAINING, False):
            self.graph.training = True
        return self.emit(node, spec.ir, [self.value(node, i) for i in range(n_data)], attrs, params)

    def probe_shapes(self, node: OnnxNode) -> list[tuple[int, ...]]:
        """The per-sample shape of each output, as ONNX computes it at both probe batch sizes."""
        shapes = []
        for name, (a, b) in zip(node.outputs, self._probe(node)):
            shapes.append(self.attempt(node, per_sample_shape, name, (a.shape, b.shape), self.probes))
        return shapes

    def reshape_like(self, node: OnnxNode) -> str:
        """A node that only relabels the row-major layout: one Reshape (or Flatten) to ONNX's output shape."""
        shape, before = self.probe_shapes(node)[0], self.type(node, 0).shape[1:]
        x = self.value(node, 0)
        if shape == before:
            return self.bind(node, x)
        if len(shape) == 1:
            return self.emit(node, "Flatten", [x])
        return self.emit(node, "Reshape", [x], {"shape": shape})

    # -- names and parameters -------------------------------------------------------------------
    def _node_name(self, node: OnnxNode, output: int | str) -> str:
        """Graph outputs keep their names; otherwise the ONNX node's name, then its output's."""
        if isinstance(output, str):
            return self._fresh(f"{node.name}/{output}")
        out = node.outputs[output]
        if out in self.outputs:
            return out
        return self._fresh(node.proto.name if output == 0 and node.proto.name else out)

    def _fresh(self, base: str) -> str:
        """``base``, or ``base_1``, ...: a name no value has and no graph output is reserved for."""
        name, k = base, 0
        while self.graph.has_value(name) or name in self.outputs:
            k += 1
            name = f"{base}_{k}"
        return name

    def _fresh_key(self, base: str) -> str:
        key, k = base, 0
        while key in self.graph.params:
            k += 1
            key = f"{base}_{k}"
        return key

    def _param_key(self, p: Folded | np.ndarray, array: np.ndarray, fallback: str) -> str:
        """An initializer used as stored keeps its name (shared weights share it), unless PyTorch's exporter
        invented that name; anything else is keyed ``fallback``. A generated initializer several nodes
        read (the exporter deduplicates equal tensors) becomes one copy per node, as in the model."""
        if isinstance(p, Folded) and not torch_names.is_generated(p.name) and (
                p.name not in self.graph.params or self.graph.params[p.name] is array):
            self.graph.params[p.name] = array
            return p.name
        key = self._fresh_key(fallback)
        self.graph.params[key] = array.copy() if any(v is array for v in self.graph.params.values()) else array
        return key

    @staticmethod
    def _default_key(node: OnnxNode, ir_name: str, role: str) -> str:
        """``<module>.<role>`` for a PyTorch export's nodes (state_dict keys), else ``<node>.<role>``."""
        module = torch_names.module_path(node.proto.name)
        return f"{module}.{role}" if module else f"{ir_name}.{role}"

    def _float(self, array: np.ndarray, what: str) -> np.ndarray:
        """Parameters are float32 or float64 (float16 widens); integer weights are a mistake in the file."""
        if array.dtype in (np.float32, np.float64):
            return array
        if array.dtype == np.float16:
            return array.astype(np.float32)
        raise OnnxImportError(f"{self.source}: '{what}' has element type {array.dtype}; supported: float tensors")

