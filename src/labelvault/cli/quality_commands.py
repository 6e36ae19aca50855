"""``labelvault quality``, ``labelvault gold`` and ``labelvault skill``: quality control on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelvault.cli.common import AsOperator, cli_errors, console, local_operator, open_services

quality_app = typer.Typer(help="Quality: settings, reports, agreement, suspensions, qualification.",
                          no_args_is_help=True)
gold_app = typer.Typer(help="Gold tasks: known answers mixed into the queue.", no_args_is_help=True)
skill_app = typer.Typer(help="Skill tags of a client's members (e.g. lang:de).", no_args_is_help=True)

ProjectArg = Annotated[str, typer.Argument(help="Project id, or client-slug/project-slug.", show_default=False)]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ------------------------------------------------------------------------------------------ quality


@quality_app.command("set")
@cli_errors
def quality_set(
    project: ProjectArg,
    gold_rate: Annotated[float | None, typer.Option(help="Chance (0..1) that the next task is a gold task.")] = None,
    feedback: Annotated[bool | None, typer.Option("--feedback/--no-feedback",
                                                  help="Labelers see their gold results.")] = None,
    qualification: Annotated[bool | None, typer.Option("--qualification/--no-qualification",
                                                       help="Labelers pass the qualification test first.")] = None,
    pass_mark: Annotated[float | None, typer.Option(help="Mean credit (0..1) that passes the test.")] = None,
    skills: Annotated[str | None, typer.Option(help="Required skills, comma separated ('' for none).")] = None,
    suspend_below: Annotated[float | None, typer.Option(help="Suspend below this gold accuracy (0..1).")] = None,
    no_suspension: Annotated[bool, typer.Option("--no-suspension", help="Never suspend.")] = False,
    suspend_after: Annotated[int | None, typer.Option(help="Gold answers needed before suspending.")] = None,
    max_overlap: Annotated[int | None, typer.Option(help="Adaptive overlap: at most this many answers.")] = None,
    no_max_overlap: Annotated[bool, typer.Option("--no-max-overlap", help="Adaptive overlap off.")] = False,
    confidence: Annotated[float | None, typer.Option(help="Below this confidence a task gets one more answer.")] = None,
    as_operator: AsOperator = None,
) -> None:
    """Change a project's quality settings: gold, qualification, skills, suspension, adaptive overlap."""
    from labelvault.workflow.projects import ProjectSettings

    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        changes = ProjectSettings(
            gold_rate=gold_rate, show_gold_feedback=feedback, qualification_required=qualification,
            qualification_pass_mark=pass_mark,
            required_skills=None if skills is None else [s for s in skills.split(",") if s.strip()],
            suspension_threshold=suspend_below, clear_suspension_threshold=no_suspension,
            suspension_min_answers=suspend_after, max_overlap=max_overlap, clear_max_overlap=no_max_overlap,
            confidence_threshold=confidence,
        )
        info = services.projects.update(local_operator(services, as_operator), client_id, project_id, changes)
        console.print(
            f"{info.slug}: gold rate {info.gold_rate:g}, qualification "
            f"{'required' if info.qualification_required else 'off'}, skills {','.join(info.required_skills) or '-'}, "
            f"suspend below {_share(info.suspension_threshold)}, overlap {info.overlap}.."
            f"{info.max_overlap or info.overlap} at confidence {info.confidence_threshold:g}",
            highlight=False,
        )


@quality_app.command("report")
@cli_errors
def quality_report(
    project: ProjectArg,
    as_json: Annotated[bool, typer.Option("--json", help="The whole report as JSON.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Agreement per question, the labeler table and adaptive-overlap savings of a project."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        report = services.quality.report(local_operator(services, as_operator), client_id, project_id)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(f"{report['tasks']} tasks, {report['gold_tasks']} gold, {report['answers']} answers "
                  f"(computed {report['computed_at']})", highlight=False)
    table = Table("question", "type", "alpha", "Fleiss", "% agree", "tasks")
    for path, stats in report["agreement"].items():
        table.add_row(path, stats["type"], _number(stats.get("alpha")), _number(stats.get("fleiss_kappa")),
                      _share(stats.get("percent_agreement")), str(stats.get("tasks", "-")))
    console.print(table)
    _print_labelers(report)
    overlap = report.get("overlap") or {}
    if overlap.get("answers_saved") is not None:
        console.print(f"adaptive overlap saved {overlap['answers_saved']} of {overlap['answers_at_max']} answers "
                      f"({_share(overlap['saved_share'])}) on {overlap['completed_tasks']} completed tasks",
                      highlight=False)


def _print_labelers(report: dict[str, Any]) -> None:
    from labelvault.quality.reports import labeler_rows

    table = Table("labeler", "answers", "gold", "gold accuracy (95% CI)", "agreement", "median s", "earned")
    for row in labeler_rows(report):
        flags = " (suspended)" if row.suspended else ""
        table.add_row(
            row.labeler + flags, str(row.answers), str(row.gold_n),
            f"{_share(row.gold_accuracy)} ({_share(row.gold_lower)}-{_share(row.gold_upper)})" if row.gold_n else "-",
            _share(row.agreement_rate),
            _number(row.median_time_ms / 1000 if row.median_time_ms is not None else None, 1),
            f"{row.earned} {row.currency}",
        )
    console.print(table)


@quality_app.command("labelers")
@cli_errors
def quality_labelers(
    project: ProjectArg,
    csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Per labeler: gold accuracy with its interval, agreement with the consensus, speed, earnings."""
    from labelvault.quality.reports import labeler_rows
    from labelvault.workflow.reports import rows_to_csv

    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        report = services.quality.report(local_operator(services, as_operator), client_id, project_id)
    if csv:
        typer.echo(rows_to_csv(list(labeler_rows(report))), nl=False)
    else:
        _print_labelers(report)


@quality_app.command("recompute")
@cli_errors
def quality_recompute(project: ProjectArg, as_operator: AsOperator = None) -> None:
    """Compute a project's quality results now (they are also refreshed on read when stale)."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        report = services.quality.recompute(local_operator(services, as_operator), client_id, project_id)
    console.print(f"recomputed {project}: {report['tasks']} tasks, {report['answers']} answers "
                  f"(version {report['version']})", highlight=False)


@quality_app.command("suspensions")
@cli_errors
def quality_suspensions(
    project: ProjectArg,
    active: Annotated[bool, typer.Option("--active", help="Only suspensions in force.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Labelers suspended from a project, and why."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        rows = services.gold.suspensions(local_operator(services, as_operator), client_id, project_id,
                                         active_only=active)
    for row in rows:
        state = f"lifted {row.lifted_at:%Y-%m-%d %H:%M}" if row.lifted_at else "in force"
        console.print(f"{row.username}\t{row.created_at:%Y-%m-%d %H:%M}\t{state}\t{row.reason}", highlight=False)


@quality_app.command("reinstate")
@cli_errors
def quality_reinstate(project: ProjectArg, username: str, as_operator: AsOperator = None) -> None:
    """Lift a labeler's suspension from a project."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        services.gold.reinstate(local_operator(services, as_operator), client_id, project_id, username)
    console.print(f"{username} reinstated in {project}", highlight=False)


@quality_app.command("qualify")
@cli_errors
def quality_qualify(
    project: ProjectArg,
    username: str,
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw the qualification instead.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Qualify a labeler for a project by hand (or withdraw it), whatever the test says."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        services.qualifications.set_qualified(local_operator(services, as_operator), client_id, project_id,
                                              username, qualified=not withdraw)
    console.print(f"{username} {'no longer' if withdraw else 'is'} qualified for {project}", highlight=False)


@quality_app.command("qualifications")
@cli_errors
def quality_qualifications(project: ProjectArg, as_operator: AsOperator = None) -> None:
    """Each labeler's qualification test progress and result, and skills they lack."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        rows = services.qualifications.statuses(local_operator(services, as_operator), client_id, project_id)
    for row in rows:
        result = "-" if row.passed is None else ("passed" if row.passed else "failed")
        console.print(f"{row.username}\t{result}\t{_share(row.score)}\t{row.test_done}/{row.test_tasks}\t"
                      f"missing: {','.join(row.missing_skills) or '-'}", highlight=False)


# ------------------------------------------------------------------------------------------ gold


@gold_app.command("import")
@cli_errors
def gold_import(
    project: ProjectArg,
    file: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet: task rows with a gold answer.")],
    qualification: Annotated[bool, typer.Option("--qualification", help="The qualification test's tasks.")] = False,
    format: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet (default: by name).")] = None,
    as_operator: AsOperator = None,
) -> None:
    """Add gold tasks to a project (idempotent by external_id)."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        report = services.gold.import_file(local_operator(services, as_operator), client_id, project_id, file,
                                           format=format, qualification=qualification)
    console.print(f"{report.rows_read} rows read, {report.created} gold tasks created, "
                  f"{report.already_present} already present", highlight=False)


@gold_app.command("promote")
@cli_errors
def gold_promote(
    project: ProjectArg,
    task_id: int,
    answer: Annotated[str | None, typer.Option(help="The gold answer as JSON (default: the reviewed one).")] = None,
    qualification: Annotated[bool, typer.Option("--qualification", help="Put it in the qualification test.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Make a reviewed task a gold task."""
    value = json.loads(answer) if answer else None
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        info = services.gold.promote(local_operator(services, as_operator), client_id, project_id, task_id,
                                     answer=value, qualification=qualification)
    console.print(f"task {info.task_id} is gold: {json.dumps(info.gold)}", highlight=False)


@gold_app.command("list")
@cli_errors
def gold_list(project: ProjectArg, as_operator: AsOperator = None) -> None:
    """The gold tasks of a project with their answers."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        items, total = services.gold.list(local_operator(services, as_operator), client_id, project_id, limit=1000)
    for item in items:
        kind = "test" if item.qualification else "gold"
        console.print(f"{item.task_id}\t{item.external_id or '-'}\t{kind}\t{item.answers} answers\t"
                      f"{json.dumps(item.gold)}", highlight=False)
    if total > len(items):
        console.print(f"... and {total - len(items)} more", highlight=False)


@gold_app.command("remove")
@cli_errors
def gold_remove(project: ProjectArg, task_id: int, as_operator: AsOperator = None) -> None:
    """Make a gold task a regular task again."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        services.gold.demote(local_operator(services, as_operator), client_id, project_id, task_id)
    console.print(f"task {task_id} is a regular task again", highlight=False)


# ------------------------------------------------------------------------------------------ skills


@skill_app.command("grant")
@cli_errors
def skill_grant(client: str, username: str, skill: str, as_operator: AsOperator = None) -> None:
    """Give a member of a client a skill tag."""
    with open_services() as services:
        grant = services.qualifications.grant_skill(local_operator(services, as_operator),
                                                    services.clients.resolve(client), username, skill)
    console.print(f"{grant.username} has {grant.skill} in {client}", highlight=False)


@skill_app.command("revoke")
@cli_errors
def skill_revoke(client: str, username: str, skill: str, as_operator: AsOperator = None) -> None:
    """Take a skill tag from a member of a client."""
    with open_services() as services:
        services.qualifications.revoke_skill(local_operator(services, as_operator),
                                             services.clients.resolve(client), username, skill)
    console.print(f"{username} no longer has {skill} in {client}", highlight=False)


@skill_app.command("list")
@cli_errors
def skill_list(client: str, as_operator: AsOperator = None) -> None:
    """Skill tags of a client's members."""
    with open_services() as services:
        grants = services.qualifications.skills(local_operator(services, as_operator), services.clients.resolve(client))
    for grant in grants:
        console.print(f"{grant.username}\t{grant.skill}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(quality_app, name="quality")
    app.add_typer(gold_app, name="gold")
    app.add_typer(skill_app, name="skill")
