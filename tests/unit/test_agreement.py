"""Agreement statistics against published worked examples and independent implementations."""

from __future__ import annotations

import itertools
import math

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from labelvault.errors import InvalidInput
from labelvault.quality.agreement import (
    MISSING,
    Answers,
    LabelCodec,
    agreement_with_consensus,
    category_counts,
    cohen_kappa,
    coincidence_matrix,
    encode_labels,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen,
    percent_agreement,
)

nan = math.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section E: 4 coders x 12 units.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]

# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


# ---------------------------------------------------------------------------- Krippendorff's alpha


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_alpha_krippendorff_2011_example(level: str, expected: float) -> None:
    assert krippendorff_alpha(KRIPPENDORFF_2011, level) == pytest.approx(expected, abs=5e-4)


def test_coincidence_matrix_matches_the_paper() -> None:
    o, domain = coincidence_matrix(KRIPPENDORFF_2011)
    assert domain.tolist() == [1, 2, 3, 4, 5]
    # Paper's matrix: o_11 = 7, o_12 = 4/3, o_13 = 1/3, ...; marginals n_c = 9, 13, 10, 5, 3; n = 40.
    assert o[0, 0] == pytest.approx(7)
    assert o[0, 1] == pytest.approx(4 / 3)
    assert o[0, 2] == pytest.approx(1 / 3)
    assert o[1, 1] == pytest.approx(10)
    assert o[4, 4] == pytest.approx(3)
    np.testing.assert_allclose(o, o.T)
    np.testing.assert_allclose(o.sum(axis=0), [9, 13, 10, 5, 3])


def test_alpha_triplet_and_answers_forms_agree_with_matrix() -> None:
    mat = np.array(KRIPPENDORFF_2011)
    raters, items = np.nonzero(~np.isnan(mat))
    values = mat[raters, items]
    answers = Answers(items, raters, values.astype(int))
    for level in ("nominal", "ordinal", "interval", "ratio"):
        reference = krippendorff_alpha(mat, level)
        assert krippendorff_alpha(items=items, raters=raters, values=values, level=level) == pytest.approx(reference)
        assert krippendorff_alpha(items=items, values=values, level=level) == pytest.approx(reference)
        assert krippendorff_alpha(answers, level) == pytest.approx(reference)


def test_alpha_accepts_none_as_missing_and_triplet_nan() -> None:
    with_none = [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in KRIPPENDORFF_2011]
    assert krippendorff_alpha(with_none) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(items=[0, 0, 1, 1, 1], values=[1, 1, 2, 2, nan]) == pytest.approx(
        krippendorff_alpha([[1, 2], [1, 2]])
    )


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("seed", range(4))
def test_alpha_matches_krippendorff_package_on_random_data(level: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_raters, n_units = rng.integers(2, 7), rng.integers(5, 60)
    # Correlated raters so alpha is not always near 0; 30% missing.
    truth = rng.integers(1, 6, n_units)
    noise = rng.integers(-1, 2, (n_raters, n_units)) * (rng.random((n_raters, n_units)) < 0.4)
    data = np.clip(truth + noise, 1, 5).astype(float)
    data[rng.random(data.shape) < 0.3] = np.nan
    expected = krippendorff.alpha(data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("level", ["interval", "ratio"])
def test_alpha_matches_krippendorff_package_on_continuous_values(level: str) -> None:
    rng = np.random.default_rng(42)
    truth = rng.gamma(2.0, 2.0, 40)
    data = truth + rng.normal(0, 0.7, (4, 40))
    data = np.abs(data)
    data[rng.random(data.shape) < 0.25] = np.nan
    expected = krippendorff.alpha(data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, rel=1e-9)


def test_alpha_perfect_agreement_is_one_and_undefined_is_nan() -> None:
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[1, 1, 1], [1, 1, 1]]))  # no variation: D_e = 0
    assert math.isnan(krippendorff_alpha([[1, nan], [nan, 2]]))  # no unit with two values
    assert math.isnan(krippendorff_alpha(items=[], values=[]))


def test_alpha_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput):
        krippendorff_alpha(KRIPPENDORFF_2011, "cardinal")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        krippendorff_alpha([1, 2, 3])
    with pytest.raises(InvalidInput):
        krippendorff_alpha([["a", "b"], ["a", "b"]])
    with pytest.raises(InvalidInput):
        krippendorff_alpha([[-1, 2], [1, 2]], "ratio")
    with pytest.raises(InvalidInput, match="more than once"):
        krippendorff_alpha(items=[0, 0], raters=[1, 1], values=[1, 2])
    with pytest.raises(InvalidInput):
        krippendorff_alpha(KRIPPENDORFF_2011, items=[0], values=[1])
    with pytest.raises(InvalidInput):
        krippendorff_alpha()


# ---------------------------------------------------------------------------- Fleiss and percent


def test_fleiss_wikipedia_example() -> None:
    assert fleiss_kappa(FLEISS_WIKIPEDIA) == pytest.approx(0.210, abs=5e-4)
    assert percent_agreement(FLEISS_WIKIPEDIA) == pytest.approx(0.378, abs=5e-4)  # P_bar


def test_fleiss_from_answers_equals_table() -> None:
    rng = np.random.default_rng(3)
    mat = rng.integers(0, 4, (5, 30))
    answers = Answers.from_matrix(mat)
    table = category_counts(answers)
    assert table.sum(axis=1).tolist() == [5] * 30
    assert fleiss_kappa(answers) == pytest.approx(fleiss_kappa(table))


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_raters, k = int(rng.integers(2, 9)), int(rng.integers(2, 6))
    probs = rng.dirichlet(np.ones(k), size=40)
    table = np.array([rng.multinomial(n_raters, p) for p in probs])
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss_kappa(table, method="fleiss"), rel=1e-10)


def test_fleiss_requires_equal_ratings_and_skips_unrated_items() -> None:
    with pytest.raises(InvalidInput, match="same number"):
        fleiss_kappa([[2, 1], [1, 1]])
    assert fleiss_kappa([[2, 1], [0, 0], [1, 2]]) == pytest.approx(fleiss_kappa([[2, 1], [1, 2]]))
    with pytest.raises(InvalidInput):
        fleiss_kappa([[1.5, 1]])
    with pytest.raises(InvalidInput):
        fleiss_kappa([1, 2])
    assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))  # one category only: P_e = 1


def test_percent_agreement_allows_varying_counts() -> None:
    # item 0: 3 raters all agree -> 1; item 1: 2 of 3 agree -> 1 of 3 pairs; item 2: two disagree -> 0.
    table = [[3, 0], [2, 1], [1, 1], [1, 0]]
    assert percent_agreement(table) == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert math.isnan(percent_agreement([[1, 0]]))


# ---------------------------------------------------------------------------- Cohen


def test_cohen_wikipedia_example() -> None:
    # Wikipedia, "Cohen's kappa": 50 grant proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_weighted_cohen_hand_computed() -> None:
    # 3-point scale, 4 items: pairs (0,0), (0,1), (1,2), (2,2).
    # Marginals a: [2,1,1]/4, b: [1,1,2]/4. Linear weights |i-j|:
    # observed = (0 + 1 + 1 + 0) / 4 = 0.5;
    # expected = sum p_a(i) p_b(j) |i-j| = (2*(1*1 + 2*2) + 1*(1*1 + 2*1) + 1*(1*2 + 1*1)) / 16 = 1.
    a, b = [0, 0, 1, 2], [0, 1, 2, 2]
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(0.5)
    # Quadratic: observed 0.5; expected = (2*(1*1 + 2*4) + 1*(1*1 + 2*1) + 1*(1*4 + 1*1)) / 16 = 26/16.
    expected_q = sum(
        pa * pb * (i - j) ** 2
        for (i, pa), (j, pb) in itertools.product(enumerate([0.5, 0.25, 0.25]), enumerate([0.25, 0.25, 0.5]))
    )
    assert expected_q == pytest.approx(26 / 16)
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(1 - 0.5 / expected_q)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(4))
def test_cohen_matches_scikit_learn(weights: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 5
    a = rng.integers(0, k, 200)
    b = np.where(rng.random(200) < 0.6, a, rng.integers(0, k, 200))
    expected = cohen_kappa_score(a, b, weights=weights, labels=np.arange(k))
    assert cohen_kappa(a, b, weights=weights, n_classes=k) == pytest.approx(expected, rel=1e-10)


def test_cohen_drops_missing_pairs() -> None:
    a = [0, 1, 1, MISSING, 0]
    b = np.array([0, 1, 0, 1, nan])
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa([0, 1, 1], [0, 1, 0]))
    assert math.isnan(cohen_kappa([MISSING], [1]))
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))  # chance agreement is 1: undefined


def test_cohen_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput):
        cohen_kappa([0, 1], [0])
    with pytest.raises(InvalidInput):
        cohen_kappa([0, 1.5], [0, 1])
    with pytest.raises(InvalidInput):
        cohen_kappa([0, -2], [0, 1])
    with pytest.raises(InvalidInput):
        cohen_kappa([0, 3], [0, 1], n_classes=3)
    with pytest.raises(InvalidInput):
        cohen_kappa([0, 1], [0, 1], weights="cubic")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        cohen_kappa(["x", "y"], ["x", "y"])


# ---------------------------------------------------------------------------- pairwise and consensus


def _random_answers(seed: int, n_items: int = 60, n_raters: int = 6, k: int = 4, per_item: int = 3) -> Answers:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    raters = np.array([rng.choice(n_raters, per_item, replace=False) for _ in range(n_items)]).ravel()
    items = np.repeat(np.arange(n_items), per_item)
    values = np.where(rng.random(items.size) < 0.7, truth[items], rng.integers(0, k, items.size))
    return Answers(items, raters, values, n_raters=n_raters, n_classes=k)


@pytest.mark.parametrize("weights", [None, "quadratic"])
def test_pairwise_cohen_equals_per_pair_cohen(weights: str | None) -> None:
    answers = _random_answers(7)
    result = pairwise_cohen(answers, weights=weights)  # type: ignore[arg-type]
    mat = np.full((answers.n_raters, answers.n_items), MISSING)
    mat[answers.raters, answers.items] = answers.values
    seen = 0
    for ra, rb in itertools.combinations(range(answers.n_raters), 2):
        shared = (mat[ra] != MISSING) & (mat[rb] != MISSING)
        hits = np.flatnonzero((result.rater_a == ra) & (result.rater_b == rb))
        if not shared.any():
            assert hits.size == 0
            continue
        seen += 1
        (p,) = hits
        assert result.n_shared[p] == shared.sum()
        expected = cohen_kappa(mat[ra][shared], mat[rb][shared], weights=weights, n_classes=4)  # type: ignore[arg-type]
        assert result.kappa[p] == pytest.approx(expected, nan_ok=True)
        assert result.agreement[p] == pytest.approx(np.mean(mat[ra][shared] == mat[rb][shared]))
    assert seen == len(result)
    assert result.as_records()[0].keys() == {"rater_a", "rater_b", "n_shared", "kappa", "agreement"}


def test_pairwise_cohen_min_shared_and_repeated_answers() -> None:
    # Raters 0 and 1 share items 0 and 1; rater 2 shares item 1 with each of them.
    answers = Answers([0, 0, 1, 1, 1], [0, 1, 0, 1, 2], [0, 0, 1, 1, 1])
    result = pairwise_cohen(answers, min_shared=2)
    assert list(zip(result.rater_a.tolist(), result.rater_b.tolist(), strict=True)) == [(0, 1)]
    assert result.n_shared.tolist() == [2]
    assert result.kappa[0] == pytest.approx(1.0)
    assert len(pairwise_cohen(answers)) == 3
    with pytest.raises(InvalidInput):
        pairwise_cohen(answers, min_shared=0)
    with pytest.raises(InvalidInput, match="more than once"):
        pairwise_cohen(Answers([0, 0, 0], [0, 1, 1], [0, 0, 1]))


def test_agreement_with_given_consensus() -> None:
    answers = Answers([0, 0, 1, 1, 2], [0, 1, 0, 1, 1], [1, 1, 0, 1, 2])
    result = agreement_with_consensus(answers, consensus=[1, 0, MISSING])
    assert result.n.tolist() == [2, 2]  # item 2 has no consensus
    assert result.agreements.tolist() == [2.0, 1.0]
    assert result.rate.tolist() == [1.0, 0.5]
    assert np.all(result.lower <= result.rate) and np.all(result.rate <= result.upper)


def test_agreement_with_leave_one_out_majority() -> None:
    # Item 0: raters 0,1,2 say 0,0,1. Item 1: raters 0,1 say 2,3 (tie for each other). Item 2: rater 3 alone.
    answers = Answers([0, 0, 0, 1, 1, 2], [0, 1, 2, 0, 1, 3], [0, 0, 1, 2, 3, 0])
    result = agreement_with_consensus(answers)
    # Rater 0: item 0 others {0,1} tie -> credit 1/2; item 1 other {3} -> 0.
    # Rater 1: same as rater 0. Rater 2: others {0,0} -> 0. Rater 3: nobody else -> skipped.
    assert result.n.tolist() == [2, 2, 1, 0]
    np.testing.assert_allclose(result.agreements, [0.5, 0.5, 0.0, 0.0])
    assert math.isnan(result.rate[3])
    assert (result.lower[3], result.upper[3]) == (0.0, 1.0)


def test_agreement_with_consensus_rejects_wrong_length() -> None:
    with pytest.raises(InvalidInput):
        agreement_with_consensus(Answers([0, 1], [0, 0], [0, 1]), consensus=[0])


# ---------------------------------------------------------------------------- encoding


def test_encode_labels_sorted_explicit_and_missing() -> None:
    codes, codec = encode_labels(["b", "a", None, "c", "a", float("nan")])
    assert codec.labels == ("a", "b", "c")
    assert codes.tolist() == [1, 0, MISSING, 2, 0, MISSING]
    assert codec.decode(codes) == ["b", "a", None, "c", "a", None]
    codes, codec = encode_labels(["low", "high"], labels=["low", "mid", "high"])
    assert codes.tolist() == [0, 2]
    with pytest.raises(InvalidInput, match="unknown label"):
        codec.encode(["huge"])
    with pytest.raises(InvalidInput):
        LabelCodec(["a", "a"])
    with pytest.raises(InvalidInput):
        codec.decode([5])
    mixed = LabelCodec.fit([2, "x", 1])  # incomparable: first-seen order
    assert mixed.labels == (2, "x", 1)
    assert codec.multi_hot([["low"], [], ["mid", "high"]]).tolist() == [
        [True, False, False],
        [False, False, False],
        [False, True, True],
    ]


def test_answers_from_records_and_validation() -> None:
    records = [("t1", "alice", "cat"), ("t1", "bob", "dog"), ("t2", "alice", None), ("t2", "bob", "cat")]
    answers, items, raters, labels = Answers.from_records(records)
    assert len(answers) == 3  # the missing answer is dropped
    assert (answers.n_items, answers.n_raters, answers.n_classes) == (2, 2, 2)
    assert items.labels == ("t1", "t2") and raters.labels == ("alice", "bob") and labels.labels == ("cat", "dog")
    assert answers.values.tolist() == [0, 1, 0]
    assert "n=3" in repr(answers)
    with pytest.raises(InvalidInput):
        Answers([0, 1], [0], [0, 1])
    with pytest.raises(InvalidInput):
        Answers([0, -1], [0, 0], [0, 1])
    with pytest.raises(InvalidInput):
        Answers([0, 1], [0, 0], [0, 2], n_classes=2)
    with pytest.raises(InvalidInput):
        Answers([0.5], [0], [0])
    with pytest.raises(InvalidInput):
        Answers.from_matrix([1, 2])
    empty = Answers([], [], [])
    assert (len(empty), empty.n_items, empty.n_classes) == (0, 0, 0)
