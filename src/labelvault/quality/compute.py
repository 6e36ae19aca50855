"""A project's quality results from its :class:`~labelvault.quality.dataset.Dataset`: agreement per
question, the aggregated answer of every task, a table of labelers, and confusion matrices.

Pure computation (NumPy, no database), run after the read transaction. Every number comes from the
tested statistics core (``agreement.py``, ``aggregation.py``, ``scores.py``); this module only picks,
per question type, what applies:

===============  ========================================  ===========================================
question type    agreement                                 aggregation (value, confidence)
===============  ========================================  ===========================================
``label``        alpha (nominal), Fleiss, Cohen, %, LOO    Dawid-Skene (gold tasks clamped to their
                                                           answer) once every labeler has on average
                                                           5 answers per class, else the gold-weighted
                                                           (or plain) vote; the others as alternatives
``multi_label``  the same over (task, label) yes/no units  Dawid-Skene per label (same rule); majority
``preference``   alpha (nominal on a/b/tie), Fleiss, ...   vote share (ties half); Bradley-Terry scores,
                                                           chosen/rejected pair
``rating``       alpha (ordinal; interval too), weighted   median (mean, std, quartiles); confidence
                 Cohen (quadratic), %, LOO                 ``1 - mean |r - median| / (max - min)``
``ranking``      alpha (ordinal) over (task, candidate)    Bradley-Terry order and scores; pairs with
                 rank positions; exact-order %             their share
``span``         alpha (nominal) over (task, token)        character vote merged into spans
``bbox``         mean pairwise box F1 (IoU >= 0.5)         boxes matched by IoU, averaged, label vote
``text``         none                                      the reviewer's correction or the first
                                                           accepted answer
===============  ========================================  ===========================================

"LOO" is each labeler's agreement with the consensus of the *other* labelers of the same task. Gold
tasks are left out of agreement (their answers are scored against the truth instead) but feed
Dawid-Skene. A reviewer's correction is the final answer of its task, for every question.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any, Final

import numpy as np
import orjson

from labelvault.quality.aggregation import (
    Comparisons,
    accuracy_to_weight,
    aggregate_ratings,
    bradley_terry,
    dawid_skene,
    majority_vote,
    multi_label_vote,
    rankings_to_comparisons,
    weighted_vote,
)
from labelvault.quality.agreement import (
    MISSING,
    Answers,
    LabelCodec,
    agreement_with_consensus,
    category_counts,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen,
    percent_agreement,
)
from labelvault.quality.consensus import consensus
from labelvault.quality.dataset import Dataset
from labelvault.quality.scores import gold_accuracy, wilson_interval
from labelvault.quality.scoring import box_f1, question_paths, value_at

IntArray = np.ndarray
RESULTS_FORMAT: Final = 1  # bump when the shape of results changes: cached results are then stale
_TOKEN: Final = re.compile(r"\S+")
_PREFERENCE: Final = ("a", "b", "tie")
DS_MIN_PER_CLASS: Final = 5


@dataclass
class _Rows:
    """The answers to one question: answer index, item, rater and value, regular and all items."""

    j: IntArray
    items: IntArray
    raters: IntArray
    values: list[Any]
    regular: np.ndarray  # bool per row: the item is not gold


def _rows(data: Dataset, path: str, is_gold: np.ndarray) -> _Rows:
    js, values = [], []
    for j, answer in enumerate(data.value):
        v = value_at(answer, path)
        if v is not None:
            js.append(j)
            values.append(v)
    j_arr = np.asarray(js, dtype=np.int64)
    items = np.asarray(data.item, dtype=np.int64)[j_arr] if js else np.zeros(0, np.int64)
    raters = np.asarray(data.rater, dtype=np.int64)[j_arr] if js else np.zeros(0, np.int64)
    regular = ~is_gold[items] if js else np.zeros(0, bool)
    return _Rows(j_arr, items, raters, values, regular)


# ------------------------------------------------------------------------------------------ agreement


def _fleiss_if_it_applies(answers: Answers) -> float | None:
    """Fleiss' kappa when every task with two or more answers has the same number of them."""
    table = category_counts(answers)
    per_item = table.sum(axis=1)
    table = table[per_item >= 2]
    if table.shape[0] == 0 or len(set(table.sum(axis=1).tolist())) != 1:
        return None
    return fleiss_kappa(table)


def _categorical_agreement(
    answers: Answers, names: list[str], *, level: str = "nominal", weights: str | None = None,
    fleiss: bool = True, extra_levels: tuple[str, ...] = (),
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Agreement of one categorical question; also (n, agreements) with the consensus per rater."""
    per_item = np.bincount(answers.items, minlength=answers.n_items)
    result: dict[str, Any] = {
        "level": level,
        "tasks": int((per_item >= 2).sum()),
        "answers": len(answers),
        "alpha": krippendorff_alpha(answers, level) if len(answers) else None,  # type: ignore[arg-type]
        "percent_agreement": percent_agreement(answers) if len(answers) else None,
        "fleiss_kappa": _fleiss_if_it_applies(answers) if fleiss and len(answers) else None,
    }
    for other in extra_levels:
        result[f"alpha_{other}"] = krippendorff_alpha(answers, other) if len(answers) else None  # type: ignore[arg-type]
    pairs = pairwise_cohen(answers, weights=weights) if len(answers) else None  # type: ignore[arg-type]
    result["pairwise"] = [] if pairs is None else [
        {"labeler_a": names[a], "labeler_b": names[b], "shared": n, "kappa": k, "agreement": g}
        for a, b, n, k, g in zip(pairs.rater_a.tolist(), pairs.rater_b.tolist(), pairs.n_shared.tolist(),
                                 pairs.kappa.tolist(), pairs.agreement.tolist(), strict=True)
    ]
    agree = agreement_with_consensus(answers)
    result["consensus"] = [
        {"labeler": names[r], "n": int(agree.n[r]), "rate": agree.rate[r], "lower": agree.lower[r],
         "upper": agree.upper[r]}
        for r in range(answers.n_raters) if agree.n[r] > 0
    ]
    return result, agree.n.astype(np.float64), agree.agreements


def _answers(rows: _Rows, codes: IntArray, mask: np.ndarray, data: Dataset, k: int) -> Answers:
    return Answers(rows.items[mask], rows.raters[mask], codes[mask], n_items=data.n_items,
                   n_raters=data.n_raters, n_classes=k)


# ------------------------------------------------------------------------------------------ per type


@dataclass
class _Context:
    data: Dataset
    is_gold: np.ndarray
    rater_accuracy: np.ndarray  # honeypot accuracy per rater (nan: no gold answers)
    consensus_n: np.ndarray
    consensus_agreements: np.ndarray
    ds_accuracy: list[list[float]]  # per rater, one entry per label question
    agreement: dict[str, Any]
    confusion: dict[str, Any]
    aggregates: list[dict[str, Any]]  # per item: path -> result


def _gold_clamp(data: Dataset, path: str, encode: Any) -> tuple[list[int], list[int]]:
    items, labels = [], []
    for item, gold in data.gold.items():
        code = encode(value_at(gold, path))
        if code is not None:
            items.append(item)
            labels.append(code)
    return items, labels


def _label_method(answers: Answers, k: int, ctx: _Context) -> str:
    """Dawid-Skene once each labeler has, on average, enough answers to estimate a confusion matrix
    (``DS_MIN_PER_CLASS`` per class); before that a vote, weighted by gold accuracy if anyone has some.
    With too few answers EM fits noise and reports near-certain posteriors."""
    active = np.unique(answers.raters).size
    if active and len(answers) >= DS_MIN_PER_CLASS * k * active:
        return "dawid_skene"
    return "weighted_vote" if (~np.isnan(ctx.rater_accuracy)).any() else "majority_vote"


def _vote_weights(ctx: _Context, k: int) -> np.ndarray:
    acc = ctx.rater_accuracy
    known = ~np.isnan(acc)
    if not known.any():
        return np.ones(acc.size)
    filled = np.where(known, acc, float(np.nanmean(acc)))
    weights = accuracy_to_weight(filled, max(k, 2))
    return weights if weights.sum() > 0 else np.ones(acc.size)


def _label(ctx: _Context, path: str, question: Any, rows: _Rows) -> None:
    data = ctx.data
    codec = LabelCodec(question.labels) if question.type == "label" else LabelCodec(_PREFERENCE)
    raw = rows.values if question.type == "label" else [v.get("choice") for v in rows.values]
    codes = codec.encode(raw)
    k = len(codec)
    regular = _answers(rows, codes, rows.regular, data, k)
    result, n, agreements = _categorical_agreement(regular, data.usernames)
    ctx.agreement[path] = {"type": question.type, **result}
    ctx.consensus_n += n
    ctx.consensus_agreements += agreements
    if question.type == "preference":
        _preference(ctx, path, rows)
        return
    every = _answers(rows, codes, np.ones(len(codes), bool), data, k)
    gold_items, gold_labels = _gold_clamp(data, path, lambda v: codec.code(v) if v in question.labels else None)
    ds = dawid_skene(every, gold_items=np.asarray(gold_items, np.int64), gold_labels=np.asarray(gold_labels, np.int64))
    mv = majority_vote(every)
    weights = _vote_weights(ctx, k)
    wv = weighted_vote(every, weights)
    methods = {"dawid_skene": ds, "weighted_vote": wv, "majority_vote": mv}
    method = _label_method(every, k, ctx)
    main = methods[method]
    votes = category_counts(every)
    for item in np.flatnonzero(ds.n_answers > 0).tolist():
        if ctx.is_gold[item] or main.labels[item] == MISSING:
            continue
        ctx.aggregates[item][path] = {
            "value": codec.labels[main.labels[item]], "confidence": main.confidence[item], "method": method,
            "n": int(ds.n_answers[item]),
            "votes": {codec.labels[c]: int(votes[item, c]) for c in np.flatnonzero(votes[item]).tolist()},
            **{name: ({"value": codec.labels[r.labels[item]], "confidence": r.confidence[item]}
                      if r.labels[item] != MISSING else None)
               for name, r in methods.items() if name != method},
        }
    answered = np.bincount(every.raters, minlength=data.n_raters)
    accuracy = ds.rater_accuracy
    ctx.confusion[path] = {
        "labels": list(codec.labels),
        "iterations": ds.iterations,
        "converged": ds.converged,
        "labelers": {
            data.usernames[r]: {"answers": int(answered[r]), "accuracy": accuracy[r],
                                "matrix": np.round(ds.confusion[r], 4).tolist()}
            for r in range(data.n_raters) if answered[r] > 0
        },
    }
    for r in range(data.n_raters):
        if answered[r] > 0:
            ctx.ds_accuracy[r].append(float(accuracy[r]))


def _multi_label(ctx: _Context, path: str, question: Any, rows: _Rows) -> None:
    data = ctx.data
    labels = list(question.labels)
    n_labels = len(labels)
    selections = LabelCodec(labels).multi_hot(rows.values) if rows.values else np.zeros((0, n_labels), bool)
    # Agreement over (task, label) yes/no units, pooled; and per label.
    units = (rows.items[:, None] * n_labels + np.arange(n_labels)[None, :]).ravel()
    stacked_raters = np.repeat(rows.raters, n_labels)
    stacked_regular = np.repeat(rows.regular, n_labels)
    stacked = Answers(units[stacked_regular], stacked_raters[stacked_regular],
                      selections.ravel().astype(np.int64)[stacked_regular],
                      n_items=data.n_items * n_labels, n_raters=data.n_raters, n_classes=2)
    result, n, agreements = _categorical_agreement(stacked, data.usernames)
    per_label = {}
    for index, label in enumerate(labels):
        one = Answers(rows.items[rows.regular], rows.raters[rows.regular],
                      selections[rows.regular, index].astype(np.int64), n_items=data.n_items,
                      n_raters=data.n_raters, n_classes=2)
        per_label[label] = krippendorff_alpha(one, "nominal") if len(one) else None
    ctx.agreement[path] = {"type": "multi_label", "unit": "task x label", **result, "alpha_per_label": per_label}
    ctx.consensus_n += n
    ctx.consensus_agreements += agreements
    vote = multi_label_vote(rows.items, selections, n_items=data.n_items)
    posterior = np.zeros((data.n_items, n_labels))
    for index, label in enumerate(labels):
        every = Answers(rows.items, rows.raters, selections[:, index].astype(np.int64), n_items=data.n_items,
                        n_raters=data.n_raters, n_classes=2)
        gold_items, gold_labels = _gold_clamp(data, path, lambda v, label=label: None if v is None else int(label in v))
        ds = dawid_skene(every, gold_items=np.asarray(gold_items, np.int64),
                         gold_labels=np.asarray(gold_labels, np.int64))
        posterior[:, index] = ds.scores[:, 1]
    active = np.unique(rows.raters).size
    use_ds = bool(active) and len(rows.values) >= DS_MIN_PER_CLASS * 2 * active
    for item in np.flatnonzero(vote.n_answers > 0).tolist():
        if ctx.is_gold[item]:
            continue
        ds_chosen = [label for index, label in enumerate(labels) if posterior[item, index] > 0.5]
        ds_confidence = float(np.min(np.maximum(posterior[item], 1.0 - posterior[item]))) if n_labels else 1.0
        vote_chosen = [label for index, label in enumerate(labels) if vote.selected[item, index]]
        vote_confidence = float(vote.confidence[item].min()) if n_labels else 1.0
        main, other = ((ds_chosen, ds_confidence), (vote_chosen, vote_confidence))
        if not use_ds:
            main, other = other, main
        ctx.aggregates[item][path] = {
            "value": main[0], "confidence": main[1], "method": "dawid_skene" if use_ds else "majority_vote",
            "n": int(vote.n_answers[item]),
            "share": {label: vote.share[item, index] for index, label in enumerate(labels)},
            "majority_vote" if use_ds else "dawid_skene": {"value": other[0], "confidence": other[1]},
        }


def _rating(ctx: _Context, path: str, question: Any, rows: _Rows) -> None:
    data = ctx.data
    codes = np.asarray(rows.values, dtype=np.int64) - question.min if rows.values else np.zeros(0, np.int64)
    k = question.max - question.min + 1
    regular = _answers(rows, codes, rows.regular, data, k)
    result, n, agreements = _categorical_agreement(regular, data.usernames, level="ordinal", weights="quadratic",
                                                   fleiss=False, extra_levels=("interval", "nominal"))
    ctx.agreement[path] = {"type": "rating", **result}
    ctx.consensus_n += n
    ctx.consensus_agreements += agreements
    keep = rows.regular
    items = rows.items[keep]
    ratings = np.asarray(rows.values, dtype=np.float64)[keep] if rows.values else np.zeros(0)
    stats = aggregate_ratings(items, ratings, n_items=data.n_items)
    spread = np.bincount(items, weights=np.abs(ratings - stats.median[items]), minlength=data.n_items)
    span = question.max - question.min
    confidence = 1.0 - spread / np.where(stats.n > 0, stats.n, 1) / span if span else np.ones(data.n_items)
    for item in np.flatnonzero(stats.n > 0).tolist():
        ctx.aggregates[item][path] = {
            "value": stats.median[item], "confidence": confidence[item], "method": "median", "n": int(stats.n[item]),
            "mean": stats.mean[item], "std": stats.std[item], "q1": stats.q1[item], "q3": stats.q3[item],
        }


def _per_item(ctx: _Context, path: str, question: Any, rows: _Rows) -> None:
    """Aggregate item by item with ``quality/consensus.py`` (ratings, spans, boxes)."""
    by_item: dict[int, list[Any]] = {}
    for item, value, regular in zip(rows.items.tolist(), rows.values, rows.regular.tolist(), strict=True):
        if regular:
            by_item.setdefault(item, []).append(value)
    for item, values in by_item.items():
        result = consensus(question, values, ctx.data.payloads.get(item))
        if result is not None:
            ctx.aggregates[item][path] = result


def _comparison_confidence(comps: Comparisons, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (group, pair): keys, the lower candidate's share of wins, and per group the mean pair confidence."""
    lo, hi = np.minimum(comps.a, comps.b), np.maximum(comps.a, comps.b)
    lo_share = np.where(comps.a == lo, comps.outcome, 1.0 - comps.outcome)
    keys = np.stack([comps.group, lo, hi], axis=1)
    if keys.size == 0:
        return keys.reshape(0, 3), np.zeros(0), np.zeros(n_groups)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    total = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    share = np.bincount(inverse, weights=lo_share, minlength=len(unique)) / total
    confidence = np.maximum(share, 1.0 - share)
    group = unique[:, 0]
    count = np.bincount(group, minlength=n_groups)
    mean = np.bincount(group, weights=confidence, minlength=n_groups) / np.where(count > 0, count, 1)
    return unique, share, mean


def _ranking(ctx: _Context, path: str, question: Any, rows: _Rows) -> None:
    data = ctx.data
    width = max((len(v) for v in rows.values), default=0)
    candidates = np.zeros(data.n_items, dtype=np.int64)
    if rows.values:
        np.maximum.at(candidates, rows.items, np.asarray([len(v) for v in rows.values]))
    offset = np.concatenate(([0], np.cumsum(candidates)[:-1])).astype(np.int64)
    # Agreement: units (task, candidate), values the rank positions, ordinal; and exact-order agreement.
    unit_list, position_list = [], []
    for item, ranking, regular in zip(rows.items.tolist(), rows.values, rows.regular.tolist(), strict=True):
        if regular:
            for position, candidate in enumerate(ranking):
                unit_list.append(offset[item] + candidate)
                position_list.append(position)
    alpha = (krippendorff_alpha(items=np.asarray(unit_list, np.int64), values=np.asarray(position_list, np.float64),
                                level="ordinal") if unit_list else None)
    orders = LabelCodec.fit([tuple(v) for v in rows.values], sort=False)
    exact = _answers(rows, orders.encode([tuple(v) for v in rows.values]), rows.regular, data, max(len(orders), 1))
    ctx.agreement[path] = {
        "type": "ranking", "level": "ordinal", "unit": "task x candidate",
        "tasks": int((np.bincount(exact.items, minlength=data.n_items) >= 2).sum()), "answers": len(exact),
        "alpha": alpha, "percent_agreement": percent_agreement(exact) if len(exact) else None,
    }
    regular_rows = [i for i, r in enumerate(rows.regular.tolist()) if r]
    if not regular_rows:
        return
    matrix = np.full((len(regular_rows), width), -1, dtype=np.int64)
    groups = np.zeros(len(regular_rows), dtype=np.int64)
    for row, index in enumerate(regular_rows):
        item = int(rows.items[index])
        matrix[row, : len(rows.values[index])] = offset[item] + np.asarray(rows.values[index], np.int64)
        groups[row] = item
    comps = rankings_to_comparisons(matrix, groups=groups)
    _bradley_terry_results(ctx, path, comps, offset, candidates, rows, kind="ranking")


def _preference(ctx: _Context, path: str, rows: _Rows) -> None:
    data = ctx.data
    keep = [i for i, r in enumerate(rows.regular.tolist()) if r]
    if not keep:
        return
    items = rows.items[keep]
    choices = [rows.values[i].get("choice") for i in keep]
    outcome = np.asarray([1.0 if c == "a" else 0.0 if c == "b" else 0.5 for c in choices])
    offset = (2 * np.arange(data.n_items)).astype(np.int64)
    comps = Comparisons.from_arrays(offset[items], offset[items] + 1, outcome, group=items)
    strengths: dict[tuple[int, str], list[int]] = {}
    for i in keep:
        value = rows.values[i]
        if value.get("strength") is not None:
            strengths.setdefault((int(rows.items[i]), value["choice"]), []).append(int(value["strength"]))
    _bradley_terry_results(ctx, path, comps, offset, np.full(data.n_items, 2), rows, kind="preference",
                           strengths=strengths)


def _bradley_terry_results(
    ctx: _Context, path: str, comps: Comparisons, offset: np.ndarray, candidates: np.ndarray, rows: _Rows, *,
    kind: str, strengths: dict[tuple[int, str], list[int]] | None = None,
) -> None:
    data = ctx.data
    total = int(offset[-1] + candidates[-1]) if data.n_items else 0
    bt = bradley_terry(comps, max(total, 1), prior=0.5, max_iter=100, tol=1e-6)
    keys, share, mean_confidence = _comparison_confidence(comps, data.n_items)
    n_answers = np.bincount(rows.items[rows.regular], minlength=data.n_items)
    pairs_of: dict[int, list[dict[str, Any]]] = {}
    first_share: dict[int, float] = {}  # preference: the only pair of a task is (a, b)
    for (group, lo, hi), s in zip(keys.tolist(), share.tolist(), strict=True):
        first_share.setdefault(group, s)
        if s == 0.5:
            continue
        chosen, rejected = (lo, hi) if s > 0.5 else (hi, lo)
        pairs_of.setdefault(group, []).append({"chosen": int(chosen - offset[group]),
                                               "rejected": int(rejected - offset[group]),
                                               "confidence": max(s, 1.0 - s)})
    # Scores centred per task, and each task's candidates best first, for all tasks at once.
    owner = np.repeat(np.arange(data.n_items), candidates)
    local = np.arange(owner.size) - offset[owner]
    scores_all = bt.scores[: owner.size]
    centred = scores_all - (np.bincount(owner, weights=scores_all, minlength=data.n_items)
                            / np.maximum(candidates, 1))[owner]
    ranked = local[np.lexsort((local, -centred, owner))]
    centred_list, ranked_list = centred.tolist(), ranked.tolist()
    for item in np.flatnonzero(n_answers > 0).tolist():
        start, count = int(offset[item]), int(candidates[item])
        result: dict[str, Any] = {"scores": centred_list[start: start + count], "pairs": pairs_of.get(item, []),
                                  "n": int(n_answers[item]), "method": "bradley_terry"}
        if kind == "ranking":
            result["value"] = ranked_list[start: start + count]
            result["confidence"] = float(mean_confidence[item])
        else:
            a_share = first_share.get(item, 0.5)
            choice = "a" if a_share > 0.5 else "b" if a_share < 0.5 else "tie"
            result["value"] = {"choice": choice}
            result["confidence"] = max(a_share, 1.0 - a_share)
            given = (strengths or {}).get((item, choice))
            if given:
                result["mean_strength"] = sum(given) / len(given)
        ctx.aggregates[item][path] = result


def _span(ctx: _Context, path: str, question: Any, rows: _Rows) -> None:
    data = ctx.data
    labels = list(question.labels)
    code = {label: i + 1 for i, label in enumerate(labels)}  # 0: no label
    unit_offset: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
    next_unit = 0
    units, raters, values = [], [], []
    for item, rater, spans, regular in zip(rows.items.tolist(), rows.raters.tolist(), rows.values,
                                           rows.regular.tolist(), strict=True):
        if not regular:
            continue
        text = data.payloads.get(item, {}).get(question.field)
        if not isinstance(text, str):
            continue
        if item not in unit_offset:
            bounds = np.array([m.span() for m in _TOKEN.finditer(text)], dtype=np.int64).reshape(-1, 2)
            unit_offset[item] = (next_unit, bounds[:, 0], bounds[:, 1])
            next_unit += len(bounds)
        start, tok_start, tok_end = unit_offset[item]
        mine = np.zeros(tok_start.size, dtype=np.int64)
        for span in spans:  # a token takes the label of the first span overlapping it
            hit = (tok_end > span["start"]) & (tok_start < span["end"]) & (mine == 0)
            mine[hit] = code[span["label"]]
        units.extend(range(start, start + tok_start.size))
        raters.extend([rater] * tok_start.size)
        values.extend(mine.tolist())
    answers = Answers(np.asarray(units, np.int64), np.asarray(raters, np.int64), np.asarray(values, np.int64),
                      n_items=max(next_unit, 1), n_raters=data.n_raters, n_classes=len(labels) + 1)
    result, _, _ = _categorical_agreement(answers, data.usernames)
    ctx.agreement[path] = {"type": "span", "unit": "task x token", **result}
    _per_item(ctx, path, question, rows)


def _bbox_agreement(ctx: _Context, path: str, question: Any, rows: _Rows) -> None:
    by_item: dict[int, list[Any]] = {}
    for item, value, regular in zip(rows.items.tolist(), rows.values, rows.regular.tolist(), strict=True):
        if regular:
            by_item.setdefault(item, []).append(value)
    f1 = [box_f1(a, b) for values in by_item.values() for a, b in combinations(values, 2)]
    ctx.agreement[path] = {
        "type": "bbox", "tasks": sum(len(v) >= 2 for v in by_item.values()), "answers": sum(map(len, by_item.values())),
        "alpha": None, "mean_pairwise_f1": float(np.mean(f1)) if f1 else None, "iou_threshold": 0.5,
    }
    _per_item(ctx, path, question, rows)


def _text(ctx: _Context, path: str, question: Any, rows: _Rows) -> None:
    data = ctx.data
    ctx.agreement[path] = {"type": "text", "alpha": None, "note": "free text has no agreement statistic"}
    first: dict[int, str] = {}
    given: dict[int, list[str]] = {}
    for index, (item, value, regular) in enumerate(zip(rows.items.tolist(), rows.values, rows.regular.tolist(),
                                                       strict=True)):
        if not regular:
            continue
        given.setdefault(item, []).append(value)
        if data.status[int(rows.j[index])] == "accepted" and item not in first:
            first[item] = value  # answers are in id order: the first accepted one
    for item, value in first.items():
        values = given[item]
        ctx.aggregates[item][path] = {"value": value, "confidence": values.count(value) / len(values),
                                      "method": "first_accepted", "n": len(values)}


_BY_TYPE = {
    "label": _label,
    "preference": _label,
    "multi_label": _multi_label,
    "rating": _rating,
    "ranking": _ranking,
    "span": _span,
    "bbox": _bbox_agreement,
    "text": _text,
}


# ------------------------------------------------------------------------------------------ the whole


@dataclass(frozen=True)
class QualityResults:
    """Plain dicts holding NumPy numbers and NaN: serialise with :func:`to_json` (NaN becomes null)."""

    report: dict[str, Any]
    aggregates: dict[str, Any]  # task id (as text) -> {"external_id", "gold", "questions": {path: result}}


def to_json(value: Any) -> bytes:
    """JSON of a result: NumPy numbers as numbers, NaN and infinities as null, keys as text."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def compute(data: Dataset, *, labeler_status: dict[int, dict[str, Any]] | None = None,
            overlap: dict[str, Any] | None = None) -> QualityResults:
    """Every quality result of one project. ``labeler_status`` adds columns per user id (suspended,
    qualified); ``overlap`` is the adaptive-overlap summary to include."""
    is_gold = np.asarray(data.is_gold, dtype=bool)
    gold_raters = np.asarray([r for r, _ in data.gold_answers], dtype=np.int64)
    gold_credits = np.asarray([c for _, c in data.gold_answers], dtype=np.float64)
    overall = gold_accuracy(gold_raters, gold_credits, n_raters=data.n_raters)
    ctx = _Context(
        data=data, is_gold=is_gold, rater_accuracy=overall.accuracy,
        consensus_n=np.zeros(data.n_raters), consensus_agreements=np.zeros(data.n_raters),
        ds_accuracy=[[] for _ in range(data.n_raters)], agreement={}, confusion={},
        aggregates=[{} for _ in range(data.n_items)],
    )
    for path, question in question_paths(data.schema):
        rows = _rows(data, path, is_gold)
        _BY_TYPE[question.type](ctx, path, question, rows)
        for item, correction in data.corrections.items():
            value = value_at(correction, path)
            if value is not None and not is_gold[item]:
                ctx.aggregates[item][path] = {"value": value, "confidence": 1.0, "method": "review",
                                              "n": ctx.aggregates[item].get(path, {}).get("n", 0)}
    report = {
        "format": RESULTS_FORMAT,
        "tasks": int((~is_gold).sum()),
        "gold_tasks": int(is_gold.sum()),
        "answers": len(data.item),
        "labelers": _labeler_table(data, ctx, overall, labeler_status or {}),
        "agreement": ctx.agreement,
        "confusion": ctx.confusion,
        "overlap": overlap,
    }
    aggregates = {}
    for item, task_id in enumerate(data.task_ids):
        if is_gold[item]:
            gold = data.gold.get(item, {})
            questions = {path: {"value": value_at(gold, path), "confidence": 1.0, "method": "gold"}
                         for path, _ in question_paths(data.schema) if value_at(gold, path) is not None}
        else:
            questions = ctx.aggregates[item]
        aggregates[str(task_id)] = {"external_id": data.external_ids[item], "gold": bool(is_gold[item]),
                                    "questions": questions}
    return QualityResults(report=report, aggregates=aggregates)


def _labeler_table(
    data: Dataset, ctx: _Context, overall: Any, status: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    per_question: dict[str, tuple[list[int], list[float]]] = {}
    for rater, question, credit in data.gold_scores:
        raters, credits = per_question.setdefault(question, ([], []))
        raters.append(rater)
        credits.append(credit)
    by_question = {q: gold_accuracy(r, c, n_raters=data.n_raters) for q, (r, c) in per_question.items()}
    raters = np.asarray(data.rater, dtype=np.int64)
    regular = ~np.asarray(data.is_gold, dtype=bool)[np.asarray(data.item, dtype=np.int64)] if data.item else []
    answers = np.bincount(raters, minlength=data.n_raters) if data.item else np.zeros(data.n_raters, np.int64)
    regular_answers = (np.bincount(raters[regular], minlength=data.n_raters) if data.item
                       else np.zeros(data.n_raters, np.int64))
    times: list[list[int]] = [[] for _ in range(data.n_raters)]
    for rater, spent in zip(data.rater, data.time_ms, strict=True):
        times[rater].append(spent)
    lower, upper = wilson_interval(ctx.consensus_agreements, ctx.consensus_n)
    rows = []
    for r in range(data.n_raters):
        total_ms = sum(times[r])
        n_consensus = ctx.consensus_n[r]
        rows.append({
            "user_id": data.user_ids[r],
            "labeler": data.usernames[r],
            "answers": int(answers[r]),
            "regular_answers": int(regular_answers[r]),
            "gold": asdict(_gold_row(overall, r)),
            "gold_by_question": {q: asdict(_gold_row(stats, r)) for q, stats in by_question.items() if stats.n[r] > 0},
            "agreement_with_consensus": {
                "n": int(n_consensus), "rate": ctx.consensus_agreements[r] / n_consensus if n_consensus else None,
                "lower": lower[r], "upper": upper[r],
            },
            "dawid_skene_accuracy": float(np.mean(ctx.ds_accuracy[r])) if ctx.ds_accuracy[r] else None,
            "median_time_ms": int(np.median(times[r])) if times[r] else None,
            "answers_per_hour": round(len(times[r]) / (total_ms / 3_600_000), 2) if total_ms else None,
            "earned": data.earned[r],
            "currency": data.currency,
            **status.get(data.user_ids[r], {}),
        })
    return rows


@dataclass(frozen=True)
class _GoldRow:
    n: int
    accuracy: float | None
    lower: float
    upper: float


def _gold_row(stats: Any, r: int) -> _GoldRow:
    n = int(stats.n[r])
    return _GoldRow(n, float(stats.accuracy[r]) if n else None, float(stats.lower[r]), float(stats.upper[r]))


__all__ = ["RESULTS_FORMAT", "QualityResults", "compute", "to_json"]

