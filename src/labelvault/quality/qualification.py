"""Qualification tests and skills: who may label a project.

A project may require skill tags (``lang:de``, ``phd:chemistry``) that a manager gives members of the
client, and a qualification test: the project's gold tasks marked for the test, answered first, in
order, and passed with a mean credit of at least the project's pass mark (a skipped test task counts
as 0). The queue hooks here:

* ``check_qualification`` (eligibility) refuses with reason ``not_qualified`` a labeler who lacks a
  skill, failed the test, or faces a test that has no tasks; the refusal says which.
* ``pick_test_task`` (picker, before gold and regular work) hands out the next test task while the
  labeler has no result.

The result is settled in the transaction of the last test answer (``settle_test``, called by the
gold scorer) or, after a skip, of the next request. A manager may also qualify a labeler by hand, or
withdraw a qualification.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, ClientPolicy, ProjectPolicy
from labelvault.errors import NotFound, QueueRefused
from labelvault.quality.settings import check_skill, required_skills
from labelvault.storage.models import LabelerSkill, Project, QualificationResult, Task, User, utcnow
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.projects import load_project

QUALIFICATION = "qualification"


# ------------------------------------------------------------------------------------------ queue hooks


def check_qualification(uow: UnitOfWork, actor: Actor, project: Project) -> None:
    """Eligibility: the project's skills, then its test (taken first, or failed, or impossible)."""
    needed = required_skills(project)
    missing = sorted(set(needed) - uow.qualifications.skills_of(actor.user_id)) if needed else []
    if missing:
        raise QueueRefused("not_qualified", f"project {project.slug} needs the skills {', '.join(missing)}")
    if not project.qualification_required:
        return
    result = uow.qualifications.result(project.id, actor.user_id) or settle_test(uow, project, actor.user_id)
    if result is None:
        total, _ = uow.gold.test_progress(project.id, actor.user_id)
        if total == 0:
            raise QueueRefused("not_qualified",
                               f"project {project.slug} needs a qualification, and its test has no tasks yet")
        return  # the test comes first: pick_test_task hands it out
    if not result.passed:
        score = f"{result.score:.0%}" if result.score is not None else "withdrawn"
        raise QueueRefused("not_qualified", f"you did not qualify for project {project.slug} (score {score}, "
                                            f"pass mark {project.qualification_pass_mark:.0%})")


def pick_test_task(
    uow: UnitOfWork, actor: Actor, project: Project, _regular_work_left: Callable[[], bool]
) -> Task | None:
    """Picker: the next qualification test task while the labeler has no result."""
    if not project.qualification_required or uow.qualifications.result(project.id, actor.user_id) is not None:
        return None
    return uow.gold.next_for(project.id, actor.user_id, qualification=True)


def settle_test(uow: UnitOfWork, project: Project, user_id: int) -> QualificationResult | None:
    """Record the test's result once the labeler has answered or skipped every test task."""
    if uow.qualifications.result(project.id, user_id) is not None:
        return None
    total, done = uow.gold.test_progress(project.id, user_id)
    if total == 0 or done < total:
        return None
    credits = uow.gold.answer_credits(project.id, user_id=user_id, kind=QUALIFICATION)
    score = sum(credit for _, _, credit in credits) / total
    passed = score >= project.qualification_pass_mark
    result = QualificationResult(project_id=project.id, user_id=user_id, passed=passed, score=score, n=total)
    uow.session.add(result)
    uow.flush()
    audit_log.append(uow, "qualification.passed" if result.passed else "qualification.failed", actor=None,
                     client_id=project.client_id, object_kind="user", object_id=user_id,
                     details={"project_id": project.id, "score_percent": round(score * 100)})
    return result


# ------------------------------------------------------------------------------------------ use cases


@dataclass(frozen=True, slots=True)
class QualificationStatus:
    user_id: int
    username: str
    passed: bool | None  # None: no result yet
    score: float | None
    test_tasks: int
    test_done: int
    granted_by: str | None
    decided_at: datetime | None
    missing_skills: list[str]


@dataclass(frozen=True, slots=True)
class SkillGrant:
    user_id: int
    username: str
    skill: str


class QualificationService:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    # -- skills (per client)

    def grant_skill(self, actor: Actor, client_id: int, username: str, skill: str) -> SkillGrant:
        tag = check_skill(skill)
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ClientPolicy.manage(access_in(uow, actor))
            user = self._member(uow, username)
            if uow.qualifications.skill(user.id, tag) is None:
                uow.session.add(LabelerSkill(user_id=user.id, skill=tag, granted_by=actor.user_id))
                audit_log.append(uow, "skill.granted", actor=actor, client_id=client_id, object_kind="user",
                                 object_id=user.id, details={"skill": tag})
                uow.commit()
            return SkillGrant(user.id, user.username, tag)

    def revoke_skill(self, actor: Actor, client_id: int, username: str, skill: str) -> None:
        tag = check_skill(skill)
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ClientPolicy.manage(access_in(uow, actor))
            user = self._member(uow, username)
            if not uow.qualifications.remove_skill(user.id, tag):
                raise NotFound(f"{username!r} has no skill {tag!r}")
            audit_log.append(uow, "skill.revoked", actor=actor, client_id=client_id, object_kind="user",
                             object_id=user.id, details={"skill": tag})
            uow.commit()

    def skills(self, actor: Actor, client_id: int) -> list[SkillGrant]:
        with self.uow_factory.for_client(client_id) as uow:
            ClientPolicy.manage(access_in(uow, actor))
            rows = uow.qualifications.all_skills()
            names = {u: self._username(uow, u) for u in {u for u, _ in rows}}
            return [SkillGrant(u, names[u], s) for u, s in rows]

    # -- qualification per project

    def set_qualified(self, actor: Actor, client_id: int, project_id: int, username: str, *, qualified: bool) -> None:
        """A manager qualifies a labeler by hand, or withdraws the qualification (overriding the test)."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            user = self._member(uow, username)
            result = uow.qualifications.result(project_id, user.id)
            if result is None:
                result = QualificationResult(project_id=project_id, user_id=user.id, passed=qualified, n=0)
                uow.session.add(result)
            result.passed = qualified
            result.score = None
            result.granted_by = actor.user_id
            result.created_at = utcnow()
            audit_log.append(uow, "qualification.granted" if qualified else "qualification.withdrawn", actor=actor,
                             client_id=client_id, object_kind="user", object_id=user.id,
                             details={"project_id": project_id})
            uow.commit()

    def statuses(self, actor: Actor, client_id: int, project_id: int) -> list[QualificationStatus]:
        """Every labeler of the client: their test progress and result, and skills they lack."""
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            project = load_project(uow, project_id)
            labelers = sorted({m.user_id for m in uow.memberships.list(limit=100_000) if m.role == "labeler"})
            return [self._status(uow, project, user_id) for user_id in labelers]

    def my_status(self, actor: Actor, client_id: int, project_id: int) -> QualificationStatus:
        with self.uow_factory.for_client(client_id) as uow:
            if not access_in(uow, actor).is_member:
                raise NotFound("project not found")
            return self._status(uow, load_project(uow, project_id), actor.user_id)

    def _status(self, uow: UnitOfWork, project: Project, user_id: int) -> QualificationStatus:
        result = uow.qualifications.result(project.id, user_id)
        total, done = uow.gold.test_progress(project.id, user_id)
        missing = sorted(set(required_skills(project)) - uow.qualifications.skills_of(user_id))
        return QualificationStatus(
            user_id, self._username(uow, user_id), result.passed if result else None,
            result.score if result else None, total, done,
            self._username(uow, result.granted_by) if result and result.granted_by else None,
            result.created_at if result else None, missing,
        )

    @staticmethod
    def _username(uow: UnitOfWork, user_id: int) -> str:
        user = uow.users.get(user_id)
        return user.username if user else str(user_id)

    @staticmethod
    def _member(uow: UnitOfWork, username: str) -> User:
        user = uow.users.by_username(username)
        if user is None or not uow.memberships.roles_of(user.id):
            raise NotFound(f"user {username!r} is not a member of this client")
        return user


__all__ = [
    "QualificationService",
    "QualificationStatus",
    "SkillGrant",
    "check_qualification",
    "pick_test_task",
    "settle_test",
]
