"""Fit a PyTorch state_dict to an eval-mode ONNX export, whose exporter folded every BatchNorm into the
convolution before it.

Such a file has ``conv.weight`` and ``conv.bias`` (folded) where the state_dict has ``conv.weight`` and a
separate BatchNorm. The BatchNorm that follows a convolution is found from the names, as torchvision and
most PyTorch code lay modules out: the next index in the same Sequential (``features.0.0`` ->
``features.0.1``, ``downsample.0`` -> ``downsample.1``) or the sibling named like it (``conv1`` -> ``bn1``,
``conv`` -> ``bn``). A pairing counts only when that BatchNorm is complete in the file, unused by the
graph, and sized like the convolution's output channels; the caller still requires an exact fit afterwards.

The state_dict does not hold BatchNorm's epsilon: PyTorch's default (1e-5) is assumed unless given;
torchvision's GoogLeNet and Inception v3 use 1e-3.
"""

from __future__ import annotations

import re

import numpy as np

from cnngraph.ir import Graph

BN_ROLES = ("weight", "bias", "running_mean", "running_var")
DEFAULT_EPS = 1e-5  # torch.nn.BatchNorm2d's
CONVOLUTION = "Conv2d"  # the IR op of 1-D, 2-D and 3-D convolutions: the exporter folds BatchNorms into these


def fold_into_convs(graph: Graph, found: dict[str, np.ndarray], eps: float = DEFAULT_EPS) -> list[str]:
    """Fold into ``found``'s convolution weights the BatchNorms that follow them, in place, for every Conv of
    ``graph`` whose state_dict partner BatchNorm is in ``found`` but not in the graph. Returns the
    BatchNorm names folded (removed from ``found``)."""
    folded = []
    for node in graph.nodes:
        weight_key, bias_key = node.params.get("weight"), node.params.get("bias")
        if node.op != CONVOLUTION or not bias_key or weight_key not in found or not weight_key.endswith(".weight"):
            continue
        weight = found[weight_key]
        for bn in _partners(weight_key[: -len(".weight")]):
            stats = [found.get(f"{bn}.{role}") for role in BN_ROLES]
            if any(f"{bn}.{role}" in graph.params for role in BN_ROLES) or any(
                    s is None or s.shape != weight.shape[:1] for s in stats):
                continue
            gamma, beta, mean, var = (s.astype(np.float64) for s in stats)
            scale = gamma / np.sqrt(var + eps)
            bias = found.get(bias_key, np.zeros(weight.shape[0])).astype(np.float64)
            found[weight_key] = (weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(weight.dtype)
            found[bias_key] = ((bias - mean) * scale + beta).astype(weight.dtype)
            for role in BN_ROLES:
                del found[f"{bn}.{role}"]
            folded.append(bn)
            break
    return folded


def _partners(conv: str) -> list[str]:
    """Names a BatchNorm after module ``conv`` takes: the next Sequential index, then ``conv*`` -> ``bn*``."""
    parent, _, leaf = conv.rpartition(".")
    prefix = f"{parent}." if parent else ""
    names = []
    if leaf.isdigit():
        names.append(f"{prefix}{int(leaf) + 1}")
    match = re.fullmatch(r"conv(.*)", leaf)
    if match:
        names.append(f"{prefix}bn{match.group(1)}")
    return names
