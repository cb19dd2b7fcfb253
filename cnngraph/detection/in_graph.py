"""An SSD graph with its post-processing inside, so one exported ONNX file goes from pixels to detections.

``predict.detect`` decodes and suppresses on the host; a deployed model should not need cnngraph for that.
``ssd_with_nms`` appends to the graph what ``predict._ssd`` computes: the offsets decoded against the
default boxes (``BoxDecode``, SSD's variances), scaled to pixels and clipped to the image, the class
softmax without the background, and ONNX ``NonMaxSuppression`` per class. Its outputs are ``boxes`` (N, A,
4) in pixels, ``scores`` (N, C, A) and ``selected`` (M, 3) int64 rows (image, class, box), ONNX's own
detection format. ONNX's NMS has no top-k before suppression, so where ``Postprocess.pre_nms_top_k`` binds
the host path keeps fewer candidates.
"""

from __future__ import annotations

import numpy as np

from cnngraph.detection.anchors import SSD_VARIANCES
from cnngraph.detection.predict import SSD_OUTPUTS, class_count
from cnngraph.errors import GraphError
from cnngraph.ir import Graph, Node

OUTPUTS = ("boxes", "scores", "selected")


def ssd_with_nms(graph: Graph, iou_threshold: float = 0.45, score_threshold: float = 0.01,
                 max_per_class: int = 100) -> Graph:
    """A verified copy of SSD ``graph`` whose outputs are ``boxes``, ``scores`` and NMS's ``selected``."""
    if not SSD_OUTPUTS <= set(graph.outputs) or len(graph.inputs) != 1:
        raise GraphError(f"{graph.name}: detections inside the graph are built for SSD models (outputs 'loc', "
                         f"'conf', 'anchors'); this one has {graph.outputs}")
    g = graph.copy()
    taken = [name for name in OUTPUTS if g.has_value(name)]
    if taken:
        raise GraphError(f"{graph.name} already has values named {taken}: the post-processing outputs need them")
    height, width = next(iter(g.inputs.values())).shape[2:]
    _constant(g, "post.image_size", np.array([width, height, width, height], np.float32))
    decoded = _add(g, "post.decoded", "BoxDecode", ["loc", "anchors"], variances=SSD_VARIANCES)
    pixels = _add(g, "post.pixels", "Mul", [decoded, "post.image_size"])
    _add(g, "boxes", "ReLU", [_add(g, "post.inside", "Min", [pixels, "post.image_size"])])  # clipped to the image
    probabilities = _add(g, "post.softmax", "Softmax", ["conf"], axis=2)
    per_class = _add(g, "post.per_class", "Transpose", [probabilities], perm=(0, 2, 1))
    classes = class_count(graph)
    _add(g, "scores", "Slice", [per_class], axes=(1,), starts=(1,), ends=(classes + 1,), steps=(1,))
    _add(g, "selected", "NonMaxSuppression", ["boxes", "scores"], max_output_boxes_per_class=max_per_class,
         iou_threshold=iou_threshold, score_threshold=score_threshold, center_point_box=0)
    g.outputs = list(OUTPUTS)
    g.name = f"{graph.name}_nms"
    return g.verify()


def _constant(g: Graph, name: str, value: np.ndarray) -> None:
    g.params[f"{name}.value"] = value
    g.add_node(Node(name, "Constant", [], {"shape": value.shape}, {"value": f"{name}.value"}))


def _add(g: Graph, name: str, op: str, inputs: list[str], **attrs) -> str:
    g.add_node(Node(name, op, inputs, attrs))
    return name
