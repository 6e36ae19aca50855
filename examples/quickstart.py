"""LabelVault SDK quick start: a project, tasks, model suggestions, answers, an export, quality.

Start a server with sample data and a login, in another terminal:

    pip install -e '.[sdk]' && labelvault demo          # prints the URL and the admin's password

then run this script against it, with the password (or an API token in LABELVAULT_TOKEN):

    LABELVAULT_USERNAME=admin LABELVAULT_PASSWORD=... python examples/quickstart.py

It creates (once) the project ``sdk-quickstart`` in the client ``demo`` (LABELVAULT_CLIENT), adds
ten reviews with a toy model's suggestions, and prints what the labelers answered so far. Label a
few tasks in the browser (a labeler of the client, e.g. the demo's labelers), run it again, and the
answers, the export and the quality table fill up. Running it again adds nothing twice: tasks are
idempotent by external_id, and a model's suggestions replace its earlier ones.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import labelvault as lv

REVIEWS = [
    "An absolute joy from the first scene to the last.",
    "Two hours of my life I will not get back.",
    "The cast is wonderful and the score is even better.",
    "Flat, predictable and far too long.",
    "I laughed, I cried, I bought a second ticket.",
    "The plot makes no sense and the dialogue is wooden.",
    "A warm, clever film that trusts its audience.",
    "Boring. I fell asleep twice.",
    "Beautifully shot, and the ending is perfect.",
    "A mess of a movie with one good song.",
]


def connect() -> lv.Client:
    url = os.environ.get("LABELVAULT_URL", "http://127.0.0.1:8000")
    if os.environ.get("LABELVAULT_TOKEN"):
        return lv.Client(url, os.environ["LABELVAULT_TOKEN"])
    username, password = os.environ.get("LABELVAULT_USERNAME", "admin"), os.environ.get("LABELVAULT_PASSWORD")
    if not password:
        sys.exit("set LABELVAULT_TOKEN, or LABELVAULT_PASSWORD (the login printed by 'labelvault demo')")
    return lv.Client.login(url, username, password)


def toy_model(text: str) -> tuple[str, float]:
    """A stand-in for your model: a label and how sure it is."""
    negative = sum(word in text.lower() for word in ("not", "boring", "flat", "mess", "no sense", "asleep"))
    return ("negative", 0.6 + 0.1 * negative) if negative else ("positive", 0.7)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "quickstart-export.jsonl")
    with connect() as client:
        print(f"connected to {client.url} as {client.me().username}")
        schema = lv.schema.Schema(
            instructions="Does the reviewer recommend the film?",
            fields=[lv.schema.Field(name="review", kind="text")],
            questions=[lv.schema.Label(name="sentiment", labels=["positive", "negative"])],
        )
        project = client.create_project(os.environ.get("LABELVAULT_CLIENT", "demo"), "SDK quickstart", schema,
                                        exist_ok=True)
        print(f"project {project.id} ({project.slug})")

        rows = [{"external_id": f"review-{i}", "data": {"review": text}} for i, text in enumerate(REVIEWS)]
        report = project.add_tasks(rows)
        print(f"tasks: {report.created} new, {report.already_present} already there")

        suggestions = []
        for i, text in enumerate(REVIEWS):
            label, score = toy_model(text)
            suggestions.append({"external_id": f"review-{i}", "answer": {"sentiment": label}, "score": score})
        added = project.add_suggestions(suggestions, model="toy-model-v1")
        print(f"suggestions: {added.suggestions} on {added.tasks} tasks")

        progress = project.progress()
        print(f"progress: {progress.answers_given} of {progress.answers_needed} answers ({progress.done:.0%})")
        answers = list(project.iter_answers())
        for answer in answers[:5]:
            print(f"  {answer.external_id}: {answer.value['sentiment']} by {answer.labeler}")
        print(f"answers so far: {len(answers)}")

        project.export("jsonl", out)
        print(f"export written to {out}")
        try:
            labelers = project.quality_report()
        except lv.sdk.errors.MissingDependency as missing:
            print(f"(skipping the quality table: {missing})")
        else:
            if labelers.empty:
                print("quality: no labelers yet")
            else:
                print(labelers[["labeler", "answers", "agreement_with_consensus_rate"]].to_string(index=False))


if __name__ == "__main__":
    main()
