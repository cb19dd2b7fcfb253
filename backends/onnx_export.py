"""IR -> ONNX: every op through its family's mapping table (``cnngraph/ops``), checked by onnx.checker.

The exported model keeps the batch symbolic (``N``) on every input and output and bakes no batch
size into any node (Reshape copies it with a 0). Parameters become initializers under their IR
names; value and node names are the IR's. Inference export by default; ``training=True`` keeps
BatchNorm in training mode and Dropout active (opset 14 or later) for fine-tuning elsewhere.

Ops export one node from their table, or through the table's ``export`` function, which gets this
module's ``Exporter`` as ``ex``: ``emit`` (any IR node, real or made up, by its own mapping),
``export_table``, ``add_node``, ``initializer``, ``param`` and ``type`` are its whole toolkit, so a
fused op exports as its parts by emitting them one after another.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from cnngraph import __version__
from cnngraph.errors import OnnxExportError
from cnngraph.io import atomic_write_bytes
from cnngraph.ir import Graph, Node, TensorType
from cnngraph.model_info import ONNX_KEY
from cnngraph.ops.base import LAYOUT
from cnngraph.ops.onnx_mapping import TRAINING, OnnxOp, export_spec

DEFAULT_OPSET = 17
MIN_OPSET = 13
TRAINING_OPSET = 14  # BatchNormalization's training_mode attribute
EXTERNAL_DATA_BYTES = 2**31 - 2**26  # protobuf's 2 GiB limit, less room for the graph itself


def to_onnx(graph: Graph, opset: int = DEFAULT_OPSET, training: bool = False) -> onnx.ModelProto:
    """The ONNX model of ``graph`` (parameters inline), not yet checked."""
    lowered = next((n for n in graph.nodes if n.op == "Layout" or LAYOUT in n.attrs), None)
    if lowered is not None:  # ONNX is NCHW: a channels-last lowering is a backend's business, not the model's
        raise OnnxExportError(f"layer '{lowered.name}' ({lowered.op}) is lowered to channels-last storage for a "
                              f"backend; export the graph before lowering (compile without channels_last)")
    return Exporter(graph, opset, training).run()


def export(graph: Graph, path: str | os.PathLike, opset: int = DEFAULT_OPSET, training: bool = False,
           external_data: bool | None = None) -> onnx.ModelProto:
    """Write ``graph`` to ``path`` after ``onnx.checker.check_model(full_check=True)``.

    ``external_data`` None decides by size: parameters past protobuf's 2 GiB go to ``<file>.data``
    beside the model (and the returned proto then refers to that file). Writes are atomic: a crash
    leaves no half-written model.
    """
    model = to_onnx(graph, opset, training)
    if external_data is None:
        external_data = sum(t.ByteSize() for t in model.graph.initializer) > EXTERNAL_DATA_BYTES
    if external_data:
        _save_external(model, Path(path))
    else:
        data = model.SerializeToString()  # once: it is the slow part for large models
        check(data, path)
        atomic_write_bytes(path, data)
    return model


def check(model: onnx.ModelProto | bytes | str, where: str | os.PathLike = "<model>") -> None:
    """``onnx.checker.check_model(full_check=True)``, its complaint as an OnnxExportError naming ``where``."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise OnnxExportError(f"{where}: the exported model fails onnx.checker: {e}") from None


def _save_external(model: onnx.ModelProto, path: Path) -> None:
    """Model and ``<name>.data`` are written into a temporary folder beside ``path`` and checked there,
    then renamed into place: the data first, then the model that points at it."""
    data = f"{path.name}.data"
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        onnx.save_model(model, tmp / path.name, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=1024)
        check(str(tmp / path.name), path)
        os.replace(tmp / data, path.parent / data)
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Exporter:
    """Builds one ModelProto; the toolkit mapping tables' ``export`` functions use (``ex``)."""

    def __init__(self, graph: Graph, opset: int, training: bool):
        newest = onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= opset <= newest:
            raise OnnxExportError(f"opset {opset} is not supported; choose {MIN_OPSET} to {newest}")
        if training and opset < TRAINING_OPSET:
            raise OnnxExportError(f"a training export needs opset {TRAINING_OPSET} or later (BatchNormalization's "
                                  f"training_mode), got {opset}")
        self.graph = graph.verify()
        self.opset, self.training = opset, training
        self.dtype = np.float32
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.aliases: dict[str, str] = {}
        self.types = {v: graph.type_of(v) for v in [*graph.inputs, *(n.name for n in graph.nodes)]}

    def run(self) -> onnx.ModelProto:
        for node in self.graph.nodes:
            self.emit(node)
        for node in self.nodes:
            node.input[:] = [self.aliases.get(v, v) for v in node.input]
        g = helper.make_graph(
            self.nodes, self.graph.name,
            [self._value_info(v) for v in self.graph.inputs],
            [self._value_info(v) for v in self.graph.outputs],
            list(self.initializers.values()),
        )
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(g, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                                  producer_name="cnngraph", producer_version=__version__)
        model.doc_string = f"exported by cnngraph for {'training' if self.training else 'inference'}"
        if self.graph.info is not None:  # classes, preprocessing, weights' origin: read back by the importer
            helper.set_model_props(model, {ONNX_KEY: json.dumps(self.graph.info.to_json())})
        return model

    def _value_info(self, value: str) -> onnx.ValueInfoProto:
        t = self.types[value]
        dims = list(t.shape)  # names (the batch N, regions R, ...) become dim_params
        dtype = t.dtype if np.dtype(t.dtype).kind in "iu" else self.dtype  # indices stay int64
        return helper.make_tensor_value_info(value, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), dims)

    # -- the toolkit ------------------------------------------------------------------------------
    def type(self, value: str) -> TensorType:
        return self.types[value]

    def emit(self, node: Node) -> str:
        """Export one IR node, real or made up by a fused op's export, through its op's mapping."""
        spec = export_spec(node.op)
        if spec is None:
            raise OnnxExportError(f"layer '{node.name}' ({node.op}): the op has no ONNX mapping (declare one with "
                                  "onnx_table in its cnngraph/ops module)")
        if node.type is not None:
            self.types[node.name] = node.type
        (spec.export or Exporter.export_table)(self, node, spec)
        return node.name

    def export_table(self, node: Node, spec: OnnxOp, op_type: str | None = None,
                     outputs: list[str] | None = None) -> str:
        """One ONNX node from the table: attributes converted, attribute inputs as named initializers.

        Values equal to ONNX's default are left out, so older opsets never see newer attributes.
        """
        attrs = {**node.attrs, TRAINING: self.training}
        inputs = [*node.inputs, *(self.param(node.params[r]) for r in spec.params if r in node.params)]
        onnx_attrs = dict(spec.fixed)
        for a in spec.attrs:
            value = a.save(attrs[a.ir])
            if a.default is not None and value == a.default:
                continue
            if a.input is not None and self.opset >= a.since:
                inputs += [""] * (a.input + 1 - len(inputs))
                dtype = {"int64": np.int64, "bool": np.bool_, "float": self.dtype}[a.dtype]
                inputs[a.input] = self.initializer(f"{node.name}/{a.onnx}", np.asarray(value, dtype))
            else:
                onnx_attrs[a.onnx] = value
        return self.add_node(op_type or spec.op_type, inputs, outputs or [node.name], node.name, **onnx_attrs)

    @staticmethod
    def tensor_type(dtype) -> int:
        """ONNX's element-type code of a NumPy dtype, as Cast's ``to`` wants it."""
        return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def add_node(self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def initializer(self, name: str, array: np.ndarray) -> str:
        """A named constant; float arrays take the model's element type."""
        if name in self.initializers:
            raise OnnxExportError(f"two constants are both named '{name}'")
        self.initializers[name] = self.tensor(name, array)
        return name

    def tensor(self, name: str, array: np.ndarray) -> onnx.TensorProto:
        """``array`` as a TensorProto; float arrays take the model's element type."""
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(self.dtype, copy=False)
        return numpy_helper.from_array(array, name)

    def alias(self, value: str, onnx_name: str) -> None:
        """Let the nodes that read IR ``value`` read ``onnx_name`` instead (rewritten once all are emitted)."""
        self.aliases[value] = onnx_name

    def param(self, key: str) -> str:
        """Parameter ``key`` as an initializer of the same name (added once, however many nodes share it)."""
        if key not in self.initializers:
            self.initializer(key, self.graph.params[key])
        return key
