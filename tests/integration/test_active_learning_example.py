"""examples/active_learning.py runs against a real install: it trains on the accepted answers,
sets itself as the project's predictor and re-scores the open tasks, which reorders the queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sklearn.datasets import load_digits
from sqlalchemy import select

from labelvault.settings import Settings
from labelvault.storage.models import Task
from tests.conftest import World

ROOT = Path(__file__).resolve().parents[2]
DIGITS_SCHEMA = {
    "fields": [{"name": "pixels", "kind": "text"}],
    "questions": [{"name": "digit", "type": "label", "labels": [str(d) for d in range(10)]}],
}


def test_the_example_trains_on_accepted_answers_and_reorders_the_queue(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    services = world.services
    digits = load_digits()
    project = services.projects.create(world.operator, world.client_a, slug="digits", name="digits",
                                       schema=DIGITS_SCHEMA)
    rows = [{"external_id": f"d{i}", "data": {"pixels": " ".join(str(int(v)) for v in digits.data[i])}}
            for i in range(80)]
    services.imports.import_rows(world.operator, world.client_a, project.id, rows)
    labeler = world.actors["labeler_a"]
    truth = {f"d{i}": str(digits.target[i]) for i in range(80)}
    external = {}
    with services.uow_factory.for_client(world.client_a) as uow:
        external = {t.id: t.external_id for t in uow.tasks.list(project.id, offset=0, limit=100)}
    for _ in range(30):  # no model yet: import order
        task = services.labeling.next_task(labeler, world.client_a, project.id)
        services.labeling.submit(labeler, world.client_a, project.id, task.task_id,
                                 {"digit": truth[external[task.task_id] or ""]})

    env = {**os.environ, "LABELVAULT_HOME": str(settings.home),
           "LABELVAULT_DATABASE_URL": settings.resolved_database_url}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "active_learning.py"), "acme/digits", "--field", "pixels",
         "--question", "digit", "--features", "numbers", "--model-dir", str(tmp_path / "models")],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "on 30 accepted answers; re-scored 50 open tasks" in done.stdout

    info = services.predictions.get(world.operator, world.client_a, project.id)
    assert info is not None and info.config.model_name == "active-learning" and info.pending == 0
    with services.uow_factory.for_client(world.client_a) as uow:
        open_tasks = uow.session.scalars(
            select(Task).where(Task.project_id == project.id, Task.answer_count == 0)
            .order_by(Task.uncertainty.desc(), Task.id)
        ).all()
    assert len({round(t.uncertainty, 6) for t in open_tasks}) > 10  # real, varied doubt
    assert all(0 <= t.uncertainty < 1 for t in open_tasks)
    leased = services.labeling.next_task(labeler, world.client_a, project.id)
    assert leased.task_id == open_tasks[0].id  # the least certain first
    assert leased.suggestions[0]["model"].startswith("active-learning@30-answers-")
    assert leased.suggestions[0]["answer"]["digit"] in DIGITS_SCHEMA["questions"][0]["labels"]  # type: ignore[index]
