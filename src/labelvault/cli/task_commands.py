"""A project's tasks on the command line: list them by state, open one, move them up the queue."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from labelvault.cli.common import AsOperator, cli_errors, console, fail, local_operator, open_services

task_app = typer.Typer(help="A project's tasks: list by state, open one, change priorities.", no_args_is_help=True)

ProjectArgument = Annotated[str, typer.Argument(help="Project id or client-slug/project-slug.")]


@task_app.command("list")
@cli_errors
def task_list(
    project: ProjectArgument,
    state: Annotated[str | None, typer.Option(help="open, in_review, complete or gold.")] = None,
    external_id: Annotated[str | None, typer.Option("--external-id", help="Only the task with this id.")] = None,
    as_operator: AsOperator = None,
) -> None:
    """List tasks (tab-separated): id, external id, state, answers given/required, priority."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        actor = local_operator(services, as_operator)
        after_id: int | None = 0
        while after_id is not None:  # walked by id: each page of a large project costs the same
            page = services.tasks.page(actor, client_id, project_id, state=state, external_id=external_id,
                                       after_id=after_id, limit=1000)
            for task in page.items:
                typer.echo(f"{task.id}\t{task.external_id or ''}\t{task.state}\t"
                           f"{task.answer_count}/{task.required_answers}\t{task.priority}")
            after_id = page.next_after_id


@task_app.command("show")
@cli_errors
def task_show(
    project: ProjectArgument,
    task_id: Annotated[int | None, typer.Argument(help="The task's id (or give --external-id).")] = None,
    external_id: Annotated[str | None, typer.Option("--external-id", help="The task's external id.")] = None,
    as_operator: AsOperator = None,
) -> None:
    """One task as JSON: content, answers (rejected ones too), skips, leases and reviews. Audited
    (task.read) like every opening of a client's data."""
    if (task_id is None) == (external_id is None):
        raise fail("give a task id or --external-id")
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        actor = local_operator(services, as_operator)
        if task_id is None:
            found, _ = services.tasks.list(actor, client_id, project_id, external_id=external_id, limit=1)
            if not found:
                raise fail(f"no task with external id {external_id!r} in project {project}")
            task_id = found[0].id
        detail = services.tasks.open(actor, client_id, project_id, task_id)
        typer.echo(json.dumps(asdict(detail), default=str, indent=2, ensure_ascii=False))


ExternalIds = Annotated[list[str] | None, typer.Argument(help="External ids of the tasks.")]
TaskIds = Annotated[list[int] | None, typer.Option("--id", help="A task id (repeat it for more).")]
FromFile = Annotated[Path | None, typer.Option("--from-file", help="A file of external ids, one per line.")]


def _named(external_ids: list[str] | None, from_file: Path | None, task_ids: list[int] | None) -> list[str]:
    """The external ids given as arguments and in the file; fails when no task is named at all."""
    externals = list(external_ids or [])
    if from_file is not None:
        externals += [line.strip() for line in from_file.read_text().splitlines() if line.strip()]
    if not externals and not task_ids:
        raise fail("name the tasks: external ids, --id or --from-file")
    return externals


@task_app.command("priority")
@cli_errors
def task_priority(
    project: ProjectArgument,
    priority: Annotated[int, typer.Argument(help="The new priority: higher is labeled first (default 0).")],
    external_ids: ExternalIds = None,
    task_ids: TaskIds = None,
    from_file: FromFile = None,
    as_operator: AsOperator = None,
) -> None:
    """Give tasks a new priority, all or nothing: a task not in the project is named and nothing
    changes. Labelers get the tasks in the new order at their next task."""
    externals = _named(external_ids, from_file, task_ids)
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        actor = local_operator(services, as_operator)
        changed = services.tasks.set_priority(actor, client_id, project_id, priority, task_ids=task_ids or [],
                                              external_ids=externals)
        console.print(f"priority {priority}: {changed} task(s) changed", highlight=False)


@task_app.command("more-answers")
@cli_errors
def task_more_answers(
    project: ProjectArgument,
    more: Annotated[int, typer.Argument(help="Answers each task wants beyond those it wanted.")],
    external_ids: ExternalIds = None,
    task_ids: TaskIds = None,
    from_file: FromFile = None,
    as_operator: AsOperator = None,
) -> None:
    """Ask for more answers on tasks, from labelers who have not answered them (a second opinion).
    A complete task goes back to the queue; one awaiting review goes back to the labelers first.
    All or nothing: a task not in the project, a gold task or one past 100 answers is named."""
    externals = _named(external_ids, from_file, task_ids)
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        actor = local_operator(services, as_operator)
        asked = services.tasks.ask_more_answers(actor, client_id, project_id, more, task_ids=task_ids or [],
                                                external_ids=externals)
        console.print(f"{asked} task(s) want {more} more answer(s)", highlight=False)


@task_app.command("remove")
@cli_errors
def task_remove(
    project: ProjectArgument,
    external_ids: ExternalIds = None,
    task_ids: TaskIds = None,
    from_file: FromFile = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the tasks and their content are deleted.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Delete tasks nobody has answered (imported by mistake, or broken), with their skips and
    leases. All or nothing: a task not in the project, or one with an answer, is named and nothing
    is deleted. Audited (tasks.removed)."""
    externals = _named(external_ids, from_file, task_ids)
    if not yes:
        raise fail("removing tasks deletes them and their content: add --yes to confirm")
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        actor = local_operator(services, as_operator)
        removed = services.tasks.remove(actor, client_id, project_id, task_ids=task_ids or [], external_ids=externals)
        console.print(f"{removed} task(s) removed", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")
