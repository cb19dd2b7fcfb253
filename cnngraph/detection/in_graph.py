"""A one-stage detector's post-processing inside its graph, so one exported ONNX file goes from pixels to
detections.

``predict.detect`` decodes and suppresses on the host; a deployed model should not need cnngraph for that.
``with_nms`` appends to the graph what ``predict`` computes before suppression, from standard ops:
- SSD: the offsets decoded against the default boxes (``BoxDecode``, SSD's variances) and scaled to
  pixels; the class softmax without the background;
- YOLO v1: each box's centre offset in its cell and the square roots of its size turned into corners in
  pixels; the box confidence times the cell's class probabilities;
then boxes clipped to the image and ONNX ``NonMaxSuppression`` per class. Its outputs are ``boxes`` (N, K,
4) in pixels, ``scores`` (N, C, K) and ``selected`` (M, 3) int64 rows (image, class, box), ONNX's own
detection format. ONNX's NMS has no top-k before suppression, so where ``Postprocess.pre_nms_top_k`` binds
the host path keeps fewer candidates.
"""

from __future__ import annotations

import numpy as np

from cnngraph.detection.anchors import SSD_VARIANCES
from cnngraph.detection.predict import SSD_OUTPUTS, YOLO_OUTPUTS, class_count
from cnngraph.errors import GraphError
from cnngraph.ir import Graph

OUTPUTS = ("boxes", "scores", "selected")


def with_nms(graph: Graph, iou_threshold: float = 0.45, score_threshold: float = 0.01,
             max_per_class: int = 100) -> Graph:
    """A verified copy of detector ``graph`` whose outputs are ``boxes``, ``scores`` and NMS's ``selected``."""
    names = set(graph.outputs)
    if len(graph.inputs) != 1 or not (SSD_OUTPUTS <= names or YOLO_OUTPUTS <= names):
        raise GraphError(f"{graph.name}: detections inside the graph are built for SSD (outputs 'loc', 'conf', "
                         f"'anchors') and YOLO v1 (outputs 'boxes', 'classes'); this one has {graph.outputs}")
    g = graph.copy()
    height, width = next(iter(g.inputs.values())).shape[2:]
    g.append_constant("post.image_size", np.array([width, height, width, height], np.float32))
    pixels, per_box = _yolo(g, width, height) if YOLO_OUTPUTS <= names else _ssd(g, class_count(graph))
    g.outputs = [v for v in g.outputs if v not in OUTPUTS]  # YOLO's own 'boxes' is renamed below
    clip_to_image(g, pixels, "post.image_size", "boxes")
    g.append("scores", "Transpose", [per_box], perm=(0, 2, 1))
    g.append("selected", "NonMaxSuppression", ["boxes", "scores"], max_output_boxes_per_class=max_per_class,
         iou_threshold=iou_threshold, score_threshold=score_threshold, center_point_box=0)
    g.outputs = list(OUTPUTS)
    g.name = f"{graph.name}_nms"
    return g.verify()


def clip_to_image(g: Graph, boxes: str, image_size: str, name: str) -> str:
    """Corner ``boxes`` clipped into the image: at most the (W, H, W, H) constant ``image_size``, at least 0."""
    return g.append(name, "ReLU", [g.append(f"{name}.inside", "Min", [boxes, image_size])])


def _ssd(g: Graph, classes: int) -> tuple[str, str]:
    """(N, A, 4) pixel boxes and (N, A, C) object-class probabilities of an SSD graph."""
    decoded = g.append("post.decoded", "BoxDecode", ["loc", "anchors"], variances=SSD_VARIANCES)
    pixels = g.append("post.pixels", "Mul", [decoded, "post.image_size"])
    probabilities = g.append("post.softmax", "Softmax", ["conf"], axis=2)
    objects = g.append("post.objects", "Slice", [probabilities], axes=(2,), starts=(1,), ends=(classes + 1,),
                   steps=(1,))
    return pixels, objects


def _yolo(g: Graph, width: int, height: int) -> tuple[str, str]:
    """(N, S*S*B, 4) pixel boxes and (N, S*S*B, C) class-specific confidences of a YOLO v1 graph."""
    _rename_output(g, "boxes", "post.predicted")
    _, s, _, b, _ = g.type_of("post.predicted").shape
    classes = g.type_of("classes").shape[-1]
    cols, rows = np.meshgrid(np.arange(s), np.arange(s))
    g.append_constant("post.cells", np.stack([cols, rows], axis=-1)[:, :, None, :].astype(np.float32))  # (S, S, 1, 2)
    g.append_constant("post.cell_size", np.array([width / s, height / s], np.float32))
    g.append_constant("post.image_wh", np.array([width, height], np.float32))
    g.append_constant("post.half", np.array(0.5, np.float32))
    g.append_constant("post.minus_half", np.array(-0.5, np.float32))  # the IR subtracts by adding a negation
    offsets, roots, confidence = (
        g.append(f"post.{what}", "Slice", ["post.predicted"], axes=(4,), starts=(lo,), ends=(hi,), steps=(1,))
        for what, lo, hi in (("offsets", 0, 2), ("roots", 2, 4), ("confidence", 4, 5)))
    in_image = g.append("post.in_image", "Add", [offsets, "post.cells"])
    centre = g.append("post.centre", "Mul", [in_image, "post.cell_size"])
    size = g.append("post.size", "Mul", [g.append("post.squared", "Mul", [roots, roots]), "post.image_wh"])
    back = g.append("post.back", "Mul", [size, "post.minus_half"])
    ahead = g.append("post.ahead", "Mul", [size, "post.half"])
    corners = g.append("post.corners", "Concat", [g.append("post.top_left", "Add", [centre, back]),
                                                  g.append("post.bottom_right", "Add", [centre, ahead])], axis=4)
    pixels = g.append("post.pixels", "Reshape", [corners], shape=(s * s * b, 4))
    per_cell = g.append("post.per_cell", "Reshape", ["classes"], shape=(s, s, 1, classes))
    scores = g.append("post.class_confidence", "Mul", [confidence, per_cell])
    return pixels, g.append("post.per_box", "Reshape", [scores], shape=(s * s * b, classes))


def _rename_output(g: Graph, old: str, new: str) -> None:
    """Give graph output ``old`` (a node) the name ``new``, so the post-processing's own output can take it."""
    node = g.node(old)
    g.remove_node(old)
    node.name = new
    g.add_node(node)
    g.replace_uses(old, new)
    g.toposort()
