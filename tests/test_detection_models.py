"""YOLO v1 and SSD: hand-derived parameter counts (model docstrings), layouts, decoding, and training that
lowers every loss term on the digit-detection set."""

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.detection.anchors import ssd_default_boxes
from cnngraph.detection.predict import detect, detector_kind
from cnngraph.train import TrainConfig
from cnngraph.train.data import digits
from cnngraph.train.data.detection import DetectionSplits
from cnngraph.train.data.detection_digits import generate
from cnngraph.train.detection_losses import YoloLoss
from cnngraph.train.detection_train import DetectionTrainer
from tests.zoo_builds import zero_params  # noqa: F401 - fixture


@pytest.mark.parametrize("kwargs,count", [
    # backbones swapped: VGG-16 features (14,714,688) pooled to 7x7x512, fc 25088->4096, 4096->1470
    (dict(backbone="vgg16"), 14_714_688 + 25088 * 4096 + 4096 + 4096 * 1470 + 1470),
    (dict(grid=7, boxes=3, num_classes=2, hidden=10), 60_155_968 + 50176 * 10 + 10 + 10 * 49 * 17 + 49 * 17),
])
def test_yolo_variants_count_like_their_layers(kwargs, count, zero_params):
    assert models.build("yolo_v1", **kwargs).param_count() == count


def test_the_conv_head_predicts_each_cell_from_its_own_position():
    """yolo_v1_small's head: cell (r, c)'s 5B + C values are a 3x3 then 1x1 convolution of the backbone's map
    at (r, c), checked against PyTorch on the graph's own weights."""
    torch = pytest.importorskip("torch")
    graph = models.build("yolo_v1_small", input_size=32, grid=4)
    graph.outputs = ["backbone.6.relu", *graph.outputs]  # the backbone's map too
    outputs = cnngraph.compile(graph.verify(), passes=None).run({"image": random_image((2, 3, 32, 32))})
    features, boxes, classes = (outputs[k] for k in ("backbone.6.relu", "boxes", "classes"))
    p = {k: torch.from_numpy(np.asarray(v)) for k, v in graph.params.items()}
    hidden = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(
        torch.from_numpy(features), p["head.0.weight"], p["head.0.bias"], padding=1), 0.1)
    cells = torch.nn.functional.conv2d(hidden, p["head.1.weight"], p["head.1.bias"]).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(boxes.reshape(2, 4, 4, -1), cells[..., :10], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(classes, cells[..., 10:], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="head must be one of"):
        models.build("yolo_v1_small", head="attention")


def random_image(shape):
    return np.random.default_rng(0).random(shape, np.float32)


def test_ssd300_has_the_papers_8732_default_boxes_and_output_layout(zero_params):
    graph = models.build("ssd")
    assert [graph.type_of(o).shape for o in graph.outputs] == [("N", 8732, 4), ("N", 8732, 21), (8732, 4)]
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    assert [graph.type_of(n).shape[2:] for n in ("conv4_3_norm.add", "fc7.relu", "extras.0.relu_1",
                                                 "extras.1.relu_1", "extras.2.relu_1", "extras.3.relu_1")] == sizes


def test_yolo_has_the_papers_7x7x30_tensor(zero_params):
    graph = models.build("yolo_v1")
    assert graph.type_of("grid").shape == ("N", 7, 7, 30)
    assert sum(n.op == "Conv2d" for n in graph.nodes) == 24 and sum(n.op == "Linear" for n in graph.nodes) == 2


def test_ssd_head_prediction_i_belongs_to_default_box_i():
    """Perturb one cell of one level's loc map: exactly the predictions of that cell's default boxes move."""
    graph = models.build("ssd_small")
    anchors = graph.params["anchors.value"]
    np.testing.assert_allclose(anchors, ssd_default_boxes([(16, 16), (8, 8), (4, 4)], [(1.0, 2.0, 0.5)] * 3,
                                                          (0.2, 0.35, 0.55, 0.75)), rtol=1e-6)
    bias = graph.params["loc.1.bias"]
    bias[:] = 0
    base = cnngraph.compile(graph).run(np.zeros((1, 3, 64, 64), np.float32), to_host=True)["loc"]
    bias[4 * 2 + 1] = 5.0  # level 1 (8x8 map), box 2 of its 4, coordinate y
    moved = cnngraph.compile(graph).run(np.zeros((1, 3, 64, 64), np.float32), to_host=True)["loc"] - base
    rows = np.flatnonzero(np.abs(moved).sum(-1)[0] > 1e-6)
    assert rows.tolist() == [256 * 4 + cell * 4 + 2 for cell in range(64)]  # every cell's box 2 of level 1
    assert np.allclose(moved[0, rows, 1], 5.0)


def test_detect_decodes_a_planted_yolo_box():
    boxes = np.zeros((1, 2, 2, 1, 5))
    classes = np.zeros((1, 2, 2, 3))
    # cell row 1, col 0 of 16-pixel cells: centre (8, 20) of a 32x32 image; sqrt w = 0.5 -> w = 0.25 * 32 = 8
    boxes[0, 1, 0, 0] = [0.5, 0.25, 0.5, 0.5, 0.9]
    classes[0, 1, 0, 2] = 1.0
    (b, s, y), = detect({"boxes": boxes, "classes": classes}, (32, 32))
    np.testing.assert_allclose(b[0], [4, 16, 12, 24])
    assert s[0] == pytest.approx(0.9) and y[0] == 2 and len(s) == 1
    with pytest.raises(Exception, match="not a detector"):
        detector_kind(["logits"])


def tiny_set(size: int, count: int, seed: int = 0):
    data = generate(digits.load().train, count, (size, size), np.random.default_rng(seed), max_objects=2,
                    scales=(0.3, 0.5))
    data.images = np.repeat(data.images, 3, axis=1)
    return DetectionSplits(data, data.take(range(4)), "test")


def loss_terms(trainer, x, targets):
    """Each term of the loss separately, at the model's current parameters."""
    outputs = trainer.model.forward({trainer.input_name: x})
    outputs = {k: trainer.model.backend.to_host(v) for k, v in outputs.items()}
    loss = trainer.loss
    if isinstance(trainer.loss, YoloLoss):
        t = loss.assign(outputs["boxes"], targets)
        resp, b, c = t["responsible"], outputs["boxes"], outputs["classes"]
        return {"coord": ((b[..., :4] - t["coords"][:, :, :, None]) ** 2)[resp].sum(),
                "object": ((b[..., 4] - t["confidence"]) ** 2)[resp].sum(), "no-object": (b[..., 4][~resp] ** 2).sum(),
                "class": ((c - np.eye(c.shape[-1])[t["cls"]]) ** 2)[t["obj"]].sum()}
    labels, offsets = loss.match(targets, len(x))
    pos = labels > 0
    conf = outputs["conf"] - outputs["conf"].max(-1, keepdims=True)
    log_p = conf - np.log(np.exp(conf).sum(-1, keepdims=True))
    ce = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
    return {"loc": np.abs(outputs["loc"] - offsets)[pos].sum(), "positive class": ce[pos].sum(),
            "background": ce[~pos].mean()}


@pytest.mark.parametrize("name,kwargs", [("yolo_v1_small", dict(input_size=32, grid=4)),
                                         ("ssd_small", dict(input_size=32))])
def test_training_steps_lower_every_loss_term(name, kwargs):
    graph = models.build(name, **kwargs)
    splits = tiny_set(32, 8)
    trainer = DetectionTrainer(graph, splits, TrainConfig(epochs=1, batch=8, optimizer="adam", lr=3e-3,
                                                          weight_decay=0, schedule="constant"))
    x, targets = next(trainer.batches())
    before = loss_terms(trainer, x, targets)
    values = [trainer.train_step(x, targets) for _ in range(40)]  # object (rescored) first rises with the IoUs
    after = loss_terms(trainer, x, targets)
    assert values[-1] < 0.5 * values[0]
    for term in before:
        assert after[term] < before[term], (term, before[term], after[term])
