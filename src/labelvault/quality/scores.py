"""Scores of labelers: binomial confidence intervals and gold-task accuracy.

Pure NumPy statistics; no database, no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelvault.errors import InvalidInput

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@overload
def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]: ...
@overload
def wilson_interval(successes: ArrayLike, n: ArrayLike, z: float = 1.96) -> tuple[Any, Any]: ...


def wilson_interval(successes: ArrayLike, n: ArrayLike, z: float = 1.96) -> tuple[Any, Any]:
    """Wilson score interval for a binomial proportion, vectorised over ``successes`` and ``n``.

    ``(p + z^2/2n -/+ z * sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes / n``.
    Wilson, E. B. (1927), "Probable inference, the law of succession, and statistical inference",
    JASA 22(158), 209-212; recommended over the Wald interval by Brown, Cai & DasGupta (2001),
    "Interval Estimation for a Binomial Proportion", Statistical Science 16(2).

    ``successes`` may be fractional (partial credit). Where ``n == 0`` nothing is known and the
    interval is ``(0, 1)``. Scalars in give floats out; arrays give arrays (broadcast).
    """
    s_arr = np.asarray(successes, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    if not np.isfinite(z) or z <= 0:
        raise InvalidInput("z must be a positive number", details={"field": "z"})
    if np.any(~np.isfinite(s_arr)) or np.any(~np.isfinite(n_arr)):
        raise InvalidInput("successes and n must be finite")
    if np.any(n_arr < 0) or np.any(s_arr < 0) or np.any(s_arr > n_arr):
        raise InvalidInput("need 0 <= successes <= n")
    safe_n = np.where(n_arr > 0, n_arr, 1.0)
    p = s_arr / safe_n
    z2 = z * z
    denom = 1.0 + z2 / safe_n
    centre = (p + z2 / (2.0 * safe_n)) / denom
    half = z * np.sqrt(p * (1.0 - p) / safe_n + z2 / (4.0 * safe_n * safe_n)) / denom
    # Clip float round-off so the bounds stay inside [0, 1] (they touch 0 or 1 at p = 0 or 1).
    lower = np.where(n_arr > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    upper = np.where(n_arr > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    if lower.ndim == 0:
        return float(lower), float(upper)
    return lower, upper


@dataclass(frozen=True)
class GoldAccuracy:
    """Per-labeler accuracy on gold tasks; index = labeler (rater) id.

    ``accuracy`` is ``nan`` for labelers with no gold answer; ``lower``/``upper`` is the Wilson interval.
    """

    n: IntArray
    correct: FloatArray
    accuracy: FloatArray
    lower: FloatArray
    upper: FloatArray

    def below(self, threshold: float, *, min_answers: int = 1) -> NDArray[np.bool_]:
        """Labelers *confidently* below ``threshold``: the whole interval lies under it.

        Suspending on the upper bound, not the point estimate, keeps a labeler with a few unlucky gold
        answers from being suspended on noise; ``min_answers`` adds a hard floor on the evidence.
        """
        if not 0.0 <= threshold <= 1.0:
            raise InvalidInput("threshold must be within [0, 1]", details={"field": "threshold"})
        return (self.n >= min_answers) & (self.n > 0) & (self.upper < threshold)

    def as_records(self) -> list[dict[str, Any]]:
        return [
            {"rater": r, "n": n, "correct": c, "accuracy": a, "lower": lo, "upper": hi}
            for r, (n, c, a, lo, hi) in enumerate(
                zip(
                    self.n.tolist(),
                    self.correct.tolist(),
                    self.accuracy.tolist(),
                    self.lower.tolist(),
                    self.upper.tolist(),
                    strict=True,
                )
            )
        ]


def gold_accuracy(
    raters: ArrayLike,
    correct: ArrayLike,
    *,
    n_raters: int | None = None,
    z: float = 1.96,
) -> GoldAccuracy:
    """Summarise gold (honeypot) answers per labeler: count, correct, accuracy and Wilson interval.

    ``raters[j]`` is the labeler of gold answer ``j`` and ``correct[j]`` its score: a boolean, or a
    partial credit in ``[0, 1]`` (e.g. span F1 against the gold spans).
    """
    r = np.asarray(raters)
    c = np.asarray(correct, dtype=np.float64)
    if r.ndim != 1 or c.shape != r.shape:
        raise InvalidInput("raters and correct must be 1-D arrays of the same length")
    if r.size and (r.dtype.kind not in "iu" or r.min() < 0):
        raise InvalidInput("raters must hold non-negative integer ids", details={"field": "raters"})
    r = r.astype(np.int64)
    if c.size and (np.any(~np.isfinite(c)) or c.min() < 0 or c.max() > 1):
        raise InvalidInput("correct must be booleans or credits within [0, 1]", details={"field": "correct"})
    size = n_raters if n_raters is not None else int(r.max()) + 1 if r.size else 0
    if r.size and r.max() >= size:
        raise InvalidInput(f"raters has an id >= n_raters={size}", details={"field": "raters"})
    n = np.bincount(r, minlength=size).astype(np.int64)
    hits = np.bincount(r, weights=c, minlength=size).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n > 0, hits / np.where(n > 0, n, 1), np.nan)
    lower, upper = wilson_interval(hits, n, z=z)
    return GoldAccuracy(
        n=n,
        correct=hits,
        accuracy=accuracy,
        lower=np.asarray(lower, dtype=np.float64),
        upper=np.asarray(upper, dtype=np.float64),
    )


__all__ = ["GoldAccuracy", "gold_accuracy", "wilson_interval"]
