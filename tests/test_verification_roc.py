"""ROC, AUC, EER and the best threshold against sklearn (when installed) and against brute force over pairs."""

import numpy as np
import pytest

from cnngraph.errors import CnnGraphError
from cnngraph.verification.roc import accuracy, best_threshold, roc


def pairs(seed, n=300, ties=False):
    """Distances where same pairs tend to be closer; with ``ties`` many distances repeat."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    d = rng.normal(np.where(same, 0.8, 1.3), 0.35)
    return (np.round(d, 1) if ties else d), same


@pytest.mark.parametrize("ties", [False, True])
def test_curve_and_auc_match_sklearn(ties):
    metrics = pytest.importorskip("sklearn.metrics")
    d, same = pairs(0, ties=ties)
    curve = roc(d, same)
    fpr, tpr, thresholds = metrics.roc_curve(same, -d, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_allclose(curve.thresholds[1:], -thresholds[1:])
    assert curve.auc == pytest.approx(metrics.roc_auc_score(same, -d), rel=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_auc_is_the_chance_a_same_pair_is_closer_than_a_different_one(ties):
    d, same = pairs(1, ties=ties)
    pos, neg = d[same][:, None], d[~same][None, :]
    brute = ((pos < neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
    assert roc(d, same).auc == pytest.approx(brute, rel=1e-12)


def test_equal_error_rate_lies_where_false_accepts_meet_false_rejects():
    d, same = pairs(2, n=4000)
    eer = roc(d, same).eer
    grid = np.linspace(d.min(), d.max(), 20001)
    far = np.array([(d[~same] <= t).mean() for t in grid])
    frr = np.array([(d[same] > t).mean() for t in grid])
    k = np.argmin(np.abs(far - frr))
    assert eer == pytest.approx((far[k] + frr[k]) / 2, abs=2e-3)
    assert 0.1 < eer < 0.4


def test_separable_pairs_have_auc_1_eer_0_and_a_threshold_between_them():
    d, same = np.array([0.1, 0.2, 0.9, 1.0, 0.3]), np.array([1, 1, 0, 0, 1], bool)
    curve = roc(d, same)
    assert (curve.auc, curve.eer) == (1.0, 0.0)
    threshold, acc = best_threshold(d, same)
    assert acc == 1.0 and 0.3 < threshold < 0.9 and accuracy(d, same, threshold) == 1.0


def test_best_threshold_beats_every_distance_tried_by_brute_force():
    d, same = pairs(3, ties=True)
    threshold, acc = best_threshold(d, same)
    brute = max(((d <= t) == same).mean() for t in np.r_[d, d.min() - 1])
    assert acc == pytest.approx(brute) and accuracy(d, same, threshold) == pytest.approx(acc)


def test_one_kind_of_pair_is_refused():
    with pytest.raises(CnnGraphError, match="needs both same and different pairs; got 3 same of 3"):
        roc([0.1, 0.2, 0.3], [True, True, True])
    with pytest.raises(CnnGraphError, match="2 distances for 3"):
        roc([0.1, 0.2], [True, False, True])
