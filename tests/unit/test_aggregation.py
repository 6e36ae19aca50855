"""Aggregation: votes, Dawid-Skene, multi-label, ratings, Bradley-Terry, spans and boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from labelvault.errors import InvalidInput
from labelvault.quality.aggregation import (
    Box,
    Comparisons,
    Span,
    accuracy_to_weight,
    aggregate_ratings,
    box_iou,
    bradley_terry,
    consolidate_boxes,
    consolidate_spans,
    dawid_skene,
    majority_vote,
    multi_label_vote,
    preference_pairs,
    preferences_to_comparisons,
    rankings_to_comparisons,
    weighted_vote,
)
from labelvault.quality.agreement import MISSING, Answers

# ---------------------------------------------------------------------------- votes


def test_majority_vote_hand_case() -> None:
    # item 0: 0,0,1 -> 0 (2/3); item 1: 2,1 -> tie -> lowest code 1 (1/2); item 2: nobody; item 3: 2.
    answers = Answers([0, 0, 0, 1, 1, 3], [0, 1, 2, 0, 1, 2], [0, 0, 1, 2, 1, 2], n_items=4, n_classes=3)
    result = majority_vote(answers)
    assert result.labels.tolist() == [0, 1, MISSING, 2]
    np.testing.assert_allclose(result.confidence, [2 / 3, 0.5, 0.0, 1.0])
    assert result.n_answers.tolist() == [3, 2, 0, 1]
    np.testing.assert_allclose(result.scores[0], [2 / 3, 1 / 3, 0])
    assert result.scores[2].sum() == 0


def test_weighted_vote_hand_case() -> None:
    # Rater 2 (weight 3) outvotes raters 0 and 1 (weight 1 each); rater 3 weighs nothing.
    answers = Answers([0, 0, 0, 1], [0, 1, 2, 3], [0, 0, 1, 1], n_classes=2)
    result = weighted_vote(answers, [1.0, 1.0, 3.0, 0.0])
    assert result.labels.tolist() == [1, MISSING]
    assert result.confidence.tolist() == [0.6, 0.0]
    assert result.n_answers.tolist() == [3, 1]
    with pytest.raises(InvalidInput):
        weighted_vote(answers, [1.0, 1.0])
    with pytest.raises(InvalidInput):
        weighted_vote(answers, [1.0, 1.0, -1.0, 0.0])


def test_accuracy_to_weight() -> None:
    w = accuracy_to_weight([0.5, 0.75, 0.2, 1.0, math.nan], n_classes=2)
    assert w[0] == pytest.approx(0.0)  # chance
    assert w[1] == pytest.approx(math.log(3))
    assert w[2] == 0.0  # below chance: no vote, not a vote against
    assert w[3] == pytest.approx(math.log(99))  # clipped at 0.99
    assert w[4] == 0.0  # unknown accuracy: treated as chance
    assert accuracy_to_weight([0.25], n_classes=4)[0] == pytest.approx(0.0)
    with pytest.raises(InvalidInput):
        accuracy_to_weight([0.5], n_classes=1)


# ---------------------------------------------------------------------------- Dawid-Skene


def _simulate(seed: int, n_items: int = 3000, n_raters: int = 25, k: int = 4, per_item: int = 5):
    """Raters with known confusion: experts, mediocre raters, spammers and class-biased raters."""
    rng = np.random.default_rng(seed)
    priors = np.array([0.4, 0.3, 0.2, 0.1])[:k]
    truth = rng.choice(k, size=n_items, p=priors / priors.sum())
    confusion = np.empty((n_raters, k, k))
    for r in range(n_raters):
        kind = r % 5
        if kind in (0, 1):  # decent: 0.65..0.9 accuracy, errors uniform
            acc = rng.uniform(0.65, 0.9)
            confusion[r] = np.full((k, k), (1 - acc) / (k - 1)) + np.eye(k) * (acc - (1 - acc) / (k - 1))
        elif kind == 2:  # spammer: uniform
            confusion[r] = np.full((k, k), 1 / k)
        elif kind == 3:  # biased: says class 0 half the time
            confusion[r] = 0.5 * np.eye(k) + 0.5 * np.eye(k)[0]
        else:  # confuses classes 1 and 2 systematically
            confusion[r] = np.eye(k)
            confusion[r][[1, 2]] = confusion[r][[2, 1]] * 0.8 + 0.2 * np.eye(k)[[1, 2]]
    raters = np.array([rng.choice(n_raters, per_item, replace=False) for _ in range(n_items)]).ravel()
    items = np.repeat(np.arange(n_items), per_item)
    cum = confusion[raters, truth[items]].cumsum(axis=1)
    values = (rng.random(items.size)[:, None] > cum).sum(axis=1)
    return Answers(items, raters, values, n_items=n_items, n_raters=n_raters, n_classes=k), truth, confusion


def test_dawid_skene_beats_majority_vote_on_simulated_raters() -> None:
    answers, truth, confusion = _simulate(0)
    mv = majority_vote(answers)
    ds = dawid_skene(answers)
    mv_acc = float(np.mean(mv.labels == truth))
    ds_acc = float(np.mean(ds.labels == truth))
    assert ds.converged and 1 < ds.iterations < 100
    assert ds_acc > mv_acc + 0.03, (mv_acc, ds_acc)
    # The estimates describe the simulated raters.
    error = np.abs(ds.confusion - confusion)
    assert error.mean() < 0.03 and error.max() < 0.2, (error.mean(), error.max())
    np.testing.assert_allclose(ds.priors, [0.4, 0.3, 0.2, 0.1], atol=0.03)
    np.testing.assert_allclose(ds.confusion.sum(axis=2), 1.0)
    np.testing.assert_allclose(ds.scores.sum(axis=1), 1.0)
    np.testing.assert_allclose(ds.confidence, ds.scores.max(axis=1))
    assert np.argmax(ds.rater_accuracy) % 5 in (0, 1)
    assert np.all(ds.rater_accuracy[2::5] < 0.3)  # spammers


def test_dawid_skene_is_deterministic() -> None:
    answers, _, _ = _simulate(1, n_items=800)
    first, second = dawid_skene(answers), dawid_skene(answers)
    assert np.array_equal(first.scores, second.scores)
    assert np.array_equal(first.confusion, second.confusion)
    assert first.iterations == second.iterations and first.log_likelihood == second.log_likelihood


def test_dawid_skene_learns_an_adversarial_rater() -> None:
    # Two honest raters agree with truth; rater 2 always answers the opposite class. Majority vote still
    # wins here, but Dawid-Skene must learn that rater 2's answer is evidence *for* the other class.
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 400)
    items = np.repeat(np.arange(400), 3)
    raters = np.tile([0, 1, 2], 400)
    honest = np.where(rng.random(items.size) < 0.85, truth[items], 1 - truth[items])
    values = np.where(raters == 2, 1 - truth[items], honest)
    ds = dawid_skene(Answers(items, raters, values, n_classes=2))
    assert ds.confusion[2, 0, 1] > 0.95 and ds.confusion[2, 1, 0] > 0.95
    assert np.mean(ds.labels == truth) > np.mean(majority_vote(Answers(items, raters, values)).labels == truth)


def test_dawid_skene_unanswered_items_gold_and_limits() -> None:
    answers = Answers([0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 1], n_items=3, n_raters=3, n_classes=2)
    ds = dawid_skene(answers, max_iter=1)
    assert ds.iterations == 1 and not ds.converged
    assert ds.labels[2] == MISSING and ds.confidence[2] == 0.0
    np.testing.assert_allclose(ds.scores[2], ds.priors)
    np.testing.assert_allclose(ds.confusion[2], 0.5)  # rater 2 never answered: uniform rows
    gold = dawid_skene(answers, gold_items=[1], gold_labels=[0])
    assert gold.labels[1] == 0 and gold.confidence[1] == 1.0
    with pytest.raises(InvalidInput):
        dawid_skene(answers, gold_items=[1])
    with pytest.raises(InvalidInput):
        dawid_skene(answers, gold_items=[7], gold_labels=[0])
    with pytest.raises(InvalidInput):
        dawid_skene(answers, smoothing=-1)
    with pytest.raises(InvalidInput):
        dawid_skene(answers, max_iter=0)
    with pytest.raises(InvalidInput):
        dawid_skene([(0, 0, 1)])  # type: ignore[arg-type]


def test_empty_answers() -> None:
    empty = Answers([], [], [], n_items=2, n_raters=1)
    assert majority_vote(empty).labels.tolist() == [MISSING, MISSING]
    ds = dawid_skene(empty)
    assert ds.labels.tolist() == [MISSING, MISSING] and ds.converged and ds.iterations == 0
    no_answers = dawid_skene(Answers([], [], [], n_items=2, n_raters=1, n_classes=3), smoothing=0.0)
    assert no_answers.labels.tolist() == [MISSING, MISSING] and no_answers.converged
    np.testing.assert_allclose(no_answers.priors, 1 / 3)


def test_dawid_skene_without_smoothing_stays_finite() -> None:
    answers, truth, _ = _simulate(2, n_items=500)
    ds = dawid_skene(answers, smoothing=0.0)
    assert np.all(np.isfinite(ds.scores)) and math.isfinite(ds.log_likelihood)
    assert np.mean(ds.labels == truth) > 0.8


# ---------------------------------------------------------------------------- multi-label and ratings


def test_multi_label_vote() -> None:
    items = [0, 0, 0, 1, 1]
    selections = [[1, 0, 1], [1, 1, 0], [0, 0, 0], [0, 1, 0], [1, 1, 0]]
    result = multi_label_vote(items, selections, n_items=3)
    assert result.selected.tolist() == [[True, False, False], [False, True, False], [False, False, False]]
    np.testing.assert_allclose(result.share[0], [2 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(result.confidence[1], [0.5, 1.0, 1.0])  # label 0 is a 50/50 tie: not selected
    assert result.n_answers.tolist() == [3, 2, 0]
    assert result.confidence[2].tolist() == [0, 0, 0]
    with pytest.raises(InvalidInput):
        multi_label_vote([0], [[2, 0]])
    with pytest.raises(InvalidInput):
        multi_label_vote([0, 1], [[1, 0]])


def test_aggregate_ratings_against_numpy() -> None:
    rng = np.random.default_rng(4)
    items = rng.integers(0, 30, 200)
    values = rng.integers(1, 8, 200).astype(float)
    values[rng.random(200) < 0.1] = np.nan
    result = aggregate_ratings(items, values, n_items=32)
    for i in range(32):
        v = values[(items == i) & ~np.isnan(values)]
        assert result.n[i] == v.size
        if v.size == 0:
            assert math.isnan(result.mean[i]) and math.isnan(result.median[i])
            continue
        assert result.mean[i] == pytest.approx(v.mean())
        assert result.median[i] == pytest.approx(np.median(v))
        q1, q3 = np.percentile(v, [25, 75])
        assert (result.q1[i], result.q3[i]) == (pytest.approx(q1), pytest.approx(q3))
        assert result.iqr[i] == pytest.approx(q3 - q1)
        assert (result.minimum[i], result.maximum[i]) == (v.min(), v.max())
        if v.size >= 2:
            assert result.std[i] == pytest.approx(v.std(ddof=1))
        else:
            assert math.isnan(result.std[i])


def test_aggregate_ratings_hand_case_and_errors() -> None:
    result = aggregate_ratings([0, 0, 0, 0], [1, 2, 4, 5])
    assert (result.mean[0], result.median[0], result.q1[0], result.q3[0]) == (3.0, 3.0, 1.75, 4.25)
    with pytest.raises(InvalidInput):
        aggregate_ratings([0, 1], [1])
    with pytest.raises(InvalidInput):
        aggregate_ratings([0], [math.inf])
    assert aggregate_ratings([], []).n.size == 0


# ---------------------------------------------------------------------------- Bradley-Terry


def _neg_log_likelihood(scores, comps: Comparisons, prior: float) -> float:
    d = scores[comps.a] - scores[comps.b]
    ll = comps.weight * (comps.outcome * -np.logaddexp(0, -d) + (1 - comps.outcome) * -np.logaddexp(0, d))
    penalty = prior * (-np.logaddexp(0, -scores) - np.logaddexp(0, scores))
    return -float(ll.sum() + penalty.sum())


def test_bradley_terry_recovers_known_ordering_and_matches_direct_optimisation() -> None:
    rng = np.random.default_rng(11)
    true = np.array([0.3, -1.5, 2.0, 0.9, -0.4, 1.4, -2.2, 0.0])
    a = rng.integers(0, 8, 3000)
    b = (a + rng.integers(1, 8, 3000)) % 8
    won = rng.random(3000) < 1 / (1 + np.exp(-(true[a] - true[b])))
    comps = Comparisons.from_arrays(a, b, won.astype(float))
    for prior in (0.5, 0.0):
        result = bradley_terry(comps, 8, prior=prior)
        assert result.converged
        assert result.ranking().tolist() == np.argsort(-true).tolist()
        assert np.corrcoef(result.scores, true)[0, 1] > 0.99
        direct = minimize(_neg_log_likelihood, np.zeros(8), args=(comps, prior), method="BFGS").x
        np.testing.assert_allclose(result.scores, direct - direct.mean(), atol=1e-4)
        assert result.scores.mean() == pytest.approx(0.0, abs=1e-12)


def test_bradley_terry_ties_count_half() -> None:
    # 0 beats 1 twice, they tie twice, 1 beats 0 once: wins 2 + 1 = 3 vs 1 + 1 = 2 -> p0 / p1 = 3 / 2.
    comps = Comparisons.from_arrays([0, 0, 0, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0.5, 0.5, 1])
    result = bradley_terry(comps, 2, prior=0)
    assert result.scores[0] - result.scores[1] == pytest.approx(math.log(1.5))
    assert result.probability(0, 1) == pytest.approx(0.6)
    matrix = result.win_matrix()
    np.testing.assert_allclose(matrix + matrix.T, 1.0)
    np.testing.assert_allclose(np.diag(matrix), 0.5)


def test_bradley_terry_prior_handles_undefeated_and_uncompared() -> None:
    result = bradley_terry(np.array([[0, 1], [0, 2], [1, 2]]), 4)
    assert result.converged and np.all(np.isfinite(result.scores))
    assert result.ranking().tolist()[0] == 0 and result.ranking().tolist()[-1] == 2
    assert result.scores[1] == pytest.approx(result.scores[3], abs=1e-8)  # the middle one and the unseen one
    with pytest.raises(InvalidInput, match="strongly connected"):
        bradley_terry(np.array([[0, 1], [0, 2], [1, 2]]), 3, prior=0)
    with pytest.raises(InvalidInput):
        bradley_terry(np.array([[0, 5]]), 3)
    with pytest.raises(InvalidInput):
        bradley_terry(np.array([[0, 1, 2]]), 3)


def test_rankings_to_comparisons() -> None:
    comps = rankings_to_comparisons([[2, 0, 1], [1, 0]], groups=[7, 8])
    pairs = list(zip(comps.a.tolist(), comps.b.tolist(), comps.group.tolist(), strict=True))
    assert pairs == [(2, 0, 7), (2, 1, 7), (0, 1, 7), (1, 0, 8)]
    assert comps.outcome.tolist() == [1.0] * 4
    padded = rankings_to_comparisons(np.array([[3, 1, -1, -1]]))
    assert (padded.a.tolist(), padded.b.tolist()) == ([3], [1])
    with pytest.raises(InvalidInput, match="twice"):
        rankings_to_comparisons([[1, 1]])
    with pytest.raises(InvalidInput):
        rankings_to_comparisons([[0, 1]], groups=[1, 2])


def test_preferences_to_comparisons_and_pairs() -> None:
    comps = preferences_to_comparisons([0, 0, 0, 1, 2], [1, 1, 1, 0, 3], ["a", "B", "a", "tie", "tie"])
    assert comps.outcome.tolist() == [1.0, 0.0, 1.0, 0.5, 0.5]
    pairs = preference_pairs(comps)
    # Pair (0,1): 0 won 1 + 0 + 1 + 0.5 of 4 -> chosen 0 with 0.625; pair (2,3) is a pure tie: dropped.
    assert pairs.as_records() == [{"group": 0, "chosen": 0, "rejected": 1, "confidence": 0.625, "n": 4}]
    assert len(preference_pairs(comps, min_confidence=0.7)) == 0
    graded = preferences_to_comparisons([0, 0], [1, 1], ["a", "b"], strength=[1, 3], max_strength=4)
    assert graded.outcome.tolist() == [0.625, 0.125]
    grouped = preferences_to_comparisons([0, 1], [1, 0], ["a", "a"], groups=[1, 2])
    assert [(r["group"], r["chosen"]) for r in preference_pairs(grouped).as_records()] == [(1, 0), (2, 1)]
    with pytest.raises(InvalidInput):
        preferences_to_comparisons([0], [1], ["c"])
    with pytest.raises(InvalidInput):
        preferences_to_comparisons([0], [1], ["a"], strength=[5], max_strength=3)
    with pytest.raises(InvalidInput):
        preferences_to_comparisons([0], [0], ["a"])


# ---------------------------------------------------------------------------- spans


TEXT = "Alice met Bob in Paris ."


def test_consolidate_spans_by_character() -> None:
    answers = [
        [(0, 5, "PER"), (10, 13, "PER"), (17, 22, "LOC")],
        [(0, 5, "PER"), (10, 13, "ORG")],
        [(0, 9, "PER"), (17, 22, "LOC")],
    ]
    # "Alice": 3/3 PER. " met": 1 PER vs 2 none. "Bob": PER, ORG, none tie -> none. "Paris": 2/3 LOC.
    assert consolidate_spans(len(TEXT), answers) == [
        Span(0, 5, "PER", 1.0),
        Span(17, 22, "LOC", pytest.approx(2 / 3)),  # type: ignore[arg-type]
    ]


def test_consolidate_spans_confidence_is_mean_share_and_overlaps_vote_once() -> None:
    # Rater 0 marks [0, 4) twice (overlapping, same label): still one vote. Rater 1 marks [0, 2).
    answers = [[(0, 4, "X"), (1, 3, "X")], [(0, 2, "X")], []]
    # chars 0-1: X 2/3; chars 2-3: X 1 vs none 2 -> none.
    assert consolidate_spans(6, answers) == [Span(0, 2, "X", pytest.approx(2 / 3))]  # type: ignore[arg-type]
    assert consolidate_spans(6, [[], []]) == []
    assert consolidate_spans(0, answers) == []


def test_consolidate_spans_by_token_snaps_to_words() -> None:
    answers = [
        [(1, 4, "PER"), (17, 20, "LOC")],  # partial words still vote for the whole token
        [(0, 5, "PER"), (17, 22, "LOC")],
        [(0, 13, "PER")],  # "Alice met Bob"
    ]
    spans = consolidate_spans(len(TEXT), answers, unit="token", text=TEXT)
    assert spans == [Span(0, 5, "PER", 1.0), Span(17, 22, "LOC", pytest.approx(2 / 3))]  # type: ignore[arg-type]
    # Adjacent tokens with the same winner merge into one span across the space.
    merged = consolidate_spans(len(TEXT), [[(0, 9, "A")], [(0, 9, "A")]], unit="token", text=TEXT)
    assert merged == [Span(0, 9, "A", 1.0)]


def test_consolidate_spans_rejects_bad_spans() -> None:
    with pytest.raises(InvalidInput):
        consolidate_spans(5, [[(3, 2, "X")]])
    with pytest.raises(InvalidInput):
        consolidate_spans(5, [[(0, 6, "X")]])
    with pytest.raises(InvalidInput):
        consolidate_spans(5, [[(0, 2, "X")]], unit="token")
    with pytest.raises(InvalidInput):
        consolidate_spans(5, [[(0, 2)]])  # type: ignore[list-item]


# ---------------------------------------------------------------------------- boxes


def test_box_iou() -> None:
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_consolidate_boxes_matches_averages_and_votes() -> None:
    answers = [
        [(0, 0, 10, 10, "cat"), (20, 20, 30, 30, "dog")],
        [(1, 1, 11, 11, "cat"), (21, 19, 31, 29, "dog"), (50, 50, 60, 60, "cat")],
        [(20, 21, 30, 31, "dog"), (0, 1, 10, 11, "dog")],
        [],
    ]
    boxes = consolidate_boxes(answers)
    assert len(boxes) == 3
    cat, dog, extra = boxes
    assert (cat.label, cat.n_raters, cat.confidence, cat.label_confidence) == ("cat", 3, 0.75, pytest.approx(2 / 3))
    assert (cat.x_min, cat.y_min, cat.x_max, cat.y_max) == pytest.approx((1 / 3, 2 / 3, 31 / 3, 32 / 3))
    assert (dog.label, dog.n_raters, dog.label_confidence) == ("dog", 3, 1.0)
    assert (dog.x_min, dog.y_min) == pytest.approx((61 / 3, 20.0))
    assert extra == Box(50.0, 50.0, 60.0, 60.0, "cat", 0.25, 1.0, 1)
    assert [b.label for b in consolidate_boxes(answers, min_share=0.5)] == ["cat", "dog"]


def test_consolidate_boxes_threshold_and_one_box_per_rater() -> None:
    # Two boxes of the same rater never merge, even when they overlap a lot.
    same_rater = consolidate_boxes([[(0, 0, 10, 10, "a"), (1, 1, 11, 11, "a")]])
    assert [b.n_raters for b in same_rater] == [1, 1]
    # IoU 1/3 is below 0.5 (separate) and above 0.3 (merged).
    answers = [[(0, 0, 10, 10, "a")], [(5, 0, 15, 10, "a")]]
    assert len(consolidate_boxes(answers)) == 2
    assert len(consolidate_boxes(answers, iou_threshold=0.3)) == 1
    assert consolidate_boxes([]) == []
    with pytest.raises(InvalidInput):
        consolidate_boxes([[(10, 0, 0, 10, "a")]])
    with pytest.raises(InvalidInput):
        consolidate_boxes(answers, iou_threshold=0)
