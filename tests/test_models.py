"""Zoo models: published parameter counts (torchvision's) or hand derivations (in each model file's
docstring), torchvision state_dict names, and every model built, verified, summarised and run."""

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.alignment import joins
from cnngraph.analysis import node_stats, receptive_fields
from cnngraph.errors import GraphError, UnknownModelError
from tests.zoo_builds import REDUCED, reduced, run_batch

TORCHVISION = {  # sum(p.numel() for p in torchvision.models.<name>().parameters())
    "alexnet": 61_100_840,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "densenet121": 7_978_856, "densenet169": 14_149_480, "densenet201": 20_013_928,
    "googlenet": 6_624_904,  # without the auxiliary heads
    "squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496,
}
BY_HAND = {  # derived in the model files' docstrings
    "lenet5": 61_706, "alexnet_original": 60_965_224, "zfnet": 62_357_608,
    "preact_resnet18": 11_687_720, "preact_resnet34": 21_795_880, "preact_resnet50": 25_549_352,
    "preact_resnet101": 44_541_480, "preact_resnet152": 60_185_128,
    "msdnet": 1_709_632,
    "fcn32s": 136_152_917, "fcn16s": 134_815_994, "fcn8s": 134_489_759,
    "unet": 31_030_658, "segnet": 29_449_355, "context_module": 28_392,
    "fc_densenet56": 1_376_795, "fc_densenet67": 3_463_243, "fc_densenet103": 9_322_091,
    "frrn_a": 17_712_259, "fabric": 537_386, "gridnet": 13_166_115,
    "unet3d": 72_022, "temporal_cnn": 5_754,
    "fast_rcnn": 134_690_729, "faster_rcnn": 137_078_239,  # VGG-16, 21 classes (Pascal VOC)
    "rcnn": 57_728_489,  # the paper's AlexNet on 227x227 warps, 21 classes
    "mask_rcnn": 31_202_908,  # ResNet-50 C4, 81 classes (COCO), derived in models/mask_rcnn.py
    "fast_rcnn_small": 1_121_919, "faster_rcnn_small": 1_142_755, "rcnn_small": 20_224_439,  # models/rcnn_small.py
    "mask_rcnn_small": 821_238,  # models/rcnn_small.py
    "deepface": 118_923_774, "deepface_small": 290_746,
    "yolo_v1": 271_703_550, "yolo_v1_small": 686_516, "ssd": 26_285_486, "ssd_small": 394_180,
}
PARAM_COUNTS = {**TORCHVISION, **BY_HAND}


@pytest.mark.parametrize("name,count", PARAM_COUNTS.items())
def test_parameter_count(name, count, zero_params):
    assert models.build(name).param_count() == count


@pytest.mark.parametrize("name,kwargs,count", [
    ("googlenet", dict(aux_logits=True), 13_004_888),  # torchvision's count with the aux heads
    ("context_module", dict(large=True), 6_803_139),
    ("unet", dict(padding="same", input_size=256), 31_030_658),  # padding changes no parameter
    ("unet3d", dict(in_channels=3, num_classes=3, width=32, depth=3), 19_073_187),  # the paper's, see unet3d.py
    ("fast_rcnn", dict(backbone="resnet50"), 23_723_177),  # ResNet-50 C4, derived in models/fast_rcnn.py
])
def test_variant_parameter_counts(name, kwargs, count, zero_params):
    assert models.build(name, **kwargs).param_count() == count


def test_tiramisu_counts_with_statistics_match_the_paper(zero_params):
    """Lasagne counted BatchNorm's statistics too: 3.5M and 9.4M in the paper's table."""
    assert round(models.build("fc_densenet67").param_count(trainable_only=False) / 1e6, 1) == 3.5
    assert round(models.build("fc_densenet103").param_count(trainable_only=False) / 1e6, 1) == 9.4


def test_every_zoo_model_is_counted_and_has_a_reduced_build():
    assert set(models.zoo()) == set(PARAM_COUNTS) == set(REDUCED)


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_builds_verifies_summarises_and_runs_at_batch_2(name, quick_params):
    g = reduced(name)
    assert g.verify() is g
    rows = node_stats(g)
    assert len(rows) == len(g.nodes) and sum(r.params for r in rows) == g.param_count()
    joins(g)  # the alignment check runs on every architecture
    for name_, out in run_batch(g).items():
        assert out.shape == g.type_of(name_).concrete(2) and np.isfinite(out).all()
        assert out.std() > 0, f"output '{name_}' is constant"


def test_torchvision_state_dict_names(zero_params):
    expected = {
        "resnet18": {"conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias",
                     "fc.weight"},
        "resnet152": {"layer3.35.conv3.weight", "layer2.7.bn3.running_mean"},
        "alexnet": {"features.0.weight", "classifier.6.bias"},
        "vgg16_bn": {"features.1.running_mean", "features.41.weight"},
        "vgg19_bn": {"features.49.weight", "features.50.running_var", "classifier.6.weight"},
        "vgg11": {"features.18.weight", "classifier.3.bias"},
        "densenet121": {"features.conv0.weight", "features.denseblock4.denselayer16.conv2.weight",
                        "features.transition3.norm.running_var", "features.norm5.bias", "classifier.weight"},
        "googlenet": {"conv1.conv.weight", "conv3.bn.running_var", "inception4e.branch2.1.conv.weight",
                      "inception5b.branch4.1.bn.bias", "fc.weight"},
        "squeezenet1_0": {"features.0.weight", "features.12.expand3x3.bias", "classifier.1.weight"},
        "squeezenet1_1": {"features.12.squeeze.weight", "features.9.expand1x1.weight"},
    }
    for name, keys in expected.items():
        assert keys <= set(models.build(name).params), name
    aux = set(models.build("googlenet", aux_logits=True).params)
    assert {"aux1.conv.conv.weight", "aux1.fc1.weight", "aux2.fc2.bias"} <= aux


def test_backbones_keep_torchvision_vgg_names(zero_params):
    """FCN and SegNet load ImageNet VGG-16 (-BN) backbones unchanged: same keys, same shapes."""
    for name, backbone in (("fcn8s", "vgg16"), ("segnet", "vgg16_bn")):
        vgg, net = models.build(backbone).params, models.build(name).params
        features = {k: v.shape for k, v in vgg.items() if k.startswith("features.")}
        assert features == {k: v.shape for k, v in net.items() if k.startswith("features.")}


def test_vgg16_receptive_field_is_the_published_212(zero_params):
    fields = receptive_fields(models.build("vgg16"))
    assert fields["features.30"].size == (212, 212) and fields["features.30"].jump == (32, 32)
    assert fields["features.28"].size == (196, 196) and fields["features.28"].jump == (16, 16)


def test_context_module_starts_as_the_identity():
    """The paper's identity initialisation: a non-negative input passes through all eight layers."""
    for large in (False, True):
        g = models.build("context_module", num_classes=4, input_size=16, large=large)
        x = np.abs(np.random.default_rng(1).standard_normal((2, 4, 16, 16)))
        np.testing.assert_allclose(cnngraph.compile(g, dtype="float64")(x), x, rtol=1e-12, atol=1e-12)


def test_fcn_upscores_start_as_bilinear_kernels():
    """upscore2 (kernel 4, stride 2): class i to class i only, the outer product of (1, 3, 3, 1) / 4."""
    g = models.build("fcn16s", num_classes=2, input_size=32, width=0.125)
    w = g.params["upscore2.weight"]
    assert w.shape == (2, 2, 4, 4) and not w[0, 1].any()
    np.testing.assert_allclose(w[0, 0][1], [0.1875, 0.5625, 0.5625, 0.1875])  # (1/4, 3/4, 3/4, 1/4) * 3/4


def test_fabric_pruning_removes_exactly_the_pruned_parameters(zero_params):
    full = models.build("fabric").param_count()
    # one 3x3 conv of 32 -> 32 channels
    assert full - models.build("fabric", disabled=[(2, 6, "coarser")]).param_count() == 9 * 32 * 32
    # node (0, 4) loses both inputs: its two convs and BN go, and so does the conv it fed into (1, 5)
    cut = models.build("fabric", disabled=[(0, 4, "same"), (0, 4, "coarser")])
    assert full - cut.param_count() == 3 * 9 * 32 * 32 + 2 * 32
    assert not any(n.startswith("node0_4.") for n in cut.params)


def test_pruned_fabric_runs(quick_params):
    g = models.build("fabric", scales=3, layers=4, channels=8, policy="doubling", task="segment",
                     disabled=[(1, 2, "coarser"), (0, 3, "finer"), (2, 1, "same")])
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = cnngraph.compile(g)(x)
    assert out.shape == (2, 10, 32, 32) and np.isfinite(out).all()
    assert "node1_2.coarser" not in {n.name for n in g.nodes} and "node1_2.same" in {n.name for n in g.nodes}


def test_gridnet_pruning(zero_params):
    full = models.build("gridnet").param_count()
    c = 64  # the transposed block entering row 2 of column 4 maps 128 -> 64 channels
    assert full - models.build("gridnet", disabled=[(2, 4, "vertical")]).param_count() == 27 * c * c + 6 * c


@pytest.mark.parametrize("name,kwargs,match", [
    ("fabric", dict(disabled=[(3, 7, "same"), (3, 7, "finer")]), r"cut every path from the input to the output node \(3, 7\)"),
    ("fabric", dict(disabled=[(3, 9, "same")]), r"disabled edge \(3, 9, 'same'\) does not exist: scale 0..3, layer 0..7"),
    ("fabric", dict(disabled=["same"]), r"a disabled edge is \(scale, layer, kind\), got 'same'"),
    ("fabric", dict(policy="tripling"), "policy must be one of"),
    ("gridnet", dict(input_size=20), "must be a multiple of 16, got 20"),
    ("gridnet", dict(columns=5), "columns must be even"),
    ("unet", dict(input_size=570), r"input size 570 gives maps \[566, 279, 135, 63, 27\] before the poolings, which "
                                   r"must be positive and even; the nearest sizes that work are 556 or 572"),
    ("unet", dict(padding="same", input_size=100), "nearest sizes that work are 96 or 112"),
    ("unet", dict(input_size=64), r"nearest sizes that work are 140$"),  # none below; the first above is far up
    ("unet", dict(padding="reflect"), "padding must be one of"),
])
def test_generator_arguments_are_checked(name, kwargs, match, zero_params):
    with pytest.raises(GraphError, match=match):
        models.build(name, **kwargs)


def test_unet_valid_padding_crops_skips_to_the_paper_sizes(zero_params):
    g = models.build("unet")
    assert g.type_of("up1.crop").shape[2:] == (392, 392) and g.type_of("head").shape[2:] == (388, 388)
    assert models.build("unet", padding="same", input_size=256).type_of("head").shape[2:] == (256, 256)


def test_segnet_unpools_at_the_pooling_indices(zero_params):
    g = models.build("segnet", input_size=45, width=0.125)  # odd sizes: the pools drop a row and column
    unpools = [n for n in g.nodes if n.op == "MaxUnpool2d"]
    assert [n.type.shape[2] for n in unpools] == [2, 5, 11, 22, 45]  # each restores its pool's input size
    assert [n.inputs[1] for n in unpools] == [f"features.{i}.indices" for i in (43, 33, 23, 13, 6)]


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError, match="did you mean resnet18"):
        models.build("resnet19")
