"""Typed exceptions: every error a user can cause says where (layer, file, argument),
what was expected and what was found, so the CLI can print it as one line."""


class CnnGraphError(Exception):
    """Base of every error cnngraph raises on purpose."""


class GraphError(CnnGraphError):
    """A malformed graph: cycles, dangling or duplicate names, wrong arity."""


class ShapeError(CnnGraphError):
    """Shapes that do not fit, reported with the layer that found them."""

    def __init__(self, node: str, op: str, message: str):
        self.node, self.op = node, op
        super().__init__(f"layer '{node}' ({op}): {message}")


class AttrError(CnnGraphError):
    """An op attribute out of range or of the wrong kind."""

    def __init__(self, node: str, op: str, message: str):
        self.node, self.op = node, op
        super().__init__(f"layer '{node}' ({op}): {message}")


class ModelFileError(CnnGraphError):
    """A model or weight file that cannot be read: truncated, corrupt, or not ours."""


class UnknownModelError(CnnGraphError):
    """A model name that is not in the zoo and not a path."""


class DataError(CnnGraphError):
    """A dataset that cannot be read: missing files, wrong magic numbers, shapes or labels."""


class TrainingError(CnnGraphError):
    """A training setting or state that cannot work: bad hyper-parameters, targets, checkpoints, a diverged loss."""


class OnnxImportError(ModelFileError):
    """An ONNX file cnngraph cannot import: corrupt, cyclic, missing an initializer, or using an op,
    dtype or dynamic shape the IR cannot represent. Names the node, its op type and what is supported."""


class OnnxUpgradeWarning(UserWarning):
    """An ONNX file older than opset 7 that the import converted with onnx.version_converter: the
    graph is the converter's reading of the file, which the user should know."""


class BatchNormFoldWarning(UserWarning):
    """State_dict BatchNorms folded into the convolutions of an eval-mode export while loading weights:
    the result depends on an epsilon the state_dict does not hold, which the user should know."""


class OnnxExportError(CnnGraphError):
    """A graph that cannot be written as ONNX: an op without a mapping, an opset out of range."""


class OnnxVerifyError(OnnxExportError):
    """An exported model whose onnxruntime output differs from the NumPy executor's past the tolerance."""


class BackendError(CnnGraphError):
    """A backend that cannot run here (not installed, no device) or cannot run what was asked (a dtype)."""


class DeviceMemoryError(CnnGraphError):
    """A run that ran out of the backend's memory (names the layer, the batch and a batch that would fit), or
    whose planned activations exceed the size budget (names the input shape and the budget)."""


class BackendCheckError(CnnGraphError):
    """A backend (or precision) whose result differs from the NumPy float64 reference past the dtype's tolerance."""


class DrawError(CnnGraphError):
    """A picture of a graph could not be written (unknown format, Graphviz failed)."""


class DistributedError(TrainingError):
    """A data-parallel run that cannot go on: a rank died or hangs (names the rank), the ranks disagree, or the
    communication engine (mpi4py, NCCL) is missing."""
