"""`cnngraph export MODEL -o model.onnx`: write standard ONNX, checked by onnx.checker, optionally verified."""

from pathlib import Path

from cnngraph.cli.common import (add_backend_arg, add_model_args, add_threads_arg, add_weights_arg, apply_weights,
                                 console, load)
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
    add_backend_arg(p, "verify against (with --verify)")
    add_threads_arg(p)


def run(args) -> None:
    from cnngraph.backends.onnx_export import export
    from cnngraph.backends.onnx_verify import verify

    graph = apply_weights(load(args), args)
    if args.nms:
        from cnngraph.detection import in_graph, in_graph_rcnn

        graph = (in_graph_rcnn if in_graph_rcnn.is_two_stage(graph.outputs) else in_graph).with_nms(graph)
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
