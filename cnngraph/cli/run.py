"""`cnngraph run MODEL`: build, compile and run on random input, a .npy array or a photo.

A photo (.jpg, .png, ...) is prepared as the model's training images were, when the model records it
(``cnngraph train`` does: grayscale or RGB, size, mean/std), and with torchvision's ImageNet preprocessing
otherwise. Classifiers print their top-5 classes, by the names the model records (ImageNet's for 1,000
classes otherwise); segmentation models (N, C, H, W outputs) write a colour-coded mask PNG. A model whose
weights are a random initialisation says so. ``--exit K`` runs an any-time network only as far as its K-th
output needs.
"""

import time
from pathlib import Path

import numpy as np

from cnngraph.cli.common import (add_backend_arg, add_dtype_arg, add_model_args, add_threads_arg, add_weights_arg,
                                 apply_weights, console, load, positive)
from cnngraph.errors import CnnGraphError
from cnngraph.imagenet import is_image, top_classes
from cnngraph.types import BATCH
from cnngraph.limits import array_bytes, check_bytes
from cnngraph.model_info import info_of
from cnngraph.npzfile import read_npy
from cnngraph.ops.base import fmt_shape
from cnngraph.probes import random_inputs

HELP = "build, compile and run a model on random input, a .npy array or a photo"


def add_arguments(p) -> None:
    add_model_args(p)
    add_weights_arg(p)
    p.add_argument("--batch", type=positive,
                   help="batch size for random input (default 1); --input runs its own batch (1 for a photo)")
    p.add_argument("--input", help="a .npy array shaped like the model input, or a photo (.jpg, .png, ...)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random input (default 0)")
    add_backend_arg(p)
    add_dtype_arg(p)
    add_threads_arg(p)
    p.add_argument("--check", action="store_true",
                   help="prove the passes and the backend node by node against the NumPy float64 reference")
    p.add_argument("--exit", type=positive, metavar="K",
                   help="compute only output K (1-based): an any-time network's K-th exit")
    p.add_argument("--mask", metavar="PNG",
                   help="segmentation mask file (default with a photo: <photo name>_mask.png here)")
    p.add_argument("--boxes", metavar="PNG",
                   help="detectors (YOLO, SSD, the R-CNN family): draw the labelled boxes found on the input into "
                   "this PNG")
    p.add_argument("--min-score", type=float, default=0.3,
                   help="with --boxes: draw detections scoring at least this (default 0.3)")
    p.add_argument("-o", "--output", help="write the output to this .npy (.npz for several outputs)")


def run(args) -> None:
    import cnngraph
    from cnngraph.train.detection_recipes import recipe_for

    graph = apply_weights(load(args), args)
    if args.exit:
        graph = _exit(graph, args.exit)
    t0 = time.perf_counter()
    model = cnngraph.compile(graph, backend=args.backend, dtype=args.dtype, check=args.check)
    t1 = time.perf_counter()
    feeds = _inputs(graph, args)
    recipe = recipe_for(graph) if args.boxes else None
    if recipe is not None:  # a two-stage detector's regions come from its proposals, not from --input
        feeds = recipe.feeds(model, feeds[recipe.image_input])
    outputs = model.run(feeds, to_host=True)
    t2 = time.perf_counter()
    batch = next(iter(feeds.values())).shape[0]
    if args.input and args.batch not in (None, batch):  # --batch sizes random input only; say so rather than ignore it
        console.print(f"--batch {args.batch} sizes random input only: --input {args.input} runs as batch {batch}")
    console.print(f"{graph.name}: compiled in {1e3 * (t1 - t0):.1f} ms, ran batch {batch} in {1e3 * (t2 - t1):.1f} ms "
                  f"on {args.backend} ({args.dtype})")
    if args.check:
        node, err = max(model.check_errors, key=lambda e: e[1], default=("-", 0.0))
        console.print(f"check: every pass and every layer within tolerance of the NumPy float64 reference; "
                      f"largest relative error {err:.2g} at '{node}'")
    info = info_of(graph)
    _say_weights(info)
    for name, out in outputs.items():
        console.print(f"output '{name}': shape {tuple(out.shape)}")
        if out.ndim == 2 and out.shape[1] >= 2 and graph.type_of(name).shape[0] == BATCH:  # not per region or box
            _print_top(out, info.classes)
    masks = [out for name, out in outputs.items()  # per-pixel class scores of each image, not per-region maps
             if out.ndim == 4 and out.shape[1] > 1 and graph.type_of(name).shape[0] == BATCH
             and recipe is None]  # a detector's 4-D outputs are per cell (YOLO's classes); its masks go to --boxes
    mask_path = args.mask or (f"{Path(args.input).stem}_mask.png" if args.input and is_image(args.input) else None)
    if masks and mask_path:
        _write_masks(masks[0], mask_path)
    if recipe is not None:
        _write_boxes(recipe, model, feeds, outputs, args.boxes, args.min_score)
    if args.output:
        _save_outputs(args.output, outputs)


def _say_weights(info) -> None:
    """Where the weights came from, so that a random model's confident classes are not taken for predictions."""
    source = f" ({info.source})" if info.source else ""
    if info.weights == "random":
        console.print(f"weights: random initialisation{source}, so the classes below mean nothing; "
                      "--weights FILE loads trained ones")
    elif info.weights is None:
        console.print("weights: origin not recorded in this model (trained, imported or random is unknown)")
    else:
        console.print(f"weights: {info.weights}{source}")


def _exit(graph, k: int):
    from cnngraph.subgraph import keep_outputs

    if k > len(graph.outputs):
        raise CnnGraphError(f"--exit {k}: model '{graph.name}' has {len(graph.outputs)} output(s), exits 1 to "
                            f"{len(graph.outputs)}")
    kept = keep_outputs(graph, [graph.outputs[k - 1]])
    console.print(f"exit {k} of {len(graph.outputs)}: computing {len(kept.nodes)} of {len(graph.nodes)} layers")
    return kept


def _print_top(out, names) -> None:
    k = min(5, out.shape[1])
    for i, row in enumerate(out):
        console.print(f"  sample {i}: top-{k} " + ", ".join(f"{label} ({p:.3f})" for label, p in
                                                          top_classes(row, names, k)), markup=False, highlight=False)


def _inputs(graph, args) -> dict:
    if args.input:
        name, t = next(iter(graph.inputs.items()))
        if args.boxes and is_image(args.input):  # a detector sees the photo as it trained: resized, in [0, 1]
            from cnngraph.train.data.detection import read_resized

            return {name: read_resized(Path(args.input), t.shape[1:], f"--input {args.input}")[0][None]}
        if len(graph.inputs) != 1:
            raise CnnGraphError(f"--input takes one array; the model has inputs {list(graph.inputs)}")
        return {name: _photo(args.input, t, info_of(graph)) if is_image(args.input) else _array(args.input)}
    rng, batch = np.random.default_rng(args.seed), args.batch or 1
    for name, t in graph.inputs.items():
        check_bytes(array_bytes(t.concrete(batch), 4), f"random input '{name}' {t.concrete(batch)}")
    return random_inputs(graph, batch, rng, np.float32)


def _photo(path: str, t, info):
    from cnngraph.photo import prepare_photo

    if t.rank != 4:
        raise CnnGraphError(f"--input {path}: a photo needs a model taking (N, C, H, W) images; this one takes "
                            f"{fmt_shape(t.shape)}")
    x, how = prepare_photo(path, t.shape[1:], info)
    console.print(f"photo {Path(path).name}: {how}", markup=False, highlight=False)
    return x


def _array(path: str):
    if not Path(path).is_file():
        raise CnnGraphError(f"--input {path}: no such file")
    if path.endswith(".npz"):
        raise CnnGraphError(f"--input {path}: an .npz archive; give one array as .npy")
    return read_npy(path, CnnGraphError)  # never pickle, header checked before the data is read


def _write_masks(scores, path: str) -> None:
    from cnngraph.masks import write_mask

    p = Path(path)
    paths = [p] if len(scores) == 1 else [p.with_name(f"{p.stem}_{i}{p.suffix}") for i in range(len(scores))]
    for sample, target in zip(scores, paths):
        write_mask(sample, str(target))
        console.print(f"wrote mask {target} ({sample.shape[0]} classes, {sample.shape[1]}x{sample.shape[2]})")


def _write_boxes(recipe, model, feeds: dict, outputs: dict, path: str, min_score: float) -> None:
    """Detections of the first image, drawn on it (enlarged to at least 256 pixels) and listed; Mask R-CNN's
    with their masks (one more run: the mask branch on the detections)."""
    from cnngraph.detection.drawing import draw_boxes
    from cnngraph.detection.predict import Postprocess
    from cnngraph.io import atomic_write_bytes

    image = feeds[recipe.image_input][0]
    found = recipe.refine(model, feeds, recipe.decode(outputs, feeds, Postprocess(score_threshold=min_score)))[0]
    picture = draw_boxes(image, found, scale=max(1, -(-256 // max(image.shape[1:]))))
    buf = __import__("io").BytesIO()
    picture.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    for box, score, label in zip(*found[:3]):
        console.print(f"  class {int(label)} score {float(score):.3f} box ({', '.join(f'{v:.1f}' for v in box)})")
    console.print(f"wrote {path}: {len(found[0])} boxes scoring above {min_score:g} on the first image")


def _save_outputs(path: str, outputs: dict) -> None:
    import io as _io

    from cnngraph.io import atomic_write_bytes

    buf = _io.BytesIO()
    if len(outputs) == 1:
        np.save(buf, next(iter(outputs.values())))
    else:
        np.savez(buf, **outputs)
    atomic_write_bytes(path, buf.getvalue())
    console.print(f"wrote {path}")
