"""The R-CNN family's post-processing inside its graph, so one exported ONNX file goes from pixels (and, for
R-CNN and Fast R-CNN, proposals) to detections.

``with_nms`` appends, from standard ops:
- Faster R-CNN only, the proposals: the RPN's two-class softmax, its deltas decoded against the anchors (a
  constant), clipped to the image, ONNX ``NonMaxSuppression`` per image at IoU 0.7 keeping the
  ``post_nms`` best, and the kept boxes gathered into regions ``rois`` (R, 5) rows (image, x1, y1, x2, y2)
  that replace the graph's ``rois`` input. R is the NMS's count, the dimension ``selected_proposals``.
- the RoI head's class-specific deltas decoded against each region with the variances the training
  targets use (``targets.rcnn_targets``), clipped; the class softmax; background dropped;
- per-class ``NonMaxSuppression``. ONNX's NMS shares one box list between classes, so it runs with the
  classes on its batch axis, (C, R, 4) boxes and (C, 1, R) scores, each image's boxes shifted past the
  others' so that images never suppress each other (torchvision's ``batched_nms`` trick).

Outputs: ``boxes`` (R, C, 4) in pixels and ``scores`` (R, C), per region and object class; ``selected``
(M, 3) int64 rows (image, class, region): detection i is ``boxes[region, class]`` scoring ``scores[region,
class]``, rows ordered by class, then descending score. Faster R-CNN also outputs its proposals ``rois``.
The graph's other outputs follow unchanged: a mask head's per-region, per-class masks, computed on the
in-graph proposals, are indexed by ``selected`` the same way.

Boxes under ``min_size`` are scored below NMS's score threshold, so they are never proposals and suppress
nothing, as ``propose`` drops them; where there are more than ``pre_nms`` anchors, TopK and
GatherElements keep each image's best before NMS, as ``propose`` does. One difference from the host path
(``propose`` then per-image NMS): ``max_per_class`` caps a class's detections over the whole batch (the
host's cap is per image: the same at batch 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnngraph.detection.in_graph import clip_to_image
from cnngraph.detection.targets import RCNN_VARIANCES
from cnngraph.errors import GraphError
from cnngraph.ir import Graph

HEAD_OUTPUTS = {"cls_score", "bbox_pred"}
RPN_OUTPUTS = {"rpn_logits", "rpn_deltas"}
DROPPED = -1.0  # the proposal score of a box under the minimum size: NMS keeps only scores above DROPPED / 2.
# It must stay -1: a kept box's score is objectness * big + (big + DROPPED), its objectness exactly where big is 1.
PROPOSALS = "proposals"  # the proposal NMS node; its count is the region dimension of Faster R-CNN's outputs


def is_two_stage(output_names) -> bool:
    return HEAD_OUTPUTS <= set(output_names)


@dataclass(frozen=True)
class ProposalSettings:
    """Faster R-CNN's in-graph proposals; the anchors must be those the model was built with."""

    pre_nms: int = 6000  # the best-scored anchors per image that NMS sees (all, where there are fewer)
    post_nms: int = 300
    iou_threshold: float = 0.7
    min_size: float = 1.0  # pixels, after clipping: narrower or shorter boxes are no proposals (0: keep all)
    anchor_sizes: Sequence[float] | None = None  # None: models.faster_rcnn's defaults
    anchor_ratios: Sequence[float] | None = None


def with_nms(graph: Graph, iou_threshold: float = 0.5, score_threshold: float = 0.05, max_per_class: int = 100,
             proposals: ProposalSettings = ProposalSettings()) -> Graph:
    """A verified copy of an R-CNN, Fast R-CNN or Faster R-CNN ``graph`` whose outputs are ``boxes``,
    ``scores`` and NMS's ``selected`` (and Faster R-CNN's ``rois``), then the graph's outputs beyond its heads."""
    if not is_two_stage(graph.outputs) or "rois" not in graph.inputs or "image" not in graph.inputs:
        raise GraphError(f"{graph.name}: detections inside the graph are built for the R-CNN family (inputs 'image' "
                         f"and 'rois', outputs 'cls_score' and 'bbox_pred'); this one has inputs "
                         f"{list(graph.inputs)} and outputs {graph.outputs}")
    g = graph.copy()
    height, width = g.inputs["image"].shape[2:]
    g.append_constant("post.image_size", np.array([width, height, width, height], np.float32))
    outputs = ["boxes", "scores", "selected"]
    if RPN_OUTPUTS <= set(graph.outputs):
        _propose(g, proposals)
        outputs.append("rois")
    classes = _decode_head(g)
    _suppress_per_class(g, classes, max(width, height), iou_threshold, score_threshold, max_per_class)
    g.outputs = outputs + [v for v in graph.outputs if v not in HEAD_OUTPUTS | RPN_OUTPUTS]
    g.name = f"{graph.name}_nms"
    return g.verify()


def _propose(g: Graph, settings: ProposalSettings) -> None:
    """Replace input ``rois`` by the RPN's proposals, a node of the same name: (R, 5) rows (image, box)."""
    from cnngraph.models.faster_rcnn import RATIOS, SIZES, anchors

    sizes, ratios = settings.anchor_sizes or SIZES, settings.anchor_ratios or RATIOS
    count = g.type_of("rpn_deltas").shape[1]
    grid = anchors(g, sizes, ratios)
    if len(grid) != count:
        raise GraphError(f"{g.name}: its RPN scores {count} anchors, but anchor sizes {tuple(sizes)} and ratios "
                         f"{tuple(ratios)} make {len(grid)}: pass the ones the model was built with (cnngraph export "
                         f"--anchor-sizes ... --anchor-ratios ...)")
    g.append_constant("proposals.anchors", grid.astype(np.float32))
    softmax = g.append("proposals.softmax", "Softmax", ["rpn_logits"], axis=1)
    objectness = g.append("proposals.objectness", "Slice", [softmax], axes=(1,), starts=(1,), ends=(2,))
    decoded = g.append("proposals.decoded", "BoxDecode", ["rpn_deltas", "proposals.anchors"])
    boxes = clip_to_image(g, decoded, "post.image_size", "proposals.boxes")
    scores, floor = objectness, -float("inf")
    if settings.min_size > 0:
        scores, floor = _small_ones_dropped(g, boxes, objectness, settings.min_size), DROPPED / 2
    if settings.pre_nms < count:
        boxes, scores = _best_only(g, boxes, scores, settings.pre_nms)
    kept = g.append(PROPOSALS, "NonMaxSuppression", [boxes, scores], max_output_boxes_per_class=settings.post_nms,
                    iou_threshold=settings.iou_threshold, score_threshold=floor)
    image, box = (g.append(f"proposals.{what}", "Slice", [kept], axes=(1,), starts=(col,), ends=(col + 1,))
                  for what, col in (("image", 0), ("box", 2)))
    where = g.append("proposals.where", "Concat", [image, box], axis=1)
    corners = g.append("proposals.corners", "GatherND", [boxes, where])
    del g.inputs["rois"]
    g.append("rois", "Concat", [g.append("proposals.batch_index", "Cast", [image], to="float32"), corners], axis=1)
    g.toposort()
    g.retyped()  # the head's regions are now counted by the NMS


def _small_ones_dropped(g: Graph, boxes: str, objectness: str, min_size: float) -> str:
    """(N, 1, K) objectness with boxes narrower or shorter than ``min_size`` scored DROPPED, below any
    objectness: ``big * objectness + (big - 1)``, exact where ``big`` is 1."""
    g.append_constant("proposals.min_size", np.array(min_size, np.float32))
    g.append_constant("proposals.dropped", np.array(DROPPED, np.float32))
    by_coordinate = g.append("proposals.by_coordinate", "Transpose", [boxes], perm=(0, 2, 1))
    low, high = (g.append(f"proposals.{what}", "Slice", [by_coordinate], axes=(1,), starts=(lo,), ends=(lo + 2,))
                 for what, lo in (("low", 0), ("high", 2)))
    size = g.append("proposals.size", "Add", [high, g.append("proposals.minus_low", "Neg", [low])])
    wide = g.append("proposals.wide_enough", "GreaterOrEqual", [size, "proposals.min_size"])
    big = g.append("proposals.big_enough", "ReduceMin", [wide], axes=(1,))
    return g.append("proposals.scores", "Add", [g.append("proposals.kept_scores", "Mul", [objectness, big]),
                                                 g.append("proposals.drop", "Add", [big, "proposals.dropped"])])


def _best_only(g: Graph, boxes: str, scores: str, k: int) -> tuple[str, str]:
    """The ``k`` best-scored of each image's (N, K, 4) boxes and (N, 1, K) scores, best first."""
    best = g.append("proposals.best", "TopK", [scores], k=k, axis=2)
    per_coordinate = g.append("proposals.best_per_coordinate", "Tile",
                              [g.append("proposals.best_column", "Transpose", [best], perm=(0, 2, 1))], repeats=(1, 4))
    return (g.append("proposals.best_boxes", "GatherElements", [boxes, per_coordinate], axis=1),
            g.append("proposals.best_scores", "GatherElements", [scores, best], axis=2))


def _decode_head(g: Graph) -> int:
    """``boxes`` (R, C, 4): every object class's deltas decoded against its region, clipped; ``scores`` (R, C).
    Returns C, the object classes (background not counted)."""
    classes = g.type_of("cls_score").shape[1]
    if g.type_of("bbox_pred").shape[1:] != (4 * classes,):
        raise GraphError(f"{g.name}: bbox_pred should hold 4 deltas for each of the {classes} classes of cls_score, "
                         f"found shape {g.type_of('bbox_pred').shape}")
    per_class = g.append("post.deltas", "Reshape", ["bbox_pred"], shape=(classes, 4))
    objects = g.append("post.object_deltas", "Slice", [per_class], axes=(1,), starts=(1,), ends=(classes,))
    region = g.append("post.region", "Slice", ["rois"], axes=(1,), starts=(1,), ends=(5,))
    region = g.append("post.region_per_class", "Tile",
                      [g.append("post.region_row", "Reshape", [region], shape=(1, 4))], repeats=(classes - 1, 1))
    decoded = g.append("post.decoded", "BoxDecode", [objects, region], variances=RCNN_VARIANCES)
    clip_to_image(g, decoded, "post.image_size", "boxes")
    softmax = g.append("post.softmax", "Softmax", ["cls_score"], axis=1)
    g.append("scores", "Slice", [softmax], axes=(1,), starts=(1,), ends=(classes,))
    return classes - 1


def _suppress_per_class(g: Graph, classes: int, extent: int, iou_threshold: float, score_threshold: float,
                        max_per_class: int) -> None:
    """``selected`` (M, 3) rows (image, class, region) of per-class NMS, images kept apart by shifting each
    image's boxes ``extent + 1`` pixels per image index past the previous one's."""
    image = g.append("post.image", "Slice", ["rois"], axes=(1,), starts=(0,), ends=(1,))
    g.append_constant("post.image_stride", np.array(extent + 1, np.float32))
    shift = g.append("post.shift", "Reshape", [g.append("post.image_offset", "Mul", [image, "post.image_stride"])],
                     shape=(1, 1))
    apart = g.append("post.apart", "Add", ["boxes", shift])
    by_class = g.append("post.boxes_by_class", "Transpose", [apart], perm=(1, 0, 2))
    column = g.append("post.score_column", "Reshape", ["scores"], shape=(classes, 1))
    scores_by_class = g.append("post.scores_by_class", "Transpose", [column], perm=(1, 2, 0))
    kept = g.append("post.nms", "NonMaxSuppression", [by_class, scores_by_class],
                    max_output_boxes_per_class=max_per_class, iou_threshold=iou_threshold,
                    score_threshold=score_threshold)
    label, region = (g.append(f"post.kept_{what}", "Slice", [kept], axes=(1,), starts=(col,), ends=(col + 1,))
                     for what, col in (("class", 0), ("region", 2)))
    of_region = g.append("post.kept_image", "GatherND", [image, region])
    g.append("selected", "Concat", [g.append("post.kept_image_index", "Cast", [of_region], to="int64"), label, region],
             axis=1)
