"""The manager's dashboard of one project: progress, speed, people, money; settings; import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from labelvault.bootstrap import Services
from labelvault.domain.access import Actor
from labelvault.io.formats import FORMATS, ExportFormat
from labelvault.io.readers import infer_format
from labelvault.web.charts import Series, bar_chart, line_chart
from labelvault.web.forms import NOTICES, minor_to_input, minor_unit_step, parse_int, parse_money, parse_percent
from labelvault.web.render import PagesDep, money
from labelvault.web.sessions import FormSessionDep, ServicesDep, SessionDep
from labelvault.workflow.projects import PROJECT_STATUSES, ProjectSettings
from labelvault.workflow.review import REVIEW_POLICIES

router = APIRouter()

ProjectId = Annotated[int, Path(ge=1)]
CHART_DAYS = 14


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


def quality_view(services: Services, actor: Actor, client_id: int, project_id: int) -> tuple[dict[int, dict[str, str]],
                                                                                          list[tuple[str, str, str]]]:
    """Accuracy and agreement per labeler for the labeler table, and agreement per question.

    From the quality report (cached in the database, computed again when answers changed):
    accuracy on gold tasks with its 95% Wilson interval, agreement with the consensus of the other
    labelers of the same tasks, and Krippendorff's alpha per question.
    """
    report = services.quality.report(actor, client_id, project_id)
    labelers: dict[int, dict[str, str]] = {}
    for row in report.get("labelers", []):
        gold = row.get("gold") or {}
        accuracy = "—"
        if gold.get("n"):
            accuracy = (f"{_percent(gold.get('accuracy'))} ({_percent(gold.get('lower'))} to "
                        f"{_percent(gold.get('upper'))}, n={gold['n']})")
        consensus = row.get("agreement_with_consensus") or {}
        agreement = "—"
        if consensus.get("n") and consensus.get("rate") is not None:
            agreement = f"{_percent(consensus['rate'])} (n={consensus['n']})"
        labelers[row["user_id"]] = {"accuracy": accuracy, "agreement": agreement,
                                    "suspended": "suspended" if row.get("suspended") else ""}
    questions = []
    for path, stats in (report.get("agreement") or {}).items():
        alpha = stats.get("alpha")
        questions.append((path, stats.get("type", ""), "—" if alpha is None else f"{alpha:.2f}"))
    return labelers, questions


def _days(now: datetime) -> list[datetime]:
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=CHART_DAYS - 1 - i) for i in range(CHART_DAYS)]


@router.get("/projects/{project_id}/dashboard")
def dashboard(request: Request, project_id: ProjectId, session: SessionDep, services: ServicesDep,
              pages: PagesDep, done: Annotated[str | None, Query()] = None,
              imported: Annotated[str | None, Query()] = None) -> Response:
    actor = session.actor
    client_id, _ = services.projects.locate(project_id)
    project = services.projects.get(actor, client_id, project_id)
    costs = services.reports.project_costs(actor, client_id, project_id)
    progress = services.projects.progress(actor, client_id, project_id)
    labelers = services.reports.throughput(actor, client_id, project_id)
    earned = {row.user_id: row.amount for row in services.reports.earnings(actor, client_id, project_id=project_id)}
    quality, agreement = quality_view(services, actor, client_id, project_id)
    pending = services.reviews.pending(actor, client_id, project_id)

    days = _days(datetime.now(UTC))
    per_day = [
        sum(r.answers for r in services.reports.throughput(actor, client_id, project_id, since=day,
                                                          until=day + timedelta(days=1)))
        for day in days
    ]
    labels = [day.strftime("%m-%d") for day in days]
    answers_chart = bar_chart(list(zip(labels, per_day, strict=True)), title="Answers per day")

    spend_rows = [r for r in services.reports.spend(actor, client_id, by_day=True, since=days[0])
                  if r.project_id == project_id]
    by_day = {r.day.isoformat(): r.amount for r in spend_rows if r.day is not None}
    running = costs.spent - sum(by_day.values())
    cumulative = []
    for day in days:
        running += by_day.get(day.date().isoformat(), 0)
        cumulative.append(running)
    currency = costs.currency

    def fmt(amount: float) -> str:
        return money(round(amount), currency)

    spend_chart = line_chart(labels, [Series("spent", cumulative)], title="Spend against budget", fmt=fmt,
                             reference=("budget", costs.budget_cap) if costs.budget_cap else None,
                             min_step=minor_unit_step(currency))
    form = {
        "rate_per_answer": minor_to_input(project.rate_per_answer, currency),
        "rate_per_review": minor_to_input(project.rate_per_review, currency),
        "budget_cap": minor_to_input(project.budget_cap, currency),
        "question_rates": {q: minor_to_input(project.question_rates.get(q), currency)
                           for q in project.schema.question_names},
    }
    return pages.render(
        request, "dashboard.html", session=session, project=project, costs=costs, progress=progress,
        export_formats=_export_formats({q.type for q in project.schema.questions}),
        labelers=labelers, earned=earned, quality=quality, agreement=agreement, pending=pending,
        answers_chart=answers_chart, spend_chart=spend_chart, answers_total=sum(per_day), form=form, currency=currency,
        statuses=PROJECT_STATUSES, policies=REVIEW_POLICIES, notice=NOTICES.get(done or ""),
        imported=_import_summary(imported),
    )


def _export_formats(question_types: set[str]) -> list[ExportFormat]:
    """The export formats this project's questions can fill: every general one, and each training
    format that reads a type of question the project has."""
    return [f for f in FORMATS.values() if not f.question_types or question_types & set(f.question_types)]


def _import_summary(text: str | None) -> dict[str, int] | None:
    parts = (text or "").split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return dict(zip(("created", "already_present", "invalid"), map(int, parts), strict=True))


def _guidelines(text: str | None, *, shown: bool) -> str | None:
    """The guidelines' textarea as a change: None (leave them) if the form had no such field; an
    emptied one (which arrives as no value) removes them. Browsers send line ends as CRLF."""
    if text is None:
        return "" if shown else None
    return text.replace("\r\n", "\n")


@router.post("/projects/{project_id}/settings")
def save_settings(
    project_id: ProjectId,
    session: FormSessionDep,
    services: ServicesDep,
    name: Annotated[str, Form(max_length=200)] = "",
    status: Annotated[str, Form()] = "",
    overlap: Annotated[str, Form()] = "",
    lease_minutes: Annotated[str, Form()] = "",
    review_policy: Annotated[str, Form()] = "",
    review_sample_percent: Annotated[str, Form()] = "",
    pay_on: Annotated[str, Form()] = "",
    rate_per_answer: Annotated[str, Form()] = "",
    rate_per_review: Annotated[str, Form()] = "",
    budget_cap: Annotated[str, Form()] = "",
    gold_percent: Annotated[str, Form()] = "",
    suspension_percent: Annotated[str, Form()] = "",
    rate_question: Annotated[list[str] | None, Form()] = None,
    rate_question_value: Annotated[list[str] | None, Form()] = None,
    guidelines: Annotated[str | None, Form(max_length=100_000)] = None,
    guidelines_shown: Annotated[str, Form()] = "",
) -> Response:
    client_id, _ = services.projects.locate(project_id)
    currency = services.reports.project_costs(session.actor, client_id, project_id).currency
    question_rates = {}
    for question, text in zip(rate_question or [], rate_question_value or [], strict=False):
        value = parse_money(text, currency, f"extra rate for {question}")
        if value:
            question_rates[question] = value
    lease = parse_int(lease_minutes, "lease_minutes")
    budget = parse_money(budget_cap, currency, "budget_cap")
    suspension = parse_percent(suspension_percent, "suspension_percent")
    changes = ProjectSettings(
        name=name.strip() or None,
        instructions=_guidelines(guidelines, shown=guidelines_shown == "true"),
        status=status or None,
        overlap=parse_int(overlap, "overlap"),
        lease_seconds=lease * 60 if lease is not None else None,
        review_policy=review_policy or None,
        review_sample_rate=parse_percent(review_sample_percent, "review_sample_percent"),
        pay_on=pay_on or None,
        rate_per_answer=parse_money(rate_per_answer, currency, "rate_per_answer"),
        rate_per_review=parse_money(rate_per_review, currency, "rate_per_review"),
        question_rates=question_rates,
        budget_cap=budget,
        clear_budget_cap=budget is None,
        gold_rate=parse_percent(gold_percent, "gold_percent"),
        suspension_threshold=suspension,
        clear_suspension_threshold=suspension is None,
    )
    services.projects.update(session.actor, client_id, project_id, changes)
    return RedirectResponse(f"/projects/{project_id}/dashboard?done=saved#settings", status_code=303)


@router.post("/projects/{project_id}/import")
def import_tasks(
    project_id: ProjectId,
    session: FormSessionDep,
    services: ServicesDep,
    file: Annotated[UploadFile, File()],
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    client_id, _ = services.projects.locate(project_id)
    fmt = infer_format(file.filename, media_type=file.content_type)
    report = services.imports.import_file(session.actor, client_id, project_id, file.file, format=fmt,
                                          skip_invalid=skip_invalid)
    summary = f"{report.created}-{report.already_present}-{report.invalid}"
    return RedirectResponse(f"/projects/{project_id}/dashboard?imported={summary}#import", status_code=303)
