"""Project queue settings, money reports, payouts and bonuses on the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from labelvault.cli.common import AsOperator, cli_errors, console, fail, local_operator, open_services

CsvOption = Annotated[bool, typer.Option("--csv", help="CSV instead of JSON.")]

report_app = typer.Typer(help="Spend, earnings, costs, throughput, the ledger and skips.", no_args_is_help=True)


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be a date or time in ISO 8601, e.g. 2026-11-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _emit(rows: list[object], as_csv: bool) -> None:
    if as_csv:
        from labelvault.workflow.reports import rows_to_csv

        typer.echo(rows_to_csv(rows), nl=False)
    else:
        typer.echo(json.dumps([asdict(r) for r in rows], default=str, indent=2))  # type: ignore[call-overload]


def project_set(
    project: Annotated[str, typer.Argument(help="Project id or client-slug/project-slug.")],
    overlap: Annotated[int | None, typer.Option(help="Answers per task from distinct labelers.")] = None,
    lease_seconds: Annotated[int | None, typer.Option(help="Lease length for new leases.")] = None,
    status: Annotated[str | None, typer.Option(help="active, paused or archived.")] = None,
    review_policy: Annotated[str | None, typer.Option(help="none, sample, all or disagreement.")] = None,
    sample_rate: Annotated[float | None, typer.Option(help="Share of completed tasks reviewed (sample).")] = None,
    pay_on: Annotated[str | None, typer.Option(help="submit or accept.")] = None,
    rate: Annotated[int | None, typer.Option(help="Pay per answer, in minor units (cents).")] = None,
    review_rate: Annotated[int | None, typer.Option(help="Pay per review decision, minor units.")] = None,
    budget: Annotated[int | None, typer.Option(help="Budget cap in minor units.")] = None,
    no_budget: Annotated[bool, typer.Option("--no-budget", help="Remove the budget cap.")] = False,
    guidelines: Annotated[Path | None, typer.Option(
        "--guidelines", help="A Markdown file of the guidelines labelers read (an empty file removes them).")] = None,
    as_operator: AsOperator = None,
) -> None:
    """Change a project's guidelines and its queue, review and money settings."""
    from labelvault.workflow.projects import ProjectSettings

    try:
        instructions = guidelines.read_text(encoding="utf-8") if guidelines is not None else None
    except UnicodeDecodeError:
        raise fail(f"{guidelines}: not UTF-8 text") from None
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        changes = ProjectSettings(
            instructions=instructions, overlap=overlap, lease_seconds=lease_seconds, status=status,
            review_policy=review_policy, review_sample_rate=sample_rate, pay_on=pay_on, rate_per_answer=rate,
            rate_per_review=review_rate, budget_cap=budget, clear_budget_cap=no_budget,
        )
        info = services.projects.update(local_operator(services, as_operator), client_id, project_id, changes)
        console.print(
            f"{info.slug}: overlap {info.overlap}, review {info.review_policy}, pay on {info.pay_on}, "
            f"rate {info.rate_per_answer}, budget {info.budget_cap if info.budget_cap is not None else 'none'}",
            highlight=False,
        )


@report_app.command("spend")
@cli_errors
def report_spend(
    client: str,
    by_day: Annotated[bool, typer.Option(help="One row per project and day.")] = False,
    since: Annotated[str | None, typer.Option(help="Period start (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Period end, exclusive.")] = None,
    csv: CsvOption = False,
    as_operator: AsOperator = None,
) -> None:
    """Spend of a client per project (and day)."""
    with open_services() as services:
        rows = services.reports.spend(local_operator(services, as_operator), services.clients.resolve(client),
                                      by_day=by_day, since=_when(since, "--since"), until=_when(until, "--until"))
        _emit(list(rows), csv)


@report_app.command("earnings")
@cli_errors
def report_earnings(
    client: str,
    since: Annotated[str | None, typer.Option(help="Period start (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Period end, exclusive.")] = None,
    csv: CsvOption = False,
    as_operator: AsOperator = None,
) -> None:
    """Earnings per person from a client."""
    with open_services() as services:
        rows = services.reports.earnings(local_operator(services, as_operator), services.clients.resolve(client),
                                         since=_when(since, "--since"), until=_when(until, "--until"))
        _emit(list(rows), csv)


@report_app.command("costs")
@cli_errors
def report_costs(project: str, as_operator: AsOperator = None) -> None:
    """Spend, budget and cost per accepted answer of a project."""
    from labelvault.workflow.reports import major_units

    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        costs = services.reports.project_costs(local_operator(services, as_operator), client_id, project_id)
        per = costs.cost_per_accepted_answer
        console.print(
            f"spent {major_units(costs.spent, costs.currency)} {costs.currency}"
            f" of {major_units(costs.budget_cap, costs.currency) if costs.budget_cap is not None else 'no cap'};"
            f" {costs.accepted_answers} accepted answers;"
            f" {major_units(per, costs.currency) if per is not None else '-'} per accepted answer",
            highlight=False,
        )


@report_app.command("throughput")
@cli_errors
def report_throughput(
    project: str,
    csv: CsvOption = False,
    as_operator: AsOperator = None,
) -> None:
    """Answers and working time per labeler in a project."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        _emit(list(services.reports.throughput(local_operator(services, as_operator), client_id, project_id)), csv)


@report_app.command("ledger")
@cli_errors
def report_ledger(
    project: str,
    csv: CsvOption = False,
    as_operator: AsOperator = None,
) -> None:
    """Every money event of a project, bonus notes included (each page read is audited)."""
    from labelvault.io.answers import MAX_PAGE

    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        actor = local_operator(services, as_operator)
        _emit(_every_page(lambda after_id: services.reports.ledger(actor, client_id, project_id, after_id=after_id,
                                                                   limit=MAX_PAGE)), csv)


@report_app.command("skips")
@cli_errors
def report_skips(
    project: str,
    csv: CsvOption = False,
    as_operator: AsOperator = None,
) -> None:
    """Every skip of a project with the labeler's reason (each page read is audited)."""
    from labelvault.io.answers import MAX_PAGE

    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        actor = local_operator(services, as_operator)
        _emit(_every_page(lambda after_id: services.answers.skips(actor, client_id, project_id, after_id=after_id,
                                                                  limit=MAX_PAGE)), csv)


def _every_page(read_page: Callable[[int], Any]) -> list[object]:
    """The items of every page of a keyset-paged list (``after_id`` -> page with ``next_after_id``)."""
    rows: list[object] = []
    after_id: int | None = 0
    while after_id is not None:
        page = read_page(after_id)
        rows.extend(page.items)
        after_id = page.next_after_id
    return rows


@cli_errors
def payout(
    client: str,
    since: Annotated[str, typer.Option(help="Period start (ISO 8601), inclusive.")],
    until: Annotated[str, typer.Option(help="Period end, exclusive.")],
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
    as_operator: AsOperator = None,
) -> None:
    """Write the payout CSV of a client for a period (earnings per person)."""
    from labelvault.workflow.reports import rows_to_csv

    with open_services() as services:
        rows = services.reports.earnings(local_operator(services, as_operator), services.clients.resolve(client),
                                         since=_when(since, "--since"), until=_when(until, "--until"))
        out.write_text(rows_to_csv(list(rows)))
        console.print(f"{len(rows)} payees written to {out}")


@cli_errors
def bonus(
    project: str, username: str,
    amount: Annotated[int, typer.Argument(help="Minor units (cents).")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    as_operator: AsOperator = None,
) -> None:
    """Grant a bonus to a person for work on a project."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        services.bonuses.grant(local_operator(services, as_operator), client_id, project_id, username, amount, note)
        console.print(f"bonus of {amount} granted to {username}")


def register(app: typer.Typer, project_app: typer.Typer) -> None:
    project_app.command("set")(cli_errors(project_set))
    app.add_typer(report_app, name="report")
    app.command("payout")(payout)
    app.command("bonus")(bonus)
