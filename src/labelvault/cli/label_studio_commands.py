"""``labelvault import-label-studio``: move a Label Studio project over, with its history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from labelvault.cli.common import AsOperator, cli_errors, console, err_console, fail, local_operator, open_services
from labelvault.errors import ImportInvalid

if TYPE_CHECKING:
    from labelvault.io.label_studio_import import LabelStudioReport

SHOWN_ERRORS = 5


def import_label_studio_command(
    client: Annotated[str, typer.Argument(help="Client id or slug.", show_default=False)],
    file: Annotated[Path, typer.Argument(help="Label Studio export: JSON (or JSON-MIN with --config).",
                                         show_default=False)],
    config: Annotated[Path | None, typer.Option(
        "--config", help="The Label Studio project's labeling config (XML): question names, choices, labels.")] = None,
    project: Annotated[str | None, typer.Option(
        "--project", help="Import into this existing project (slug or id); its schema must fit.")] = None,
    new_project: Annotated[str | None, typer.Option(
        "--new-project", help="Create a project with this slug from the inferred schema.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the new project (default: its slug).")] = None,
    overlap: Annotated[int, typer.Option("--overlap", help="Answers wanted per task in the new project.")] = 1,
    skip_unsupported: Annotated[bool, typer.Option(
        "--skip-unsupported", help="Drop result types LabelVault cannot hold (polygons, relations, ...) and "
        "count them, instead of refusing the file.")] = False,
    ground_truth_as_gold: Annotated[bool, typer.Option(
        "--ground-truth-as-gold", help="New tasks with a ground-truth annotation become gold tasks with that "
        "answer.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Check everything and print the schema and counts; write nothing.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Import a Label Studio export (tasks, predictions, annotations with their annotators and
    times) into a project. Idempotent by the task id; one bad task rejects the file."""
    if (project is None) == (new_project is None):
        raise fail("give --project SLUG or --new-project SLUG")
    config_text = config.read_bytes() if config is not None else None
    from labelvault.io.label_studio_import import NewProject

    with open_services() as services:
        actor = local_operator(services, as_operator)
        client_id = services.clients.resolve(client)
        target = NewProject(slug=new_project, name=name or new_project, overlap=overlap) if new_project else None
        try:
            report = services.label_studio.import_export(
                actor, client_id, file, config=config_text, project=project, new_project=target, dry_run=dry_run,
                skip_unsupported=skip_unsupported, ground_truth_as_gold=ground_truth_as_gold,
            )
        except ImportInvalid as exc:
            _print_rejection(exc)
            raise typer.Exit(1) from None
    _print_report(report, file.name)


def _print_rejection(exc: ImportInvalid) -> None:
    err_console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
    details = exc.details if isinstance(exc.details, dict) else {}
    errors = details.get("errors") or []
    if len(errors) > 1:
        for error in errors[:SHOWN_ERRORS]:
            err_console.print(f"  {error['message']}", highlight=False, soft_wrap=True)
        more = int(details.get("invalid", len(errors))) - min(len(errors), SHOWN_ERRORS)
        if more > 0:
            err_console.print(f"  ... and {more:,} more", highlight=False, soft_wrap=True)


def _print_report(report: LabelStudioReport, filename: str) -> None:
    if report.dry_run:
        console.print("schema (dry run, nothing was written):", highlight=False)
        console.print(json.dumps(report.mapping["schema"], indent=2, ensure_ascii=False), highlight=False,
                      soft_wrap=True)
        for key, field in report.mapping["fields"].items():
            console.print(f"  data {key} -> field {field}", highlight=False, soft_wrap=True)
        for key, q in report.mapping["questions"].items():
            console.print(f"  {q['type']} {key} -> question {q['question']} ({q['question_type']})",
                          highlight=False, soft_wrap=True)
        if report.mapping["metadata_keys"]:
            console.print(f"  kept in metadata: {', '.join(report.mapping['metadata_keys'])}", highlight=False,
                          soft_wrap=True)
        if report.mapping["ignored_controls"]:
            console.print(f"  config controls not imported: {', '.join(report.mapping['ignored_controls'])}",
                          highlight=False, soft_wrap=True)
    verb = "would import" if report.dry_run else "imported"
    created = " (new project)" if report.project_created else ""
    console.print(
        f"{verb} {filename} ({report.format}) into {report.project_slug}{created}: {report.tasks_read:,} tasks read, "
        f"{report.tasks_created:,} created ({report.gold_tasks_created:,} gold), "
        f"{report.tasks_already_present:,} already present; "
        f"{report.answers_created:,} answers ({report.answers_already_present:,} already present, "
        f"{report.annotations_superseded:,} superseded), {report.skips_created:,} skips, "
        f"{report.suggestions_created:,} suggestions, {report.accounts_created:,} accounts created",
        highlight=False, soft_wrap=True,
    )
    if report.results_dropped:
        err_console.print(f"[yellow]dropped {report.results_dropped:,} unsupported results[/yellow]",
                          highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("import-label-studio")(cli_errors(import_label_studio_command))
