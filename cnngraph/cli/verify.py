"""`cnngraph verify MODEL a.png b.png`: do two images show the same identity? Prints the distance between
their L2-normalised embeddings and "same" or "different" at the model's threshold.

MODEL is the run folder of `cnngraph train ... --task verify` (or its embedding.cng): the threshold chosen
on held-out pairs and the training images' standardisation come from its verification.json. Any other
model (zoo name, .cng, .onnx) verifies with the features its last Linear layer reads (or --embedding
LAYER) and needs --threshold; its images are standardised only to 0..1.
"""

from __future__ import annotations

import json
from pathlib import Path

from cnngraph.cli.common import add_backend_arg, add_model_args, console, load
from cnngraph.errors import CnnGraphError
from cnngraph.limits import read_bounded

HELP = "tell whether two images show the same identity, by embedding distance"


def add_arguments(p) -> None:
    add_model_args(p)
    p.add_argument("images", nargs=2, metavar="IMAGE", help="the two images to compare")
    p.add_argument("--threshold", type=float, help="call a pair 'same' at or below this distance "
                   "(default: the one saved with a verify run)")
    p.add_argument("--embedding", metavar="LAYER", help="the layer whose output is the embedding (default: "
                   "the input of the last Linear layer; a verify run's embedding.cng is used as it is)")
    add_backend_arg(p, "embed on")


def _settings(model: str) -> tuple[Path | None, dict]:
    """A verify run's embedding.cng and its verification.json, when MODEL names the run or that file."""
    from cnngraph.verification.task import EMBEDDING, SETTINGS

    path = Path(model)
    folder = path if path.is_dir() else path.parent if path.name == EMBEDDING else None
    if folder is None:
        return None, {}
    if not (folder / SETTINGS).is_file() or not (folder / EMBEDDING).is_file():
        raise CnnGraphError(f"{model}: not a verification run (expected {EMBEDDING} and {SETTINGS}, written by "
                            f"`cnngraph train MODEL --task verify --train-classes LIST`)")
    try:
        settings = json.loads(read_bounded(folder / SETTINGS))
        mean, std, threshold = settings["mean"], settings["std"], float(settings["threshold"])
    except (ValueError, KeyError, TypeError) as e:
        raise CnnGraphError(f"{folder / SETTINGS}: unreadable verification settings ({type(e).__name__}: {e})") from None
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std)
            and all(isinstance(v, (int, float)) for v in mean + std) and min(std, default=1) > 0):
        raise CnnGraphError(f"{folder / SETTINGS}: 'mean' and 'std' must be equal-length lists of numbers, std > 0")
    return folder / EMBEDDING, {"mean": mean, "std": std, "threshold": threshold}


def run(args) -> None:
    import numpy as np

    from cnngraph import io
    from cnngraph.errors import DataError
    from cnngraph.train.data.folder import decode
    from cnngraph.train.data.transforms import Normalize
    from cnngraph.verification.embedding import embedding_graph
    from cnngraph.verification.task import embedder

    embedding_file, saved = _settings(args.model)
    if embedding_file is not None and args.embedding:
        raise CnnGraphError(f"{args.model} is a verify run: its embedding is fixed; --embedding applies to other models")
    graph = io.load(embedding_file) if embedding_file else embedding_graph(load(args), args.embedding)
    threshold = args.threshold if args.threshold is not None else saved.get("threshold")
    if threshold is None:
        raise CnnGraphError(f"{args.model} has no saved threshold: give --threshold, or a run folder of "
                            f"`cnngraph train ... --task verify`")
    shape = next(iter(graph.inputs.values())).shape[1:]
    channels = shape[0]
    normalize = Normalize(saved.get("mean", [0.0] * channels), saved.get("std", [1.0] * channels))
    if len(normalize.mean) != channels:
        raise DataError(f"{args.model}: verification.json standardises {len(normalize.mean)} channels, the model "
                        f"takes {channels}")
    images = np.stack([decode(Path(p), shape) for p in args.images])
    a, b = embedder(graph, normalize, args.backend)(images)
    distance = float(np.linalg.norm(a - b))
    verdict = "same" if distance <= threshold else "different"
    console.print(f"distance {distance:.4f}: {verdict} (threshold {threshold:.4f})")
