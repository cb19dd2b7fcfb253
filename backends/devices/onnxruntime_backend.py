"""The onnxruntime backend: the optimised graph exported to ONNX in memory and run in an InferenceSession.

Inference only, in float32: onnxruntime's CPU kernels (or its CUDA execution provider, when
``onnxruntime-gpu`` is installed and a device is present) run the whole graph, so there are no
per-node kernels here; ``compiled`` hands ``compile`` a session model instead of the schedule loop.
Arrays are host NumPy arrays, which the NumPy backend owns.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import numpy as np

from cnngraph.backends.devices import Backend, register
from cnngraph.errors import BackendError

MISSING = 'onnxruntime is not installed (pip install -e ".[cpu]")'


@register
class OnnxruntimeBackend(Backend):
    name = "onnxruntime"
    rank = 1
    summary = "onnxruntime running the exported graph, inference only (CUDA when present)"
    dtypes = ("float32",)

    def module(self) -> Any:
        why = self.unavailable()
        if why is not None:
            raise BackendError(f"backend 'onnxruntime' cannot run here: {why}")
        return importlib.import_module("onnxruntime")

    def unavailable(self) -> str | None:
        return None if importlib.util.find_spec("onnxruntime") else MISSING

    @property
    def xp(self) -> Any:
        return np

    def is_array(self, value: Any) -> bool:
        return False  # its arrays are NumPy's, and backend_of() answers the NumPy backend for them

    def compiled(self, graph: Any, dtype: str, seed: int, train: bool) -> Any:
        if train:
            raise BackendError("backend 'onnxruntime' runs inference only: train on numpy, cupy or strict, then "
                               "compile the trained graph (model.to_graph()) for onnxruntime")
        from cnngraph.backends.onnxruntime_session import SessionModel

        return SessionModel(graph, self, dtype)
