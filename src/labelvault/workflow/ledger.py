"""Money: rates, the append-only ledger and the budget cap.

Amounts are integers in the minor unit of the client's currency (cents for USD). A reversal is a
new negative entry, never an edit. ``Project.spent`` is the running total of the project's ledger,
kept in a few stripes (``ProjectSpend``) updated in the same transaction as each append (late: see
``UnitOfWork.write_spend``), so checking the budget reads it with the project.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select

from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.errors import InvalidInput, NotFound
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import LedgerEntry, Project
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.projects import load_project


def answer_rate(project: Project, answered_questions: list[str] | None = None) -> int:
    """Pay for one answer: the project rate plus per-question rates for the questions answered."""
    rate = project.rate_per_answer
    if project.question_rates_json and answered_questions:
        per_question: dict[str, int] = json.loads(project.question_rates_json)
        rate += sum(per_question.get(name, 0) for name in answered_questions)
    return rate


def max_answer_rate(project: Project) -> int:
    """The most one more answer can cost: what the budget check must leave room for."""
    rate = project.rate_per_answer
    if project.question_rates_json:
        rate += sum(json.loads(project.question_rates_json).values())
    return rate


def append(
    uow: UnitOfWork,
    project: Project,
    *,
    user_id: int,
    kind: str,
    amount: int,
    answer_id: int | None = None,
    review_id: int | None = None,
    task_id: int | None = None,
    note: str = "",
) -> None:
    if amount == 0:
        return
    uow.ledger.append(
        project_id=project.id, amount=amount, currency=project.currency, user_id=user_id,
        kind=kind, answer_id=answer_id, review_id=review_id, task_id=task_id, **sealed_note(uow, note),
    )
    uow.add_spend(project.id, user_id, amount)


MAX_NOTE = 200  # characters; a longer note is refused where people write one (BonusService.grant)
LEDGER_NOTE = "ledger.note"


def sealed_note(uow: UnitOfWork, note: str) -> dict[str, object]:
    """The columns of a ledger entry that carry ``note``: none for an empty note; else the entry's
    id (the note is sealed bound to it, so the row gets it now rather than from the insert), the
    active data key and the sealed words."""
    if not note:
        return {}
    entry_id = allocate_ids(uow.sql, LedgerEntry, 1)[0]
    key_id, cipher = uow.active_cipher()
    return {"id": entry_id, "data_key_id": key_id,
            "sealed_note": cipher.seal(LEDGER_NOTE, entry_id, note[:MAX_NOTE].encode())}


def ledger_note(uow: UnitOfWork, entry: LedgerEntry) -> str:
    """The note of a ledger entry: opened, or as written before notes were sealed."""
    if entry.sealed_note is None or entry.data_key_id is None:
        return entry.legacy_note
    return uow.cipher(entry.data_key_id).open(LEDGER_NOTE, entry.id, entry.sealed_note).decode()


def paid_for_answer(uow: UnitOfWork, answer_id: int) -> int:
    query = select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.answer_id == answer_id, LedgerEntry.kind.in_(("answer", "reversal"))
    )
    return int(uow.session.scalar(query) or 0)


def budget_left_for(project: Project, answers: int, *, spent: int | None = None) -> bool:
    """True when the spend so far (``project.spent`` unless given) plus ``answers`` more answers, each
    at the most one can cost, stays within the cap."""
    if project.budget_cap is None:
        return True
    so_far = project.spent if spent is None else spent
    return so_far + answers * max_answer_rate(project) <= project.budget_cap


def currency_of(uow: UnitOfWork, client_id: int) -> str:
    return uow.ledger.currency_of(client_id)


class BonusService:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    def grant(self, actor: Actor, client_id: int, project_id: int, username: str, amount: int, note: str) -> None:
        """A manager's bonus to a person who worked on the project (a ledger entry like any other)."""
        if amount <= 0:
            raise InvalidInput("a bonus must be a positive amount in minor units", details={"field": "amount"})
        if len(note) > MAX_NOTE:
            raise InvalidInput(f"a bonus note has at most {MAX_NOTE} characters", details={"field": "note"})
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            project = load_project(uow, project_id)
            user = uow.users.by_username(username)
            if user is None or not uow.memberships.roles_of(user.id):
                raise NotFound(f"user {username!r} is not a member of this client")
            append(uow, project, user_id=user.id, kind="bonus", amount=amount, note=note or "bonus")
            uow.commit()
