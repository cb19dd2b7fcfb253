"""The measured training defaults of the small detectors on digit-detection: what `cnngraph train ssd_small`
uses where the command line leaves a setting out (the TrainConfig defaults are a classification recipe).

``ssd_small``: Adam at 3e-3 after one epoch of linear warm-up, cosine decay over 20 epochs, batch 16, no
weight decay, and zoom augmentation by 0.8 to 1.25 (boxes follow). On 2,000 canvases it reached mAP@0.5
0.52, 0.77, 0.84, 0.89, 0.90 and 0.95 after epochs 1 to 5 and 7, and 0.965 at 20 (README, "Benchmarks");
Adam at 1e-3 without warm-up or zoom needed 8 epochs for 0.90. Flips stay off: a mirrored digit is not
a digit. ``yolo_v1_small``: the same recipe over 40 epochs (SGD at the TrainConfig default diverges); on
2,000 canvases it reached mAP@0.5 0.82 after 10 epochs and 0.95 after 36 (README, "Benchmarks"). The
two-stage small models: Adam at 1e-3, batch 8, the settings their bench runs used (SGD at the
classification default stalls).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cnngraph.train.data.detection_augment import BoxAugment

ONE_STAGE = {"optimizer": "adam", "lr": 3e-3, "warmup": 1, "schedule": "cosine", "batch": 16, "weight_decay": 0.0}
TWO_STAGE = {"optimizer": "adam", "lr": 1e-3, "batch": 8, "weight_decay": 0.0}


@dataclass(frozen=True)
class Defaults:
    config: dict = field(default_factory=dict)  # TrainConfig fields
    augment: BoxAugment = field(default_factory=BoxAugment)


DEFAULTS = {
    "ssd_small": Defaults({**ONE_STAGE, "epochs": 20}, BoxAugment(scale=(0.8, 1.25))),
    "yolo_v1_small": Defaults({**ONE_STAGE, "epochs": 40}, BoxAugment(scale=(0.8, 1.25))),
    **{name: Defaults(TWO_STAGE) for name in ("rcnn_small", "fast_rcnn_small", "faster_rcnn_small", "mask_rcnn_small")},
}


def detection_defaults(model_name: str) -> Defaults:
    """The defaults measured for this model; empty ones (TrainConfig's, no augmentation) otherwise."""
    return DEFAULTS.get(model_name, Defaults())


def default_augment(model_name: str, flip: bool) -> BoxAugment:
    """The model's augmentation, with ``--flip`` on top: what a new run and its resumption both use."""
    augment = detection_defaults(model_name).augment
    return replace(augment, flip=augment.flip or flip)
