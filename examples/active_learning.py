"""Active learning with LabelVault: train on the accepted answers, re-score the open tasks.

One round, run whenever enough new answers have come in (by hand, from cron, after a review pass):

1. read the project's accepted answers through the Python API (an export, audited as one);
2. train a scikit-learn classifier on them (logistic regression on TF-IDF of a text field, or on
   the numbers of a field that holds a feature vector as text, ``--features numbers``);
3. save it under ``--model-dir`` and make it the project's predictor, with a new model version:
   this module's :func:`predict`, an ``entry_point`` predictor named ``active_learning:predict``;
4. run the predictor: every open task gets the model's suggestion and, as its uncertainty,
   1 - the model's confidence. The queue serves the least certain tasks first (after explicit
   priority), so the next answers are the ones the model learns most from (uncertainty sampling).

    LABELVAULT_HOME=./labelvault-data python examples/active_learning.py acme/tickets \\
        --field body --question category --model-dir ./models

The server runs predictors too (``labelvault predict``, ``POST /api/projects/{id}/predictions``):
for that, put this file's folder on the server's PYTHONPATH, or package :func:`predict` as an entry
point of the group ``labelvault.predictors``. Here the round runs in this process, with the
install's keys, as an operator (a ``module:function`` predictor runs code in the server: only
operators may set one).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from labelvault.bootstrap import Services, build_services
from labelvault.domain.access import Actor
from labelvault.domain.predictors import PredictorConfig
from labelvault.settings import Settings
from labelvault.workflow.predictions import PredictionReport

PREDICTOR = "active_learning:predict"
MODEL_NAME = "active-learning"


# --------------------------------------------------------------------------- the model


def numbers(texts: list[str]) -> np.ndarray:
    """A field holding a feature vector as text ("0 3 16 ...") -> a matrix."""
    return np.array([[float(x) for x in text.split()] for text in texts])


def train(texts: list[str], labels: list[str], features: str = "text", *, c: float = 1.0) -> dict[str, Any]:
    """Fit a classifier; returns what :func:`predict` needs (plain scikit-learn objects, picklable)."""
    vectorizer = None
    if features == "numbers":
        matrix: Any = numbers(texts)
    else:
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
        matrix = vectorizer.fit_transform(texts)
    classifier = LogisticRegression(max_iter=2000, C=c)
    classifier.fit(matrix, labels)
    return {"features": features, "vectorizer": vectorizer, "classifier": classifier}


def probabilities(model: dict[str, Any], texts: list[str]) -> tuple[np.ndarray, list[str]]:
    matrix = numbers(texts) if model["features"] == "numbers" else model["vectorizer"].transform(texts)
    return model["classifier"].predict_proba(matrix), [str(c) for c in model["classifier"].classes_]


_loaded: dict[str, tuple[float, dict[str, Any]]] = {}


def _load(path: str) -> dict[str, Any]:
    # The runner calls predict once per batch: keep the model, reload it when the file changes.
    mtime = Path(path).stat().st_mtime
    cached = _loaded.get(path)
    if cached is None or cached[0] != mtime:
        with open(path, "rb") as handle:
            cached = _loaded[path] = (mtime, pickle.load(handle))  # our own file, written by save_model
    return cached[1]


def predict(tasks: list[dict[str, Any]], schema: dict[str, Any], *, question: str,
            options: dict[str, Any]) -> list[Any]:
    """The predictor LabelVault calls: the best label and its probability for each task."""
    model = _load(options["model_path"])
    texts = [str(task["data"].get(options["field"], "")) for task in tasks]
    probs, classes = probabilities(model, texts)
    best = probs.argmax(axis=1)
    return [{"answer": classes[i], "score": round(float(p[i]), 6)} for p, i in zip(probs, best, strict=True)]


def save_model(model: dict[str, Any], model_dir: Path, version: str) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / f"{version}.pkl"
    partial = path.with_suffix(".part")
    with partial.open("wb") as handle:
        pickle.dump(model, handle)
    partial.replace(path)  # the runner never reads a half-written model
    return path


# --------------------------------------------------------------------------- LabelVault's side


def accepted_answers(services: Services, actor: Actor, client_id: int, project_id: int, field: str,
                     question: str) -> tuple[list[str], list[str]]:
    """(text, label) of every task with accepted answers (their majority if several)."""
    export = services.exports.export(actor, client_id, project_id)
    texts: list[str] = []
    labels: list[str] = []
    for line in b"".join(export.chunks).splitlines():
        task = orjson.loads(line)
        votes = Counter(a["value"][question] for a in task["answers"]
                        if a["status"] == "accepted" and question in a["value"])
        if votes:
            texts.append(str(task["data"].get(field, "")))
            labels.append(str(votes.most_common(1)[0][0]))
    return texts, labels


def run_round(
    services: Services, actor: Actor, project: str, *, field: str, question: str, features: str,
    model_dir: Path, min_answers: int = 10, batch_size: int = 256,
) -> tuple[str, int, PredictionReport] | None:
    """Train on the accepted answers and re-score the open tasks; None while there is too little to learn from."""
    client_id, project_id = services.projects.locate(project)
    texts, labels = accepted_answers(services, actor, client_id, project_id, field, question)
    if len(labels) < min_answers or len(set(labels)) < 2:
        return None
    model = train(texts, labels, features)
    version = f"{len(labels)}-answers-{uuid.uuid4().hex[:6]}"
    path = save_model(model, model_dir, version)
    config = PredictorConfig(
        kind="entry_point", target=PREDICTOR, question=question, model_name=MODEL_NAME, model_version=version,
        batch_size=batch_size, options={"model_path": str(path.resolve()), "field": field},
    )
    services.predictions.configure(actor, client_id, project_id, config)
    report = services.predictions.run(actor, client_id, project_id)
    return version, len(labels), report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", help="Project id, or client-slug/project-slug.")
    parser.add_argument("--field", required=True, help="The task field the model reads.")
    parser.add_argument("--question", required=True, help="The label question the model answers.")
    parser.add_argument("--features", choices=("text", "numbers"), default="text",
                        help="text: TF-IDF of the field; numbers: the field is a vector of numbers.")
    parser.add_argument("--model-dir", type=Path, default=Path("models"), help="Where models are saved.")
    parser.add_argument("--min-answers", type=int, default=10, help="Train only from this many accepted answers.")
    parser.add_argument("--as", dest="username", help="Operator account to act as (default: the first).")
    args = parser.parse_args(argv)
    services = build_services(Settings())
    try:
        accounts = services.accounts
        actor = accounts.actor_by_username(args.username) if args.username else accounts.first_operator()
        done = run_round(services, actor, args.project, field=args.field, question=args.question,
                         features=args.features, model_dir=args.model_dir, min_answers=args.min_answers)
    finally:
        services.close()
    if done is None:
        print(f"not enough accepted answers yet (at least {args.min_answers}, of two labels or more)")
        return 0
    version, answers, report = done
    print(f"trained {MODEL_NAME}@{version} on {answers} accepted answers; re-scored {report.scored} open tasks "
          f"({report.batches} batches): the queue now serves the least certain first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
