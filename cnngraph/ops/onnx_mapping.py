"""The vocabulary of the ONNX mapping tables: one table per op family, read by exporter AND importer.

Each op family module declares ``ONNX = onnx_table(OnnxOp(...), ..., imports={...})``. An
``OnnxOp`` says how one IR op becomes one ONNX node and back: attribute names and value
conversions, which parameters follow the data inputs, which attributes travel as constant inputs
(and from which opset), and what the IR needs that ONNX keeps in weight shapes. Both directions
read the same entry, so they cannot drift apart. Where an op is not 1:1 (fused ops, adaptive
pooling, Gemm's transposes) the entry names a small ``export`` or ``load`` function instead.

Nothing here imports onnx: the tables are plain data, the exporter and importer interpret them.
Export functions get the exporter (``backends/onnx_export.py``), import functions the importer
(``frontends/onnx_import.py``); see those modules for what they offer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRAINING = "training"  # pseudo-attribute: the graph's mode, for ops whose ONNX node records it


def same(value: Any) -> Any:
    return value


def as_list(value: Any) -> list:
    return list(value)


def as_float(value: Any) -> float:
    """The shortest decimal that reads back as the same float32: ONNX stores 0.01 as 0.009999999776."""
    return float(str(np.float32(value)))


@dataclass(frozen=True)
class OnnxAttr:
    """One IR attribute and its ONNX attribute (or constant input), with the conversions both ways.

    ``default`` is ONNX's value when the attribute is absent (None: absent keeps the IR default).
    With ``input`` set, opsets from ``since`` on carry the value as that input, a constant of
    ``dtype`` ("int64", "bool", or "float": the model's element type); older ones as an attribute.
    """

    ir: str
    onnx: str
    save: Callable[[Any], Any] = same
    load: Callable[[Any], Any] = same
    default: Any = None
    input: int | None = None
    since: int = 1
    dtype: str = "int64"


@dataclass(frozen=True)
class OnnxOp:
    """How one IR op maps to one ONNX node: the table both directions read.

    ``data`` leading inputs are runtime values (None: every input that is neither a parameter nor
    an attribute input); ``params`` are IR parameter roles that follow them, in ONNX input order.
    ``fixed`` attributes are always written and must hold on import; ``ignore`` lists ONNX
    attributes without effect on the output. ``derive(attrs, params, in_types)`` returns the IR
    attributes that ONNX keeps in weight shapes (out_channels, bias). ``export(ex, node)`` and
    ``load(ctx, node)`` replace the table where the op is not 1:1; ``op_type`` None means export-only.
    """

    ir: str
    op_type: str | None
    attrs: tuple[OnnxAttr, ...] = ()
    params: tuple[str, ...] = ()
    data: int | None = 1
    fixed: dict[str, Any] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    derive: Callable[..., dict] | None = None
    export: Callable[..., None] | None = None
    load: Callable[..., None] | None = None
    index_inputs: tuple[int, ...] = ()  # ONNX inputs of integer indices the IR op reads from its float values


_BY_IR: dict[str, OnnxOp] = {}
_IMPORTERS: dict[str, Callable[..., None]] = {}


def onnx_table(*ops: OnnxOp, imports: dict[str, Callable[..., None]] | None = None) -> tuple[OnnxOp, ...]:
    """Register a family's entries: each IR op's export, and an importer per ONNX op type.

    ``imports`` adds ONNX ops that lower to this family's IR ops without being any op's export
    (Sub, Div, Sum -> Add/Mul; Squeeze -> Reshape; GlobalMaxPool -> MaxPool2d).
    """
    for op in ops:
        if op.ir in _BY_IR:
            raise RuntimeError(f"ONNX mapping for {op.ir} declared twice")
        _BY_IR[op.ir] = op
        if op.op_type is not None:
            _add_importer(op.op_type, _table_importer(op))
    for op_type, fn in (imports or {}).items():
        _add_importer(op_type, fn)
    return ops


def _table_importer(op: OnnxOp) -> Callable[..., None]:
    """The importer of ``op.op_type``: the table itself, or the entry's ``load(ctx, node, spec)``."""

    def load(ctx, node) -> None:
        if op.load is None:
            ctx.import_table(node, op)
        else:
            op.load(ctx, node, op)

    return load


def _add_importer(op_type: str, fn: Callable[..., None]) -> None:
    if op_type in _IMPORTERS:
        raise RuntimeError(f"ONNX importer for {op_type} declared twice")
    _IMPORTERS[op_type] = fn


def export_spec(ir_op: str) -> OnnxOp | None:
    """The mapping of IR op ``ir_op``, or None when it has none."""
    return _BY_IR.get(ir_op)


def importer(op_type: str) -> Callable[..., None] | None:
    return _IMPORTERS.get(op_type)


def reads_indices(op_type: str, i: int) -> bool:
    """Whether input ``i`` of ONNX ``op_type`` holds integer indices that the IR keeps as float values."""
    return any(op.op_type == op_type and i in op.index_inputs for op in _BY_IR.values())


def importable() -> list[str]:
    """Every ONNX op type the importer lowers, for error messages and docs."""
    return sorted(_IMPORTERS)


Step = tuple  # (op_type, operands) or (op_type, operands, attributes): one node of a decomposition


def decomposed(steps: tuple[Step, ...], since: int | None = None) -> Callable[..., None]:
    """An ``export`` that writes the op as several standard nodes, for ops ONNX lacks (or lacks before
    opset ``since``, from which on the table's own node is written). Each operand of a step is "x" (the
    node's input), an int k (step k's result) or a float (a constant); the last step writes the output."""

    def export(ex, node, spec) -> None:
        if since is not None and ex.opset >= since:
            ex.export_table(node, spec)
            return
        values: list[str] = []
        for k, (op_type, operands, *attrs) in enumerate(steps):
            inputs = [node.inputs[0] if o == "x" else values[o] if isinstance(o, int)
                      else ex.initializer(f"{node.name}/c{k}_{i}", np.asarray(o, np.float32))
                      for i, o in enumerate(operands)]
            out = node.name if k == len(steps) - 1 else f"{node.name}/{op_type.lower()}{k}"
            values.append(ex.add_node(op_type, inputs, [out], out, **(attrs[0] if attrs else {})))

    return export
