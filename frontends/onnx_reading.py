"""Reading an ONNX file and checking its structure before any op is lowered.

Every problem a file can have on its own (not ONNX, truncated, an opset out of range, a cycle, a
value nobody defines, an input the IR cannot type) is reported here in one line that names the
file and the node or input, so the lowering can assume a well-formed graph.
"""

from __future__ import annotations

import os
from pathlib import Path

import networkx as nx
import onnx
from google.protobuf.message import DecodeError

from cnngraph.errors import ModelFileError, OnnxImportError
from cnngraph.frontends.onnx_tensors import boundary_error, type_name
from cnngraph.frontends.onnx_values import SYMBOLIC_PROBES
from cnngraph.ir import BATCH, TensorType
from cnngraph.limits import check_bytes

MIN_OPSET = 7
DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64"}
INPUT_RANKS = (2, 3, 4, 5)  # (N, features) up to (N, C, D, H, W)


def read(path: str | os.PathLike) -> onnx.ModelProto:
    """The model in ``path`` with its external data; one-line errors for what is not an ONNX model."""
    if not Path(path).is_file():
        raise ModelFileError(f"{path}: no such file")
    check_bytes(os.path.getsize(path), f"{path}: the model file", OnnxImportError)
    try:
        model = onnx.load(os.fspath(path))  # onnx refuses external data outside the model's folder
    except (DecodeError, RuntimeError, ValueError, OSError) as e:
        raise OnnxImportError(f"{path}: not a readable ONNX model (truncated or another format): {e}") from None
    except Exception as e:  # noqa: BLE001 - onnx's ValidationError and whatever else protobuf raises
        raise boundary_error(os.fspath(path), e) from None
    if not model.HasField("graph") or not model.ir_version:
        raise OnnxImportError(f"{path}: not an ONNX model (no IR version or graph)")
    return model


def default_opset(model: onnx.ModelProto) -> int | None:
    """The opset the file declares for the standard domain (None when it declares none)."""
    versions = {o.domain: o.version for o in model.opset_import}
    return versions.get("", versions.get("ai.onnx"))


def opset_of(model: onnx.ModelProto, source: str) -> int:
    """The default-domain opset, which must be one this onnx release knows, from opset 7 on
    (older files are upgraded first, by onnx_upgrade)."""
    newest = onnx.defs.onnx_opset_version()
    version = default_opset(model)
    if version is None or not MIN_OPSET <= version <= newest:
        raise OnnxImportError(f"{source}: opset {version}; supported: {MIN_OPSET} to {newest}")
    return version


def ordered_nodes(graph: onnx.GraphProto, defined: set[str], source: str) -> list[onnx.NodeProto]:
    """Nodes in a topological order (file order where it is one), after checking every read is defined."""
    producer: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in filter(None, node.output):
            if out in producer or out in defined:
                raise OnnxImportError(f"{source}: value '{out}' is defined twice (by node '{_name(node)}')")
            producer[out] = i
    order = nx.DiGraph()
    order.add_nodes_from(range(len(graph.node)))
    for i, node in enumerate(graph.node):
        for v in filter(None, node.input):
            if v in producer:
                order.add_edge(producer[v], i)
            elif v not in defined:
                raise OnnxImportError(
                    f"{source}: node '{_name(node)}' ({node.op_type}) reads '{v}', which no graph input, initializer "
                    "or node defines (a missing initializer?)"
                )
    try:
        return [graph.node[i] for i in nx.lexicographical_topological_sort(order)]
    except nx.NetworkXUnfeasible:
        cycle = [_name(graph.node[a]) for a, _ in nx.find_cycle(order)]
        raise OnnxImportError(f"{source}: the graph has a cycle: {' -> '.join(cycle + cycle[:1])}") from None


def _name(node: onnx.NodeProto) -> str:
    return node.name or next(iter(node.output), node.op_type)


def input_types(graph: onnx.GraphProto, source: str) -> dict[str, TensorType]:
    """IR types of the runtime inputs (initializers listed as inputs are constants, not inputs)."""
    initializers = {t.name for t in graph.initializer}
    runtime = [i for i in graph.input if i.name not in initializers]
    batch_param = runtime[0].type.tensor_type.shape.dim[0].dim_param if runtime and _has_dims(runtime[0]) else ""
    return {i.name: _input_type(i, source, batch_param) for i in runtime}


def _has_dims(info: onnx.ValueInfoProto) -> bool:
    return info.type.HasField("tensor_type") and len(info.type.tensor_type.shape.dim) > 0


def _leading(info: onnx.ValueInfoProto, batch_param: str) -> str:
    """The IR name of an input's first axis: the batch N, unless a dim_param other than the first input's
    names it (cnngraph's own exports name the regions of a detector 'R', for instance)."""
    param = info.type.tensor_type.shape.dim[0].dim_param
    return param if param and param != batch_param and param.isidentifier() else BATCH


def _input_type(info: onnx.ValueInfoProto, source: str, batch_param: str = "") -> TensorType:
    where = f"{source}: input '{info.name}'"
    tensor = info.type.tensor_type
    if not info.type.HasField("tensor_type"):
        raise OnnxImportError(f"{where} is not a tensor; supported: FLOAT and DOUBLE tensors")
    if tensor.elem_type not in DTYPES:
        found = type_name(tensor.elem_type)
        raise OnnxImportError(f"{where} has type {found}; supported: FLOAT, DOUBLE")
    if not tensor.HasField("shape") or len(tensor.shape.dim) not in INPUT_RANKS:
        rank = len(tensor.shape.dim) if tensor.HasField("shape") else "unknown"
        raise OnnxImportError(f"{where} has rank {rank}; supported: ranks 2 to 5, (N, features) up to (N, C, D, H, W)")
    dims = [_leading(info, batch_param)]
    for axis, d in enumerate(tensor.shape.dim[1:], start=1):
        if not d.HasField("dim_value") or d.dim_value < 1:
            raise OnnxImportError(f"{where}: dimension {axis} is '{d.dim_param or '?'}', known only at run time; "
                                  "the IR needs fixed sizes for every axis but the batch")
        dims.append(d.dim_value)
    return TensorType(tuple(dims), DTYPES[tensor.elem_type])


def probe_batches(graph: onnx.GraphProto, names: list[str], source: str) -> tuple[int, int]:
    """Two symbolic probes, or the fixed batch twice when the file fixes it (a 1 for batch-1 exports)."""
    fixed = {i.type.tensor_type.shape.dim[0].dim_value for i in graph.input if i.name in names} - {0}
    if len(fixed) > 1:
        raise OnnxImportError(f"{source}: the inputs fix different batch sizes {sorted(fixed)}")
    return (fixed.pop(),) * 2 if fixed else SYMBOLIC_PROBES
