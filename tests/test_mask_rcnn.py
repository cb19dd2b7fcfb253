"""Mask R-CNN: the C4 mask branch's shapes, mask targets against onnxruntime's RoiAlign, the mask loss against
PyTorch's autograd, pasting against PyTorch's bilinear resize, mask IoU and mask mAP against pycocotools, the
export with its regions through onnxruntime, and joint training in which all five losses fall."""

import contextlib
import io

import numpy as np
import pytest
from PIL import Image

import cnngraph
from cnngraph import models
from cnngraph.backends.onnx_export import export
from cnngraph.backends.onnx_verify import verify
from cnngraph.detection.drawing import PALETTE, draw_boxes
from cnngraph.detection.evaluate import coco_mask_map
from cnngraph.detection.losses import MaskLoss, MaskRcnnLoss
from cnngraph.detection.masks import mask_iou, mask_targets, paste_masks
from cnngraph.detection.predict import Postprocess
from cnngraph.detection.targets import rpn_targets
from cnngraph.errors import CnnGraphError, TrainingError
from cnngraph.models.faster_rcnn import anchors
from cnngraph.train.data import detection_digits
from cnngraph.train.detection_recipes import MaskRcnn, recipe_for
from tests.test_fast_rcnn import assert_every_term_falls, proposals_for, train
from tests.test_ops_roi import onnx_roi

SMALL = dict(backbone="resnet18", width=0.25, input_size=64)


def test_the_mask_branch_follows_the_papers_c4_head(zero_params):
    graph = models.build("mask_rcnn")
    assert str(graph.type_of("roi_align")) == "f32[R,1024,14,14]"
    assert str(graph.type_of("layer4.2.relu_2")) == "f32[R,2048,7,7]"  # res5, shared by both heads
    assert graph.params["mask_head.deconv.weight"].shape == (2048, 256, 2, 2)
    assert [str(graph.type_of(o)) for o in graph.outputs] == [
        "f32[N,2,1764]", "f32[N,1764,4]", "f32[R,81]", "f32[R,324]", "f32[R,81,14,14]"]


def test_an_unknown_backbone_is_named():
    with pytest.raises(CnnGraphError, match="unknown backbone 'vgg16'.*resnet50"):
        models.build("mask_rcnn", backbone="vgg16")


def scene_masks(rng, batch=2, size=64):
    """Filled discs (class 1) and rings (class 2) on noise: boxes, labels and the instance masks."""
    images = rng.normal(0, 0.1, (batch, 3, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size] + 0.5
    scenes = []
    for b in range(batch):
        boxes, labels, masks = [], [], []
        for label, (x, y) in zip((1, 2), rng.integers(4, size - 28, (2, 2))):
            w = int(rng.integers(14, 24))
            distance = np.hypot(xx - (x + w / 2), yy - (y + w / 2))
            mask = distance <= w / 2 if label == 1 else (distance <= w / 2) & (distance >= w / 4)
            images[b, :, mask] += 1.0
            boxes.append([x, y, x + w, y + w])
            labels.append(label)
            masks.append(mask)
        scenes.append((np.array(boxes, float), np.array(labels), np.array(masks)))
    return images, scenes


def test_mask_targets_are_onnxruntime_roi_align_of_the_object_mask_thresholded():
    rng = np.random.default_rng(0)
    _, ((gt, labels, masks),) = scene_masks(rng, batch=1)
    proposals = np.concatenate([gt + rng.normal(0, 2.0, gt.shape), [[0, 0, 6, 6], [30, 0, 60, 5]]])
    got, classes = mask_targets(proposals, gt, labels, masks, size=14)
    np.testing.assert_array_equal(classes, [1, 2, 0, 0])
    rows = np.concatenate([[[0], [1]], proposals[:2]], axis=1).astype(np.float32)
    want = onnx_roi("onnxruntime", "RoiAlign", masks[:, None].astype(np.float32), rows,
                    dict(output_height=14, output_width=14, sampling_ratio=0,
                         coordinate_transformation_mode="half_pixel"), 16)
    want = want[:, 0] >= 0.5  # proposal i crops object i's mask (the masks are the batch)
    np.testing.assert_array_equal(got[:2], want)
    assert got[:2].mean() > 0.3 and not got[2:].any()


def test_a_region_on_the_left_half_of_a_rectangle_gets_a_left_half_mask():
    mask = np.zeros((1, 20, 30), bool)
    mask[0, 4:12, 6:14] = True  # the object fills x 6..14, y 4..12
    got, classes = mask_targets(np.array([[2.0, 4, 14, 12]]), np.array([[6.0, 4, 14, 12]]), [3], mask, size=6)
    assert classes.tolist() == [3]
    np.testing.assert_array_equal(got[0], np.tile([0, 0, 1, 1, 1, 1], (6, 1)))  # the region is 4 empty + 8 full


def test_mask_targets_refuse_masks_that_do_not_match_the_boxes():
    with pytest.raises(CnnGraphError, match=r"one \(H, W\) mask per ground-truth box \(2\)"):
        mask_targets(np.zeros((1, 4)), np.zeros((2, 4)), [1, 1], np.zeros((1, 8, 8)))


def test_mask_loss_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4, 6, 6)) * 3
    classes = np.array([2, 0, 1, 3, 0])
    masks = (rng.random((5, 6, 6)) > 0.5).astype(float)
    loss = MaskLoss()
    value, grads = loss({"mask_logits": logits}, {"classes": classes, "masks": masks})
    z = torch.tensor(logits, requires_grad=True)
    fg = torch.tensor(classes > 0)
    picked = z[torch.arange(5)[fg], torch.tensor(classes)[fg]]
    want = torch.nn.functional.binary_cross_entropy_with_logits(picked, torch.tensor(masks)[fg])
    want.backward()
    assert value == pytest.approx(want.item(), rel=1e-12) and loss.last == {"mask": value}
    np.testing.assert_allclose(grads["mask_logits"], z.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_mask_loss_without_foreground_is_zero_and_bad_classes_are_refused():
    logits = np.ones((2, 3, 4, 4))
    value, grads = MaskLoss()({"mask_logits": logits}, {"classes": [0, 0], "masks": np.zeros((2, 4, 4))})
    assert value == 0.0 and not grads["mask_logits"].any()
    for classes in ([0, 3], [0.0, 1.0]):
        with pytest.raises(TrainingError, match="classes must be integers 0 to 2"):
            MaskLoss()({"mask_logits": logits}, {"classes": classes, "masks": np.zeros((2, 4, 4))})
    with pytest.raises(TrainingError, match=r"masks \(2, 4, 4\)"):
        MaskLoss()({"mask_logits": logits}, {"classes": [0, 1], "masks": np.zeros((2, 5, 5))})


def test_pasting_resizes_the_class_mask_bilinearly_into_its_box():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 3, 7, 7)) * 2
    boxes = np.array([[3, 5, 20, 14], [10, 0, 31, 31]], float)  # whole pixels, so the box is a plain resize
    pasted = paste_masks(logits, np.array([1, 2]), boxes, (32, 40))
    assert pasted.shape == (2, 32, 40)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        probability = torch.sigmoid(torch.tensor(logits[k, 1 + k])[None, None])
        resized = torch.nn.functional.interpolate(probability, size=(y2 - y1, x2 - x1), mode="bilinear",
                                                  align_corners=False)[0, 0].numpy()
        want = np.zeros((32, 40), bool)
        want[y1:y2, x1:x2] = resized >= 0.5
        np.testing.assert_array_equal(pasted[k], want)


def test_pasting_refuses_a_class_outside_the_mask_channels():
    with pytest.raises(CnnGraphError, match="index the 3 mask channels"):
        paste_masks(np.zeros((1, 3, 4, 4)), np.array([3]), np.array([[0, 0, 4, 4]]), (8, 8))


def coco_masks(seed: int, images: int = 6, classes: int = 2, size: int = 40):
    """Truth masks (blobs, some crowd) and detected masks that overlap them to varied degrees, or not at all."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truths, detections = [], []
    for _ in range(images):
        m = int(rng.integers(1, 5))
        centres, radii = rng.uniform(5, size - 5, (m, 2)), rng.uniform(3, 10, m)
        gt = np.array([np.hypot(xx - cx, yy - cy) <= r for (cx, cy), r in zip(centres, radii)]).reshape(m, size, size)
        labels, crowd = rng.integers(0, classes, m), rng.random(m) < 0.15
        shift = rng.normal(0, 2.0, (m, 2))
        found = np.array([np.hypot(xx - cx - dx, yy - cy - dy) <= r * rng.uniform(0.7, 1.2)
                          for (cx, cy), (dx, dy), r in zip(centres, shift, radii)]).reshape(m, size, size)
        false = rng.random((2, size, size)) > 0.97
        masks = np.concatenate([found, false])
        detections.append((masks, rng.uniform(0, 1, len(masks)), np.concatenate([labels, rng.integers(0, classes, 2)])))
        truths.append((gt, labels, crowd))
    return detections, truths


def test_mask_iou_equals_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    masks = coco_masks(3, images=1)[0][0][0]
    gt = coco_masks(4, images=1)[1][0][0]
    crowd = np.arange(len(gt)) % 2 == 1
    rle = [mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8))) for m in (masks, gt)]
    want = mask_utils.iou(rle[0], rle[1], crowd.astype(np.uint8).tolist())
    np.testing.assert_allclose(mask_iou(masks, gt, crowd), want, rtol=1e-12)
    assert mask_iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))[0, 0] == 0  # two empty masks: no overlap
    assert mask_iou(np.zeros((0, 4, 4)), gt[:, :4, :4]).shape == (0, len(gt))  # an image without detections


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_mask_map_equals_pycocotools_segm(seed):
    coco_mod = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    mask_utils = pytest.importorskip("pycocotools.mask")
    detections, truths = coco_masks(seed)
    images, annotations, results = [], [], []

    def rle(mask):
        return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))

    def as_json(code):
        return {"size": code["size"], "counts": code["counts"].decode()}

    for i, ((gt, labels, crowd), (masks, scores, dlabels)) in enumerate(zip(truths, detections), start=1):
        images.append({"id": i, "width": gt.shape[2], "height": gt.shape[1]})
        for m, y, c in zip(gt, labels, crowd):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(y) + 1, "iscrowd": int(c),
                                "segmentation": as_json(rle(m)), "area": float(m.sum()),
                                "bbox": list(mask_utils.toBbox(rle(m)))})
        results += [{"image_id": i, "category_id": int(y) + 1, "score": float(s), "segmentation": as_json(rle(m))}
                    for m, s, y in zip(masks, scores, dlabels)]
    gt_api = coco_mod.COCO()
    gt_api.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1}, {"id": 2}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt_api.createIndex()
        ev = cocoeval.COCOeval(gt_api, gt_api.loadRes(results), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = coco_mask_map(detections, truths, 2)
    assert ours.mean == pytest.approx(ev.stats[0], abs=1e-12) and ours.name == "COCO mask mAP@[.5:.95]"
    assert coco_mask_map(detections, truths, 2, thresholds=[0.5]).mean == pytest.approx(ev.stats[1], abs=1e-12)


def test_mask_rcnn_exports_with_its_regions_and_onnxruntime_agrees(tmp_path):
    pytest.importorskip("onnxruntime")
    graph = models.build("mask_rcnn", num_classes=3, **SMALL)
    path = tmp_path / "mask_rcnn.onnx"
    export(graph, path)
    result = verify(graph, path)  # random regions inside the image, batches 1 and 3, all five outputs
    assert result.ok and "mask_logits" in str(result)


def test_joint_training_lowers_all_five_losses():
    """One backward through the RPN, the box head and the mask branch per step, on fixed regions (as
    tests/test_faster_rcnn.py) whose mask targets come from the discs' and rings' masks."""
    rng = np.random.default_rng(0)
    sizes = (16, 32)
    graph = models.build("mask_rcnn", num_classes=3, anchor_sizes=sizes, seed=1, **SMALL)
    grid = anchors(graph, sizes)
    images, scenes = scene_masks(rng)
    rpn = [rpn_targets(grid, gt) for gt, _, _ in scenes]
    rpn_goal = {"labels": np.stack([r[0] for r in rpn]), "deltas": np.stack([r[1] for r in rpn])}
    rois, rcnn_goal = proposals_for(rng, [(gt, labels) for gt, labels, _ in scenes])
    per_image = [mask_targets(rois[rois[:, 0] == b, 1:], *scene) for b, scene in enumerate(scenes)]
    mask_goal = {"masks": np.concatenate([m for m, _ in per_image]),
                 "classes": np.concatenate([c for _, c in per_image])}
    np.testing.assert_array_equal(mask_goal["classes"], np.maximum(rcnn_goal["labels"], 0))
    targets = {"rpn": rpn_goal, "rcnn": rcnn_goal, "mask": mask_goal}
    history = train(graph, {"image": images, "rois": rois}, targets, MaskRcnnLoss(), 1e-3, 20)
    assert set(history[0]) == {"rpn_classification", "rpn_box", "classification", "box", "mask"}
    assert_every_term_falls(history, 0.8)
    out = cnngraph.compile(graph).run({"image": images, "rois": rois})
    fg = mask_goal["classes"] > 0
    pasted = paste_masks(out["mask_logits"][fg], mask_goal["classes"][fg], rois[fg, 1:], (64, 64))
    assert pasted.shape == (fg.sum(), 64, 64)


def test_drawing_tints_the_mask_in_its_box_colour_and_leaves_the_rest():
    image = np.full((3, 40, 40), 0.5)
    box = np.array([[10.0, 20, 30, 36]])
    mask = np.zeros((1, 40, 40), bool)
    mask[0, 24:32, 14:26] = True  # inside the box, away from its outline
    plain = np.asarray(draw_boxes(image, (box, [0.9], [3])))
    tinted = np.asarray(draw_boxes(image, (box, [0.9], [3], mask)))
    colour = np.array(PALETTE[3])
    gray = int(0.5 * 255)
    assert (plain[:10] == gray).all() and (plain[:, :5] == gray).all()  # far from the box: the image itself
    np.testing.assert_array_equal(tinted[24:32, 14:26], np.broadcast_to(np.round((gray + colour) / 2), (8, 12, 3)))
    np.testing.assert_array_equal(tinted[~mask[0]], plain[~mask[0]])  # the box's inside off the mask, and outside it


def test_the_recipe_pastes_each_detections_class_mask_inside_its_box():
    """Inference as the trainer, eval and run --boxes do it: RPN proposals, the box head, then one more run
    of the mask branch on the kept detections."""
    graph = models.build("mask_rcnn", num_classes=3, seed=2, **SMALL)
    recipe = recipe_for(graph)
    assert isinstance(recipe, MaskRcnn) and recipe.mask_size == 14
    images = np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32)
    found = recipe.detect(cnngraph.compile(graph), images, Postprocess(score_threshold=0.0))
    assert len(found) == 2 and all(len(d[0]) >= 1 for d in found)
    for boxes, scores, labels, masks in found:
        assert masks.shape == (len(boxes), 64, 64) and masks.any() and (np.diff(scores) <= 0).all()
        for box, mask in zip(boxes, masks):
            ys, xs = np.nonzero(mask)
            if len(xs):
                assert xs.min() + 0.5 >= box[0] and xs.max() + 0.5 <= box[2] and ys.min() + 0.5 >= box[1]


def test_a_training_step_gets_mask_targets_for_its_foreground_regions():
    """The recipe's step: Faster R-CNN's targets plus, per sampled region, the mask target of its object, which
    is mask_targets on that image's regions (so foreground regions, and only they, carry a class)."""
    graph = models.build("mask_rcnn_small", seed=1)  # its anchors (14-36 pixels) travel as its 'anchors' output
    recipe = recipe_for(graph)
    data = detection_digits.load(size=(64, 64), n_train=2, n_test=1).train
    truths = [(data.boxes[i], data.labels[i], data.masks[i]) for i in range(2)]
    images = np.repeat(data.images[:2], 3, axis=1)
    feeds, targets = recipe.step(cnngraph.compile(graph), images, truths, np.random.default_rng(0))
    rois, goal = feeds["rois"], targets["mask"]
    assert goal["masks"].shape == (len(rois), 14, 14) and goal["classes"].shape == (len(rois),)
    np.testing.assert_array_equal(goal["classes"] > 0, targets["rcnn"]["labels"] > 0)
    first = rois[:, 0] == 0
    want, classes = mask_targets(rois[first, 1:], data.boxes[0], data.labels[0] + 1, data.masks[0])
    np.testing.assert_array_equal(goal["masks"][first], want)
    np.testing.assert_array_equal(goal["classes"][first], classes)
    assert (goal["classes"] > 0).sum() >= 4 and goal["masks"][goal["classes"] > 0].any()


def test_cli_run_draws_mask_rcnn_detections_with_masks(capsys, tmp_path, monkeypatch):
    from cnngraph import io as cng
    from cnngraph.cli import main

    monkeypatch.chdir(tmp_path)  # where a segmentation model's photo would leave its <photo>_mask.png

    cng.save(models.build("mask_rcnn", num_classes=3, seed=2, **SMALL), tmp_path / "mask_rcnn.cng")
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    for source in ([], ["--input", tmp_path / "photo.png"]):
        code = main([str(a) for a in ["run", tmp_path / "mask_rcnn.cng", *source, "--boxes", tmp_path / "out.png",
                                      "--min-score", "0"]])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "boxes scoring above 0 on the first image" in out and ": 0 boxes" not in out
        with Image.open(tmp_path / "out.png") as picture:
            assert picture.size == (256, 256)
    assert not (tmp_path / "photo_mask.png").exists()  # per-region mask logits are no segmentation output


def test_mask_targets_take_the_digit_detection_sets_instance_masks():
    data = detection_digits.load(n_train=2, n_test=1).train
    for boxes, labels, masks in zip(data.boxes, data.labels, data.masks):
        got, classes = mask_targets(boxes, boxes, labels + 1, masks, size=28)  # each object's own tight box
        np.testing.assert_array_equal(classes, labels + 1)
        for target, (x1, y1, x2, y2), mask in zip(got, boxes.astype(int), masks):
            assert abs(target.mean() - mask[y1:y2, x1:x2].mean()) < 0.1  # the ink's share of its box, resampled


def test_training_on_data_without_masks_is_refused_by_name():
    from dataclasses import replace

    from cnngraph.train import TrainConfig
    from cnngraph.train.data.detection import DetectionSplits, with_channels
    from cnngraph.train.detection_train import DetectionTrainer

    data = detection_digits.load(size=(64, 64), n_train=2, n_test=1)
    boxes_only = DetectionSplits(replace(with_channels(data.train, 3, "t"), masks=None),
                                 with_channels(data.test, 3, "t"), "boxes only")
    with pytest.raises(TrainingError, match="mask_rcnn_small trains on instance masks and boxes only has none"):
        DetectionTrainer(models.build("mask_rcnn_small"), boxes_only, TrainConfig())
