"""cnngraph: declare convolutional networks as graphs, compile them, run them anywhere.

The names below the errors load on first use (PEP 562): importing the package, as the ``cnngraph``
command does before anything else, then costs only the error classes, so a Ctrl-C during the
command's start-up reaches its handler instead of printing a traceback from deep in an import.
"""

from cnngraph.errors import CnnGraphError, GraphError, ModelFileError, ShapeError

__version__ = "0.1.0"
__all__ = ["compile", "optimize", "Graph", "Node", "TensorType", "CnnGraphError", "GraphError", "ModelFileError", "ShapeError"]
_LAZY = {"compile": "cnngraph.compiler", "optimize": "cnngraph.compiler",
         "Graph": "cnngraph.ir", "Node": "cnngraph.ir", "TensorType": "cnngraph.ir"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'cnngraph' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # noqa: A001 - resolved once, then an ordinary module attribute
    return value
