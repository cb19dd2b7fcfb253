"""Pretrained weights: torch state_dicts round-trip through safetensors into zoo models and give torch's
outputs; .npz files load; every mismatch is reported at once; nothing unpickles."""

import numpy as np
import pytest

import cnngraph
from cnngraph import models
from cnngraph.cli import main
from cnngraph.errors import ModelFileError
from cnngraph.weights import load_weights
from tests.zoo_builds import execute


def torch_vgg11(nn, num_classes):
    """torchvision's VGG-11: features.<i> and classifier.<i> as nn.Sequential indices."""
    layers, c = [], 3
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    model = nn.Module()
    model.features = nn.Sequential(*layers)
    model.avgpool = nn.AdaptiveAvgPool2d(7)
    model.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096),
                                     nn.ReLU(), nn.Dropout(), nn.Linear(4096, num_classes))
    model.forward = lambda x: model.classifier(model.avgpool(model.features(x)).flatten(1))
    return model


def _randomise_batch_norms(torch, model):
    """Non-trivial statistics and affine terms, so a BN loaded into the wrong place cannot pass."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t, lo, hi in ((m.weight.data, 0.5, 1.5), (m.bias.data, -0.2, 0.2), (m.running_mean, -0.2, 0.2),
                              (m.running_var, 0.5, 2.0)):
                t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("vgg11", 32)])
def test_torch_state_dict_round_trip(name, size, tmp_path, zero_params):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from tests.torch_resnet import resnet

    torch.manual_seed(0)
    net = resnet(name, num_classes=10) if name == "resnet18" else torch_vgg11(torch.nn, 10)
    _randomise_batch_norms(torch, net)
    net.eval()
    path = tmp_path / f"{name}.safetensors"
    save_file(net.state_dict(), str(path))  # includes bn*.num_batches_tracked: accepted and ignored
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()

    graph = load_weights(models.build(name, num_classes=10, input_size=size), path)
    (got,) = execute(graph, {"image": x}).values()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_npz_round_trip_and_num_batches_tracked_is_ignored(tmp_path):
    source = models.build("lenet5", seed=3)
    path = tmp_path / "lenet.npz"
    np.savez(path, **source.params, **{"c1.num_batches_tracked": np.array(7)})
    target = load_weights(models.build("lenet5", seed=4), path)
    assert all(np.array_equal(target.params[k], v) for k, v in source.params.items())


def test_every_mismatch_is_listed_in_one_error_and_nothing_changes(tmp_path):
    graph = models.build("lenet5")
    before = {k: v.copy() for k, v in graph.params.items()}
    bad = dict(graph.params)
    del bad["c1.bias"], bad["f6.weight"]
    bad["c3.weight"] = np.zeros((16, 6, 3, 3), np.float32)
    bad["extra.weight"] = np.zeros(3, np.float32)
    path = tmp_path / "bad.npz"
    np.savez(path, **bad)
    with pytest.raises(ModelFileError) as info:
        load_weights(graph, path)
    assert str(info.value) == (
        f"{path}: weights do not fit model 'lenet5': missing 2: c1.bias, f6.weight; unexpected 1: extra.weight; "
        "mis-shaped 1: c3.weight (file (16, 6, 3, 3), model (16, 6, 5, 5))")
    assert all(np.array_equal(graph.params[k], v) for k, v in before.items())


def test_unreadable_files_name_the_file(tmp_path):
    graph = models.build("lenet5")
    with pytest.raises(ModelFileError, match=r"weights must be \.safetensors or \.npz, got '\.pt'"):
        load_weights(graph, tmp_path / "w.pt")
    with pytest.raises(ModelFileError, match="w.npz: no such file"):
        load_weights(graph, tmp_path / "w.npz")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelFileError, match="junk.safetensors: truncated, corrupt or not a safetensors file"):
        load_weights(graph, tmp_path / "junk.safetensors")


def test_pickled_npz_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, **{"c1.weight": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ModelFileError, match="pickled.npz: array 'c1.weight': dtype object is not a plain.*pickle"):
        load_weights(models.build("lenet5"), path)


def test_cli_weights_for_run_and_summary(tmp_path, capsys):
    source = models.build("lenet5", seed=5)
    weights, x_path, out = tmp_path / "w.npz", tmp_path / "x.npy", tmp_path / "out.npy"
    np.savez(weights, **source.params)
    x = np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32)
    np.save(x_path, x)
    assert main(["run", "lenet5", "--weights", str(weights), "--input", str(x_path), "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), cnngraph.compile(source)(x), rtol=1e-6)
    assert main(["summary", "lenet5", "--weights", str(weights)]) == 0
    assert main(["summary", "lenet5", "--num-classes", "7", "--weights", str(weights)]) == 1
    err = capsys.readouterr().err
    assert "mis-shaped 2: output.bias (file (10,), model (7,)), output.weight" in err and err.count("\n") == 1


def test_a_wrong_architecture_is_a_short_error(tmp_path):
    path = tmp_path / "resnet18.npz"
    np.savez(path, **models.build("resnet18").params)
    with pytest.raises(ModelFileError) as info:
        load_weights(models.build("lenet5"), path)
    message = str(info.value)
    assert ("missing 10: c1.bias, c1.weight, c3.bias, c3.weight, c5.bias and 5 more; unexpected 102: "
            "bn1.bias, bn1.running_mean, bn1.running_var, bn1.weight, conv1.weight and 97 more") in message
    assert len(message) < 600 and "\n" not in message
