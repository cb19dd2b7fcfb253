"""Zoo models: published parameter counts (torchvision's, LeNet-5 by hand), build, verify, run."""

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.analysis import receptive_fields
from cnngraph.errors import UnknownModelError

# torchvision's sum(p.numel() for p in model.parameters()); LeNet-5 derived in models/lenet.py.
PARAM_COUNTS = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
}


@pytest.mark.parametrize("name,count", PARAM_COUNTS.items())
def test_parameter_count_matches_published(name, count):
    assert models.build(name).param_count() == count


def test_every_zoo_model_is_counted():
    assert set(models.zoo()) == set(PARAM_COUNTS)


@pytest.mark.parametrize("name,size", [("lenet5", 32), ("alexnet", 96), ("vgg16", 64), ("vgg16_bn", 64),
                                       ("resnet18", 64), ("resnet50", 64)])
def test_builds_and_runs_at_batch_2(name, size):
    g = models.build(name, num_classes=7, input_size=size)
    c = g.inputs["image"].shape[1]
    x = np.random.default_rng(0).standard_normal((2, c, size, size)).astype(np.float32)
    out = cnngraph.compile(g)(x)
    assert out.shape == (2, 7) and np.isfinite(out).all()


def test_torchvision_state_dict_names():
    keys = set(models.build("resnet18").params)
    assert {"conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias",
            "fc.weight"} <= keys
    assert {"features.0.weight", "classifier.6.bias"} <= set(models.build("alexnet").params)
    assert {"features.1.running_mean", "features.41.weight"} <= set(models.build("vgg16_bn").params)


def test_vgg16_receptive_field_is_the_published_212():
    g = models.build("vgg16")
    fields = receptive_fields(g)
    assert fields["features.30"].size == (212, 212) and fields["features.30"].jump == (32, 32)
    assert fields["features.28"].size == (196, 196) and fields["features.28"].jump == (16, 16)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError, match="did you mean resnet18"):
        models.build("resnet19")
