"""A project's webhooks on the command line: endpoints, the delivery log, and a dispatch run."""

from __future__ import annotations

from typing import Annotated

import typer

from labelvault.cli.common import AsOperator, cli_errors, console, local_operator, open_services
from labelvault.domain.webhooks import EVENT_TYPES

webhook_app = typer.Typer(help="Webhooks: endpoints told of a project's events, and their deliveries.",
                          no_args_is_help=True)
ProjectArg = Annotated[str, typer.Argument(help="Project id or client-slug/project-slug.")]


@webhook_app.command("add")
@cli_errors
def add(
    project: ProjectArg,
    url: Annotated[str, typer.Argument(help="http(s) URL on a host of LABELVAULT_WEBHOOK_ALLOWED_HOSTS.")],
    event: Annotated[list[str], typer.Option(help=f"Event to send (repeat): {', '.join(EVENT_TYPES)}.")],
    as_operator: AsOperator = None,
) -> None:
    """Add an endpoint to a project and print its signing secret (shown once)."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        created = services.webhooks.add(local_operator(services, as_operator), client_id, project_id, url, event)
        console.print(f"webhook {created.webhook.id} added for {' '.join(created.webhook.events)}", highlight=False)
        console.print(f"secret (shown once): {created.secret}", highlight=False)


@webhook_app.command("list")
@cli_errors
def list_webhooks(project: ProjectArg, as_operator: AsOperator = None) -> None:
    """List a project's endpoints (id, active, events, URL)."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        for hook in services.webhooks.list(local_operator(services, as_operator), client_id, project_id):
            state = "active" if hook.active else "paused"
            console.print(f"{hook.id}\t{state}\t{','.join(hook.events)}\t{hook.url}", highlight=False)


@webhook_app.command("remove")
@cli_errors
def remove(project: ProjectArg, webhook_id: int, as_operator: AsOperator = None) -> None:
    """Remove an endpoint with its deliveries and their log."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        services.webhooks.remove(local_operator(services, as_operator), client_id, project_id, webhook_id)
        console.print(f"webhook {webhook_id} removed")


@webhook_app.command("deliveries")
@cli_errors
def deliveries(
    project: ProjectArg,
    webhook: Annotated[int | None, typer.Option(help="Only this endpoint's deliveries.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, sending, delivered or failed.")] = None,
    limit: Annotated[int, typer.Option(help="Newest deliveries to show.")] = 50,
    attempts: Annotated[bool, typer.Option(help="Show every attempt of each delivery.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """The delivery log of a project, newest first."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        items, total = services.webhooks.deliveries(local_operator(services, as_operator), client_id, project_id,
                                                    webhook_id=webhook, status=status, limit=limit)
        for d in items:
            code = d.last_status_code if d.last_status_code is not None else "-"
            upcoming = d.next_attempt_at.isoformat() if d.next_attempt_at else "-"
            console.print(f"{d.id}\twebhook {d.endpoint_id}\t{d.event_type}\t{d.status}\tattempts {d.attempts}\t"
                          f"last {code} {d.last_error}\tnext {upcoming}", highlight=False)
            if attempts:
                for a in d.log:
                    console.print(f"  #{a.attempt}\t{a.started_at.isoformat()}\t{a.status_code or '-'}\t"
                                  f"{a.duration_ms} ms\t{a.error}", highlight=False)
        console.print(f"{len(items)} of {total} deliveries", highlight=False)


@webhook_app.command("retry")
@cli_errors
def retry(project: ProjectArg, delivery_id: int, as_operator: AsOperator = None) -> None:
    """Send a failed (or delivered) delivery again at the next dispatch."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        services.webhooks.retry(local_operator(services, as_operator), client_id, project_id, delivery_id)
        console.print(f"delivery {delivery_id} queued again")


@webhook_app.command("deliver")
@cli_errors
def deliver() -> None:
    """Send every delivery that is due now, once, and report (the server does this in the background)."""
    with open_services() as services:
        report = services.webhook_dispatcher.drain()
        console.print(f"{report.delivered} delivered, {report.retrying} to retry, {report.failed} failed",
                      highlight=False)
