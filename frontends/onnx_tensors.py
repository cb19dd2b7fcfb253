"""ONNX tensors and attributes into Python values, at the import boundary.

A TensorProto names its element type and dims as plain integers; ``numpy_helper.to_array`` meets
an unknown type with KeyError or TypeError and a dim of 2^62 with ValueError, and a string
attribute that is not UTF-8 with UnicodeDecodeError. Here the type and dims are checked first
(against the size budget too), and whatever onnx still raises becomes an OnnxImportError that
names the file and the tensor or attribute.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cnngraph.errors import CnnGraphError, OnnxImportError
from cnngraph.limits import array_bytes, check_bytes
from cnngraph.ops.base import MAX_DIM

ELEMENT_TYPES = {
    TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64, TensorProto.FLOAT16: np.float16,
    TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.INT16: np.int16,
    TensorProto.UINT16: np.uint16, TensorProto.INT32: np.int32, TensorProto.UINT32: np.uint32,
    TensorProto.INT64: np.int64, TensorProto.UINT64: np.uint64, TensorProto.BOOL: np.bool_,
}


def type_name(code: int) -> str:
    """ONNX's name for an element type code, or the bare number for one it does not know."""
    try:
        return TensorProto.DataType.Name(code)
    except ValueError:
        return str(code)


def tensor_array(t: TensorProto, where: str, base_dir: str = "") -> np.ndarray:
    """The array ``t`` holds; ``where`` names it in errors (``file: initializer 'w'``)."""
    if t.data_type not in ELEMENT_TYPES:
        supported = ", ".join(type_name(c) for c in ELEMENT_TYPES)
        raise OnnxImportError(f"{where}: element type {type_name(t.data_type)}; supported: {supported}")
    dims = list(t.dims)
    if any(not 0 <= d <= MAX_DIM for d in dims):
        raise OnnxImportError(f"{where}: dims {dims}; each must be in [0, {MAX_DIM:,}]")
    check_bytes(array_bytes(dims, np.dtype(ELEMENT_TYPES[t.data_type]).itemsize), where, OnnxImportError)
    try:
        return numpy_helper.to_array(t, base_dir=base_dir)
    except Exception as e:  # noqa: BLE001 - onnx raises any type on a malformed tensor; name it instead
        raise OnnxImportError(f"{where}: cannot be read ({type(e).__name__}: {_first_line(e)})") from None


def attribute(a: onnx.AttributeProto, where: str):
    """An attribute as a Python value: strings decoded from UTF-8, tensors as arrays."""
    try:
        value = helper.get_attribute_value(a)
    except Exception as e:  # noqa: BLE001 - an unknown attribute type
        raise OnnxImportError(f"{where}: cannot be read ({type(e).__name__}: {_first_line(e)})") from None
    if isinstance(value, onnx.TensorProto):
        return tensor_array(value, where)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise OnnxImportError(f"{where}: a string that is not UTF-8 ({e.reason} at byte {e.start})") from None
    return value


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def boundary_error(source: str, e: Exception) -> CnnGraphError:
    """The last line of defence of ``load``: a library exception nothing more specific caught."""
    return OnnxImportError(f"{source}: cannot import ({type(e).__name__}: {_first_line(e)})")
