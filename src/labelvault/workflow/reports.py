"""Money and time reports from the ledger and the answers (JSON-able rows; CSV at the edges)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import String, and_, case, cast, func, select

from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor, ClientPolicy, ProjectPolicy
from labelvault.errors import InvalidInput
from labelvault.storage.models import Answer, LedgerEntry, Project, User
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import witness_read
from labelvault.workflow.ledger import currency_of, ledger_note
from labelvault.workflow.projects import load_project

MAX_LEDGER_PAGE = 1000


@dataclass(frozen=True, slots=True)
class SpendRow:
    project_id: int
    project: str
    day: date | None
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class EarningsRow:
    user_id: int
    username: str
    amount: int
    currency: str
    answers: int
    reviews: int


@dataclass(frozen=True, slots=True)
class ProjectCosts:
    project_id: int
    currency: str
    spent: int
    budget_cap: int | None
    accepted_answers: int
    cost_per_accepted_answer: int | None  # minor units, rounded half up


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One money event of a project, as the append-only ledger holds it (amounts in minor units)."""

    id: int
    kind: str  # answer | review | bonus | reversal
    amount: int
    currency: str
    user_id: int
    username: str
    answer_id: int | None
    review_id: int | None
    task_id: int | None
    note: str  # a manager's words on a bonus (opened); empty for the others
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerPage:
    items: list[LedgerRecord]
    total: int
    next_after_id: int | None  # None: this was the last page


@dataclass(frozen=True, slots=True)
class OwnLedgerRecord:
    """One money event of the person reading it: what they were paid, or had taken back, and why."""

    id: int
    project_id: int
    project: str  # the project's name
    kind: str  # answer | review | bonus | reversal
    amount: int  # minor units; a reversal is negative
    currency: str
    answer_id: int | None
    review_id: int | None
    task_id: int | None
    note: str  # the manager's words on a bonus (opened); empty for the others
    reason: str  # on a reversal, the reviewer's reason for rejecting the answer (opened), if one was given
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OwnLedgerPage:
    items: list[OwnLedgerRecord]
    total: int  # the person's entries in the listing (one project, or all of the client's)
    earned: int  # their sum, in minor units of ``currency``
    currency: str  # the client's
    next_after_id: int | None  # None: this was the last page


@dataclass(frozen=True, slots=True)
class ThroughputRow:
    user_id: int
    username: str
    answers: int
    working_ms: int
    answers_per_hour: float
    median_ms: int | None


def _period(query, column, since: datetime | None, until: datetime | None):  # type: ignore[no-untyped-def]
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


def _check_page_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LEDGER_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_LEDGER_PAGE}", details={"field": "limit"})


class ReportService:
    def __init__(self, uow_factory: UnitOfWorkFactory, audit: AuditService | None = None) -> None:
        self.uow_factory = uow_factory
        self.audit = audit

    def ledger(
        self, actor: Actor, client_id: int, project_id: int, *, after_id: int = 0, limit: int = 100
    ) -> LedgerPage:
        """The project's money events in id order, bonus notes opened: each page is read like
        client content (the export policy, the conflict wall, an audit entry ``ledger.read``)."""
        _check_page_limit(limit)
        witness_read(self.uow_factory, self.audit, actor, client_id, project_id, "ledger.read",
                     {"after_id": after_id, "limit": limit})
        with self.uow_factory.for_client(client_id) as uow:
            total = uow.session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.project_id == project_id))
            rows = uow.session.execute(
                select(LedgerEntry, User.username)
                .join(User, User.id == LedgerEntry.user_id)
                .where(LedgerEntry.project_id == project_id, LedgerEntry.id > after_id)
                .order_by(LedgerEntry.id)
                .limit(limit + 1)
            ).all()
            items = [
                LedgerRecord(id=e.id, kind=e.kind, amount=e.amount, currency=e.currency, user_id=e.user_id,
                             username=username, answer_id=e.answer_id, review_id=e.review_id, task_id=e.task_id,
                             note=ledger_note(uow, e), created_at=e.created_at)
                for e, username in rows[:limit]
            ]
        return LedgerPage(items, total or 0, items[-1].id if len(rows) > limit else None)

    def own_ledger(
        self, actor: Actor, client_id: int, *, project_id: int | None = None, after_id: int = 0, limit: int = 100,
        newest_first: bool = False,
    ) -> OwnLedgerPage:
        """The caller's own money events with this client (or one of its projects) by id: the
        answers paid, the reversals with the reviewer's reason, bonuses with the manager's note.
        Notes and reasons are client content, so each page passes the conflict wall and is audited
        (``ledger.read_own``), like the manager's ledger; any member may read their own.

        ``after_id`` is the last id of the page before, in the order walked: with ``newest_first``
        (a statement's order, for the web page) the page holds the entries older than it, and 0
        starts at the newest."""
        if after_id < 0:
            raise InvalidInput("after_id must be 0 or more", details={"field": "after_id"})
        _check_page_limit(limit)
        policy = ClientPolicy.read_own_earnings if project_id is None else ProjectPolicy.read_own_earnings
        details: dict[str, object] = {"after_id": after_id, "limit": limit}
        if newest_first:
            details["newest_first"] = True
        witness_read(self.uow_factory, self.audit, actor, client_id, project_id, "ledger.read_own", details,
                     policy=policy, via="earnings")
        # The person is the filter here; the client is the unit of work's scope, as everywhere.
        mine = [LedgerEntry.user_id == actor.user_id]
        if project_id is not None:
            mine.append(LedgerEntry.project_id == project_id)
        # Past the previous page, in the direction walked (newest first from 0: no bound at all).
        walked = [LedgerEntry.id > after_id]
        if newest_first:
            walked = [LedgerEntry.id < after_id] if after_id else []
        with self.uow_factory.for_client(client_id) as uow:
            total, earned = uow.session.execute(
                select(func.count(), func.coalesce(func.sum(LedgerEntry.amount), 0)).where(*mine)).one()
            rows = uow.session.execute(
                select(LedgerEntry, Project.name, Answer.data_key_id, Answer.review_note)
                .join(Project, Project.id == LedgerEntry.project_id)
                # A reversal's reason is sealed on the rejected answer (``ReviewService._reject``).
                .outerjoin(Answer, and_(Answer.id == LedgerEntry.answer_id, LedgerEntry.kind == "reversal"))
                .where(*mine, *walked)
                .order_by(LedgerEntry.id.desc() if newest_first else LedgerEntry.id)
                .limit(limit + 1)
            ).all()
            items = []
            for entry, project, answer_key_id, review_note in rows[:limit]:
                reason = ""
                if review_note is not None and answer_key_id is not None:
                    reason = uow.cipher(answer_key_id).open("answer.review_note", entry.answer_id,
                                                            review_note).decode()
                items.append(OwnLedgerRecord(
                    id=entry.id, project_id=entry.project_id, project=project, kind=entry.kind,
                    amount=entry.amount, currency=entry.currency, answer_id=entry.answer_id,
                    review_id=entry.review_id, task_id=entry.task_id, note=ledger_note(uow, entry),
                    reason=reason, created_at=entry.created_at))
            currency = currency_of(uow, client_id)
        return OwnLedgerPage(items, int(total or 0), int(earned or 0), currency,
                             items[-1].id if len(rows) > limit else None)

    def spend(self, actor: Actor, client_id: int, *, by_day: bool = False, since: datetime | None = None,
              until: datetime | None = None) -> list[SpendRow]:
        """Spend per project (and per day) of one client."""
        with self.uow_factory.for_client(client_id) as uow:
            ClientPolicy.manage(access_in(uow, actor))
            currency = currency_of(uow, client_id)
            # date() is a function on SQLite and a cast on PostgreSQL; text on both ways out.
            day = cast(func.date(LedgerEntry.created_at), String) if by_day else None
            columns = [LedgerEntry.project_id, Project.slug, func.sum(LedgerEntry.amount)]
            if day is not None:
                columns.insert(2, day)
            query = select(*columns).join(Project, Project.id == LedgerEntry.project_id)
            query = _period(query, LedgerEntry.created_at, since, until)
            group = [LedgerEntry.project_id, Project.slug] + ([day] if day is not None else [])
            rows = uow.session.execute(query.group_by(*group).order_by(*group)).all()
            result = []
            for row in rows:
                row_day = row[2] if by_day else None
                if isinstance(row_day, str):  # SQLite returns dates as text
                    row_day = date.fromisoformat(row_day)
                result.append(SpendRow(row[0], row[1], row_day, int(row[-1]), currency))
            return result

    def earnings(self, actor: Actor, client_id: int, *, since: datetime | None = None,
                 until: datetime | None = None, project_id: int | None = None) -> list[EarningsRow]:
        """What each person earned from this client in a period: the payout base."""
        with self.uow_factory.for_client(client_id) as uow:
            ClientPolicy.manage(access_in(uow, actor))
            currency = currency_of(uow, client_id)
            query = select(
                LedgerEntry.user_id, User.username, func.sum(LedgerEntry.amount),
                func.sum(case((LedgerEntry.kind == "answer", 1), else_=0))
                - func.sum(case((LedgerEntry.kind == "reversal", 1), else_=0)),
                func.sum(case((LedgerEntry.kind == "review", 1), else_=0)),
            ).join(User, User.id == LedgerEntry.user_id)
            if project_id is not None:
                query = query.where(LedgerEntry.project_id == project_id)
            query = _period(query, LedgerEntry.created_at, since, until)
            rows = uow.session.execute(query.group_by(LedgerEntry.user_id, User.username).order_by(User.username))
            return [EarningsRow(r[0], r[1], int(r[2]), currency, int(r[3]), int(r[4])) for r in rows]

    def my_earnings(self, actor: Actor, client_id: int) -> int:
        with self.uow_factory.for_client(client_id) as uow:
            if not access_in(uow, actor).is_member:
                return 0
            query = select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.user_id == actor.user_id)
            return int(uow.session.scalar(query) or 0)

    def project_costs(self, actor: Actor, client_id: int, project_id: int) -> ProjectCosts:
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            project = load_project(uow, project_id)
            accepted = uow.session.scalar(
                select(func.count()).select_from(Answer).where(Answer.project_id == project_id,
                                                               Answer.status == "accepted")
            ) or 0
            per_answer = (project.spent * 2 + accepted) // (2 * accepted) if accepted else None
            return ProjectCosts(project_id, currency_of(uow, client_id), project.spent, project.budget_cap,
                                int(accepted), per_answer)

    def throughput(self, actor: Actor, client_id: int, project_id: int, *, since: datetime | None = None,
                   until: datetime | None = None) -> list[ThroughputRow]:
        """Answers and server-measured working time per labeler."""
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            query = select(Answer.user_id, User.username, Answer.time_spent_ms).join(User, User.id == Answer.user_id)
            query = _period(query.where(Answer.project_id == project_id), Answer.created_at, since, until)
            per_user: dict[int, tuple[str, list[int]]] = {}
            for user_id, username, spent in uow.session.execute(query):
                per_user.setdefault(user_id, (username, []))[1].append(spent)
        rows = []
        for user_id, (username, times) in sorted(per_user.items(), key=lambda kv: kv[1][0]):
            total = sum(times)
            ordered = sorted(times)
            rows.append(ThroughputRow(
                user_id, username, len(times), total,
                round(len(times) / (total / 3_600_000), 2) if total else 0.0,
                ordered[len(ordered) // 2] if ordered else None,
            ))
        return rows


def major_units(amount: int, currency: str) -> str:
    """Minor units as a decimal string, exactly (no floats): 12345 USD -> "123.45"."""
    digits = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    if digits == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{cents:0{digits}d}"


# ISO 4217 currencies without minor units that clients are likely to use.
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "CLP", "ISK", "VND", "XOF", "XAF", "UGX"})


def rows_to_csv(rows: list[object]) -> str:
    """Dataclass rows to CSV text with a header; money columns get a major-unit twin."""
    import csv
    import dataclasses
    import io

    buffer = io.StringIO()
    if not rows:
        return ""
    names = [f.name for f in dataclasses.fields(rows[0])]  # type: ignore[arg-type]
    has_money = "amount" in names and "currency" in names
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names + (["amount_major"] if has_money else []))
    for row in rows:
        values = [getattr(row, n) for n in names]
        if has_money:
            values.append(major_units(row.amount, row.currency))  # type: ignore[attr-defined]
        writer.writerow(["" if v is None else v for v in values])
    return buffer.getvalue()
