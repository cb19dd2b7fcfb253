"""`cnngraph export MODEL -o model.onnx`: write standard ONNX, checked by onnx.checker, optionally verified."""

from pathlib import Path

from cnngraph.cli.common import (add_backend_arg, add_model_args, add_threads_arg, add_weights_arg, apply_weights,
                                 console, load, positive_float)
from cnngraph.errors import CnnGraphError

HELP = "export a model to ONNX (checked; --verify runs it in onnxruntime)"


def add_arguments(p) -> None:
    from cnngraph.backends.onnx_export import DEFAULT_OPSET, MIN_OPSET

    add_model_args(p)
    add_weights_arg(p)
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, {MIN_OPSET} or later (default {DEFAULT_OPSET})")
    p.add_argument("--training", action="store_true",
                   help="keep BatchNorm in training mode and Dropout active, for fine-tuning elsewhere")
    p.add_argument("--verify", action="store_true",
                   help="run the file in onnxruntime against the cnngraph executor at two batch sizes")
    p.add_argument("--nms", action="store_true",
                   help="detectors: decoding and non-maximum suppression inside the file (outputs boxes in pixels, scores "
                        "and ONNX's selected rows: (image, class, box) for SSD and YOLO v1, (image, class, region) "
                        "for the R-CNN family, whose Faster R-CNN also makes its proposals inside)")
    p.add_argument("--anchor-sizes", type=positive_float, nargs="+", metavar="PIXELS",
                   help="with --nms, Faster R-CNN: the anchor sizes it was built with (default 128 256 512)")
    p.add_argument("--anchor-ratios", type=positive_float, nargs="+", metavar="H/W",
                   help="with --nms, Faster R-CNN: the anchor aspect ratios it was built with (default 0.5 1 2)")
    add_backend_arg(p, "verify against (with --verify)")
    add_threads_arg(p)


def run(args) -> None:
    from cnngraph.backends.onnx_export import export
    from cnngraph.backends.onnx_verify import verify

    graph = apply_weights(load(args), args)
    anchors = {"anchor_sizes": args.anchor_sizes, "anchor_ratios": args.anchor_ratios}
    if args.nms:
        graph = _with_nms(graph, anchors)
    elif any(anchors.values()):
        raise CnnGraphError("--anchor-sizes and --anchor-ratios describe Faster R-CNN's in-graph proposals: add --nms")
    model = export(graph, args.output, opset=args.opset, training=args.training)
    mode = "training" if args.training else "inference"
    console.print(f"wrote {args.output}: {graph.name}, opset {args.opset}, {mode}, {len(model.graph.node)} nodes, "
                  f"{graph.param_count():,} parameters")
    if args.verify:
        try:
            result = verify(graph, args.output, training=args.training, backend=args.backend)
        except CnnGraphError as e:  # a file that failed its check must not look like a good one
            removed = [p for p in (Path(args.output), Path(f"{args.output}.data")) if p.exists()]
            for path in removed:
                path.unlink()
            raise CnnGraphError(f"{e} (removed {', '.join(map(str, removed))})") from None
        console.print(f"verified against onnxruntime on {args.backend}: {result}")


def _with_nms(graph, anchors: dict):
    """The detector with its post-processing inside: the R-CNN family's, or the one-stage detectors'."""
    from cnngraph.detection import in_graph, in_graph_rcnn

    if in_graph_rcnn.is_two_stage(graph.outputs):
        return in_graph_rcnn.with_nms(graph, proposals=in_graph_rcnn.ProposalSettings(**anchors))
    if any(anchors.values()):
        raise CnnGraphError(f"{graph.name}: --anchor-sizes and --anchor-ratios apply to Faster R-CNN; SSD and YOLO "
                            f"carry their boxes in the graph")
    return in_graph.with_nms(graph)
