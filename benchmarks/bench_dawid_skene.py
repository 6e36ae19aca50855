"""Benchmark: Dawid-Skene and majority vote over 1M simulated answers.

Simulates ``--items`` tasks (default 200,000) with ``--per-item`` answers each (default 5, so 1M answers)
over ``--classes`` classes (default 5) from a pool of raters of varied skill with known confusion
matrices and known truth (seeded), then times :func:`majority_vote` and :func:`dawid_skene` and prints
the accuracy of both against the truth. Unless ``--no-write``, refreshes the "Dawid-Skene" section of
``docs/benchmarks.md`` (other sections are left as they are).

    python benchmarks/bench_dawid_skene.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import scipy

from labelvault.quality.aggregation import dawid_skene, majority_vote
from labelvault.quality.agreement import Answers

T = TypeVar("T")

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Dawid-Skene"


@dataclass(frozen=True)
class Simulation:
    answers: Answers
    truth: np.ndarray
    kinds: dict[str, int]


def simulate(n_items: int, per_item: int, n_classes: int, n_raters: int, seed: int) -> Simulation:
    """Raters of four kinds, each with a full confusion matrix, answering distinct-rater tasks.

    * good (40%): accuracy 0.70..0.95, errors spread evenly;
    * weak (30%): accuracy 0.35..0.60, errors spread evenly;
    * biased (20%): accuracy 0.55..0.80, errors all go to one favourite class;
    * spammers (10%): answer uniformly at random.
    """
    rng = np.random.default_rng(seed)
    k = n_classes
    priors = rng.dirichlet(np.full(k, 4.0))  # mildly unbalanced classes
    truth = rng.choice(k, size=n_items, p=priors)
    kinds = rng.choice(4, size=n_raters, p=[0.4, 0.3, 0.2, 0.1])
    confusion = np.empty((n_raters, k, k))
    for r, kind in enumerate(kinds.tolist()):  # loop over raters (a few hundred), not answers
        if kind == 3:
            confusion[r] = 1.0 / k
            continue
        acc = rng.uniform(*((0.70, 0.95), (0.35, 0.60), (0.55, 0.80))[kind])
        if kind == 2:
            favourite = rng.integers(k)
            confusion[r] = (1.0 - acc) * np.eye(k)[favourite]
            confusion[r, favourite, :] = (1.0 - acc) / (k - 1)
        else:
            confusion[r] = (1.0 - acc) / (k - 1)
        confusion[r][np.diag_indices(k)] = acc
    confusion /= confusion.sum(axis=2, keepdims=True)

    # per_item distinct raters per task: the per_item smallest of random keys, as a queue would assign.
    raters = np.empty((n_items, per_item), dtype=np.int64)
    chunk = 50_000
    for start in range(0, n_items, chunk):
        keys = rng.random((min(chunk, n_items - start), n_raters), dtype=np.float32)
        raters[start : start + chunk] = np.argpartition(keys, per_item, axis=1)[:, :per_item]
    raters = raters.ravel()
    items = np.repeat(np.arange(n_items), per_item)
    cum = confusion[raters, truth[items]].cumsum(axis=1)
    values = (rng.random(items.size)[:, None] > cum).sum(axis=1).clip(0, k - 1)
    answers = Answers(items, raters, values, n_items=n_items, n_raters=n_raters, n_classes=k)
    names = ("good", "weak", "biased", "spammer")
    return Simulation(answers, truth, {names[i]: int((kinds == i).sum()) for i in range(4)})


def timed(fn: Callable[[], T], repeats: int) -> tuple[T, list[float]]:
    times: list[float] = []
    result: T | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return result, times


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def count_cpus() -> int:
    """What `nproc` prints: the CPUs this process may run on."""
    try:
        return int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    except (OSError, ValueError, subprocess.CalledProcessError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def write_section(body: str, doc: Path = DOC) -> None:
    """Replace (or append) the ``## Dawid-Skene`` section, keeping every other section untouched."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--per-item", type=int, default=5)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--raters", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args()

    sim = simulate(args.items, args.per_item, args.classes, args.raters, args.seed)
    a = sim.answers
    truth = sim.truth
    _, build_times = timed(
        lambda: Answers(a.items, a.raters, a.values, n_items=a.n_items, n_raters=a.n_raters, n_classes=a.n_classes),
        args.repeats,
    )
    mv, mv_times = timed(lambda: majority_vote(a), args.repeats)
    ds, ds_times = timed(lambda: dawid_skene(a), args.repeats)
    mv_acc = float(np.mean(mv.labels == truth))
    ds_acc = float(np.mean(ds.labels == truth))
    # Among items where majority vote was a tie or wrong, how often Dawid-Skene is right.
    mv_wrong = mv.labels != truth
    rescued = float(np.mean(ds.labels[mv_wrong] == truth[mv_wrong])) if mv_wrong.any() else float("nan")
    # Calibration: mean confidence vs accuracy.
    ds_conf = float(ds.confidence.mean())

    nproc = count_cpus()
    median = statistics.median
    lines = [
        f"answers: {len(a):,} ({a.n_items:,} tasks x {args.per_item}, {a.n_classes} classes, "
        f"{a.n_raters} raters: {sim.kinds}), seed {args.seed}",
        f"build Answers (validation): median {median(build_times):.3f} s",
        f"majority vote: median {median(mv_times):.3f} s, accuracy {mv_acc:.4f}",
        f"Dawid-Skene:   median {median(ds_times):.3f} s (min {min(ds_times):.3f}, max {max(ds_times):.3f}), "
        f"{ds.iterations} iterations, converged={ds.converged}, accuracy {ds_acc:.4f}, "
        f"mean confidence {ds_conf:.4f}",
        f"Dawid-Skene is right on {rescued:.1%} of the tasks majority vote gets wrong",
    ]
    print("\n".join(lines))
    if args.no_write:
        return

    body = f"""\
`python benchmarks/bench_dawid_skene.py` (times are the median of {args.repeats} runs in one process;
tests never assert times).

- Machine: {nproc} CPUs (`nproc`), {cpu_model()}; Python {platform.python_version()}, NumPy {np.__version__},
  SciPy {scipy.__version__}.
- Date: {dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}.
- Data: {len(a):,} answers ({a.n_items:,} tasks x {args.per_item} distinct raters, {a.n_classes} classes,
  {a.n_raters} simulated raters with known confusion matrices: {sim.kinds["good"]} good (accuracy 0.70-0.95),
  {sim.kinds["weak"]} weak (0.35-0.60), {sim.kinds["biased"]} biased towards one class (0.55-0.80),
  {sim.kinds["spammer"]} uniform spammers), seed {args.seed}.

| step | time (median) | accuracy vs truth |
| --- | --- | --- |
| build and validate `Answers` | {median(build_times):.3f} s | |
| `majority_vote` | {median(mv_times):.3f} s | {mv_acc:.4f} |
| `dawid_skene` ({ds.iterations} EM iterations, converged={ds.converged}) | {median(ds_times):.3f} s | {ds_acc:.4f} |

Dawid-Skene gets {rescued:.1%} of the tasks right that majority vote gets wrong; its mean confidence
(max posterior) is {ds_conf:.4f} against an accuracy of {ds_acc:.4f}.
Each EM iteration is two sparse-dense products with one (rater x answer class) x task count matrix
built once, plus a row-wise softmax: no Python loop over answers.
"""
    write_section(body)
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
