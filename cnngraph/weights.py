"""Load pretrained weights keyed by torchvision's state_dict names from ``.safetensors`` or ``.npz``.

Zoo models name their parameters like torchvision's modules, so a state_dict exported from PyTorch
(``safetensors.torch.save_file(model.state_dict(), path)``) loads unchanged. Neither format can run
code on load: safetensors is raw arrays behind a JSON header, and ``.npz`` members are read as
plain number arrays after their headers are checked (``cnngraph.npzfile``). Every mismatch is
collected first and reported in one error: one line (the CLI prints errors as one line), with the count
of each group and its first few keys, so a wrong architecture is a short line, not 10 KB of names.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from cnngraph import batch_norm_weights
from cnngraph.errors import BatchNormFoldWarning, ModelFileError
from cnngraph.io import read_safetensors
from cnngraph.ir import Graph
from cnngraph.model_info import with_weights
from cnngraph.npzfile import read_npz

IGNORED_SUFFIXES = (".num_batches_tracked",)  # torch BatchNorm bookkeeping, no counterpart here
FORMATS = (".safetensors", ".npz")
SHOWN_KEYS = 5  # per group in a mismatch error: enough to see the pattern, short enough for one line


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays in a ``.safetensors`` or ``.npz`` file; unreadable files raise ModelFileError."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ModelFileError(f"{path}: weights must be {' or '.join(FORMATS)}, got '{path.suffix or 'no suffix'}'")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if path.suffix == ".npz":
        return read_npz(path, ModelFileError)
    _, arrays = read_safetensors(path, "safetensors file")
    return arrays


def load_weights(graph: Graph, path: str | os.PathLike, bn_eps: float = batch_norm_weights.DEFAULT_EPS) -> Graph:
    """Replace ``graph``'s parameters (and BN statistics) with those in ``path``, in place; returns ``graph``.

    The file must hold exactly the graph's keys with the graph's shapes, apart from torch's
    ``num_batches_tracked``; otherwise nothing is changed and one error counts the missing,
    unexpected and mis-shaped keys and names the first few of each. Values are cast to each parameter's dtype.
    A state_dict for a PyTorch ONNX export whose BatchNorms were folded into its convolutions fits after
    folding them the same way (``bn_eps`` is their epsilon; a BatchNormFoldWarning says it happened).
    """
    found = {k: v for k, v in read_state_dict(path).items() if not k.endswith(IGNORED_SUFFIXES)}
    folded = batch_norm_weights.fold_into_convs(graph, found, bn_eps)
    missing = sorted(set(graph.params) - set(found))
    unexpected = sorted(set(found) - set(graph.params))
    misshaped = [f"{k} (file {tuple(found[k].shape)}, model {tuple(graph.params[k].shape)})"
                 for k in sorted(set(found) & set(graph.params)) if found[k].shape != graph.params[k].shape]
    problems = [f"{label} {len(keys)}: {_first(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if keys]
    if problems:
        raise ModelFileError(f"{path}: weights do not fit model '{graph.name}': " + "; ".join(problems))
    if folded:
        warnings.warn(f"{path}: folded {len(folded)} BatchNorms into the convolutions before them, as the "
                      f"exporter had (eps {bn_eps:g}; --bn-eps if the model used another)",
                      BatchNormFoldWarning, stacklevel=2)
    for key, value in found.items():
        graph.params[key] = np.require(value, dtype=graph.params[key].dtype, requirements="W")
    graph.info = with_weights(graph, "loaded", Path(path).name)  # `run` then says where they came from
    return graph


def _first(keys: list[str]) -> str:
    """The first SHOWN_KEYS keys, then how many more there are."""
    more = len(keys) - SHOWN_KEYS
    return ", ".join(keys[:SHOWN_KEYS]) + (f" and {more} more" if more > 0 else "")
