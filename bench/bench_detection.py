"""Detectors on digit-detection: VOC mAP@0.5 reached against wall time, on this machine.

    python bench/bench_detection.py [--models ssd_small yolo_v1_small] [--budget 900] [--train 2000] [--test 400]
                                    [--epochs N] [--batch N] [--lr LR] [--save DIR]

Any detector the training recipes know runs: the one-stage ``ssd_small`` and ``yolo_v1_small`` and the
two-stage ``fast_rcnn_small``, ``faster_rcnn_small``, ``mask_rcnn_small`` and ``rcnn_small`` (whose whole
AlexNet per region makes it the slowest by far: give it a small ``--train`` and ``--test``).

Each model trains as ``cnngraph train MODEL --data digit-detection`` does: its measured defaults
(``cnngraph.train.detection_defaults``: optimizer, learning rate, schedule, batch, augmentation; a cosine
schedule over 30 epochs with Adam at 1e-3 where it has none), ``--epochs``, ``--batch`` and ``--lr``
overriding them, on ``--train`` generated canvases (64x64, up to 4 digits, seed 0), scored on the ``--test``
held-out canvases after every epoch; a model stops at the first epoch end past ``--budget`` seconds. Prints
one row per epoch (wall seconds since its start, training loss, mAP@0.5, COCO mAP, and COCO mask mAP for
Mask R-CNN) and a summary: the best mAP@0.5 and when it was reached, and the trained network's inference
images/s at batch ``--infer-batch`` against onnxruntime on its exported file, in one run
(``cnngraph.benchmark.bench``, as ``cnngraph bench`` times it: the network without its post-processing; the
R-CNN family's networks take the proposals as a ``rois`` input and are not timed). The aim in issue 15 is 0.9 within 15 minutes. Wall time includes evaluation. A benchmark,
not a test: say what else ran on the machine when quoting it (``os.getloadavg`` is printed).
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console
from rich.table import Table

import cnngraph.io
from cnngraph import models
from cnngraph.benchmark import bench
from cnngraph.train import TrainConfig
from cnngraph.train.data import detection_digits
from cnngraph.train.data.detection import DetectionSplits, with_channels
from cnngraph.train.detection_defaults import detection_defaults
from cnngraph.train.detection_train import DetectionTrainer

FALLBACK = {"epochs": 30, "batch": 32, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "cosine"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ssd_small", "yolo_v1_small"])
    parser.add_argument("--budget", type=float, default=900.0, help="seconds per model (default 900)")
    parser.add_argument("--train", type=int, default=2000, help="training canvases (default 2000)")
    parser.add_argument("--test", type=int, default=400, help="held-out canvases scored each epoch (default 400)")
    parser.add_argument("--epochs", type=int, help="default: the model's, else 30")
    parser.add_argument("--batch", type=int, help="default: the model's, else 32")
    parser.add_argument("--lr", type=float, help="default: the model's, else 0.001")
    parser.add_argument("--save", metavar="DIR", help="write each trained model to DIR/<model>.cng")
    parser.add_argument("--infer-batch", type=int, default=8, help="batch of the inference timing (default 8)")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 130)  # the summary's nine columns, in a log too
    data = detection_digits.load(size=(64, 64), n_train=args.train, n_test=args.test)
    splits = DetectionSplits(with_channels(data.train, 3, "bench"), with_channels(data.test, 3, "bench"), data.source)
    console.print(f"{splits.source}: {len(splits.train)} train / {len(splits.test)} test; "
                  f"load average before: {os.getloadavg()}")
    summary = Table("model", "params", "best mAP@0.5", "at s", "epochs", "img/s", "ORT img/s", "/ ORT", "load after",
                    title=f"inference: batch {args.infer_batch}, against onnxruntime (ORT) on the exported file")
    for name in args.models:
        graph = models.build(name)
        table = Table("epoch", "wall s", "train loss", "mAP@0.5", "COCO mAP", "COCO mask mAP", title=name)
        given = {k: v for k, v in (("epochs", args.epochs), ("batch", args.batch), ("lr", args.lr)) if v is not None}
        config = TrainConfig(**{**FALLBACK, **detection_defaults(name).config, **given})

        def report(row, table=table):
            table.add_row(str(row["epoch"]), f"{row['seconds']:.0f}", f"{row['train_loss']:.3f}",
                          f"{row['test_map50']:.3f}", f"{row['test_coco_map']:.3f}",
                          f"{row['test_mask_map']:.3f}" if "test_mask_map" in row else "-")
            console.print(f"{name} epoch {row['epoch']}: {row['seconds']:.0f} s, mAP@0.5 {row['test_map50']:.3f}")

        trainer = DetectionTrainer(graph, splits, config, report=report)
        history = trainer.fit(time_budget=args.budget)
        trained = trainer.trained_graph()
        if args.save:
            os.makedirs(args.save, exist_ok=True)
            cnngraph.io.save(trained, os.path.join(args.save, f"{name}.cng"))
        console.print(table)
        best = max(history, key=lambda r: r["test_map50"])
        summary.add_row(name, f"{graph.param_count():,}", f"{best['test_map50']:.3f}", f"{best['seconds']:.0f}",
                        str(len(history)), *inference(trained, args.infer_batch),
                        " ".join(f"{v:.1f}" for v in os.getloadavg()))
    console.print(summary)


def inference(graph, batch: int) -> tuple[str, str, str]:
    """cnngraph's and onnxruntime's images/s on ``graph`` and their ratio, or dashes for a graph fed regions."""
    if len(graph.inputs) != 1:
        return "-", "-", "-"
    result = bench(graph, batch=batch, repeat=20)
    rates = [result["sides"][side]["images_per_s"] if side in result["sides"] else None
             for side in ("cnngraph", "onnxruntime")]
    ratio = result["ratios"].get("cnngraph/onnxruntime")
    return (*("-" if r is None else f"{r:.0f}" for r in rates), "-" if ratio is None else f"{ratio:.2f}x")


if __name__ == "__main__":
    main()
