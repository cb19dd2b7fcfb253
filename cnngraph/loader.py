"""Turn what a user types as MODEL into a Graph: a zoo name, ``file.py:function``, a ``.cng`` or ``.onnx`` file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cnngraph import io
from cnngraph.errors import CnnGraphError, ModelFileError
from cnngraph.ir import Graph
from cnngraph.model_info import ModelInfo, task_of


def load_model(spec: str, **build_kwargs) -> Graph:
    """Resolve ``spec``; ``build_kwargs`` (num_classes, input_size, ...) go to zoo and file builders."""
    if spec.endswith(".cng"):
        return io.load(spec)
    if spec.endswith(".onnx"):
        if build_kwargs:
            raise CnnGraphError(f"{spec}: {', '.join(sorted(build_kwargs))} apply to zoo and file builders; "
                                "an ONNX file has its shapes fixed")
        from cnngraph.frontends import onnx_import

        return onnx_import.load(spec)
    if ".py:" in spec:
        return _from_python_file(spec, build_kwargs)
    from cnngraph import models

    graph = models.build(spec, **build_kwargs)
    graph.info = ModelInfo(task=task_of(graph), weights="random", source=f"zoo model {spec}")
    return graph


def _from_python_file(spec: str, kwargs: dict) -> Graph:
    path, _, func = spec.rpartition(":")
    if not Path(path).is_file():
        raise ModelFileError(f"{path}: no such file (from MODEL '{spec}')")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report whatever it raised, in one line
        raise ModelFileError(f"{path}: failed to import ({type(e).__name__}: {e})") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise ModelFileError(f"{path}: has no function '{func}'")
    try:
        graph = fn(**kwargs)
    except CnnGraphError:
        raise
    except Exception as e:  # the user's builder: report what it raised, and with which arguments
        given = f" with {kwargs}" if kwargs else ""
        raise ModelFileError(f"{spec}: the builder failed{given} ({type(e).__name__}: {e})") from None
    if not isinstance(graph, Graph):
        raise CnnGraphError(f"{spec}: returned {type(graph).__name__}, expected a Graph (use dsl.Model)")
    return graph
