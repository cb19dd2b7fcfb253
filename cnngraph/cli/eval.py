"""`cnngraph eval MODEL --data DATA`: score a detector on a detection set's held-out split.

Prints each class's AP at IoU 0.5 (Pascal VOC's all-point AP) and averaged over IoU 0.50:0.95
(COCO's), then both means. DATA is 'digit-detection' (the shipped digits on canvases), a Pascal VOC
folder or a COCO instances .json.
"""

from __future__ import annotations

from rich.table import Table

from cnngraph.cli.common import (add_backend_arg, add_model_args, add_threads_arg, add_weights_arg, apply_weights,
                                 console, load, positive)

HELP = "score a detector (YOLO, SSD, the R-CNN family) in VOC mAP@0.5 and COCO mAP@[.5:.95] on a detection set"


def add_arguments(p) -> None:
    add_model_args(p)
    add_weights_arg(p)
    p.add_argument("--data", default="digit-detection",
                   help="'digit-detection' (generated from the shipped digits), a Pascal VOC folder or a COCO "
                   "instances .json (default digit-detection)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated digit-detection set (default 0)")
    p.add_argument("--batch", type=positive, default=32, help="images per run (default 32)")
    add_backend_arg(p)
    add_threads_arg(p)


def run(args) -> None:
    import cnngraph
    from cnngraph.train.data.detection import load_detection
    from cnngraph.train.detection_recipes import recipe_for
    from cnngraph.train.detection_train import evaluate

    graph = apply_weights(load(args), args)
    recipe = recipe_for(graph)
    shape = next(iter(graph.inputs.values())).shape[1:]
    splits = load_detection(args.data, shape, seed=args.seed)
    model = cnngraph.compile(graph, backend=args.backend)
    voc, coco, *mask = evaluate(model, recipe, splits.test, args.batch)
    table = Table("class", "AP@0.5 (VOC)", "AP@[.5:.95] (COCO)", title=f"{graph.name} on {splits.source}, "
                  f"{len(splits.test)} test images")
    for (name, ap50), (_, ap) in zip(voc.table(splits.test.classes), coco.table(splits.test.classes)):
        table.add_row(name, _fmt(ap50), _fmt(ap))
    table.add_row("mean", _fmt(voc.mean), _fmt(coco.mean), style="bold")
    console.print(table)
    masks = f", COCO mask mAP@[.5:.95] {mask[0].mean:.4f}" if mask else ""
    console.print(f"mAP@0.5 {voc.mean:.4f}, COCO mAP@[.5:.95] {coco.mean:.4f}{masks}")


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"  # NaN: a class with no truths in the test split
