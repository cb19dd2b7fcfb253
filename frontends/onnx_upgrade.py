"""Files older than the importer's first opset, brought up to it with ``onnx.version_converter``.

Opsets below 7 mean other things by the same op names (``consumed_inputs``, Add's ``broadcast``
flag, BatchNormalization's ``is_test``); rather than lower two meanings per op, such a file is
converted to the first opset the importer reads, and the import says so with an
``OnnxUpgradeWarning`` (the CLI prints warnings on stderr).
"""

from __future__ import annotations

import warnings

import onnx
from onnx import version_converter

from cnngraph.errors import OnnxImportError, OnnxUpgradeWarning
from cnngraph.frontends.onnx_reading import MIN_OPSET, default_opset


def upgraded(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """``model`` itself from opset MIN_OPSET on; an older one converted to MIN_OPSET, or refused with
    the converter's reason."""
    version = default_opset(model)
    if version is None or version >= MIN_OPSET:
        return model
    try:
        converted = version_converter.convert_version(model, MIN_OPSET)
    except Exception as e:  # noqa: BLE001 - the converter raises RuntimeError, ValueError and its own types
        reason = " ".join(str(e).split()) or type(e).__name__
        raise OnnxImportError(f"{source}: opset {version} cannot be upgraded to opset {MIN_OPSET} "
                              f"by onnx.version_converter: {reason}") from None
    warnings.warn(f"{source}: opset {version} upgraded to opset {MIN_OPSET} by onnx.version_converter",
                  OnnxUpgradeWarning, stacklevel=2)
    return converted
