"""What a model was trained on and where its weights came from, carried with the graph.

A ``.cng`` file (and an ONNX file cnngraph exports) stores it beside the graph, so ``cnngraph run``
can name the classes, prepare a photo exactly as the training data was prepared, and say when the
weights are a random initialisation whose predictions mean nothing. Every field is optional: a
file from before this metadata existed still loads, with nothing known. The fields come from a
file header, which is untrusted: ``from_json`` checks types, counts and lengths before anything
uses them, and ``check_against`` checks them against the graph they describe.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from cnngraph.detection.predict import is_detector
from cnngraph.errors import ModelFileError
from cnngraph.ops.base import fmt_shape
from cnngraph.types import BATCH

TASKS = ("classification", "segmentation", "detection", "other")
WEIGHTS = ("random", "trained", "imported", "loaded")
"""random: a fresh initialisation; trained: by ``cnngraph train``; imported: from an ONNX file;
loaded: from a ``--weights`` file."""
RESIZES = ("stretch", "imagenet")
"""stretch: resized to the input size (the image-folder and digits loaders); imagenet: shorter side
to 256/224 of the input, then a centre crop (torchvision's evaluation transform)."""
MAX_CLASSES = 2**20  # as many as a dataset may have (train.data.MAX_CLASSES)
MAX_TEXT = 256  # characters in a class name or a source
ONNX_KEY = "cnngraph.info"  # the ONNX metadata_props key the exporter writes the info under


@dataclass
class ModelInfo:
    """Metadata of a model: its task and classes, how inputs were prepared, and where its weights came from."""

    task: str | None = None
    classes: list[str] | None = None
    channels: int | None = None
    size: list[int] | None = None  # [height, width]
    mean: list[float] | None = None  # per channel, applied to pixels scaled to [0, 1]
    std: list[float] | None = None
    resize: str | None = None
    grayscale: bool | None = None  # trained on gray images (repeated into every channel of a 3-channel input)
    weights: str | None = None
    source: str | None = None  # the dataset, weights file or ONNX file the weights came from
    extra: dict = field(default_factory=dict, repr=False)  # unknown keys from a newer cnngraph, kept as read

    def to_json(self) -> dict:
        doc = {k: v for k, v in asdict(self).items() if v is not None and k != "extra"}
        return {**self.extra, **doc}

    @classmethod
    def from_json(cls, doc, where: str) -> ModelInfo:
        """Checked fields of ``doc``; a wrong type, count or length raises ModelFileError naming ``where``
        and the field."""
        if not isinstance(doc, dict):
            raise ModelFileError(f"{where}: model info must be an object, found {type(doc).__name__}")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        info = cls(extra={k: v for k, v in doc.items() if k not in known})
        for name, values in (("task", TASKS), ("weights", WEIGHTS), ("resize", RESIZES)):
            value = doc.get(name)
            if value is not None and value not in values:
                raise ModelFileError(f"{where}: model info '{name}' must be one of {', '.join(values)}, found "
                                     f"{_shown(value)}")
            setattr(info, name, value)
        info.source = _text(doc.get("source"), where, "source")
        info.grayscale = doc.get("grayscale")
        if info.grayscale not in (None, True, False):
            raise ModelFileError(f"{where}: model info 'grayscale' must be true or false, found "
                                 f"{_shown(info.grayscale)}")
        info.classes = _list(doc.get("classes"), where, "classes", MAX_CLASSES,
                             lambda v, i: _text(v, where, f"classes[{i}]", required=True))
        info.channels = _count(doc.get("channels"), where, "channels")
        info.size = _list(doc.get("size"), where, "size", 2, lambda v, i: _count(v, where, f"size[{i}]"))
        if info.size is not None and len(info.size) != 2:
            raise ModelFileError(f"{where}: model info 'size' must be [height, width], found {len(info.size)} values")
        info.mean = _list(doc.get("mean"), where, "mean", 4096, lambda v, i: _number(v, where, f"mean[{i}]"))
        info.std = _list(doc.get("std"), where, "std", 4096, lambda v, i: _number(v, where, f"std[{i}]", positive=True))
        if (info.mean is None) != (info.std is None) or (info.mean and len(info.mean) != len(info.std)):
            raise ModelFileError(f"{where}: model info 'mean' and 'std' must come together, one value per channel each")
        return info

    def check_against(self, graph, where: str) -> ModelInfo:
        """``self`` if it fits ``graph`` (channels, size, normalisation and classes match its input and output);
        otherwise a ModelFileError naming ``where``, the field, what the graph has and what the info says."""
        t = next(iter(graph.inputs.values()), None)
        image = t is not None and t.rank == 4
        takes = f"the graph takes {fmt_shape(t.shape)}" if t is not None else ""
        if image and self.channels is not None and self.channels != t.shape[1]:
            raise ModelFileError(f"{where}: model info says {self.channels} input channels, {takes}")
        if image and self.size is not None and list(self.size) != list(t.shape[2:]):
            raise ModelFileError(f"{where}: model info says input size {self.size}, {takes}")
        if image and self.mean is not None and len(self.mean) != t.shape[1]:
            raise ModelFileError(f"{where}: model info has {len(self.mean)} mean/std values, {takes}")
        if self.classes is not None and graph.outputs and self.task != "detection":  # a detector's heads vary
            out = graph.type_of(graph.outputs[0])
            if out.rank < 2 or out.shape[1] != len(self.classes):
                raise ModelFileError(f"{where}: model info names {len(self.classes)} classes, the graph's output "
                                     f"'{graph.outputs[0]}' is {fmt_shape(out.shape)}")
        return self

    def describe(self) -> str:
        """One line of what is known: the weights' origin, the classes, how inputs are prepared."""
        parts = []
        if self.weights:
            parts.append(f"weights {self.weights}" + (f" ({self.source})" if self.source else ""))
        if self.classes:
            shown = ", ".join(self.classes[:5]) + (", ..." if len(self.classes) > 5 else "")
            parts.append(f"{len(self.classes)} classes ({shown})")
        if self.mean is not None:
            parts.append("inputs normalised with mean " + " ".join(f"{m:.3g}" for m in self.mean) + ", std "
                         + " ".join(f"{v:.3g}" for v in self.std))
        return "; ".join(parts) or "nothing recorded"


def task_of(graph) -> str:
    """What the first output holds: scores per class (N, C), per class and pixel (N, C, H, W), boxes (a
    one-stage detector's outputs, or an input or output with a dimension named besides the batch, as a
    two-stage detector's R regions), or other."""
    types = [*graph.inputs.values(), *(graph.type_of(o) for o in graph.outputs)]
    if is_detector(graph.outputs) or any(d != BATCH for t in types for d in t.symbols()):
        return "detection"
    rank = graph.type_of(graph.outputs[0]).rank if graph.outputs else 0
    return {2: "classification", 4: "segmentation"}.get(rank, "other")


def info_of(graph) -> ModelInfo:
    """The graph's info, or an empty one (nothing known) for a graph that carries none."""
    return graph.info if graph.info is not None else ModelInfo()


def with_weights(graph, weights: str, source: str) -> ModelInfo:
    """The graph's info with a new origin for its weights; what else it records (classes, input preparation) holds."""
    return replace(info_of(graph), weights=weights, source=source[:MAX_TEXT])


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value, where: str, name: str, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ModelFileError(f"{where}: model info '{name}' must be text of at most {MAX_TEXT} characters, found "
                             f"{_shown(value)}")
    return value


def _count(value, where: str, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**31 - 1:
        raise ModelFileError(f"{where}: model info '{name}' must be a positive integer, found {_shown(value)}")
    return value


def _number(value, where: str, name: str, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise ModelFileError(f"{where}: model info '{name}' must be a finite number{' > 0' if positive else ''}, "
                             f"found {_shown(value)}")
    return float(value)


def _list(value, where: str, name: str, most: int, item):
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > most:
        raise ModelFileError(f"{where}: model info '{name}' must be a list of at most {most:,} values, found "
                             f"{_shown(value) if not isinstance(value, list) else f'{len(value):,} values'}")
    return [item(v, i) for i, v in enumerate(value)]
