"""Inter-rater agreement: Krippendorff's alpha, Fleiss' and Cohen's kappa, pairwise and consensus agreement.

Pure NumPy/SciPy statistics: no database, no HTTP. Answers travel as parallel integer arrays
``(item, rater, value)`` held by :class:`Answers`; :class:`LabelCodec` turns arbitrary hashable labels
into the codes ``0..K-1`` and back. A missing value is ``MISSING`` (``-1``) in code arrays or ``NaN``
in float arrays; it is dropped on input, exactly as if the rater had not answered.

Conventions shared by every function here:

* Bad input (shapes, codes out of range, unknown level) raises :class:`~labelvault.errors.InvalidInput`.
* A statistic that is mathematically undefined on valid data (e.g. no pairable values, or every
  rater used the same single category so expected disagreement is zero) is ``nan``, not an error,
  so that dashboards can show "not enough data" instead of failing.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelvault.errors import InvalidInput
from labelvault.quality.scores import wilson_interval

MISSING: Final = -1
"""Code of a missing value in integer code arrays."""

Level = Literal["nominal", "ordinal", "interval", "ratio"]
Weights = Literal["linear", "quadratic"] | None

_LEVELS: Final = ("nominal", "ordinal", "interval", "ratio")

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------------------------------
# Input representation
# --------------------------------------------------------------------------------------------------


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class LabelCodec:
    """A fixed, ordered vocabulary of labels mapped to codes ``0..K-1``.

    The order matters for ordinal statistics (weighted kappa, ordinal alpha): pass ``labels`` in scale
    order. :meth:`fit` sorts the observed labels when they are mutually comparable, so the codes are
    deterministic regardless of input order.
    """

    __slots__ = ("_index", "labels")

    def __init__(self, labels: Iterable[Hashable]) -> None:
        self.labels: tuple[Hashable, ...] = tuple(labels)
        self._index: dict[Hashable, int] = {}
        for code, label in enumerate(self.labels):
            if _is_missing(label):
                raise InvalidInput("a label may not be None or NaN (those mean 'missing')")
            if label in self._index:
                raise InvalidInput(f"duplicate label {label!r}", details={"label": repr(label)})
            self._index[label] = code

    @classmethod
    def fit(cls, values: Iterable[Hashable], *, sort: bool = True) -> LabelCodec:
        """Vocabulary of the non-missing ``values``: sorted if comparable (and ``sort``), else first-seen."""
        seen = dict.fromkeys(v for v in values if not _is_missing(v))
        labels: list[Hashable] = list(seen)
        if sort:
            # Mixed, incomparable types keep first-seen order: still deterministic for a given input.
            with contextlib.suppress(TypeError):
                labels = sorted(labels)  # type: ignore[type-var]
        return cls(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"LabelCodec({list(self.labels)!r})"

    def code(self, label: Hashable) -> int:
        """Code of one label; unknown labels raise ``InvalidInput``."""
        try:
            return self._index[label]
        except (KeyError, TypeError):
            raise InvalidInput(f"unknown label {label!r}", details={"label": repr(label)}) from None

    def encode(self, values: Iterable[Hashable]) -> IntArray:
        """Codes of ``values``; ``None``/``NaN`` become ``MISSING``."""
        index = self._index
        out: list[int] = []
        for v in values:
            if _is_missing(v):
                out.append(MISSING)
                continue
            try:
                out.append(index[v])
            except (KeyError, TypeError):
                raise InvalidInput(f"unknown label {v!r}", details={"label": repr(v)}) from None
        return np.asarray(out, dtype=np.int64)

    def decode(self, codes: ArrayLike) -> list[Hashable | None]:
        """Labels of ``codes``; ``MISSING`` becomes ``None``."""
        arr = np.asarray(codes, dtype=np.int64).ravel()
        if arr.size and (arr.max() >= len(self.labels) or arr.min() < MISSING):
            raise InvalidInput("code out of range for this vocabulary")
        return [None if c == MISSING else self.labels[c] for c in arr.tolist()]

    def multi_hot(self, selections: Iterable[Iterable[Hashable]]) -> NDArray[np.bool_]:
        """One boolean row per answer of a ``multi_label`` question: which labels it selected."""
        rows = [list(s) for s in selections]
        out = np.zeros((len(rows), len(self.labels)), dtype=bool)
        for i, row in enumerate(rows):
            for label in row:
                out[i, self.code(label)] = True
        return out


def encode_labels(values: Iterable[Hashable], labels: Iterable[Hashable] | None = None) -> tuple[IntArray, LabelCodec]:
    """Encode arbitrary hashable ``values`` to codes; ``labels`` fixes the vocabulary and its order."""
    values = list(values)
    codec = LabelCodec(labels) if labels is not None else LabelCodec.fit(values)
    return codec.encode(values), codec


def as_codes(values: ArrayLike, name: str = "values", *, n_classes: int | None = None) -> IntArray:
    """Validate a 1-D code array; ``NaN`` (float input) or ``-1`` mean missing and become ``MISSING``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional", details={"field": name})
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidInput(f"{name} must hold integer codes (use encode_labels)", details={"field": name}) from None
    if arr.dtype.kind == "f":
        missing = np.isnan(arr)
        if not np.all(np.isfinite(arr[~missing])) or np.any(arr[~missing] != np.round(arr[~missing])):
            raise InvalidInput(f"{name} must hold integer codes", details={"field": name})
        out = np.where(missing, MISSING, arr).astype(np.int64)
    elif arr.dtype.kind in "iub":
        out = arr.astype(np.int64)
    elif arr.size == 0:
        out = np.zeros(0, dtype=np.int64)
    else:
        raise InvalidInput(f"{name} must hold integer codes (use encode_labels)", details={"field": name})
    if out.size and out.min() < MISSING:
        raise InvalidInput(f"{name} has negative codes (only -1 = missing is allowed)", details={"field": name})
    if n_classes is not None and out.size and out.max() >= n_classes:
        raise InvalidInput(f"{name} has codes >= n_classes={n_classes}", details={"field": name})
    return out


def _index_array(values: ArrayLike, name: str, size: int | None) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional", details={"field": name})
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidInput(f"{name} must hold non-negative integer indices", details={"field": name})
    out = arr.astype(np.int64)
    if out.min() < 0:
        raise InvalidInput(f"{name} must hold non-negative integer indices", details={"field": name})
    if size is not None and out.max() >= size:
        raise InvalidInput(f"{name} has an index >= {size}", details={"field": name})
    return out


class Answers:
    """Categorical answers as parallel arrays: answer ``j`` is rater ``raters[j]`` giving ``values[j]`` to
    item ``items[j]``. Answers whose value is missing are dropped on construction.

    ``n_items``, ``n_raters`` and ``n_classes`` default to ``max + 1`` of the respective array; pass
    them to include items, raters or classes that have no answer.
    """

    __slots__ = ("items", "n_classes", "n_items", "n_raters", "raters", "values")

    items: IntArray
    raters: IntArray
    values: IntArray
    n_items: int
    n_raters: int
    n_classes: int

    def __init__(
        self,
        items: ArrayLike,
        raters: ArrayLike,
        values: ArrayLike,
        *,
        n_items: int | None = None,
        n_raters: int | None = None,
        n_classes: int | None = None,
    ) -> None:
        it = _index_array(items, "items", n_items)
        ra = _index_array(raters, "raters", n_raters)
        va = as_codes(values, "values", n_classes=n_classes)
        if not (it.shape == ra.shape == va.shape):
            raise InvalidInput("items, raters and values must have the same length")
        keep = va != MISSING
        if not keep.all():
            it, ra, va = it[keep], ra[keep], va[keep]
        self.items, self.raters, self.values = it, ra, va
        self.n_items = int(n_items) if n_items is not None else int(it.max()) + 1 if it.size else 0
        self.n_raters = int(n_raters) if n_raters is not None else int(ra.max()) + 1 if ra.size else 0
        self.n_classes = int(n_classes) if n_classes is not None else int(va.max()) + 1 if va.size else 0

    def __len__(self) -> int:
        return int(self.items.size)

    def __repr__(self) -> str:
        return f"Answers(n={len(self)}, n_items={self.n_items}, n_raters={self.n_raters}, n_classes={self.n_classes})"

    @classmethod
    def from_matrix(cls, reliability_data: ArrayLike, *, n_classes: int | None = None) -> Answers:
        """From a raters x items matrix of codes (Krippendorff's "reliability data"); NaN/-1 = missing."""
        mat = np.asarray(reliability_data, dtype=np.float64)
        if mat.ndim != 2:
            raise InvalidInput("reliability data must be a 2-D raters x items matrix")
        raters, items = np.indices(mat.shape)
        return cls(
            items.ravel(),
            raters.ravel(),
            mat.ravel(),
            n_items=mat.shape[1],
            n_raters=mat.shape[0],
            n_classes=n_classes,
        )

    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[Hashable, Hashable, Hashable]],
        *,
        labels: Iterable[Hashable] | None = None,
    ) -> tuple[Answers, LabelCodec, LabelCodec, LabelCodec]:
        """From ``(item, rater, label)`` tuples of any hashables.

        Returns the answers and the codecs for items and raters (first-seen order) and labels (``labels``
        order if given, else sorted).
        """
        rows = list(records)
        if any(len(r) != 3 for r in rows):
            raise InvalidInput("each record must be (item, rater, label)")
        item_keys = [r[0] for r in rows]
        rater_keys = [r[1] for r in rows]
        label_values = [r[2] for r in rows]
        item_codec = LabelCodec.fit(item_keys, sort=False)
        rater_codec = LabelCodec.fit(rater_keys, sort=False)
        values, label_codec = encode_labels(label_values, labels)
        answers = cls(
            item_codec.encode(item_keys),
            rater_codec.encode(rater_keys),
            values,
            n_items=len(item_codec),
            n_raters=len(rater_codec),
            n_classes=len(label_codec),
        )
        return answers, item_codec, rater_codec, label_codec

    def counts(self) -> IntArray:
        """Items x classes table of how many raters gave each class to each item."""
        return category_counts(self)


def category_counts(answers: Answers) -> IntArray:
    """Items x classes count table (the input of Fleiss' kappa)."""
    k = answers.n_classes
    flat = np.bincount(answers.items * k + answers.values, minlength=answers.n_items * k)
    return flat.reshape(answers.n_items, k).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Krippendorff's alpha
# --------------------------------------------------------------------------------------------------


def _alpha_input(
    reliability_data: ArrayLike | Answers | None,
    items: ArrayLike | None,
    raters: ArrayLike | None,
    values: ArrayLike | None,
) -> tuple[IntArray, FloatArray]:
    """Flatten any accepted input form to (unit, value) pairs with missing values removed."""
    if reliability_data is not None:
        if items is not None or values is not None or raters is not None:
            raise InvalidInput("pass either reliability_data or items/raters/values, not both")
        if isinstance(reliability_data, Answers):
            return reliability_data.items, reliability_data.values.astype(np.float64)
        try:
            mat = np.asarray(reliability_data, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput("reliability data must be numeric (NaN = missing); use encode_labels") from None
        if mat.ndim != 2:
            raise InvalidInput("reliability data must be a 2-D raters x units matrix")
        units = np.broadcast_to(np.arange(mat.shape[1]), mat.shape).ravel()
        vals = mat.ravel()
    else:
        if items is None or values is None:
            raise InvalidInput("pass reliability_data, or items and values (raters optional)")
        units = _index_array(items, "items", None)
        try:
            vals = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput("values must be numeric (NaN = missing); use encode_labels") from None
        if vals.shape != units.shape:
            raise InvalidInput("items and values must have the same length")
        if raters is not None:
            ra = _index_array(raters, "raters", None)
            if ra.shape != units.shape:
                raise InvalidInput("items and raters must have the same length")
            present = ~np.isnan(vals)
            # Krippendorff's data model: one value per coder and unit at most.
            pair = units[present] * (int(ra.max(initial=0)) + 1) + ra[present]
            if np.unique(pair).size != pair.size:
                raise InvalidInput("a rater answered the same item more than once")
    if np.isinf(vals).any():
        raise InvalidInput("values must be finite (NaN = missing)")
    keep = ~np.isnan(vals)
    return units[keep].astype(np.int64), vals[keep]


def coincidence_matrix(
    reliability_data: ArrayLike | Answers | None = None,
    *,
    items: ArrayLike | None = None,
    raters: ArrayLike | None = None,
    values: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Krippendorff's coincidence matrix ``o[c, k]`` and its sorted value domain.

    ``o[c, k] = sum_u (n_uc * n_uk - [c == k] * n_uc) / (m_u - 1)`` over units ``u`` with ``m_u >= 2``
    pairable values (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability", section C).
    Built as one sparse product, so it costs O(answers + V^2) for V distinct values.
    """
    import scipy.sparse as sp  # imported here: SciPy is a fifth of every CLI command's start-up

    units, vals = _alpha_input(reliability_data, items, raters, values)
    domain, codes = np.unique(vals, return_inverse=True)
    n_units = int(units.max()) + 1 if units.size else 0
    counts = sp.csr_matrix(
        (np.ones(units.size), (units, codes.ravel())), shape=(n_units, domain.size)
    )  # duplicates sum: n_uc
    m_u = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.zeros_like(m_u)
    pairable = m_u >= 2  # a lone value in a unit cannot be paired and is ignored
    scale[pairable] = 1.0 / (m_u[pairable] - 1.0)
    weighted = sp.diags(scale) @ counts
    o = np.asarray((weighted.T @ counts).todense(), dtype=np.float64)
    o -= np.diag(np.asarray(weighted.sum(axis=0)).ravel())
    return o, domain.astype(np.float64)


def _distance(level: str, domain: FloatArray, marginals: FloatArray) -> FloatArray:
    """Squared difference function delta^2(c, k) of Krippendorff (2011), section E."""
    if level == "nominal":
        return 1.0 - np.eye(domain.size)
    if level == "ordinal":
        # delta(c,k) = sum_{g=c..k} n_g - (n_c + n_k)/2  ==  difference of mid-rank positions.
        position = np.cumsum(marginals) - marginals / 2.0
        return (position[:, None] - position[None, :]) ** 2
    if level == "interval":
        return (domain[:, None] - domain[None, :]) ** 2
    if level == "ratio":
        if domain.size and domain.min() < 0:
            raise InvalidInput("ratio level needs non-negative values")
        total = domain[:, None] + domain[None, :]
        diff = domain[:, None] - domain[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(total > 0, (diff / np.where(total > 0, total, 1.0)) ** 2, 0.0)
        return out
    raise InvalidInput(f"unknown level {level!r}; use one of {', '.join(_LEVELS)}", details={"field": "level"})


def krippendorff_alpha(
    reliability_data: ArrayLike | Answers | None = None,
    level: Level = "nominal",
    *,
    items: ArrayLike | None = None,
    raters: ArrayLike | None = None,
    values: ArrayLike | None = None,
) -> float:
    """Krippendorff's alpha at the nominal, ordinal, interval or ratio level of measurement.

    ``alpha = 1 - D_o / D_e = 1 - (n - 1) * sum(o * delta^2) / sum(n_c * n_k * delta^2)``, computed from
    the coincidence matrix as in Krippendorff, K. (2011), "Computing Krippendorff's Alpha-Reliability",
    Annenberg School for Communication, University of Pennsylvania.

    Input, one of:

    * ``reliability_data``: a raters x units matrix of numbers, ``NaN`` (or ``None``) = missing;
    * ``reliability_data``: an :class:`Answers` (codes; for interval/ratio the codes are the values);
    * keywords ``items=``, ``values=`` (and optionally ``raters=``, checked for duplicate answers):
      the triplet form, with ``NaN`` values dropped.

    Non-numeric labels must be encoded first (:func:`encode_labels`); for the ordinal level the codes
    must follow the scale order. Returns ``nan`` when alpha is undefined (no unit with two values, or
    no variation in the data).
    """
    if level not in _LEVELS:
        raise InvalidInput(f"unknown level {level!r}; use one of {', '.join(_LEVELS)}", details={"field": "level"})
    o, domain = coincidence_matrix(reliability_data, items=items, raters=raters, values=values)
    marginals = o.sum(axis=0)
    n = float(marginals.sum())
    if n < 2:
        return math.nan
    delta = _distance(level, domain, marginals)
    expected = float(marginals @ delta @ marginals)
    if expected <= 0:
        return math.nan
    observed = float((o * delta).sum())
    return 1.0 - (n - 1.0) * observed / expected


# --------------------------------------------------------------------------------------------------
# Kappas and percent agreement
# --------------------------------------------------------------------------------------------------


def _count_table(data: ArrayLike | Answers) -> FloatArray:
    if isinstance(data, Answers):
        table = category_counts(data).astype(np.float64)
    else:
        try:
            table = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput("the count table must be numeric") from None
        if table.ndim != 2:
            raise InvalidInput("the count table must be 2-D: items x categories")
        if table.size and (table.min() < 0 or not np.all(table == np.round(table))):
            raise InvalidInput("the count table must hold non-negative integer counts")
    return table[table.sum(axis=1) > 0]  # items nobody rated carry no information


def fleiss_kappa(data: ArrayLike | Answers) -> float:
    """Fleiss' kappa for a fixed number of raters per item.

    ``data`` is an items x categories table of counts (row ``i`` says how many raters put item ``i`` in
    each category) or an :class:`Answers`. Every rated item must have the same number ``n >= 2`` of
    ratings; otherwise use :func:`krippendorff_alpha`, which allows missing values.

    Fleiss, J. L. (1971), "Measuring nominal scale agreement among many raters", Psychological
    Bulletin 76(5), 378-382: ``kappa = (P_bar - P_e) / (1 - P_e)``.
    """
    table = _count_table(data)
    if table.shape[0] == 0:
        return math.nan
    per_item = table.sum(axis=1)
    n = per_item[0]
    if not np.all(per_item == n):
        raise InvalidInput(
            "Fleiss' kappa needs the same number of ratings for every item; use krippendorff_alpha",
            details={"ratings_per_item": sorted({int(x) for x in per_item.tolist()})},
        )
    if n < 2:
        return math.nan
    p_j = table.sum(axis=0) / table.sum()
    p_i = ((table * table).sum(axis=1) - n) / (n * (n - 1))
    p_bar = float(p_i.mean())
    p_e = float((p_j * p_j).sum())
    if p_e >= 1.0:
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def percent_agreement(data: ArrayLike | Answers) -> float:
    """Observed agreement: the share of agreeing rater pairs per item, averaged over items.

    Same input as :func:`fleiss_kappa`, but the number of ratings may vary; items with fewer than two
    ratings are skipped. With a constant number of raters this is Fleiss' (1971) ``P_bar``.
    """
    table = _count_table(data)
    n = table.sum(axis=1)
    ok = n >= 2
    if not ok.any():
        return math.nan
    table, n = table[ok], n[ok]
    return float((((table * table).sum(axis=1) - n) / (n * (n - 1))).mean())


def _disagreement_weights(n_classes: int, weights: Weights) -> FloatArray:
    """Cohen's disagreement weights: 0 on the diagonal; 1, |i-j| or (i-j)^2 off it.

    Scaling does not matter since kappa is a ratio of weighted sums (Cohen 1968).
    """
    idx = np.arange(n_classes, dtype=np.float64)
    diff = np.abs(idx[:, None] - idx[None, :])
    if weights is None:
        return (diff > 0).astype(np.float64)
    if weights == "linear":
        return diff
    if weights == "quadratic":
        return diff**2
    raise InvalidInput("weights must be None, 'linear' or 'quadratic'", details={"field": "weights"})


def _kappa(observed: FloatArray, rows: FloatArray, cols: FloatArray, w: FloatArray) -> FloatArray:
    """Vectorised ``kappa = 1 - observed / expected`` weighted disagreement, one value per row.

    ``observed`` is the mean disagreement weight of the actual pairs; ``rows``/``cols`` are the two
    raters' marginal proportions, whose outer product gives the chance pairing (Cohen 1968).
    """
    expected = np.einsum("pk,kl,pl->p", rows, w, cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = 1.0 - observed / expected
    return np.where(expected > 0, kappa, np.nan)


def cohen_kappa(
    rater_a: ArrayLike,
    rater_b: ArrayLike,
    *,
    weights: Weights = None,
    n_classes: int | None = None,
) -> float:
    """Cohen's kappa between two raters, optionally weighted (linear or quadratic) for ordered codes.

    ``rater_a[j]`` and ``rater_b[j]`` are the codes both raters gave item ``j``; pairs where either is
    missing (``-1``/``NaN``) are dropped. Weighted kappa uses code distance, so codes must be in scale
    order (categories nobody used still count in the distance).

    Cohen, J. (1960), "A coefficient of agreement for nominal scales", Educational and Psychological
    Measurement 20(1), 37-46; Cohen, J. (1968), "Weighted kappa", Psychological Bulletin 70(4), 213-220.
    """
    a = as_codes(rater_a, "rater_a", n_classes=n_classes)
    b = as_codes(rater_b, "rater_b", n_classes=n_classes)
    if a.shape != b.shape:
        raise InvalidInput("rater_a and rater_b must have the same length")
    both = (a != MISSING) & (b != MISSING)
    a, b = a[both], b[both]
    if a.size == 0:
        return math.nan
    k = n_classes if n_classes is not None else int(max(a.max(), b.max())) + 1
    w = _disagreement_weights(k, weights)
    rows = np.bincount(a, minlength=k)[None, :] / a.size
    cols = np.bincount(b, minlength=k)[None, :] / a.size
    observed = np.array([w[a, b].mean()])
    return float(_kappa(observed, rows, cols, w)[0])


# --------------------------------------------------------------------------------------------------
# Per-pair and per-rater agreement
# --------------------------------------------------------------------------------------------------


def _within_item_pairs(answers: Answers) -> tuple[IntArray, IntArray]:
    """Indices (j, j') of every pair of answers on the same item by different raters, j != j'.

    Loops over the offset d = 1..(max answers per item - 1), never over answers. Raises
    ``InvalidInput`` if a rater answered an item twice: Cohen's kappa pairs one rating per rater.
    """
    order = np.lexsort((answers.raters, answers.items))
    items = answers.items[order]
    raters = answers.raters[order]
    if np.any((items[1:] == items[:-1]) & (raters[1:] == raters[:-1])):
        raise InvalidInput("a rater answered the same item more than once")
    firsts: list[IntArray] = []
    seconds: list[IntArray] = []
    if items.size:
        max_per_item = int(np.bincount(items).max())
        for d in range(1, max_per_item):
            left = np.flatnonzero(items[d:] == items[:-d])
            firsts.append(order[left])
            seconds.append(order[left + d])
    if not firsts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


@dataclass(frozen=True)
class PairwiseAgreement:
    """Agreement of every rater pair ``(rater_a[p], rater_b[p])``, ``rater_a < rater_b``, sharing items."""

    rater_a: IntArray
    rater_b: IntArray
    n_shared: IntArray
    kappa: FloatArray
    agreement: FloatArray

    def __len__(self) -> int:
        return int(self.rater_a.size)

    def as_records(self) -> list[dict[str, Any]]:
        return [
            {"rater_a": a, "rater_b": b, "n_shared": n, "kappa": k, "agreement": g}
            for a, b, n, k, g in zip(
                self.rater_a.tolist(),
                self.rater_b.tolist(),
                self.n_shared.tolist(),
                self.kappa.tolist(),
                self.agreement.tolist(),
                strict=True,
            )
        ]


def pairwise_cohen(answers: Answers, *, weights: Weights = None, min_shared: int = 1) -> PairwiseAgreement:
    """Cohen's kappa (Cohen 1960/1968) and raw agreement for every pair of raters with shared items.

    All pairs are computed at once from the within-item answer pairs with ``np.bincount``; memory is
    O(pairs x classes), never classes^2 per pair. Pairs with fewer than ``min_shared`` shared items
    are left out. A rater may answer an item at most once.
    """
    if min_shared < 1:
        raise InvalidInput("min_shared must be >= 1", details={"field": "min_shared"})
    k = answers.n_classes
    first, second = _within_item_pairs(answers)
    ra, rb = answers.raters[first], answers.raters[second]
    va, vb = answers.values[first], answers.values[second]
    swap = ra > rb  # orient every pair as (lower rater id, higher rater id)
    ra, rb = np.where(swap, rb, ra), np.where(swap, ra, rb)
    va, vb = np.where(swap, vb, va), np.where(swap, va, vb)
    n_raters = max(answers.n_raters, 1)
    key = ra * n_raters + rb
    pair_keys, pair = np.unique(key, return_inverse=True)
    pair = pair.ravel()
    n_pairs = pair_keys.size
    w = _disagreement_weights(k, weights)
    n = np.bincount(pair, minlength=n_pairs).astype(np.float64)  # >= 1 for every observed pair
    observed = np.bincount(pair, weights=w[va, vb], minlength=n_pairs) / n
    agreement = np.bincount(pair, weights=(va == vb).astype(np.float64), minlength=n_pairs) / n
    rows = np.bincount(pair * k + va, minlength=n_pairs * k).reshape(n_pairs, k) / n[:, None]
    cols = np.bincount(pair * k + vb, minlength=n_pairs * k).reshape(n_pairs, k) / n[:, None]
    kappa = _kappa(observed, rows, cols, w)
    keep = n >= min_shared
    return PairwiseAgreement(
        rater_a=(pair_keys // n_raters)[keep].astype(np.int64),
        rater_b=(pair_keys % n_raters)[keep].astype(np.int64),
        n_shared=n[keep].astype(np.int64),
        kappa=kappa[keep],
        agreement=agreement[keep],
    )


@dataclass(frozen=True)
class ConsensusAgreement:
    """Per rater (index = rater id): how often their answers matched the consensus.

    ``agreements`` may be fractional: in leave-one-out mode a tie among the other raters credits
    ``1/t`` for a rater whose answer is one of the ``t`` tied classes. ``rate`` is ``nan`` for raters
    with no comparable answer; ``lower``/``upper`` is the Wilson score interval of ``rate``.
    """

    n: IntArray
    agreements: FloatArray
    rate: FloatArray
    lower: FloatArray
    upper: FloatArray


def agreement_with_consensus(
    answers: Answers,
    consensus: ArrayLike | None = None,
    *,
    z: float = 1.96,
) -> ConsensusAgreement:
    """Agreement of each rater with the consensus label of the items they answered.

    ``consensus`` is one code per item (e.g. from Dawid-Skene; ``-1`` = none). Without it, each answer
    is compared with the majority of the *other* raters' answers on the same item (leave-one-out), so
    a rater does not vote for their own score; items nobody else answered are skipped.
    """
    r, k = answers.n_raters, answers.n_classes
    if consensus is not None:
        target = as_codes(consensus, "consensus", n_classes=k)
        if target.size != answers.n_items:
            raise InvalidInput("consensus must have one code per item", details={"field": "consensus"})
        reference = target[answers.items]
        valid = reference != MISSING
        credit = (reference == answers.values).astype(np.float64)
    else:
        counts = category_counts(answers).astype(np.float64)
        others = counts[answers.items]  # (answers, classes): all votes on the answer's item ...
        others[np.arange(len(answers)), answers.values] -= 1.0  # ... minus the answer's own vote
        top = others.max(axis=1)
        valid = top > 0
        tied = (others == top[:, None]).sum(axis=1)
        mine_is_top = others[np.arange(len(answers)), answers.values] == top
        credit = np.where(mine_is_top, 1.0 / tied, 0.0)
    n = np.bincount(answers.raters[valid], minlength=r).astype(np.int64)
    agreements = np.bincount(answers.raters[valid], weights=credit[valid], minlength=r)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, agreements / np.where(n > 0, n, 1), np.nan)
    lower, upper = wilson_interval(agreements, n, z=z)
    return ConsensusAgreement(
        n=n,
        agreements=agreements,
        rate=rate,
        lower=np.asarray(lower, dtype=np.float64),
        upper=np.asarray(upper, dtype=np.float64),
    )


__all__ = [
    "MISSING",
    "Answers",
    "ConsensusAgreement",
    "LabelCodec",
    "Level",
    "PairwiseAgreement",
    "agreement_with_consensus",
    "as_codes",
    "category_counts",
    "cohen_kappa",
    "coincidence_matrix",
    "encode_labels",
    "fleiss_kappa",
    "krippendorff_alpha",
    "percent_agreement",
]
