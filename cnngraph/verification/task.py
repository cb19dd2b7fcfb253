"""``cnngraph train ... --task verify``: what a verification run adds to a classification run.

The classifier trains on the ``--train-classes`` identities only (DeepFace's recipe: learn to tell the
training identities apart), or, with an embedding loss (``--loss triplet|contrastive``), the L2-normalised
embedding itself trains on identity-balanced batches. At the end, the embedding is evaluated on
pairs of the identities it never saw (``open_set``), and the run folder gets what ``cnngraph verify``
needs: ``embedding.cng`` (the embedding graph with the trained weights), ``verification.json`` (the
threshold chosen on held-out pairs, the input standardisation, the figures) and ``roc.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import cnngraph
from cnngraph import io
from cnngraph.io import atomic_write_bytes
from cnngraph.ir import Graph
from cnngraph.train.data import Dataset, Splits, load_dataset
from cnngraph.train.data.transforms import Normalize, to_float
from cnngraph.verification.embedding import OUTPUT, embedding_graph
from cnngraph.verification.open_set import Report, evaluate, parse_classes, split_identities
from cnngraph.verification.plot import write_roc

EMBEDDING, SETTINGS, ROC = "embedding.cng", "verification.json", "roc.png"
TASKS = ("classify", "verify")


def verification_splits(data: str, shape: tuple[int, int, int], train_classes: str) -> tuple[Splits, Dataset]:
    """The training identities' splits, and every image of the identities kept out of training."""
    return split_identities(load_dataset(data, shape), parse_classes(train_classes))


def training_graph(graph, config) -> Graph:
    """What a verify run trains: the classifier (cross-entropy), or its L2-normalised embedding (an embedding loss).
    Either way a wrong ``config.embedding`` fails now, not after the training."""
    embedding = embedding_graph(graph, config.embedding)
    return embedding if config.embeds else graph


def embedder(graph, normalize: Normalize, backend: str = "numpy", batch: int = 256):
    """images (N, C, H, W, uint8 or 0..1 floats) -> (N, D) float64 embeddings, standardised as in training."""
    model = cnngraph.compile(graph, backend=backend)

    def embed(x: np.ndarray) -> np.ndarray:
        parts = [model.run(normalize(to_float(x[k:k + batch])), to_host=True)[OUTPUT] for k in range(0, len(x), batch)]
        return np.concatenate(parts).astype(np.float64)

    return embed


def finish(trainer) -> Report:
    """Evaluate a trained verification run on its unseen identities and write its verification files."""
    config = trainer.config
    shape = next(iter(trainer.graph.inputs.values())).shape[1:]
    _, unseen = verification_splits(config.data, shape, config.train_classes)
    graph = embedding_graph(trainer.model.to_graph(), config.embedding)
    report = evaluate(embedder(graph, trainer.normalize, config.backend), unseen, config.seed)
    rundir = Path(trainer.rundir)
    io.save(graph, rundir / EMBEDDING)
    settings = {"threshold": report.threshold, "mean": trainer.normalize.mean, "std": trainer.normalize.std,
                "train_classes": config.train_classes, "data": config.data, "auc": report.auc, "eer": report.eer,
                "accuracy": report.accuracy, "threshold_accuracy": report.threshold_accuracy,
                "test_pairs": report.test_pairs, "threshold_pairs": report.threshold_pairs}
    atomic_write_bytes(rundir / SETTINGS, json.dumps(settings, indent=1).encode())
    write_roc(rundir / ROC, report, f"{trainer.graph.name}: unseen identities of {config.data}")
    return report
