"""A compiled model that is one onnxruntime InferenceSession over the graph exported in memory.

It answers what ``compile`` promises of any model (``run``, ``__call__``, ``graph``, ``kernels``,
``fallbacks``, ``to_graph``), so the CLI, ``cnngraph bench`` and ``check=True`` treat it as any
backend. ``run(..., watch=...)`` (the node-by-node check, profiling) uses a second session, built on
first use, whose outputs are every node's value: the fast session keeps its fusions.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from onnx import helper

from cnngraph.backends.devices import Backend
from cnngraph.backends.executor import Watch, bind_inputs
from cnngraph.backends.onnx_export import check, to_onnx
from cnngraph.backends.threads import blas
from cnngraph.errors import BackendError, OnnxExportError
from cnngraph.ir import Graph

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


class SessionModel:
    """The optimised ``graph`` run by onnxruntime at ORT_ENABLE_ALL, on CUDA where onnxruntime offers it."""

    def __init__(self, graph: Graph, backend: Backend, dtype: str):
        backend.check_dtype(dtype)
        self.graph, self.backend, self.dtype = graph, backend, np.dtype(dtype)
        self.report, self.check_errors = [], None
        self._ort = backend.module()
        try:
            self._proto = to_onnx(graph)
            check(self._proto, graph.name)
        except OnnxExportError as e:
            raise BackendError(f"backend 'onnxruntime' cannot run '{graph.name}': {e}") from None
        available = self._ort.get_available_providers()
        self.requested = [CUDA, CPU] if CUDA in available else [CPU]
        self.session = self._session(self._proto)
        self.providers = self.session.get_providers()  # what onnxruntime could actually create
        self._outputs = list(graph.outputs)
        self._watching = None  # (session, the node values it returns), built on the first watched run

    def _session(self, proto) -> Any:
        options = self._ort.SessionOptions()
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if blas.fixed is not None:  # --threads N holds for onnxruntime's pool too
            options.intra_op_num_threads = blas.fixed
        return self._ort.InferenceSession(proto.SerializeToString(), options, providers=self.requested)

    def run(self, inputs: Mapping[str, Any] | Any, to_host: bool = False, watch: Watch | None = None) -> dict:
        """The outputs as NumPy arrays (``to_host`` changes nothing: they are on the host already)."""
        feeds = bind_inputs(self.graph, self.backend, self.dtype, inputs)
        if watch is None:
            return dict(zip(self._outputs, self.session.run(self._outputs, feeds)))
        session, names = self._watched()
        values = dict(zip(names, session.run(names, feeds)))
        for node in self.graph.nodes:
            if node.name in values:
                watch(node, values[node.name])
        return {name: values[name] for name in self._outputs}

    def _watched(self) -> tuple[Any, list[str]]:
        """A session whose outputs are every IR node's value that the export names (fused parts are not)."""
        if self._watching is None:
            proto = type(self._proto)()
            proto.CopyFrom(self._proto)
            produced = {out for n in proto.graph.node for out in n.output}
            names = [n.name for n in self.graph.nodes if n.name in produced]
            extra = [n for n in self.graph.nodes if n.name in produced and n.name not in self._outputs]
            proto.graph.output.extend(helper.make_tensor_value_info(
                n.name, helper.np_dtype_to_tensor_dtype(_stored(n.type.dtype)), None) for n in extra)
            self._watching = self._session(proto), names
        return self._watching

    def __call__(self, *arrays: Any) -> Any:
        """Positional inputs in graph order; one output comes back bare, several as a tuple."""
        vals = tuple(self.run(dict(zip(self.graph.inputs, arrays, strict=True))).values())
        return vals[0] if len(vals) == 1 else vals

    def kernels(self) -> dict[str, str]:
        """Every node runs inside the session, on its first execution provider."""
        return {node.name: f"onnxruntime/{self.providers[0]}" for node in self.graph.nodes}

    def fallbacks(self) -> list[tuple[str, str, str]]:
        """The CUDA provider, when it was asked for and onnxruntime could not create it."""
        return [("(all)", provider, "onnxruntime could not create it here (no device or CUDA libraries)")
                for provider in self.requested if provider not in self.providers]

    def to_graph(self) -> Graph:
        return self.graph.copy()


def _stored(dtype: Any) -> np.dtype:
    """The element type the exporter writes for a value: indices stay integers, the rest is float32."""
    return np.dtype(dtype) if np.dtype(dtype).kind in "iu" else np.dtype(np.float32)
