"""Repositories of model-assisted labeling: a project's predictor and what it has scored.

Like every repository they never commit and never filter by client: they take the scoped session
of a unit of work (``PredictorRepository(uow.session)``), whose scope adds the client filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.orm import Session

from labelvault.storage.models import ProjectPredictor, Task, TaskPrediction


class PredictorRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def of_project(self, project_id: int) -> ProjectPredictor | None:
        return self.session.scalar(select(ProjectPredictor).where(ProjectPredictor.project_id == project_id))

    def add(self, predictor: ProjectPredictor) -> ProjectPredictor:
        self.session.add(predictor)
        self.session.flush()
        return predictor

    def remove(self, predictor: ProjectPredictor) -> None:
        self.session.delete(predictor)
        self.session.flush()


class PredictionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _wanting(self, project_id: int, model_version: str | None) -> list[object]:
        """Tasks that still want answers (not gold), and, unless ``model_version`` is None, lack
        a suggestion of that version."""
        conditions: list[object] = [
            Task.project_id == project_id,
            Task.is_gold.is_(False),
            Task.answer_count < Task.required_answers,
        ]
        if model_version is not None:
            current = exists().where(
                and_(TaskPrediction.task_id == Task.id, TaskPrediction.model_version == model_version)
            )
            conditions.append(~current)
        return conditions

    def pending_ids(self, project_id: int, model_version: str | None, *, after_id: int, limit: int) -> list[int]:
        """Ids of tasks to score next, in id order after ``after_id`` (keyset pagination)."""
        query = (
            select(Task.id)
            .where(*self._wanting(project_id, model_version), Task.id > after_id)  # type: ignore[arg-type]
            .order_by(Task.id)
            .limit(limit)
        )
        return list(self.session.scalars(query))

    def count_pending(self, project_id: int, model_version: str | None) -> int:
        query = select(func.count()).select_from(Task).where(*self._wanting(project_id, model_version))  # type: ignore[arg-type]
        return self.session.scalar(query) or 0

    def tasks(self, project_id: int, task_ids: Sequence[int], *, lock: bool = False) -> list[Task]:
        """The tasks of these ids in this project, in id order; locked for update on PostgreSQL."""
        if not task_ids:
            return []
        query = select(Task).where(Task.project_id == project_id, Task.id.in_(list(task_ids))).order_by(Task.id)
        if lock and self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        return list(self.session.scalars(query))

    def record(self, project_id: int, task_ids: Sequence[int], model_version: str, now: datetime) -> None:
        """Mark tasks as scored by ``model_version`` (replacing an older version's mark)."""
        if not task_ids:
            return
        self.session.execute(delete(TaskPrediction).where(TaskPrediction.task_id.in_(list(task_ids))))
        self.session.add_all(
            TaskPrediction(task_id=task_id, project_id=project_id, model_version=model_version, predicted_at=now)
            for task_id in task_ids
        )
        self.session.flush()

    def versions(self, project_id: int) -> dict[str, int]:
        """How many tasks each model version has scored."""
        query = (
            select(TaskPrediction.model_version, func.count())
            .where(TaskPrediction.project_id == project_id)
            .group_by(TaskPrediction.model_version)
        )
        return {version: count for version, count in self.session.execute(query)}
