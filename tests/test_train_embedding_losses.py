"""Contrastive and batch-hard triplet losses against PyTorch (F.pairwise_distance, F.triplet_margin_loss with
autograd; the mining done by brute force here), against finite differences, and on the strict backend; and the
siamese setup: one model on both halves of a batch steps exactly as PyTorch's shared-weight siamese network."""

import numpy as np
import pytest

import cnngraph
from cnngraph.backends.devices import get_backend
from cnngraph.errors import TrainingError
from cnngraph.frontends import dsl
from cnngraph.train import SGD
from cnngraph.train.embedding_losses import ContrastiveLoss, TripletLoss
from tests.gradcheck import numeric_gradient

rng = np.random.default_rng(0)
LABELS = np.array([0, 1, 0, 2, 1, 1, 3, 0, 2, 1])  # identity 3 has one image: an anchor without positives


def embeddings(n=10, d=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def torch_contrastive(torch, x, labels, margin):
    half = len(x) // 2
    same = torch.tensor(labels[:half] == labels[half:], dtype=x.dtype)
    d = torch.nn.functional.pairwise_distance(x[:half], x[half:])
    return (same * d ** 2 + (1 - same) * torch.clamp(margin - d, min=0) ** 2).mean()


def hardest(x, labels):
    """Brute force: each anchor's farthest positive and nearest negative, by torch's pairwise distance."""
    triplets = []
    for a in range(len(x)):
        d = [np.linalg.norm(x[a] - x[j] + 1e-6) for j in range(len(x))]
        pos = [j for j in range(len(x)) if labels[j] == labels[a] and j != a]
        neg = [j for j in range(len(x)) if labels[j] != labels[a]]
        if pos and neg:
            triplets.append((a, max(pos, key=d.__getitem__), min(neg, key=d.__getitem__)))
    return np.array(triplets).T


@pytest.mark.parametrize("margin", [0.5, 3.0])
def test_contrastive_matches_torch(margin):
    torch = pytest.importorskip("torch")
    x = embeddings()
    t = torch.tensor(x, requires_grad=True)
    want = torch_contrastive(torch, t, LABELS, margin)
    want.backward()
    value, grad = ContrastiveLoss(margin)(x, LABELS)
    assert value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("margin", [0.2, 2.0])
def test_batch_hard_triplet_matches_torch(margin):
    torch = pytest.importorskip("torch")
    x = embeddings()
    a, p, n = hardest(x, LABELS)
    t = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.triplet_margin_loss(t[a], t[p], t[n], margin=margin)
    want.backward()
    value, grad = TripletLoss(margin)(x, LABELS)
    assert 0 < value and value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("loss", [ContrastiveLoss(1.5), TripletLoss(1.0)], ids=["contrastive", "triplet"])
def test_gradients_match_finite_differences_and_the_strict_backend(loss):
    x = embeddings(seed=1)
    value, grad = loss(x, LABELS)
    np.testing.assert_allclose(grad, numeric_gradient(lambda: loss(x, LABELS)[0], x), rtol=1e-6, atol=1e-9)
    strict = get_backend("strict")
    on_device = loss(strict.copy(x), strict.copy(LABELS))
    assert on_device[0] == value
    np.testing.assert_array_equal(strict.to_host(on_device[1]), grad)


def test_triplet_of_one_identity_is_zero_and_bad_input_is_named():
    value, grad = TripletLoss()(embeddings(4), np.zeros(4, np.int64))
    assert value == 0 and not grad.any()
    with pytest.raises(TrainingError, match="contrastive: .* even number of embeddings; got 3"):
        ContrastiveLoss()(embeddings(3), np.arange(3))
    with pytest.raises(TrainingError, match=r"triplet: labels must be 4 integers .* got shape \(4, 1\)"):
        TripletLoss()(embeddings(4), np.zeros((4, 1), np.int64))


def test_siamese_step_matches_torch_with_shared_weights():
    """One graph, one parameter set, both halves of the batch: gradients of both branches add up in the shared
    weights, as in PyTorch where one module embeds both images of each pair."""
    torch = pytest.importorskip("torch")
    x = dsl.input("x", (6,))
    graph = dsl.Model(x, dsl.linear(dsl.tanh(dsl.linear(x, 5, name="a")), 3, name="b"), seed=1)
    model = cnngraph.compile(graph, dtype="float64", train=True)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    labels = np.array([0, 1, 2, 3, 0, 2, 2, 1])  # pairs (0, 0), (1, 2), (2, 2), (3, 1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    with torch.no_grad():
        for layer, name in ((net[0], "a"), (net[2], "b")):
            layer.weight.copy_(torch.tensor(graph.params[f"{name}.weight"]))
            layer.bias.copy_(torch.tensor(graph.params[f"{name}.bias"]))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = torch_contrastive(torch, torch.cat([net(torch.tensor(a)), net(torch.tensor(b))]), labels, 1.0)
    loss.backward()
    optimizer.step()
    value = model.train_step(np.concatenate([a, b]), labels, ContrastiveLoss(1.0), SGD(lr=0.1))
    assert value == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(model.params["a.weight"], net[0].weight.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(model.params["b.bias"], net[2].bias.detach().numpy(), rtol=1e-12)
