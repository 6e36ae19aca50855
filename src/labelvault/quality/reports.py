"""Quality reports of a project: agreement, labelers, confusion matrices, aggregated answers.

    report = quality.report(actor, client_id, project_id)        # cached, refreshed when stale
    quality.recompute(actor, client_id, project_id)              # compute now, whatever the cache says
    stream = quality.export_aggregated(actor, client_id, project_id)
    for chunk in stream.chunks: ...                              # one JSON line per task

Results are computed from the stored answers (``quality/dataset.py``, opened in the client's unit of
work) by ``quality/compute.py`` and cached, sealed, in ``quality_cache`` (one row per project and
kind: ``report`` and ``aggregates``). A cached result carries the version of the project it was
computed from: the number of the project's answers (never deleted, so every submit changes it; the
queue itself writes no version, which would make the project's row a lock every submit waits for),
the project's ``quality_version`` (bumped on gold changes and imports of answers), the last review
decision's id (accept, reject and correct change what counts) and the settings the results show.
A result of another version is stale and is computed again on the next read; the database, not a
process, holds the cache, so every server process sees the same results.

The computation runs outside any transaction: it reads in one read unit of work, computes, and
stores in a short write unit of work; a reader never holds SQLite's write lock while computing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.quality.adaptive import overlap_savings
from labelvault.quality.compute import RESULTS_FORMAT, compute, to_json
from labelvault.quality.dataset import load_dataset
from labelvault.storage.models import Project, QualityCache, utcnow
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.projects import load_project
from labelvault.workflow.walls import check_and_record

REPORT = "report"
AGGREGATES = "aggregates"


@dataclass(frozen=True, slots=True)
class AggregatedExport:
    """An aggregated export whose access was checked; ``chunks`` yields JSON lines, one per task."""

    filename: str
    media_type: str
    tasks: int
    chunks: Iterator[bytes]


def version_of(uow: UnitOfWork, project: Project) -> str:
    """What the results of ``project`` depend on, as one string (see the module docstring)."""
    review = uow.quality_cache.last_review_id(project.id)
    answers = uow.quality_cache.answer_count(project.id)
    return (f"f{RESULTS_FORMAT}.q{project.quality_version}.a{answers}.r{review}.k{project.overlap}-"
            f"{project.max_overlap}.c{project.confidence_threshold}")


def _open(uow: UnitOfWork, row: QualityCache) -> dict[str, Any]:
    return orjson.loads(uow.cipher(row.data_key_id).open(f"quality.{row.kind}", row.project_id, row.data))  # type: ignore[no-any-return]


class QualityService:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    # -- reading

    def report(self, actor: Actor, client_id: int, project_id: int) -> dict[str, Any]:
        """Agreement, the labeler table, confusion matrices and adaptive-overlap savings."""
        return self._get(actor, client_id, project_id, REPORT)

    def labelers(self, actor: Actor, client_id: int, project_id: int) -> list[dict[str, Any]]:
        return list(self.report(actor, client_id, project_id)["labelers"])

    def aggregates(self, actor: Actor, client_id: int, project_id: int) -> dict[str, Any]:
        """Aggregated answer per task id: ``{"external_id", "gold", "questions": {path: result}}``.

        This is client content: like an export, it passes the conflict wall and is audited."""
        self._show(actor, client_id, project_id)
        return self._get(actor, client_id, project_id, AGGREGATES, policy=ProjectPolicy.export)

    def aggregates_for_export(self, actor: Actor, client_id: int, project_id: int) -> dict[str, Any]:
        """:meth:`aggregates` for an export that has already passed the wall and been audited
        (``io/exporter.py``); the export policy is still asked."""
        return self._get(actor, client_id, project_id, AGGREGATES, policy=ProjectPolicy.export)

    def recompute(self, actor: Actor, client_id: int, project_id: int) -> dict[str, Any]:
        """Compute the project's results now and cache them; returns the report."""
        return self._get(actor, client_id, project_id, REPORT, force=True)

    def export_aggregated(
        self, actor: Actor, client_id: int, project_id: int, *, progress: Callable[[int], None] | None = None
    ) -> AggregatedExport:
        """One JSON line per task: ``{"id", "external_id", "gold", "answers": {path: {value, confidence,
        method, n, ...}}}``, in task id order."""
        filename = self._show(actor, client_id, project_id)
        results = self._get(actor, client_id, project_id, AGGREGATES, policy=ProjectPolicy.export)
        return AggregatedExport(filename, "application/x-ndjson", len(results), _lines(results, progress))

    def _show(self, actor: Actor, client_id: int, project_id: int) -> str:
        """Check export access and the conflict wall, record the touch and audit; the file name."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.export(access_in(uow, actor))
            project = load_project(uow, project_id)
            uow.users.lock(actor.user_id)
            check_and_record(uow, actor.user_id, client_id, "export")
            audit_log.append(uow, "project.exported", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details={"format": "aggregated-jsonl",
                                                            "tasks": uow.tasks.count(project_id)})
            uow.commit()
            return f"{project.slug}-{project.id}-aggregated.jsonl"

    # -- the cache

    def _get(self, actor: Actor, client_id: int, project_id: int, kind: str, *, force: bool = False,
             policy: Any = ProjectPolicy.manage) -> dict[str, Any]:
        with self.uow_factory.for_client(client_id) as uow:
            policy(access_in(uow, actor))
            project = load_project(uow, project_id)
            version = version_of(uow, project)
            cached = uow.quality_cache.get(project_id, kind)
            if cached is not None and cached.version == version and not force:
                return _open(uow, cached)
            data = load_dataset(uow, project)
            status = _labeler_status(uow, project)
            overlap = asdict(overlap_savings(project, [
                (k, n) for k, n, gold in zip(data.required, data.counted, data.is_gold, strict=True) if not gold
            ]))
        results = compute(data, labeler_status=status, overlap=overlap)
        results.report["version"] = version
        results.report["computed_at"] = utcnow().isoformat()
        encoded = {REPORT: to_json(results.report), AGGREGATES: to_json(results.aggregates)}
        self._store(client_id, project_id, version, encoded)
        return orjson.loads(encoded[kind])  # type: ignore[no-any-return]

    def _store(self, client_id: int, project_id: int, version: str, encoded: dict[str, bytes]) -> None:
        try:
            with self.uow_factory.for_client(client_id, write=True) as uow:
                key_id, cipher = uow.active_cipher()
                for kind, data in encoded.items():
                    sealed = cipher.seal(f"quality.{kind}", project_id, data)
                    row = uow.quality_cache.get(project_id, kind)
                    if row is None:
                        uow.session.add(QualityCache(project_id=project_id, kind=kind, version=version,
                                                     data_key_id=key_id, data=sealed, computed_at=utcnow()))
                    else:
                        row.version, row.data_key_id, row.data, row.computed_at = version, key_id, sealed, utcnow()
                uow.commit()
        except IntegrityError:
            pass  # another process stored the same results first: theirs serve as well


@dataclass(frozen=True, slots=True)
class LabelerRow:
    """One labeler of the report, flat (for CSV)."""

    labeler: str
    answers: int
    gold_n: int
    gold_accuracy: float | None
    gold_lower: float
    gold_upper: float
    agreement_n: int
    agreement_rate: float | None
    dawid_skene_accuracy: float | None
    median_time_ms: int | None
    answers_per_hour: float | None
    earned: int
    currency: str
    suspended: bool
    qualified: bool | None


def labeler_rows(report: dict[str, Any]) -> list[LabelerRow]:
    return [
        LabelerRow(
            labeler=row["labeler"], answers=row["answers"], gold_n=row["gold"]["n"],
            gold_accuracy=row["gold"]["accuracy"], gold_lower=row["gold"]["lower"], gold_upper=row["gold"]["upper"],
            agreement_n=row["agreement_with_consensus"]["n"], agreement_rate=row["agreement_with_consensus"]["rate"],
            dawid_skene_accuracy=row["dawid_skene_accuracy"], median_time_ms=row["median_time_ms"],
            answers_per_hour=row["answers_per_hour"], earned=row["earned"], currency=row["currency"],
            suspended=bool(row.get("suspended", False)), qualified=row.get("qualified"),
        )
        for row in report["labelers"]
    ]


def _labeler_status(uow: UnitOfWork, project: Project) -> dict[int, dict[str, Any]]:
    status: dict[int, dict[str, Any]] = {}
    for suspension in uow.suspensions.of_project(project.id, active_only=True):
        status.setdefault(suspension.user_id, {})["suspended"] = True
    for result in uow.qualifications.results(project.id):
        status.setdefault(result.user_id, {})["qualified"] = result.passed
    return status


def _lines(results: dict[str, Any], progress: Callable[[int], None] | None) -> Iterator[bytes]:
    batch = bytearray()
    done = 0
    for task_id in sorted(results, key=int):
        entry = results[task_id]
        batch += orjson.dumps({"id": int(task_id), "external_id": entry["external_id"], "gold": entry["gold"],
                               "answers": entry["questions"]}, option=orjson.OPT_APPEND_NEWLINE)
        done += 1
        if len(batch) > 1 << 20:
            yield bytes(batch)
            batch.clear()
            if progress is not None:
                progress(done)
    if batch:
        yield bytes(batch)
    if progress is not None:
        progress(done)


def aggregated_export(
    uow_factory: UnitOfWorkFactory, actor: Actor, client_id: int, project_id: int,
    progress: Callable[[int], None] | None = None,
) -> AggregatedExport:
    """Entry point for ``io/exporter.py``'s ``aggregated-jsonl`` format."""
    return QualityService(uow_factory).export_aggregated(actor, client_id, project_id, progress=progress)


__all__ = [
    "AGGREGATES",
    "REPORT",
    "AggregatedExport",
    "LabelerRow",
    "QualityService",
    "aggregated_export",
    "labeler_rows",
    "version_of",
]

