"""``labelvault predict`` and ``labelvault predictor``: a project's model suggests answers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelvault.cli.common import AsOperator, cli_errors, console, err_console, fail, local_operator, open_services
from labelvault.domain.predictors import ENTRY_POINT_GROUP, PredictorConfig

if TYPE_CHECKING:
    from labelvault.workflow.predictions import PredictorInfo

ProjectArg = Annotated[str, typer.Argument(help="Project id, or client-slug/project-slug.", show_default=False)]

predictor_app = typer.Typer(help="A project's model predictor (suggestions, uncertainty order).",
                            no_args_is_help=True)


def predict_command(
    project: ProjectArg,
    everything: Annotated[
        bool, typer.Option("--all", help="Also re-score tasks that hold a suggestion of the current model version.")
    ] = False,
    as_operator: AsOperator = None,
) -> None:
    """Ask the project's predictor for suggestions on tasks that lack one of its current model
    version; their uncertainty orders the queue. Resumable: run it again after a failure."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        client_id, project_id = services.projects.locate(project)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err_console, transient=True) as bar:
            task = bar.add_task("predicting", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = services.predictions.run(actor, client_id, project_id, everything=everything,
                                               progress=progress)
    console.print(
        f"{report.model}: {report.scored:,} tasks scored, {report.suggestions:,} suggestions, "
        f"{report.batches:,} batches", highlight=False, soft_wrap=True,
    )


def set_command(
    project: ProjectArg,
    question: Annotated[str, typer.Option(help="The question whose answer the model suggests.", show_default=False)],
    entry_point: Annotated[
        str | None,
        typer.Option(help=f"An installed entry point of {ENTRY_POINT_GROUP}, or module:function (operators only)."),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="An http predictor's URL (its host in LABELVAULT_PREDICTOR_ALLOWED_HOSTS).")
    ] = None,
    model_name: Annotated[str, typer.Option(help="Name written on the suggestions (default: from the target).")] = "",
    model_version: Annotated[str, typer.Option(help="Bump it after retraining: every open task is re-scored.")] = "1",
    batch_size: Annotated[int, typer.Option(help="Tasks per call.")] = 64,
    timeout: Annotated[float, typer.Option(help="Seconds an http predictor has per batch.")] = 30.0,
    auth_secret: Annotated[
        str | None, typer.Option(help="Name of a secret in LABELVAULT_PREDICTOR_SECRETS sent as the auth header.")
    ] = None,
    auth_header: Annotated[str | None, typer.Option(help="Header carrying the secret (default Authorization).")] = None,
    options: Annotated[str, typer.Option(help="JSON object handed to the predictor as is.")] = "{}",
    as_operator: AsOperator = None,
) -> None:
    """Set (or replace) a project's predictor: an entry point or an http endpoint."""
    if (entry_point is None) == (url is None):
        raise fail("give exactly one of --entry-point and --url")
    try:
        parsed = json.loads(options)
    except ValueError:
        raise fail("--options must be a JSON object") from None
    config = PredictorConfig(
        kind="entry_point" if entry_point else "http", target=entry_point or url or "", question=question,
        model_name=model_name, model_version=model_version, batch_size=batch_size, timeout_seconds=timeout,
        auth_header=auth_header, auth_secret=auth_secret, options=parsed,
    )
    with open_services() as services:
        actor = local_operator(services, as_operator)
        client_id, project_id = services.projects.locate(project)
        info = services.predictions.configure(actor, client_id, project_id, config)
    _show(info)


def show_command(project: ProjectArg, as_operator: AsOperator = None) -> None:
    """Show a project's predictor and how many open tasks its current version has not scored."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        client_id, project_id = services.projects.locate(project)
        info = services.predictions.get(actor, client_id, project_id)
    if info is None:
        console.print(f"{project} has no predictor", highlight=False)
        return
    _show(info)


def clear_command(project: ProjectArg, as_operator: AsOperator = None) -> None:
    """Remove a project's predictor (the suggestions it wrote stay)."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        client_id, project_id = services.projects.locate(project)
        services.predictions.clear(actor, client_id, project_id)
    console.print(f"predictor of {project} removed", highlight=False)


def _show(info: PredictorInfo) -> None:
    config = info.config
    console.print(
        f"{config.kind} {config.target}: question {config.question}, model {config.suggestion_model}, "
        f"batches of {config.batch_size}; {info.pending:,} open tasks to score", highlight=False, soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("predict")(cli_errors(predict_command))
    predictor_app.command("set")(cli_errors(set_command))
    predictor_app.command("show")(cli_errors(show_command))
    predictor_app.command("clear")(cli_errors(clear_command))
    app.add_typer(predictor_app, name="predictor")
