"""Benchmark: answers needed to reach a target accuracy, uncertainty order against import order.

Real data, all offline: scikit-learn's handwritten digits (``load_digits``, 1,797 8x8 images, ten
classes). Per seed, a stratified quarter is held out for testing; the rest is imported, shuffled,
as tasks (``pixels``: the 64 grey levels as text; a ``digit`` label question) into a fresh
LabelVault install on SQLite. A simulated labeler works through the real queue
(``LabelingService.next_task`` / ``submit``) and answers the truth. Every ``--step`` answers, the
example's loop (``examples/active_learning.py``) reads the accepted answers through an export,
trains a logistic regression and measures its accuracy on the held-out images.

- **uncertainty**: after each training the model becomes the project's predictor (an
  ``entry_point`` predictor with a new model version) and the runner re-scores every open task,
  so the queue serves the least certain tasks next;
- **import order**: no predictor; the queue serves the tasks in (shuffled) import order, that is
  a random sample of the pool.

Both start from the same first ``--seed-answers`` tasks (import order, no model yet) and train
the same way at the same answer counts; only the queue order differs. Unless ``--no-write``,
writes the "Active learning" section at the end of ``docs/benchmarks.md``.

    python benchmarks/bench_active_learning.py            # 3 seeds, target 0.95: about 2 minutes
    python benchmarks/bench_active_learning.py --seeds 1 --max-answers 200 --no-write
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))  # the predictor is the example's own function

import active_learning  # noqa: E402  (needs the path above)

from labelvault.bootstrap import Services, initialize  # noqa: E402
from labelvault.domain.predictors import PredictorConfig  # noqa: E402
from labelvault.settings import Settings  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Active learning"
SCHEMA = {
    "instructions": "Which digit is it?",
    "fields": [{"name": "pixels", "kind": "text"}],
    "questions": [{"name": "digit", "type": "label", "labels": [str(d) for d in range(10)]}],
}
CURVE_AT = (20, 50, 100, 150, 200, 300, 400)


@dataclass
class Trial:
    strategy: str
    seed: int
    curve: list[tuple[int, float]] = field(default_factory=list)  # (answers, held-out accuracy)
    reached_at: int | None = None
    runner_seconds: float = 0.0
    runner_tasks: int = 0
    seconds: float = 0.0


def pixels(row: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in row)


def run_trial(strategy: str, seed: int, args: argparse.Namespace, work: Path) -> Trial:
    digits = load_digits()
    x_pool, x_test, y_pool, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=seed, stratify=digits.target)
    order = np.random.default_rng(seed).permutation(len(y_pool))
    home = work / f"{strategy}-{seed}"
    settings = Settings(home=home, sqlite_synchronous="NORMAL")
    services = initialize(settings, "operator", "benchmark-password-1")
    trial = Trial(strategy, seed)
    started = time.perf_counter()
    try:
        _loop(services, trial, x_pool[order], y_pool[order], x_test, y_test, args, home)
    finally:
        services.close()
    trial.seconds = time.perf_counter() - started
    return trial


def _loop(services: Services, trial: Trial, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray,
          y_test: np.ndarray, args: argparse.Namespace, home: Path) -> None:
    operator = services.accounts.first_operator()
    client = services.clients.create(operator, "bench", "Benchmark")
    services.accounts.create_user(operator, "labeler", None)
    services.accounts.grant_role(operator, client.id, "labeler", "labeler")
    labeler = services.accounts.actor_by_username("labeler")
    project = services.projects.create(operator, client.id, slug="digits", name="digits", schema=SCHEMA)
    rows = [{"external_id": f"p{i}", "data": {"pixels": pixels(x)}} for i, x in enumerate(x_pool)]
    services.imports.import_rows(operator, client.id, project.id, rows)
    truth: dict[int, str] = {}
    offset = 0
    while True:  # task id -> true label, through the project's task list
        page, total = services.projects.tasks(operator, client.id, project.id, offset=offset, limit=100)
        for summary in page:
            truth[summary.id] = str(y_pool[int((summary.external_id or "p0")[1:])])
        offset += len(page)
        if not page or offset >= total:
            break
    test_texts = [pixels(x) for x in x_test]
    answered = 0
    checkpoint = args.seed_answers
    while True:
        while answered < checkpoint:
            task = services.labeling.next_task(labeler, client.id, project.id)
            services.labeling.submit(labeler, client.id, project.id, task.task_id, {"digit": truth[task.task_id]})
            answered += 1
        texts, labels = active_learning.accepted_answers(services, operator, client.id, project.id, "pixels", "digit")
        model = active_learning.train(texts, labels, "numbers")
        probs, classes = active_learning.probabilities(model, test_texts)
        accuracy = float(np.mean(np.array(classes)[probs.argmax(axis=1)] == y_test.astype(str)))
        trial.curve.append((answered, accuracy))
        if accuracy >= args.target:
            trial.reached_at = answered
            return
        if answered >= args.max_answers:
            return
        if trial.strategy == "uncertainty":
            version = f"{answered}-answers"
            path = active_learning.save_model(model, home / "models", version)
            config = PredictorConfig(
                kind="entry_point", target=active_learning.PREDICTOR, question="digit",
                model_name=active_learning.MODEL_NAME, model_version=version, batch_size=args.batch_size,
                options={"model_path": str(path), "field": "pixels"},
            )
            services.predictions.configure(operator, client.id, project.id, config)
            began = time.perf_counter()
            report = services.predictions.run(operator, client.id, project.id)
            trial.runner_seconds += time.perf_counter() - began
            trial.runner_tasks += report.scored
        checkpoint = answered + args.step


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def render(trials: list[Trial], args: argparse.Namespace, began: dt.datetime, ended: dt.datetime) -> str:
    seeds = sorted({t.seed for t in trials})
    by = {(t.strategy, t.seed): t for t in trials}

    def reached(t: Trial) -> str:
        return str(t.reached_at) if t.reached_at is not None else f"> {t.curve[-1][0]}"

    lines = [
        "`python benchmarks/bench_active_learning.py` (simulated labeler, real queue; tests never assert these "
        "figures).",
        "",
        f"- Machine: {os.cpu_count()} CPUs (`nproc`), {cpu_model()}; Python {platform.python_version()}, "
        f"scikit-learn {sklearn.__version__}, NumPy {np.__version__}; SQLite (`synchronous=NORMAL`), one process.",
        f"- Date: {began:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC; the machine was shared with other jobs (timings are "
        "indicative, answer counts are not affected).",
        f"- Data: scikit-learn's `load_digits` (1,797 8x8 images, 10 classes), per seed a stratified 25% held out "
        f"(450 images), the other 1,347 imported as tasks in a shuffled order. Model: logistic regression on the 64 "
        f"grey levels (`examples/active_learning.py`, `--features numbers`), trained on the accepted answers "
        f"(read through an export) first after {args.seed_answers} answers, then every {args.step}; target "
        f"{args.target:.2f} accuracy on the held-out images; at most {args.max_answers} answers; seeds "
        f"{', '.join(map(str, seeds))}.",
        "- Uncertainty: after each training the model is the project's `entry_point` predictor with a new model "
        f"version, and `PredictionService.run` re-scores every open task (batches of {args.batch_size}); the "
        "labeler's next answers are the tasks the queue serves, least certain first. Import order: no "
        "predictor, the queue serves the shuffled import order (a random sample).",
        "",
        "Answers needed to reach the target accuracy:",
        "",
        "| seed | uncertainty order | import (random) order |",
        "| --- | --- | --- |",
    ]
    for seed in seeds:
        lines.append(f"| {seed} | {reached(by[('uncertainty', seed)])} | {reached(by[('import order', seed)])} |")
    unc = [by[("uncertainty", s)].reached_at for s in seeds]
    rnd = [by[("import order", s)].reached_at for s in seeds]
    if all(v is not None for v in unc + rnd):
        mu, mr = statistics.mean(unc), statistics.mean(rnd)  # type: ignore[arg-type]
        lines.append(f"| mean | {mu:.0f} | {mr:.0f} |")
        summary = (f"Uncertainty order reached {args.target:.2f} with {mu:.0f} answers on average, import order "
                   f"with {mr:.0f}: {1 - mu / mr:.0%} fewer answers for the same model quality.")
    else:
        summary = "Some runs did not reach the target within the answer budget (shown as > n)."
    lines += ["", summary, "", "Mean held-out accuracy by answers given (the last model trained on at most that "
              "many; a run stops at the target, so its later columns repeat the accuracy it stopped at):", "",
              "| answers | " + " | ".join(str(n) for n in CURVE_AT) + " |",
              "| --- |" + " --- |" * len(CURVE_AT)]
    for strategy in ("uncertainty", "import order"):
        cells = []
        for n in CURVE_AT:
            values = []
            for seed in seeds:
                trial = by[(strategy, seed)]
                found = [acc for answers, acc in trial.curve if answers <= n]
                # A run that stopped at the target keeps its last accuracy for larger counts; one that ran
                # out of answers has no figure beyond its last.
                if found and (trial.reached_at is not None or n <= trial.curve[-1][0]):
                    values.append(found[-1])
            cells.append(f"{statistics.mean(values):.3f}" if len(values) == len(seeds) else "")
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    def wall(strategy: str) -> float:
        return statistics.mean(t.seconds for t in trials if t.strategy == strategy)

    runner_seconds = sum(t.runner_seconds for t in trials)
    runner_tasks = sum(t.runner_tasks for t in trials)
    rounds = sum(len(t.curve) - 1 for t in trials if t.strategy == "uncertainty")
    lines += [
        "",
        f"The runner re-scored {runner_tasks:,} open tasks in {rounds} runs: {runner_seconds:.1f} s in all, "
        f"{runner_tasks / runner_seconds:,.0f} tasks/s (open, send to the in-process model, check, seal, update "
        "uncertainty, two audit entries per batch)." if runner_seconds else "",
        f"Wall time per trial: uncertainty {wall('uncertainty'):.1f} s, import order {wall('import order'):.1f} s "
        "(install, import, labeling, exports and training included).",
    ]
    return "\n".join(lines)


def write_section(body: str, doc: Path = DOC) -> None:
    """Replace the ``## Active learning`` section, or append it at the end; other sections stay as they are."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--seed-answers", type=int, default=20)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--max-answers", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    began = dt.datetime.now(dt.UTC)
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="lv-bench-al-") as folder:
        for seed in range(args.seeds):
            for strategy in ("uncertainty", "import order"):
                trial = run_trial(strategy, seed, args, Path(folder))
                trials.append(trial)
                print(f"seed {seed} {strategy}: target reached at {trial.reached_at} answers "
                      f"(last accuracy {trial.curve[-1][1]:.3f}, {trial.seconds:.1f} s)", flush=True)
    body = render(trials, args, began, dt.datetime.now(dt.UTC))
    print(body)
    if not args.no_write:
        write_section(body)


if __name__ == "__main__":
    main()
