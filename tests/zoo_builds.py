"""Shared by the zoo tests: reduced builds of every model, and initialisers that make big builds cheap.

Building VGG-sized models spends seconds drawing float64 normals; counting parameters needs only
shapes, and running needs only values of a sensible scale, so tests swap the DSL's initialiser.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnngraph import models
from cnngraph.backends.executor import NumpyExecutor
from cnngraph.frontends import dsl
from cnngraph.init import initialize, param_rng
from cnngraph.probes import random_inputs

# zoo name -> builder arguments that make a quick model of the same architecture: smaller inputs, and
# where a model is big, fewer channels (``width``: same depth, topology and layer names)
REDUCED = {
    "lenet5": {}, "alexnet": dict(input_size=64), "alexnet_original": dict(input_size=67),
    "zfnet": dict(input_size=64), "googlenet": dict(input_size=32, aux_logits=True),
    "squeezenet1_0": dict(input_size=32), "squeezenet1_1": dict(input_size=32),
    "msdnet": {}, "fabric": {}, "gridnet": dict(input_size=16),
    "deepface": dict(input_size=72, num_classes=20), "deepface_small": {},
    "unet": dict(input_size=44, depth=2, width=8), "segnet": dict(input_size=32, width=0.125),
    "context_module": dict(num_classes=5, input_size=24), "frrn_a": dict(input_size=32),
    "unet3d": {}, "temporal_cnn": {},  # small by default
    "yolo_v1": dict(input_size=64, hidden=64, width=0.125), "yolo_v1_small": dict(input_size=32, grid=4),
    "ssd": dict(num_classes=3, width=0.125), "ssd_small": dict(input_size=32),
    **{name: dict(input_size=32) for name in ("densenet121", "densenet169", "densenet201", "fc_densenet56",
                                              "fc_densenet67", "fc_densenet103")},
    **{name: dict(input_size=32, width=0.125) for name in ("fcn32s", "fcn16s", "fcn8s")},
    **{f"{p}resnet{d}": dict(input_size=32, width=0.25) for p in ("", "preact_") for d in (18, 34, 50, 101, 152)},
    **{f"vgg{d}{bn}": dict(input_size=32, width=0.125) for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    "fast_rcnn": dict(input_size=64, width=0.125), "faster_rcnn": dict(input_size=64, width=0.125),
    "rcnn": dict(input_size=64, crop=67), "mask_rcnn": dict(backbone="resnet18", input_size=64, width=0.25),
    "fast_rcnn_small": {}, "faster_rcnn_small": {}, "rcnn_small": {}, "mask_rcnn_small": {},  # small by default
}


def _zeros(spec, key, seed=0, dtype=np.float32):
    return np.zeros(spec.shape, dtype)  # calloc'd lazily: costs nothing until written


def _uniform(spec, key, seed=0, dtype=np.float32):
    """He-scaled uniform values drawn in float32 (several times faster than the float64 normals)."""
    if spec.init in ("ones", "zeros") or not spec.trainable:
        return initialize(spec, key, seed, dtype)
    bound = np.float32(np.sqrt(6.0 / max(spec.fan_in, 1)))
    values = param_rng(seed, key).random(spec.shape, dtype=np.float32)
    values *= 2 * bound
    values -= bound
    return values


@pytest.fixture
def zero_params(monkeypatch):
    """Builds get zero parameters: for counting and structure, not for running."""
    monkeypatch.setattr(dsl, "initialize", _zeros)


@pytest.fixture
def quick_params(monkeypatch):
    """Builds get cheap random parameters of the usual scale: for running."""
    monkeypatch.setattr(dsl, "initialize", _uniform)


def reduced(name: str, **overrides):
    return models.build(name, **{**REDUCED[name], **overrides})


def run_batch(graph, batch: int = 2, seed: int = 0) -> dict:
    """Run a verified graph on random input."""
    return execute(graph, random_inputs(graph, batch, np.random.default_rng(seed), np.float32))


def execute(graph, feeds) -> dict:
    """Run a verified graph straight on the executor: ``cnngraph.compile`` would first deep-copy the
    parameters, which for the VGGs costs more than the run."""
    return NumpyExecutor(graph).run(feeds)
