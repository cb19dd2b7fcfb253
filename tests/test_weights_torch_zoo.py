"""Torch state_dicts of torchvision-layout DenseNet-121, GoogLeNet and SqueezeNet 1.0/1.1 load into the zoo
models unchanged and give torch's outputs (BatchNorm on randomised running statistics, eval mode)."""

import numpy as np
import pytest

from cnngraph import models
from cnngraph.weights import load_weights
from tests.test_weights import _randomise_batch_norms
from tests.zoo_builds import execute

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

# torchvision's published parameter counts (1,000 classes): checks the torch replicas themselves
PUBLISHED = {"densenet121": 7_978_856, "googlenet": 6_624_904, "squeezenet1_0": 1_248_424,
             "squeezenet1_1": 1_235_496}


def torch_model(name: str, num_classes: int):
    from tests import torch_zoo

    if name.startswith("densenet"):
        return torch_zoo.densenet(name, num_classes)
    if name == "googlenet":
        return torch_zoo.GoogLeNet(num_classes)
    return torch_zoo.squeezenet(name, num_classes)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_torch_replica_has_torchvisions_parameter_count(name):
    assert sum(p.numel() for p in torch_model(name, 1000).parameters()) == PUBLISHED[name]


# sizes where the ceil-mode pools round up (GoogLeNet's maxpool1-3, SqueezeNet's later pools)
@pytest.mark.parametrize("name,size", [("densenet121", 64), ("googlenet", 64), ("squeezenet1_0", 64),
                                       ("squeezenet1_1", 67)])
def test_torch_state_dict_round_trip(name, size, tmp_path):
    torch.manual_seed(0)
    net = torch_model(name, num_classes=10)
    _randomise_batch_norms(torch, net)
    net.eval()
    path = tmp_path / f"{name}.safetensors"
    safetensors_torch.save_file(net.state_dict(), str(path))  # num_batches_tracked included, ignored on load
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert np.abs(want).max() > 0 and np.ptp(want) > 0  # a dead (all-zero/constant) output would prove nothing

    graph = load_weights(models.build(name, num_classes=10, input_size=size), path)
    (got,) = execute(graph, {"image": x}).values()
    assert got.shape == want.shape == (2, 10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
