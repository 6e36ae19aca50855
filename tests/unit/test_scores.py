"""Wilson intervals and gold accuracy summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from labelvault.errors import InvalidInput
from labelvault.quality.scores import gold_accuracy, wilson_interval


def test_wilson_known_values() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert isinstance(low, float)
    # Brown, Cai & DasGupta's boundary cases: 0/10 and 10/10 touch 0 and 1.
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0


def test_wilson_no_data_is_whole_range() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_vectorised_matches_statsmodels() -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(1, 500, 200)
    successes = rng.integers(0, n + 1)
    for alpha in (0.05, 0.01, 0.2):
        z = float(norm.ppf(1 - alpha / 2))
        low, high = wilson_interval(successes, n, z=z)
        ref_low, ref_high = proportion_confint(successes, n, alpha=alpha, method="wilson")
        np.testing.assert_allclose(low, ref_low, atol=1e-12)
        np.testing.assert_allclose(high, ref_high, atol=1e-12)
        assert low.shape == (200,)


def test_wilson_broadcasts_and_accepts_partial_credit() -> None:
    low, high = wilson_interval([[1.5], [3]], [4, 10])
    assert low.shape == (2, 2)
    assert np.all((low >= 0) & (low <= high) & (high <= 1))


@pytest.mark.parametrize(
    ("successes", "n", "z"), [(11, 10, 1.96), (-1, 10, 1.96), (1, -1, 1.96), (1, 2, 0.0), (math.nan, 2, 1.96)]
)
def test_wilson_rejects_bad_input(successes: float, n: float, z: float) -> None:
    with pytest.raises(InvalidInput):
        wilson_interval(successes, n, z=z)


def test_gold_accuracy_summary() -> None:
    raters = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 3]
    correct = [True] * 8 + [False] * 2 + [False, False, True, 0.5]
    summary = gold_accuracy(raters, correct, n_raters=5)
    assert summary.n.tolist() == [10, 3, 0, 1, 0]
    assert summary.correct.tolist() == [8.0, 1.0, 0.0, 0.5, 0.0]
    assert summary.accuracy[0] == pytest.approx(0.8)
    assert math.isnan(summary.accuracy[2])
    assert (round(summary.lower[0], 3), round(summary.upper[0], 3)) == (0.490, 0.943)
    assert (summary.lower[2], summary.upper[2]) == (0.0, 1.0)
    records = summary.as_records()
    assert records[0]["rater"] == 0 and records[0]["n"] == 10


def test_gold_accuracy_suspension_needs_confident_evidence() -> None:
    # Rater 0: 2/20 correct, clearly below 0.7. Rater 1: 1/3, too little evidence to be sure. Rater 2: none.
    raters = [0] * 20 + [1] * 3
    correct = [1, 1] + [0] * 18 + [1, 0, 0]
    summary = gold_accuracy(raters, correct, n_raters=3)
    assert summary.below(0.7).tolist() == [True, False, False]
    assert summary.below(0.7, min_answers=30).tolist() == [False, False, False]
    with pytest.raises(InvalidInput):
        summary.below(1.5)


def test_gold_accuracy_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput):
        gold_accuracy([0, 1], [True])
    with pytest.raises(InvalidInput):
        gold_accuracy([0, -1], [True, False])
    with pytest.raises(InvalidInput):
        gold_accuracy([0, 1], [1.5, 0])
    with pytest.raises(InvalidInput):
        gold_accuracy([0, 4], [1, 0], n_raters=3)
    empty = gold_accuracy([], [])
    assert empty.n.size == 0
