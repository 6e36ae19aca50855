"""Money and time reports, as JSON or CSV (``?format=csv``), and bonuses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.api.schemas import BonusCreate, EarningsRead, KeysetPage, ProjectCostsRead, SpendRead, ThroughputRead
from labelvault.workflow.reports import OwnLedgerPage, rows_to_csv

router = APIRouter(tags=["reports"])

Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]
Since = Annotated[datetime | None, Query(description="Period start (inclusive, ISO 8601 with time zone).")]
Until = Annotated[datetime | None, Query(description="Period end (exclusive).")]


def _rows(rows: list[object], model: type[BaseModel], fmt: str, filename: str) -> object:
    if fmt == "csv":
        return PlainTextResponse(rows_to_csv(rows), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})
    return [model.model_validate(r, from_attributes=True) for r in rows]


@router.get("/clients/{client_id}/reports/spend", response_model=list[SpendRead])
def spend(client_id: int, actor: ActorDep, services: ServicesDep, format: Format = "json",
          by_day: bool = False, since: Since = None, until: Until = None) -> object:
    rows = services.reports.spend(actor, client_id, by_day=by_day, since=since, until=until)
    return _rows(list(rows), SpendRead, format, "spend")


@router.get("/clients/{client_id}/reports/earnings", response_model=list[EarningsRead])
def earnings(client_id: int, actor: ActorDep, services: ServicesDep, format: Format = "json",
             since: Since = None, until: Until = None) -> object:
    """Earnings per person in a period; with format=csv this is the payout file."""
    rows = services.reports.earnings(actor, client_id, since=since, until=until)
    return _rows(list(rows), EarningsRead, format, "payout")


@router.get("/projects/{project_id}/reports/costs", response_model=ProjectCostsRead)
def project_costs(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> ProjectCostsRead:
    costs = services.reports.project_costs(actor, ref.client_id, ref.project_id)
    return ProjectCostsRead.model_validate(costs, from_attributes=True)


@router.get("/projects/{project_id}/reports/throughput", response_model=list[ThroughputRead])
def throughput(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, format: Format = "json",
               since: Since = None, until: Until = None) -> object:
    rows = services.reports.throughput(actor, ref.client_id, ref.project_id, since=since, until=until)
    return _rows(list(rows), ThroughputRead, format, "throughput")


AfterId = Annotated[int, Query(ge=0, description="Only entries with a larger id (keyset pagination).")]
LedgerLimit = Annotated[int, Query(ge=1, le=1000, description="Entries to return (at most 1000).")]


class LedgerEntryRead(BaseModel):
    id: int
    kind: str = Field(description="answer, review, bonus or reversal")
    amount: int = Field(description="Minor units of the currency (cents for USD); a reversal is negative.")
    currency: str
    user_id: int
    username: str
    answer_id: int | None
    review_id: int | None
    task_id: int | None
    note: str = Field(description="The manager's note on a bonus (empty for the other kinds).")
    created_at: datetime


class LedgerPageRead(KeysetPage[LedgerEntryRead]):
    pass


@router.get("/projects/{project_id}/ledger", response_model=LedgerPageRead)
def ledger(
    ref: ProjectRefDep,
    actor: ActorDep,
    services: ServicesDep,
    after_id: AfterId = 0,
    limit: LedgerLimit = 100,
) -> LedgerPageRead:
    """The project's money events in id order, bonus notes opened (managers; each page audited)."""
    found = services.reports.ledger(actor, ref.client_id, ref.project_id, after_id=after_id, limit=limit)
    return LedgerPageRead(
        items=[LedgerEntryRead.model_validate(e, from_attributes=True) for e in found.items], total=found.total,
        offset=0, limit=limit, next_after_id=found.next_after_id,
    )


class OwnLedgerEntryRead(BaseModel):
    id: int
    project_id: int
    project: str = Field(description="The project's name.")
    kind: str = Field(description="answer, review, bonus or reversal")
    amount: int = Field(description="Minor units of the currency (cents for USD); a reversal is negative.")
    currency: str
    answer_id: int | None
    review_id: int | None
    task_id: int | None
    note: str = Field(description="The manager's note on a bonus (empty for the other kinds).")
    reason: str = Field(description="On a reversal, the reviewer's reason for rejecting the answer (may be empty).")
    created_at: datetime


class OwnLedgerPageRead(KeysetPage[OwnLedgerEntryRead]):
    earned: int = Field(description="The sum of all the caller's entries listed here (every page), in minor units.")
    currency: str = Field(description="The client's currency.")


def _own_page(found: OwnLedgerPage, limit: int) -> OwnLedgerPageRead:
    return OwnLedgerPageRead(
        items=[OwnLedgerEntryRead.model_validate(e, from_attributes=True) for e in found.items], total=found.total,
        offset=0, limit=limit, next_after_id=found.next_after_id, earned=found.earned, currency=found.currency,
    )


@router.get("/clients/{client_id}/my-ledger", response_model=OwnLedgerPageRead)
def my_client_ledger(
    client_id: Annotated[int, Path(ge=1)],
    actor: ActorDep,
    services: ServicesDep,
    project_id: Annotated[int | None, Query(ge=1, description="Only this project of the client.")] = None,
    after_id: AfterId = 0,
    limit: LedgerLimit = 100,
) -> OwnLedgerPageRead:
    """The caller's own money events with this client in id order: answers paid, reversals with the
    reviewer's reason, bonuses with the manager's note (any member, a read token; each page audited)."""
    found = services.reports.own_ledger(actor, client_id, project_id=project_id, after_id=after_id, limit=limit)
    return _own_page(found, limit)


@router.get("/projects/{project_id}/my-ledger", response_model=OwnLedgerPageRead)
def my_project_ledger(
    ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, after_id: AfterId = 0, limit: LedgerLimit = 100,
) -> OwnLedgerPageRead:
    """The caller's own money events in this project, as ``/clients/{id}/my-ledger`` lists them."""
    found = services.reports.own_ledger(actor, ref.client_id, project_id=ref.project_id, after_id=after_id,
                                        limit=limit)
    return _own_page(found, limit)


@router.post("/projects/{project_id}/bonuses", status_code=status.HTTP_204_NO_CONTENT)
def grant_bonus(ref: ProjectRefDep, body: BonusCreate, actor: ActorDep, services: ServicesDep) -> None:
    services.bonuses.grant(actor, ref.client_id, ref.project_id, body.username, body.amount, body.note)
