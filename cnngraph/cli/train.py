"""`cnngraph train MODEL`: train on a dataset, evaluating each epoch, with checkpoints and exact --resume.

The run folder (--out) gets checkpoint.safetensors, metrics.csv, curves.png and, at the end, model.cng.
--backend and --dtype say where and in what precision it computes (saved with the run, as every setting).
Ctrl-C saves a checkpoint and stops (press it twice to stop without saving); --resume RUNDIR continues
the run with its saved settings: --epochs may change, to extend it; any other option that differs from the
saved run is refused, listed, rather than ignored.
--workers N trains on N local processes through mpiexec (data parallelism, the dist extra); across machines,
run the ranks yourself: mpiexec -n N [--hostfile H] python -m cnngraph train ... (every rank reads --data and,
to resume, the run folder: put them on a shared filesystem). --sync-bn computes BatchNorm statistics over
every rank's shard of the batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from cnngraph.cli.common import (add_model_args, add_threads_arg, add_weights_arg, apply_weights, console, load,
                                 positive, positive_float)
from cnngraph.errors import CnnGraphError

HELP = "train a model on digits, MNIST, CIFAR-10, an image folder or a .npz; a detector on digit-detection, VOC or COCO"


def non_negative(kind):
    """argparse type: a number of ``kind`` (int or float) >= 0."""

    def parse(text: str):
        value = kind(text)
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
        return value

    return parse


def add_arguments(p) -> None:
    add_model_args(p, optional=True)
    add_weights_arg(p)
    add_threads_arg(p)
    from cnngraph.backends.devices import all_backends
    from cnngraph.train.config import LOSSES, SCHEDULES, TrainConfig
    from cnngraph.train.optim import OPTIMIZERS

    d = TrainConfig()
    p.add_argument("--data", help="'digits' (shipped), an MNIST or CIFAR-10 folder, an image "
                   "folder, or a .npz (default digits); for a detector (yolo_v1, ssd) 'digit-detection' (default), "
                   "a Pascal VOC folder or a COCO instances .json")
    p.add_argument("--epochs", type=positive, help=f"epochs to train (default {d.epochs})")
    p.add_argument("--batch", type=positive, help=f"batch size (default {d.batch})")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), help=f"(default {d.optimizer})")
    p.add_argument("--lr", type=non_negative(float), help="learning rate (default sgd 0.05, others 0.001)")
    p.add_argument("--momentum", type=non_negative(float), help="momentum for sgd (default 0.9) and rmsprop (default 0)")
    p.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum (sgd)")
    p.add_argument("--weight-decay", type=non_negative(float),
                   help=f"weight decay, never applied to biases or BatchNorm parameters (default {d.weight_decay})")
    p.add_argument("--schedule", choices=SCHEDULES, help=f"learning-rate schedule (default {d.schedule})")
    p.add_argument("--warmup", type=non_negative(int), help="epochs of linear warm-up (default 0)")
    p.add_argument("--step-epochs", type=positive,
                   help=f"with --schedule step: decay every N epochs (default {d.step_epochs}) ...")
    p.add_argument("--gamma", type=non_negative(float), help=f"... by this factor (default {d.gamma})")
    p.add_argument("--label-smoothing", type=non_negative(float),
                   help=f"cross-entropy label smoothing (default {d.label_smoothing})")
    p.add_argument("--crop", type=non_negative(int), help="random-crop augmentation: pad by N pixels and crop back, "
                   f"0 for none (default {d.crop})")
    p.add_argument("--flip", action="store_true", default=None, help="random horizontal flips (not for digits or text)")
    p.add_argument("--seed", type=int, help="seed for shuffling, augmentation and dropout (default 0)")
    p.add_argument("--freeze-upto", metavar="LAYER", help="freeze LAYER (or scope, e.g. layer3) and all it depends on")
    p.add_argument("--clip-grad-norm", type=positive_float, metavar="MAX",
                   help="scale the gradients down to a total 2-norm of at most MAX (default: no clipping)")
    p.add_argument("--backend", choices=sorted(b.name for b in all_backends()),
                   help=f"where to compute: numpy (CPU), cupy (a CUDA GPU), strict (tests) (default {d.backend})")
    p.add_argument("--dtype", choices=["float32", "float16"],
                   help="float16: half-precision activations with float32 master weights and loss scaling "
                   f"(default {d.dtype})")
    p.add_argument("--prefetch", type=non_negative(int),
                   help=f"batches a background thread prepares and copies to the device ahead of the step "
                   f"(0: none; default {d.prefetch})")
    p.add_argument("--task", choices=["classify", "verify"], help="verify: train on --train-classes only, then "
                   "verify pairs of the other classes (ROC AUC, EER, threshold; files for cnngraph verify) "
                   f"(default {d.task})")
    p.add_argument("--train-classes", metavar="LIST", help="with --task verify: the classes to train on, e.g. 0-6")
    p.add_argument("--embedding", metavar="LAYER", help="with --task verify: the layer whose L2-normalised output "
                   "is the embedding (default: the input of the last Linear layer, F7 in deepface)")
    p.add_argument("--loss", choices=LOSSES, help="with --task verify: triplet (batch-hard) or contrastive trains the "
                   "L2-normalised embedding itself, on batches of --batch / --per-identity identities x --per-identity "
                   f"images each (default {d.loss}: train the classifier, embed with its features)")
    p.add_argument("--margin", type=positive_float,
                   help="the triplet (default 0.2) or contrastive (default 1) loss's margin")
    p.add_argument("--per-identity", type=positive, metavar="K", help="with --loss triplet|contrastive: images of "
                   f"each identity in a batch (default {d.per_identity})")
    p.add_argument("--workers", type=positive, metavar="N",
                   help="data parallelism: N local processes through mpiexec, each on 1/N of every batch "
                   "(the dist extra; across machines: mpiexec -n N [--hostfile H] python -m cnngraph train ...)")
    p.add_argument("--sync-bn", action="store_true", default=None,
                   help="with several workers: BatchNorm statistics over the whole batch, not per worker")
    p.add_argument("--out", metavar="RUNDIR", help="run folder (default runs/<model>-<time>)")
    p.add_argument("--resume", metavar="RUNDIR", help="continue the run saved in RUNDIR")


# Options that make a new run's model and folder; a resumed run has both already.
NEW_RUN_ONLY = ("weights", "num_classes", "input_size", "out")


def run(args) -> None:
    from cnngraph.train.dist import launch

    ranks = launch.world_size()
    if ranks == 1 and (args.workers or 1) > 1:
        if "--workers" not in " ".join(sys.argv):
            raise CnnGraphError("--workers starts the command line again under mpiexec: run it as `cnngraph train`")
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []  # a ./cnngraph folder must not shadow the package
        program = [sys.executable, *safe_path, "-m", "cnngraph", *launch.without_workers(sys.argv[1:])]
        raise SystemExit(launch.run_workers(args.workers, program))
    if args.workers is not None and args.workers != ranks:
        raise CnnGraphError(f"--workers {args.workers}, but mpiexec started {ranks} processes")
    if ranks == 1:
        _train(args, None)
        return
    communicator = _communicator(args)
    try:
        _train(args, communicator)
    except KeyboardInterrupt:  # Ctrl-C: every rank stopped after the same step, rank 0 saved; they end together
        communicator.close()
        raise
    except Exception as e:  # noqa: BLE001 - one rank's error must stop every rank, not leave them waiting
        shown = str(e) if isinstance(e, CnnGraphError) else f"{type(e).__name__}: {e}"
        communicator.fail(f"cnngraph train: error: rank {communicator.rank}: {' '.join(shown.split())}")
    communicator.close()


def _communicator(args):
    """This process's rank; only rank 0 prints. Without --threads, the ranks on a machine share its cores
    (the automatic choice would give every rank's large GEMMs all of them)."""
    from cnngraph.backends.threads import blas
    from cnngraph.train import TrainConfig
    from cnngraph.train.dist import connect, launch

    if args.threads is None:
        blas.configure(launch.cores_per_rank())
    communicator = connect(args.backend or TrainConfig.backend)
    console.quiet = communicator.rank != 0
    return communicator


def _train(args, communicator) -> None:
    trainer = _resumed(args, communicator) if args.resume else _new_run(args, communicator)
    trainer.fit()
    from cnngraph.train.detection_train import DetectionTrainer

    if isinstance(trainer, DetectionTrainer):
        last = trainer.history[-1]
        console.print(f"test mAP@0.5 {last['test_map50']:.4f}, COCO mAP@[.5:.95] {last['test_coco_map']:.4f}; "
                      f"run folder {trainer.rundir}")
        return
    if trainer.config.embeds:
        last = trainer.history[-1]
        console.print(f"{trainer.config.loss} loss {last['train_loss']:.4f}, test {last['test_loss']:.4f}; "
                      f"run folder {trainer.rundir}")
    else:
        best = max(trainer.history, key=lambda r: r["test_acc"])
        console.print(f"test accuracy {trainer.history[-1]['test_acc']:.2%} (best {best['test_acc']:.2%} at epoch "
                      f"{best['epoch']}); run folder {trainer.rundir}")
    if trainer.config.task == "verify":
        from cnngraph.verification.task import finish

        console.print(finish(trainer).summary())


def _settings(args) -> dict:
    """The run settings the user gave on the command line (the options default to None, so absent ones are not
    here); the options are named after TrainConfig's fields."""
    from cnngraph.train import TrainConfig

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(args, f.name, None) is not None}


def _resumed(args, communicator):
    """The saved run, with --epochs applied; any other option that differs from the saved run is refused, listed,
    rather than silently ignored. A detection run's checkpoint resumes as a detection run."""
    from cnngraph.train import Trainer
    from cnngraph.train.detection_train import DetectionTrainer, is_detection_run

    if args.model is not None:
        raise CnnGraphError("--resume continues a saved run: give RUNDIR only, not MODEL")
    given = _settings(args)
    epochs = given.pop("epochs", None)
    if is_detection_run(args.resume):
        if communicator is not None:
            raise CnnGraphError("a detection run trains in one process: drop --workers")
        trainer = DetectionTrainer.resume(args.resume, epochs=epochs, report=_report_epoch)
    else:
        trainer = Trainer.resume(args.resume, epochs=epochs, console=console, communicator=communicator)
    differ = [f"--{_flag(k)} {v} (saved: {getattr(trainer.config, k)})" for k, v in given.items()
              if v != getattr(trainer.config, k)]
    differ += [f"--{_flag(k)}" for k in NEW_RUN_ONLY if getattr(args, k) is not None]
    if differ:
        raise CnnGraphError(f"--resume {args.resume} continues the run with its saved settings (only --epochs may "
                            f"change); these options differ: {', '.join(differ)}. Drop them, or start a new run "
                            f"from the run's model.cng")
    console.print(f"resuming {args.resume} at epoch {trainer.epoch + 1}, step {trainer.step}")
    return trainer


def _detection_run(graph, config, rundir: Path):
    """A detector (YOLO, SSD, the R-CNN family) trains on a detection set (``cnngraph.train.detection_train``),
    with its measured defaults (``cnngraph.train.detection_defaults``) where options are left out."""
    from cnngraph.train.data.detection import load_detection
    from cnngraph.train.detection_train import DetectionTrainer

    shape = next(iter(graph.inputs.values())).shape[1:]
    splits = load_detection(config.data, shape, seed=config.seed)
    console.print(f"{splits.source}: {len(splits.train)} train / {len(splits.test)} test images")
    console.print(f"training {graph.name} for {config.epochs} epochs with {config.optimizer} on {config.backend} "
                  f"into {rundir}")
    return DetectionTrainer(graph, splits, config, rundir, report=_report_epoch)


def _report_epoch(row: dict) -> None:
    terms = "".join(f", {k} {v:.4f}" for k, v in row.items() if k.endswith(("classification", "box", "mask")))
    masks = f", COCO mask mAP {row['test_mask_map']:.4f}" if "test_mask_map" in row else ""
    console.print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f}{terms}, test mAP@0.5 {row['test_map50']:.4f}, "
                  f"COCO mAP {row['test_coco_map']:.4f}{masks}, {row['seconds']:.0f} s")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _model(args, seed: int):
    """The graph to train. A pretrained one (--weights, .cng, .onnx) is built as it was trained, then
    --num-classes swaps its classifier head for a fresh one: the fine-tuning recipe."""
    from cnngraph.train import replace_head

    pretrained = bool(args.weights) or args.model.endswith((".cng", ".onnx"))
    as_built = argparse.Namespace(**{**vars(args), "num_classes": None}) if pretrained else args
    graph = apply_weights(load(as_built), args)
    return replace_head(graph, args.num_classes, seed=seed) if pretrained and args.num_classes else graph


def _check_task(graph) -> None:
    """The datasets `cnngraph train` reads label whole images; a model scoring every pixel needs per-pixel masks,
    so say how to train one instead of failing on a class count."""
    from cnngraph.model_info import task_of
    from cnngraph.ops.base import fmt_shape

    if task_of(graph) == "segmentation":
        out = fmt_shape(graph.type_of(graph.outputs[0]).shape)
        raise CnnGraphError(
            f"{graph.name} is a segmentation model (it scores every pixel: {out}), and `cnngraph train` reads datasets "
            f"with one label per image. Train it in Python on per-pixel masks: model = cnngraph.compile(graph, "
            f"train=True); model.train_step(images, masks, PixelCrossEntropy(), SGD(lr=0.01, momentum=0.9)) with "
            f"masks (N, H, W) of class indices (255: ignored), PixelCrossEntropy and SGD from cnngraph.train")


def _new_run(args, communicator):
    from cnngraph.train import TrainConfig, Trainer, load_dataset
    from cnngraph.train.loop import CHECKPOINT

    if args.model is None:
        raise CnnGraphError("give MODEL to train, or --resume RUNDIR")
    settings = _settings(args)
    config = TrainConfig(**settings)
    if config.task == "verify" and args.num_classes is None:  # a head for the training identities only
        from cnngraph.verification.open_set import parse_classes

        args.num_classes = len(parse_classes(config.train_classes))
    graph = _model(args, config.seed)
    rundir = Path(args.out or f"runs/{graph.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if rundir.exists() and not rundir.is_dir():
        raise CnnGraphError(f"--out {rundir} is a file; a run needs a folder (give a new or existing folder)")
    if (rundir / CHECKPOINT).exists():
        raise CnnGraphError(f"--out {rundir} already holds a run: continue it with --resume {rundir}, or pick another --out")
    from cnngraph.train.detection_recipes import find_recipe

    if find_recipe(graph) is not None:
        if communicator is not None:
            raise CnnGraphError("a detection run trains in one process: drop --workers")
        from cnngraph.train.detection_defaults import detection_defaults

        config = TrainConfig(**{"data": "digit-detection", **detection_defaults(graph.name).config, **settings})
        return _detection_run(graph, config, rundir)
    _check_task(graph)
    shape = next(iter(graph.inputs.values())).shape[1:]
    if config.task == "verify":
        from cnngraph.verification.task import training_graph, verification_splits

        graph = training_graph(graph, config)
        splits = verification_splits(config.data, shape, config.train_classes)[0]
    else:
        splits = load_dataset(config.data, shape)
    console.print(f"{splits.source}: {len(splits.train)} train / {len(splits.test)} test images")
    console.print(f"training {graph.name} for {config.epochs} epochs with {config.optimizer} on {config.backend} "
                  f"({config.dtype}) into {rundir}")
    return Trainer(graph, splits, config, rundir, console=console, communicator=communicator)
