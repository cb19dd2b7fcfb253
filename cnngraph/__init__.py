"""cnngraph: declare convolutional networks as graphs, compile them, run them anywhere."""

from cnngraph.compiler import compile  # noqa: A004 - the package's verb
from cnngraph.errors import CnnGraphError, GraphError, ModelFileError, ShapeError
from cnngraph.ir import Graph, Node, TensorType

__version__ = "0.1.0"
__all__ = ["compile", "Graph", "Node", "TensorType", "CnnGraphError", "GraphError", "ModelFileError", "ShapeError"]
