"""cnngraph: declare convolutional networks as graphs, compile them, run them anywhere."""

from cnngraph.compiler import compile, optimize  # noqa: A004 - the package's verbs
from cnngraph.errors import CnnGraphError, GraphError, ModelFileError, ShapeError
from cnngraph.ir import Graph, Node, TensorType

__version__ = "0.1.0"
__all__ = ["compile", "optimize", "Graph", "Node", "TensorType", "CnnGraphError", "GraphError", "ModelFileError", "ShapeError"]
