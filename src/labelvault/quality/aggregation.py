"""Aggregation of several labelers' answers into one answer per item, each with a confidence.

Pure NumPy/SciPy statistics; no database, no HTTP. Categorical answers come as :class:`Answers`
(parallel ``item``/``rater``/``value`` code arrays, see :mod:`labelvault.quality.agreement`).

* categorical: :func:`majority_vote`, :func:`weighted_vote`, :func:`dawid_skene`;
* ``multi_label``: :func:`multi_label_vote`;
* ``rating``: :func:`aggregate_ratings` (mean, median, std, quartiles, n);
* ``ranking``/``preference``: :func:`rankings_to_comparisons`, :func:`preferences_to_comparisons`,
  :func:`bradley_terry`, :func:`preference_pairs` (chosen/rejected pairs for DPO);
* ``span``: :func:`consolidate_spans`; ``bbox``: :func:`consolidate_boxes`.

Items nobody answered get label ``MISSING`` (``-1``) and confidence ``0``; ties are broken towards the
lowest code, so every result is a deterministic function of its input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelvault.errors import InvalidInput
from labelvault.quality.agreement import MISSING, Answers, LabelCodec

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_TINY: Final = 1e-300  # floor for probabilities before log(): keeps log-space finite


# --------------------------------------------------------------------------------------------------
# Categorical labels
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelAggregate:
    """One aggregated label per item.

    ``scores[i, k]`` is the support of class ``k`` on item ``i`` (vote share, weight share or posterior,
    each row summing to 1 where the item has answers); ``confidence[i] = scores[i, labels[i]]``.
    """

    labels: IntArray
    confidence: FloatArray
    scores: FloatArray
    n_answers: IntArray


def _answers_or_error(answers: Answers) -> Answers:
    if not isinstance(answers, Answers):
        raise InvalidInput("expected an Answers object (items, raters, values code arrays)")
    return answers


def _finish(scores: FloatArray, n_answers: IntArray) -> tuple[IntArray, FloatArray]:
    """Labels (argmax, ties to the lowest code) and confidence; MISSING/0 for unanswered items."""
    answered = n_answers > 0
    if scores.shape[1] == 0:
        return np.full(scores.shape[0], MISSING, dtype=np.int64), np.zeros(scores.shape[0])
    labels = np.argmax(scores, axis=1).astype(np.int64)  # argmax returns the first maximum
    confidence = scores[np.arange(scores.shape[0]), labels]
    return np.where(answered, labels, MISSING), np.where(answered, confidence, 0.0)


def majority_vote(answers: Answers) -> LabelAggregate:
    """Plurality vote per item; confidence = share of the item's votes for the winning class.

    Ties go to the lowest class code, deterministically.
    """
    answers = _answers_or_error(answers)
    k = answers.n_classes
    counts = np.bincount(answers.items * k + answers.values, minlength=answers.n_items * k)
    counts = counts.reshape(answers.n_items, k).astype(np.float64)
    n = counts.sum(axis=1)
    scores = counts / np.where(n > 0, n, 1.0)[:, None]
    n_answers = n.astype(np.int64)
    labels, confidence = _finish(scores, n_answers)
    return LabelAggregate(labels, confidence, scores, n_answers)


def accuracy_to_weight(accuracy: ArrayLike, n_classes: int, *, clip: float = 0.99) -> FloatArray:
    """Log-odds vote weight ``log((K - 1) p / (1 - p))`` of a rater with accuracy ``p``.

    This is the optimal weight for independent raters whose errors spread evenly over the other
    ``K - 1`` classes (Nitzan & Paroush 1982, "Optimal decision rules in uncertain dichotomous choice
    situations", International Economic Review 23(2); Littlestone & Warmuth's weighted majority in the
    binary case). Accuracies are clipped to ``[0, clip]`` so perfect gold scores give a finite weight,
    and weights at or below chance (``p <= 1/K``) become 0 rather than votes against.
    """
    p = np.asarray(accuracy, dtype=np.float64)
    if n_classes < 2:
        raise InvalidInput("n_classes must be >= 2", details={"field": "n_classes"})
    if not 0.5 <= clip < 1.0:
        raise InvalidInput("clip must be within [0.5, 1)", details={"field": "clip"})
    p = np.clip(np.nan_to_num(p, nan=1.0 / n_classes), 0.0, clip)
    with np.errstate(divide="ignore"):
        w = np.log((n_classes - 1) * p / (1.0 - p))
    return np.maximum(w, 0.0)


def weighted_vote(answers: Answers, weights: ArrayLike) -> LabelAggregate:
    """Vote with one non-negative weight per rater (e.g. gold accuracy, or :func:`accuracy_to_weight`).

    Confidence = the winner's share of the total weight on the item. Items whose raters all weigh 0 are
    left unlabelled (``MISSING``, confidence 0).
    """
    answers = _answers_or_error(answers)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size != answers.n_raters:
        raise InvalidInput("weights must have one value per rater", details={"field": "weights"})
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise InvalidInput("weights must be finite and non-negative", details={"field": "weights"})
    k = answers.n_classes
    mass = np.bincount(
        answers.items * k + answers.values, weights=w[answers.raters], minlength=answers.n_items * k
    ).reshape(answers.n_items, k)
    total = mass.sum(axis=1)
    scores = mass / np.where(total > 0, total, 1.0)[:, None]
    n_answers = np.bincount(answers.items, minlength=answers.n_items).astype(np.int64)
    labels, confidence = _finish(scores, np.where(total > 0, n_answers, 0))
    return LabelAggregate(labels, confidence, scores, n_answers)


@dataclass(frozen=True)
class DawidSkeneResult(LabelAggregate):
    """Dawid-Skene estimate. ``scores`` is the posterior ``P(true class | answers)`` per item.

    ``confusion[r, k, l] = P(rater r answers l | true class k)``; ``priors[k] = P(true class k)``.
    ``log_likelihood`` is the marginal log-likelihood of the answers under the final parameters.
    """

    confusion: FloatArray
    priors: FloatArray
    iterations: int
    converged: bool
    log_likelihood: float

    @property
    def rater_accuracy(self) -> FloatArray:
        """Expected accuracy of each rater: ``sum_k priors[k] * confusion[r, k, k]``."""
        return np.einsum("k,rkk->r", self.priors, self.confusion)


def dawid_skene(
    answers: Answers,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
    gold_items: ArrayLike | None = None,
    gold_labels: ArrayLike | None = None,
) -> DawidSkeneResult:
    """Dawid-Skene EM: a full confusion matrix per rater and class priors, jointly with the true labels.

    Dawid, A. P. & Skene, A. M. (1979), "Maximum Likelihood Estimation of Observer Error-Rates Using the
    EM Algorithm", Journal of the Royal Statistical Society C 28(1), 20-28.

    * Initialisation: the majority-vote shares of each item (as in the paper).
    * M-step: ``confusion[r, k, l] ∝ smoothing + sum_{answers (i, r, l)} T[i, k]``, priors likewise;
      additive smoothing is the MAP estimate under a Dirichlet(1 + smoothing) prior and keeps raters with
      few answers from getting zero-probability cells.
    * E-step in log space: ``log T[i, k] = log prior_k + sum_{answers (i, r, l)} log confusion[r, k, l]``
      normalised by log-sum-exp.
    * Stop when the penalised log-likelihood (which EM never decreases) changes by less than
      ``tol`` per answer, or after ``max_iter`` iterations.

    Both steps are products with one sparse (rater*answer-class x item) count matrix built once, so an
    iteration is O(answers x classes) with no Python loop over answers; the result is deterministic.
    ``gold_items``/``gold_labels`` clamp the posterior of known items to their true class
    (semi-supervised: gold tasks then calibrate the confusion matrices).
    """
    answers = _answers_or_error(answers)
    if max_iter < 1:
        raise InvalidInput("max_iter must be >= 1", details={"field": "max_iter"})
    if not (tol >= 0 and math.isfinite(tol)):
        raise InvalidInput("tol must be a finite non-negative number", details={"field": "tol"})
    if not (smoothing >= 0 and math.isfinite(smoothing)):
        raise InvalidInput("smoothing must be a finite non-negative number", details={"field": "smoothing"})
    n_items, n_raters, k = answers.n_items, answers.n_raters, answers.n_classes
    n_total = len(answers)
    gold_i, gold_l = _gold(gold_items, gold_labels, n_items, k)
    if k == 0:  # no class at all (no answers and no declared classes): nothing to estimate
        return DawidSkeneResult(
            labels=np.full(n_items, MISSING, dtype=np.int64),
            confidence=np.zeros(n_items),
            scores=np.zeros((n_items, 0)),
            n_answers=np.zeros(n_items, dtype=np.int64),
            confusion=np.zeros((n_raters, 0, 0)),
            priors=np.zeros(0),
            iterations=0,
            converged=True,
            log_likelihood=0.0,
        )

    # counts[r * K + l, i] = how often rater r answered l on item i (duplicates are summed). CSC makes
    # the M-step product column-wise; its transpose is a free CSR view for the E-step.
    import scipy.sparse as sp  # imported here: SciPy is a fifth of every CLI command's start-up

    counts = sp.csc_matrix(
        (np.ones(n_total), (answers.raters * k + answers.values, answers.items)),
        shape=(n_raters * k, n_items),
    )
    by_item = counts.T
    n_answers = np.bincount(answers.items, minlength=n_items).astype(np.int64)
    answered = n_answers > 0

    # Initialise from majority-vote shares; unanswered items carry no weight in the M-step.
    votes = np.bincount(answers.items * k + answers.values, minlength=n_items * k).reshape(n_items, k)
    posterior = votes / np.where(answered, n_answers, 1)[:, None]
    if gold_i.size:
        posterior[gold_i] = np.eye(k)[gold_l]

    log_likelihood = -math.inf
    previous = -math.inf
    converged = False
    iterations = 0
    priors = np.full(k, 1.0 / k)
    confusion = np.full((n_raters, k, k), 1.0 / k)
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is part of the result
        # M-step: expected counts (rater, answered l, true k) = counts @ posterior.
        expected = np.asarray(counts @ posterior).reshape(n_raters, k, k)  # [r, l, k]
        confusion = expected.transpose(0, 2, 1) + smoothing  # [r, k, l]
        row = confusion.sum(axis=2, keepdims=True)
        confusion = np.where(row > 0, confusion / np.where(row > 0, row, 1.0), 1.0 / k)
        mass = posterior.sum(axis=0) + smoothing
        priors = mass / mass.sum() if mass.sum() > 0 else np.full(k, 1.0 / k)

        # E-step in log space.
        log_conf = np.log(np.maximum(confusion, _TINY))
        log_prior = np.log(np.maximum(priors, _TINY))
        logits = np.asarray(by_item @ log_conf.transpose(0, 2, 1).reshape(n_raters * k, k)) + log_prior
        posterior, log_norm = _softmax_rows(logits)
        posterior[~answered] = 0.0  # no evidence: keep them out of the next M-step
        if gold_i.size:
            posterior[gold_i] = np.eye(k)[gold_l]

        log_likelihood = float(log_norm[answered].sum())
        objective = log_likelihood + smoothing * (float(log_conf.sum()) + float(log_prior.sum()))
        if abs(objective - previous) <= tol * max(n_total, 1):
            converged = True
            break
        previous = objective

    scores = posterior.copy()
    scores[~answered] = priors  # the best guess without answers is the prior
    labels, confidence = _finish(scores, n_answers)
    return DawidSkeneResult(
        labels=labels,
        confidence=confidence,
        scores=scores,
        n_answers=n_answers,
        confusion=confusion,
        priors=priors,
        iterations=iterations,
        converged=converged,
        log_likelihood=log_likelihood,
    )


def _softmax_rows(logits: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Row-wise softmax and log-sum-exp, in place on ``logits``, with one ``exp`` pass.

    Reductions run over the K column views: NumPy reduces a short inner axis slowly.
    """
    k = logits.shape[1]
    top = np.maximum.reduce([logits[:, j] for j in range(k)]) if k else np.zeros(logits.shape[0])
    logits -= top[:, None]
    np.exp(logits, out=logits)
    total = logits[:, 0].copy() if k else np.ones(logits.shape[0])
    for j in range(1, k):
        total += logits[:, j]
    logits /= total[:, None]
    return logits, top + np.log(total)


def _gold(
    gold_items: ArrayLike | None, gold_labels: ArrayLike | None, n_items: int, k: int
) -> tuple[IntArray, IntArray]:
    if gold_items is None and gold_labels is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if gold_items is None or gold_labels is None:
        raise InvalidInput("pass both gold_items and gold_labels", details={"field": "gold_items"})
    gi = np.asarray(gold_items)
    gl = np.asarray(gold_labels)
    if gi.ndim != 1 or gi.shape != gl.shape:
        raise InvalidInput("gold_items and gold_labels must be 1-D and of the same length")
    if gi.size and (gi.dtype.kind not in "iu" or gi.min() < 0 or gi.max() >= n_items):
        raise InvalidInput("gold_items must be item indices", details={"field": "gold_items"})
    if gl.size and (gl.dtype.kind not in "iu" or gl.min() < 0 or gl.max() >= k):
        raise InvalidInput("gold_labels must be class codes", details={"field": "gold_labels"})
    return gi.astype(np.int64), gl.astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Multi-label
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiLabelAggregate:
    """Per item and label: selected by the majority, the share of answers selecting it, and confidence
    (the share of answers agreeing with the decision, ``max(share, 1 - share)``)."""

    selected: BoolArray
    share: FloatArray
    confidence: FloatArray
    n_answers: IntArray


def multi_label_vote(
    items: ArrayLike, selections: ArrayLike, *, n_items: int | None = None, threshold: float = 0.5
) -> MultiLabelAggregate:
    """Per-label majority for ``multi_label`` questions.

    ``items[j]`` is the item of answer ``j`` and ``selections[j]`` its boolean row over the labels (see
    :meth:`LabelCodec.multi_hot`); an answer selecting nothing still votes "no" on every label. A label
    is selected when its share of the item's answers is strictly above ``threshold`` (a 50/50 tie is
    not selected).
    """
    sel = np.asarray(selections)
    it = np.asarray(items)
    if sel.ndim != 2 or it.ndim != 1 or sel.shape[0] != it.shape[0]:
        raise InvalidInput("selections must be an answers x labels matrix with one item per answer")
    if sel.dtype != bool and not (sel.size == 0 or np.isin(sel, (0, 1)).all()):
        raise InvalidInput("selections must be boolean", details={"field": "selections"})
    if it.size and (it.dtype.kind not in "iu" or it.min() < 0):
        raise InvalidInput("items must be non-negative indices", details={"field": "items"})
    if not 0.0 <= threshold < 1.0:
        raise InvalidInput("threshold must be within [0, 1)", details={"field": "threshold"})
    size = n_items if n_items is not None else int(it.max()) + 1 if it.size else 0
    if it.size and it.max() >= size:
        raise InvalidInput(f"items has an index >= n_items={size}", details={"field": "items"})
    it = it.astype(np.int64)
    n = np.bincount(it, minlength=size)
    # One bincount per label (labels are few): much faster than np.add.at over a 2-D target.
    counts = np.zeros((size, sel.shape[1]))
    for j in range(sel.shape[1]):
        counts[:, j] = np.bincount(it, weights=sel[:, j].astype(np.float64), minlength=size)
    share = counts / np.where(n > 0, n, 1)[:, None]
    selected = (share > threshold) & (n > 0)[:, None]
    confidence = np.where((n > 0)[:, None], np.maximum(share, 1.0 - share), 0.0)
    return MultiLabelAggregate(selected, share, confidence, n.astype(np.int64))


# --------------------------------------------------------------------------------------------------
# Ratings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingAggregate:
    """Per item: n, mean, median, sample std (ddof=1; nan below 2 ratings), quartiles and IQR.

    Quartiles use linear interpolation between order statistics (NumPy's default, Hyndman & Fan 1996
    definition 7). Every statistic is ``nan`` for items without ratings.
    """

    n: IntArray
    mean: FloatArray
    median: FloatArray
    std: FloatArray
    q1: FloatArray
    q3: FloatArray
    iqr: FloatArray
    minimum: FloatArray
    maximum: FloatArray


def aggregate_ratings(items: ArrayLike, values: ArrayLike, *, n_items: int | None = None) -> RatingAggregate:
    """Mean, median, std, quartiles/IQR and count of numeric ratings per item; NaN ratings are dropped.

    Vectorised: one lexsort by (item, value), then order statistics are read at group offsets.
    """
    it = np.asarray(items)
    va = np.asarray(values, dtype=np.float64)
    if it.ndim != 1 or va.shape != it.shape:
        raise InvalidInput("items and values must be 1-D arrays of the same length")
    if it.size and (it.dtype.kind not in "iu" or it.min() < 0):
        raise InvalidInput("items must be non-negative indices", details={"field": "items"})
    if np.isinf(va).any():
        raise InvalidInput("ratings must be finite (NaN = missing)", details={"field": "values"})
    size = n_items if n_items is not None else int(it.max()) + 1 if it.size else 0
    if it.size and it.max() >= size:
        raise InvalidInput(f"items has an index >= n_items={size}", details={"field": "items"})
    keep = ~np.isnan(va)
    it, va = it[keep].astype(np.int64), va[keep]
    order = np.lexsort((va, it))
    it, va = it[order], va[order]
    n = np.bincount(it, minlength=size)
    start = np.concatenate(([0], np.cumsum(n)[:-1])) if size else np.zeros(0, dtype=np.int64)
    has = n > 0
    safe_n = np.where(has, n, 1)
    total = np.bincount(it, weights=va, minlength=size)
    mean = np.where(has, total / safe_n, np.nan)
    dev = va - mean[it]
    sq = np.bincount(it, weights=dev * dev, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(n >= 2, np.sqrt(sq / np.maximum(n - 1, 1)), np.nan)

    def quantile(q: float) -> FloatArray:
        pos = q * (safe_n - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, safe_n - 1)
        frac = pos - lo
        if va.size == 0:
            return np.full(size, np.nan)
        a = va[np.minimum(start + lo, va.size - 1)]
        b = va[np.minimum(start + hi, va.size - 1)]
        return np.where(has, a + (b - a) * frac, np.nan)

    q1, median, q3 = quantile(0.25), quantile(0.5), quantile(0.75)
    return RatingAggregate(
        n=n.astype(np.int64),
        mean=mean,
        median=median,
        std=std,
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        minimum=quantile(0.0),
        maximum=quantile(1.0),
    )


# --------------------------------------------------------------------------------------------------
# Pairwise comparisons: rankings, preferences, Bradley-Terry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparisons:
    """Pairwise comparisons of candidates: comparison ``c`` pits ``a[c]`` against ``b[c]``.

    ``outcome[c]`` is the share of the win that goes to ``a`` (1 = a wins, 0 = b wins, 0.5 = tie; graded
    values for preference strength); ``weight[c]`` its weight; ``group[c]`` the task it belongs to
    (``0`` when not grouped).
    """

    a: IntArray
    b: IntArray
    outcome: FloatArray
    weight: FloatArray
    group: IntArray

    def __post_init__(self) -> None:
        m = self.a.shape
        if not (self.b.shape == self.outcome.shape == self.weight.shape == self.group.shape == m):
            raise InvalidInput("comparison arrays must have the same length")
        if self.a.size:
            if min(self.a.min(), self.b.min()) < 0:
                raise InvalidInput("candidates must be non-negative indices")
            if np.any(self.a == self.b):
                raise InvalidInput("a candidate cannot be compared with itself")
            if np.any(~np.isfinite(self.outcome)) or self.outcome.min() < 0 or self.outcome.max() > 1:
                raise InvalidInput("outcomes must be within [0, 1]")
            if np.any(~np.isfinite(self.weight)) or self.weight.min() < 0:
                raise InvalidInput("weights must be finite and non-negative")

    def __len__(self) -> int:
        return int(self.a.size)

    @classmethod
    def from_arrays(
        cls,
        a: ArrayLike,
        b: ArrayLike,
        outcome: ArrayLike | None = None,
        *,
        weight: ArrayLike | None = None,
        group: ArrayLike | None = None,
    ) -> Comparisons:
        """Build from arrays; ``outcome`` defaults to 1 (``a`` beat ``b``), weight to 1, group to 0."""
        aa = _int_vector(a, "a")
        bb = _int_vector(b, "b")
        m = aa.size
        out = np.ones(m) if outcome is None else np.asarray(outcome, dtype=np.float64)
        w = np.ones(m) if weight is None else np.asarray(weight, dtype=np.float64)
        g = np.zeros(m, dtype=np.int64) if group is None else _int_vector(group, "group")
        return cls(aa, bb, out, w, g)

    @classmethod
    def concatenate(cls, parts: Sequence[Comparisons]) -> Comparisons:
        if not parts:
            return cls.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int64))
        return cls(
            np.concatenate([p.a for p in parts]),
            np.concatenate([p.b for p in parts]),
            np.concatenate([p.outcome for p in parts]),
            np.concatenate([p.weight for p in parts]),
            np.concatenate([p.group for p in parts]),
        )


def _int_vector(values: ArrayLike, name: str) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional", details={"field": name})
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidInput(f"{name} must hold integers", details={"field": name})
    return arr.astype(np.int64)


def rankings_to_comparisons(
    rankings: ArrayLike | Sequence[Sequence[int]], *, groups: ArrayLike | None = None
) -> Comparisons:
    """Every ordered pair implied by each ranking: a candidate placed above another beat it.

    ``rankings`` is a 2-D array, one row per answer listing candidate ids best first, padded with
    ``-1`` when only some candidates were ranked (a ragged list of lists is padded for you).
    ``groups[r]`` tags the comparisons of ranking ``r`` (e.g. its task). A ranking of ``m`` candidates
    gives ``m(m-1)/2`` comparisons; the work is vectorised over rankings.
    """
    if isinstance(rankings, np.ndarray):
        mat = rankings
    else:
        rows = [list(r) for r in rankings]  # type: ignore[union-attr]
        width = max((len(r) for r in rows), default=0)
        mat = np.full((len(rows), width), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            mat[i, : len(r)] = r
    if mat.ndim != 2 or (mat.size and mat.dtype.kind not in "iu"):
        raise InvalidInput("rankings must be a 2-D integer array (one row per ranking, -1 = padding)")
    mat = mat.astype(np.int64)
    if mat.size and mat.min() < -1:
        raise InvalidInput("rankings hold candidate ids >= 0 and -1 as padding")
    srt = np.sort(mat, axis=1)
    if np.any((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)):
        raise InvalidInput("a ranking lists the same candidate twice")
    g = np.zeros(mat.shape[0], dtype=np.int64) if groups is None else _int_vector(groups, "groups")
    if g.size != mat.shape[0]:
        raise InvalidInput("groups must have one entry per ranking", details={"field": "groups"})
    upper, lower = np.triu_indices(mat.shape[1], k=1)
    a = mat[:, upper].ravel()
    b = mat[:, lower].ravel()
    gg = np.repeat(g, upper.size)
    ok = (a >= 0) & (b >= 0)
    return Comparisons.from_arrays(a[ok], b[ok], group=gg[ok])


def preferences_to_comparisons(
    a: ArrayLike,
    b: ArrayLike,
    choice: ArrayLike,
    *,
    strength: ArrayLike | None = None,
    max_strength: float | None = None,
    groups: ArrayLike | None = None,
) -> Comparisons:
    """Comparisons from A-vs-B preference answers: ``choice[j]`` is ``"a"``, ``"b"`` or ``"tie"``.

    Without ``strength`` the chosen side gets a full win and a tie half a win to each (as in
    Bradley-Terry with ties counted half). With ``strength`` (0 = no preference .. ``max_strength``,
    default the largest given) the win is graded: outcome ``0.5 + 0.5 * strength / max_strength``
    for the chosen side, so a slight preference counts less than a clear one.
    """
    ch = np.asarray(choice).astype(str)
    if ch.ndim != 1:
        raise InvalidInput("choice must be one-dimensional", details={"field": "choice"})
    ch = np.char.lower(ch)
    valid = np.isin(ch, ("a", "b", "tie"))
    if not valid.all():
        bad = sorted(set(ch[~valid].tolist()))[:5]
        raise InvalidInput("choice must be 'a', 'b' or 'tie'", details={"field": "choice", "values": bad})
    side = np.where(ch == "a", 1.0, np.where(ch == "b", -1.0, 0.0))
    if strength is None:
        margin = np.abs(side)
    else:
        s = np.asarray(strength, dtype=np.float64)
        if s.shape != ch.shape or np.any(~np.isfinite(s)) or (s.size and s.min() < 0):
            raise InvalidInput("strength must be non-negative, one per answer", details={"field": "strength"})
        top = float(max_strength) if max_strength is not None else float(s.max(initial=0.0))
        if top <= 0 or (s.size and s.max() > top):
            raise InvalidInput("max_strength must be positive and >= every strength", details={"field": "max_strength"})
        margin = np.where(side != 0, s / top, 0.0)
    return Comparisons.from_arrays(a, b, 0.5 + 0.5 * side * margin, group=groups)


@dataclass(frozen=True)
class BradleyTerryResult:
    """Bradley-Terry strengths: ``P(i beats j) = s_i / (s_i + s_j) = sigmoid(scores[i] - scores[j])``.

    ``scores`` are log-strengths centred to mean 0; ``strengths = exp(scores)``.
    """

    scores: FloatArray
    strengths: FloatArray
    iterations: int
    converged: bool

    def probability(self, i: ArrayLike, j: ArrayLike) -> Any:
        """Probability that candidate ``i`` beats ``j`` (vectorised)."""
        diff = self.scores[np.asarray(i)] - self.scores[np.asarray(j)]
        return 1.0 / (1.0 + np.exp(-diff))

    def win_matrix(self) -> FloatArray:
        """``P[i, j]`` = probability that ``i`` beats ``j`` (0.5 on the diagonal); n^2 memory."""
        return 1.0 / (1.0 + np.exp(-(self.scores[:, None] - self.scores[None, :])))

    def ranking(self) -> IntArray:
        """Candidates from strongest to weakest (ties by lower id)."""
        return np.argsort(-self.scores, kind="stable").astype(np.int64)


def bradley_terry(
    comparisons: Comparisons | ArrayLike,
    n_items: int,
    *,
    prior: float = 0.5,
    max_iter: int = 10_000,
    tol: float = 1e-10,
) -> BradleyTerryResult:
    """Bradley-Terry strengths by the MM algorithm of Hunter (2004).

    Hunter, D. R. (2004), "MM algorithms for generalized Bradley-Terry models", Annals of Statistics
    32(1), 384-406: ``p_i <- W_i / sum_j n_ij / (p_i + p_j)``, with ``W_i`` the (weighted) wins of ``i``,
    ties counted half to each side, and ``n_ij`` the (weighted) number of comparisons of ``i`` and ``j``.

    ``comparisons`` is a :class:`Comparisons` or an ``m x 2`` array of ``(winner, loser)`` rows.
    ``prior > 0`` adds, per candidate, ``prior`` virtual wins and ``prior`` virtual losses against a
    fixed reference of strength 1: a proper regulariser that gives finite scores even to undefeated or
    never-compared candidates. With ``prior = 0`` the maximum-likelihood estimate exists only if the
    comparison graph is strongly connected (Hunter's Assumption 1); otherwise ``InvalidInput``.
    """
    comps = _as_comparisons(comparisons)
    if n_items < 1:
        raise InvalidInput("n_items must be >= 1", details={"field": "n_items"})
    if len(comps) and max(comps.a.max(), comps.b.max()) >= n_items:
        raise InvalidInput(f"a candidate id is >= n_items={n_items}", details={"field": "n_items"})
    if not (prior >= 0 and math.isfinite(prior)):
        raise InvalidInput("prior must be a finite non-negative number", details={"field": "prior"})
    if max_iter < 1:
        raise InvalidInput("max_iter must be >= 1", details={"field": "max_iter"})

    w = comps.weight
    wins = np.bincount(comps.a, weights=w * comps.outcome, minlength=n_items)
    wins += np.bincount(comps.b, weights=w * (1.0 - comps.outcome), minlength=n_items)
    # Pool comparisons per unordered pair so each iteration costs O(distinct pairs).
    lo, hi = np.minimum(comps.a, comps.b), np.maximum(comps.a, comps.b)
    keys, inverse = np.unique(lo * n_items + hi, return_inverse=True)
    n_pair = np.bincount(inverse.ravel(), weights=w, minlength=keys.size)
    pi, pj = keys // n_items, keys % n_items
    active = n_pair > 0
    pi, pj, n_pair = pi[active], pj[active], n_pair[active]

    if prior == 0:
        _check_strongly_connected(comps, n_items)

    p = np.ones(n_items)
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is part of the result
        inv = n_pair / (p[pi] + p[pj])
        denom = np.bincount(pi, weights=inv, minlength=n_items)
        denom += np.bincount(pj, weights=inv, minlength=n_items)
        denom += 2.0 * prior / (p + 1.0)
        log_new = np.log((wins + prior) / denom)
        if prior > 0:
            # Only the weak prior pins the overall scale, so plain MM crawls along it: take the exact
            # best common shift, which also never lowers the objective.
            log_new += _best_shift(log_new)
        else:
            log_new -= log_new.mean()  # the likelihood is scale-free: pin the geometric mean
        change = float(np.max(np.abs(log_new - np.log(p))))
        p = np.exp(log_new)
        if change < tol:
            converged = True
            break
    scores = np.log(p)
    scores -= scores.mean()
    return BradleyTerryResult(scores=scores, strengths=np.exp(scores), iterations=iterations, converged=converged)


def _best_shift(log_p: FloatArray) -> float:
    """Shift ``u`` maximising the virtual-game prior ``sum_i log sigmoid(s_i + u) + log sigmoid(-s_i - u)``.

    Its derivative is ``-sum_i tanh((s_i + u) / 2)``, monotone in ``u``: a few Newton steps solve it.
    """
    u = -float(np.median(log_p))
    for _ in range(100):
        t = np.tanh((log_p + u) / 2.0)
        slope = float((0.5 * (1.0 - t * t)).sum())
        if slope <= 0:
            break
        step = float(t.sum()) / slope
        u -= step
        if abs(step) < 1e-13:
            break
    return u


def _as_comparisons(comparisons: Comparisons | ArrayLike) -> Comparisons:
    if isinstance(comparisons, Comparisons):
        return comparisons
    arr = np.asarray(comparisons)
    if arr.size == 0:
        return Comparisons.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int64))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InvalidInput("comparisons must be Comparisons or an m x 2 array of (winner, loser)")
    return Comparisons.from_arrays(arr[:, 0], arr[:, 1])


def _check_strongly_connected(comps: Comparisons, n_items: int) -> None:
    """Hunter (2004) Assumption 1: for every split of the candidates, someone on each side beat
    someone on the other. Edge loser -> winner for every (partial) win."""
    wa = comps.weight * comps.outcome > 0  # a won something: edge b -> a
    wb = comps.weight * (1.0 - comps.outcome) > 0  # b won something: edge a -> b
    src = np.concatenate([comps.b[wa], comps.a[wb]])
    dst = np.concatenate([comps.a[wa], comps.b[wb]])
    import scipy.sparse as sp  # imported here: SciPy is a fifth of every CLI command's start-up
    from scipy.sparse.csgraph import connected_components

    graph = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n_items, n_items))
    n_components, _ = connected_components(graph, directed=True, connection="strong")
    if n_components > 1:
        raise InvalidInput(
            "with prior=0 Bradley-Terry needs a strongly connected comparison graph; use prior > 0",
            details={"components": int(n_components)},
        )


@dataclass(frozen=True)
class PreferencePairs:
    """Aggregated chosen/rejected pairs, one per (group, unordered candidate pair) with a winner.

    ``confidence`` is the chosen side's (weighted) share of the wins between the two, ties counting
    half; ``n`` the number of comparisons behind it.
    """

    group: IntArray
    chosen: IntArray
    rejected: IntArray
    confidence: FloatArray
    n: IntArray

    def __len__(self) -> int:
        return int(self.group.size)

    def as_records(self) -> list[dict[str, Any]]:
        return [
            {"group": g, "chosen": c, "rejected": r, "confidence": f, "n": n}
            for g, c, r, f, n in zip(
                self.group.tolist(),
                self.chosen.tolist(),
                self.rejected.tolist(),
                self.confidence.tolist(),
                self.n.tolist(),
                strict=True,
            )
        ]


def preference_pairs(comparisons: Comparisons, *, min_confidence: float = 0.5) -> PreferencePairs:
    """Chosen/rejected pairs (e.g. for DPO) from all comparisons of the same pair within a group.

    Exact 50/50 splits have no winner and are dropped, as are pairs whose confidence is below
    ``min_confidence``. Sorted by group, then candidate pair.
    """
    if not 0.5 <= min_confidence <= 1.0:
        raise InvalidInput("min_confidence must be within [0.5, 1]", details={"field": "min_confidence"})
    c = comparisons
    lo, hi = np.minimum(c.a, c.b), np.maximum(c.a, c.b)
    lo_share = np.where(c.a == lo, c.outcome, 1.0 - c.outcome)
    keys = np.stack([c.group, lo, hi], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    total = np.bincount(inverse, weights=c.weight, minlength=len(uniq))
    lo_wins = np.bincount(inverse, weights=c.weight * lo_share, minlength=len(uniq))
    n = np.bincount(inverse, minlength=len(uniq)).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, lo_wins / np.where(total > 0, total, 1.0), 0.5)
    confidence = np.maximum(share, 1.0 - share)
    keep = (share != 0.5) & (confidence >= min_confidence)
    uniq = uniq.reshape(-1, 3)
    lo_won = share > 0.5
    return PreferencePairs(
        group=uniq[keep, 0].astype(np.int64),
        chosen=np.where(lo_won, uniq[:, 1], uniq[:, 2])[keep].astype(np.int64),
        rejected=np.where(lo_won, uniq[:, 2], uniq[:, 1])[keep].astype(np.int64),
        confidence=confidence[keep],
        n=n[keep],
    )


# --------------------------------------------------------------------------------------------------
# Spans
# --------------------------------------------------------------------------------------------------

SpanAnswer = Sequence[tuple[int, int, Hashable]]


@dataclass(frozen=True)
class Span:
    """A consolidated span ``[start, end)`` with its label and the mean vote share over its units."""

    start: int
    end: int
    label: Hashable
    confidence: float


_TOKEN: Final = re.compile(r"\S+")


def _tokens(text: str) -> tuple[IntArray, IntArray]:
    bounds = np.array([m.span() for m in _TOKEN.finditer(text)], dtype=np.int64).reshape(-1, 2)
    return bounds[:, 0], bounds[:, 1]


def consolidate_spans(
    text_length: int,
    answers: Sequence[SpanAnswer],
    *,
    unit: Literal["char", "token"] = "char",
    text: str | None = None,
) -> list[Span]:
    """Merge several raters' labelled spans by a vote per character (or per whitespace token).

    ``answers[r]`` is rater ``r``'s list of ``(start, end, label)`` spans, ``[start, end)`` in characters;
    a rater who marked nothing must still be passed (as ``[]``): they vote "no label" everywhere. Each
    unit goes to the plurality among "no label" and the labels (a rater counts once per label even if
    their own spans of that label overlap); ties go to "no label", then to the first label in sorted
    order. Runs of units with the same winner become one span; its confidence is the mean share of
    raters that voted for the winner over those units.

    With ``unit="token"`` (``text`` required) a rater votes a label on a token when one of their spans
    of that label overlaps it; spans are then snapped to token boundaries.
    """
    if text_length < 0:
        raise InvalidInput("text_length must be >= 0", details={"field": "text_length"})
    if unit not in ("char", "token"):
        raise InvalidInput("unit must be 'char' or 'token'", details={"field": "unit"})
    n_raters = len(answers)
    for r, spans in enumerate(answers):
        if any(len(span) != 3 for span in spans):
            raise InvalidInput("each span must be (start, end, label)", details={"rater": r})
    if n_raters == 0 or text_length == 0:
        return []
    all_labels = [span[2] for spans in answers for span in spans]
    codec = LabelCodec.fit(all_labels)
    n_labels = len(codec)
    if unit == "token":
        if text is None or len(text) != text_length:
            raise InvalidInput("unit='token' needs the text, of length text_length", details={"field": "text"})
        tok_start, tok_end = _tokens(text)
        n_units = tok_start.size
    else:
        tok_start = tok_end = np.zeros(0, dtype=np.int64)
        n_units = text_length
    if n_units == 0:
        return []

    votes = np.zeros((n_labels, n_units), dtype=np.int64)
    covered = np.zeros(n_units, dtype=np.int64)  # raters who gave the unit any label
    for r, spans in enumerate(answers):  # raters per task are few; their spans are vectorised
        if not spans:
            continue
        try:
            arr = np.array([(int(s), int(e)) for s, e, _ in spans], dtype=np.int64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise InvalidInput("each span must be (start, end, label)", details={"rater": r}) from None
        starts, ends = arr[:, 0], arr[:, 1]
        if np.any(starts < 0) or np.any(ends > text_length) or np.any(starts >= ends):
            raise InvalidInput("spans need 0 <= start < end <= text_length", details={"rater": r})
        codes = codec.encode(span[2] for span in spans)
        if unit == "token":
            # Token t overlaps [s, e) iff tok_end[t] > s and tok_start[t] < e.
            starts = np.searchsorted(tok_end, starts, side="right")
            ends = np.searchsorted(tok_start, ends, side="left")
        diff = np.zeros((n_labels, n_units + 1), dtype=np.int64)
        np.add.at(diff, (codes, starts), 1)
        np.add.at(diff, (codes, ends), -1)
        mine = np.cumsum(diff[:, :n_units], axis=1) > 0  # overlapping spans of one rater vote once
        votes += mine
        covered += mine.any(axis=0)

    table = np.vstack([(n_raters - covered)[None, :], votes])  # row 0: "no label"
    winner = np.argmax(table, axis=0)  # row 0 ("no label") wins ties, then the lowest label code
    share = table[winner, np.arange(n_units)] / n_raters

    spans_out: list[Span] = []
    change = np.flatnonzero(np.diff(winner)) + 1
    run_starts = np.concatenate(([0], change))
    run_ends = np.concatenate((change, [n_units]))
    for s, e in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
        w = int(winner[s])
        if w == 0:
            continue
        start, end = (int(tok_start[s]), int(tok_end[e - 1])) if unit == "token" else (s, e)
        spans_out.append(Span(start, end, codec.labels[w - 1], float(share[s:e].mean())))
    return spans_out


# --------------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------------

BoxAnswer = Sequence[tuple[float, float, float, float, Hashable]]


@dataclass(frozen=True)
class Box:
    """A consolidated box ``(x_min, y_min, x_max, y_max)`` with its voted label.

    ``confidence`` is the share of all raters that drew a matching box; ``label_confidence`` the share
    of those boxes that carry ``label``; ``n_raters`` how many raters drew it.
    """

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    label: Hashable
    confidence: float
    label_confidence: float
    n_raters: int


def box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> FloatArray:
    """Intersection over union of every box in ``boxes_a`` with every box in ``boxes_b`` (n x m)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def consolidate_boxes(answers: Sequence[BoxAnswer], *, iou_threshold: float = 0.5, min_share: float = 0.0) -> list[Box]:
    """Match boxes across raters by IoU, average matched boxes and vote their label.

    Raters are taken in order; each rater's boxes are matched one-to-one to the clusters built so far
    by the Hungarian algorithm on IoU with the clusters' current mean box (``scipy.optimize.
    linear_sum_assignment``; Kuhn 1955), accepting matches with IoU >= ``iou_threshold``; unmatched boxes
    start new clusters. So a cluster never holds two boxes of one rater. Matching ignores labels; the
    label is the plurality of the cluster (ties to the first label in sorted order). A rater who drew
    nothing must still be passed (as ``[]``): they count in the denominator of ``confidence``. Clusters
    drawn by fewer than ``min_share`` of the raters are dropped.
    """
    from scipy.optimize import linear_sum_assignment  # imported here: SciPy is a fifth of every CLI command's start-up

    if not 0.0 < iou_threshold <= 1.0:
        raise InvalidInput("iou_threshold must be within (0, 1]", details={"field": "iou_threshold"})
    if not 0.0 <= min_share <= 1.0:
        raise InvalidInput("min_share must be within [0, 1]", details={"field": "min_share"})
    n_raters = len(answers)
    for r, boxes in enumerate(answers):
        if any(len(box) != 5 for box in boxes):
            raise InvalidInput("each box must be (x_min, y_min, x_max, y_max, label)", details={"rater": r})
    codec = LabelCodec.fit(box[4] for boxes in answers for box in boxes)
    sums = np.zeros((0, 4))
    members: list[list[int]] = []  # label codes of the boxes in each cluster
    for r, boxes in enumerate(answers):
        if not boxes:
            continue
        try:
            coords = np.array([box[:4] for box in boxes], dtype=np.float64).reshape(-1, 4)
        except (TypeError, ValueError):
            raise InvalidInput("each box must be (x_min, y_min, x_max, y_max, label)", details={"rater": r}) from None
        if np.any(~np.isfinite(coords)) or np.any(coords[:, 2] <= coords[:, 0]) or np.any(coords[:, 3] <= coords[:, 1]):
            raise InvalidInput("boxes need x_min < x_max and y_min < y_max", details={"rater": r})
        codes = codec.encode(box[4] for box in boxes).tolist()
        matched = np.full(len(boxes), -1, dtype=np.int64)
        if members:
            means = sums / np.array([len(m) for m in members], dtype=np.float64)[:, None]
            iou = box_iou(coords, means)
            rows, cols = linear_sum_assignment(iou, maximize=True)
            good = iou[rows, cols] >= iou_threshold
            matched[rows[good]] = cols[good]
        for j, c in enumerate(matched.tolist()):
            if c >= 0:
                sums[c] += coords[j]
                members[c].append(codes[j])
            else:
                sums = np.vstack([sums, coords[j]])
                members.append([codes[j]])

    out: list[Box] = []
    for total, labels in zip(sums, members, strict=True):
        size = len(labels)
        share = size / n_raters
        if share < min_share:
            continue
        votes = np.bincount(np.asarray(labels), minlength=len(codec))
        best = int(np.argmax(votes))
        mean = total / size
        out.append(
            Box(
                float(mean[0]),
                float(mean[1]),
                float(mean[2]),
                float(mean[3]),
                codec.labels[best],
                share,
                float(votes[best] / size),
                size,
            )
        )
    return out


__all__ = [
    "Box",
    "BradleyTerryResult",
    "Comparisons",
    "DawidSkeneResult",
    "LabelAggregate",
    "MultiLabelAggregate",
    "PreferencePairs",
    "RatingAggregate",
    "Span",
    "accuracy_to_weight",
    "aggregate_ratings",
    "box_iou",
    "bradley_terry",
    "consolidate_boxes",
    "consolidate_spans",
    "dawid_skene",
    "majority_vote",
    "multi_label_vote",
    "preference_pairs",
    "preferences_to_comparisons",
    "rankings_to_comparisons",
    "weighted_vote",
]
