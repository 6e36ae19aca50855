"""``labelvault import`` and ``labelvault export``: move tasks in and out of a project."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from labelvault.cli.common import AsOperator, cli_errors, console, err_console, local_operator, open_services
from labelvault.errors import ImportInvalid, InvalidInput
from labelvault.io.formats import formats_help
from labelvault.io.readers import FORMATS, infer_format
from labelvault.io.rows import parse_field_map

if TYPE_CHECKING:
    from labelvault.io.importer import ImportReport

SHOWN_ERRORS = 5

ProjectArg = Annotated[str, typer.Argument(help="Project id, or client-slug/project-slug.", show_default=False)]


def import_command(
    project: ProjectArg,
    file: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet file of tasks.", show_default=False)],
    format: Annotated[
        str | None, typer.Option("--format", help=f"One of {', '.join(FORMATS)} (default: from the file name).")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows and report the bad ones.")
    ] = False,
    maps: Annotated[
        list[str] | None,
        typer.Option("--map", help="column=field: read a column of the file as a schema field (repeatable)."),
    ] = None,
    as_operator: AsOperator = None,
) -> None:
    """Import tasks into a project. Idempotent by external_id; one bad row rejects the file
    unless --skip-invalid."""
    mapping = parse_field_map(maps)
    fmt = infer_format(file.name, explicit=format)
    with open_services() as services:
        actor = local_operator(services, as_operator)
        client_id, project_id = services.projects.locate(project)
        started = time.monotonic()
        with file.open("rb") as stream, _progress() as bar:
            size = os.fstat(stream.fileno()).st_size
            task = bar.add_task("importing", total=size or None)

            def progress(rows: int) -> None:
                bar.update(task, completed=min(stream.tell(), size), description=f"{rows:,} rows")

            try:
                report = services.imports.import_file(
                    actor, client_id, project_id, stream, format=fmt, skip_invalid=skip_invalid,
                    mapping=mapping, progress=progress,
                )
            except ImportInvalid as exc:
                bar.stop()
                _print_rejection(exc)
                raise typer.Exit(1) from None
            bar.update(task, completed=size)
    seconds = time.monotonic() - started
    console.print(
        f"imported {file.name} into {project}: {report.rows_read:,} rows read, {report.created:,} created, "
        f"{report.already_present:,} already present, {report.invalid:,} invalid ({seconds:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )
    if report.invalid:
        _print_skipped(report)


def _print_rejection(exc: ImportInvalid) -> None:
    err_console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
    details = exc.details if isinstance(exc.details, dict) else {}
    errors = details.get("errors") or []
    if len(errors) > 1:
        for error in errors[:SHOWN_ERRORS]:
            err_console.print(f"  {error['message']}", highlight=False, soft_wrap=True)
        more = int(details.get("invalid", len(errors))) - min(len(errors), SHOWN_ERRORS)
        if more > 0:
            err_console.print(f"  ... and {more:,} more bad rows", highlight=False, soft_wrap=True)
    err_console.print("fix the rows, or pass --skip-invalid to import the others", highlight=False, soft_wrap=True)


def _print_skipped(report: ImportReport) -> None:
    err_console.print(f"[yellow]skipped {report.invalid:,} bad rows:[/yellow]", highlight=False, soft_wrap=True)
    for error in report.errors[:SHOWN_ERRORS]:
        err_console.print(f"  {error['message']}", highlight=False, soft_wrap=True)
    more = report.invalid - min(len(report.errors), SHOWN_ERRORS)
    if more > 0:
        err_console.print(f"  ... and {more:,} more", highlight=False, soft_wrap=True)


def export_command(
    project: ProjectArg,
    format: Annotated[str, typer.Option("--format", help=f"Export format. {formats_help()}.")] = "jsonl",
    out: Annotated[str, typer.Option(
        "--out", help="File to write, or - for standard output. Directory formats (hf-dataset, yolo) write a "
        "directory here, or a zip when the name ends in .zip.")] = "-",
    question: Annotated[str | None, typer.Option(
        "--question", help="The question a training format reads, when the project has several that fit "
        "(a rubric criterion as rubric.criterion).")] = None,
    dpo_form: Annotated[str | None, typer.Option(
        "--dpo-form", help="dpo: string (TRL's standard form) or chat (conversational); default chat when the "
        "prompt is a chat field, else string.")] = None,
    prompt_field: Annotated[str | None, typer.Option(
        "--prompt-field", help="dpo and sft: the field giving the prompt (default: the first chat field, "
        "else the first text field).")] = None,
    lang: Annotated[str, typer.Option("--lang", help="spacy: the language whose tokenizer splits the text.")] = "en",
    as_operator: AsOperator = None,
) -> None:
    """Export a project: its tasks with answers, aggregated answers, or a training format."""
    from labelvault.io.exporter import ExportOptions

    options = ExportOptions(question=question, dpo_form=dpo_form, prompt_field=prompt_field, lang=lang)
    with open_services() as services:
        actor = local_operator(services, as_operator)
        client_id, project_id = services.projects.locate(project)
        if out == "-":
            export = services.exports.export(actor, client_id, project_id, format=format, options=options)
            if export.directory is not None:
                raise InvalidInput(f"the {format} format is a directory: give --out DIRECTORY (or a .zip file)")
            sink = sys.stdout.buffer
            for chunk in export.chunks:
                sink.write(chunk)
            sink.flush()
            return
        target = Path(out)
        partial = target.with_name(target.name + ".part")
        written = 0
        with _progress(rows=True) as bar:
            task = bar.add_task("exporting", total=None)

            def progress(done: int) -> None:
                nonlocal written
                written = done
                bar.update(task, completed=done)

            export = services.exports.export(
                actor, client_id, project_id, format=format, progress=progress, options=options
            )
            bar.update(task, total=export.tasks)
            if export.directory is not None and target.suffix != ".zip":
                if target.exists():
                    raise InvalidInput(f"{target} exists already; give a new directory")
                shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted run
                try:
                    export.directory(partial)
                    partial.replace(target)  # no half-written directory under the real name
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
            else:
                try:
                    with partial.open("wb") as sink:
                        for chunk in export.chunks:
                            sink.write(chunk)
                    partial.replace(target)  # no half-written file under the real name
                except BaseException:
                    partial.unlink(missing_ok=True)
                    raise
    console.print(f"exported {written:,} tasks of {project} to {target}", highlight=False, soft_wrap=True)


def _progress(*, rows: bool = False) -> Progress:
    amount = MofNCompleteColumn() if rows else DownloadColumn()
    return Progress(
        TextColumn("{task.description}"), BarColumn(), amount, TimeRemainingColumn(),
        console=err_console, transient=True,
    )


def register(app: typer.Typer) -> None:
    app.command("import")(cli_errors(import_command))
    app.command("export")(cli_errors(export_command))

