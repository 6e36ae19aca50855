"""Conflict classes and wall overrides on the command line (operators)."""

from __future__ import annotations

from typing import Annotated

import typer

from labelvault.cli.common import AsOperator, cli_errors, console, local_operator, open_services

wall_app = typer.Typer(help="Conflict-of-interest classes and wall overrides.", no_args_is_help=True)


@wall_app.command("create-class")
@cli_errors
def create_class(name: str, description: Annotated[str, typer.Option(help="What the class is.")] = "",
                 as_operator: AsOperator = None) -> None:
    """Create a conflict class (e.g. "frontier-llm-labs")."""
    with open_services() as services:
        services.walls.create_class(local_operator(services, as_operator), name, description)
        console.print(f"conflict class {name} created")


@wall_app.command("add-client")
@cli_errors
def add_client(name: str, client: str, as_operator: AsOperator = None) -> None:
    """Put a client in a conflict class."""
    with open_services() as services:
        services.walls.add_client(local_operator(services, as_operator), name, services.clients.resolve(client))
        console.print(f"{client} is in {name}")


@wall_app.command("list")
@cli_errors
def list_classes(as_operator: AsOperator = None) -> None:
    """List conflict classes and their clients."""
    with open_services() as services:
        for info in services.walls.list_classes(local_operator(services, as_operator)):
            console.print(f"{info.name}\t{','.join(map(str, info.client_ids))}\t{info.description}", highlight=False)


@wall_app.command("override")
@cli_errors
def override(username: str, client: str,
             reason: Annotated[str, typer.Option(help="Why this person may cross the wall (audited).")],
             as_operator: AsOperator = None) -> None:
    """Let one person work for a client despite a wall."""
    with open_services() as services:
        services.walls.override(local_operator(services, as_operator), username, services.clients.resolve(client),
                                reason)
        console.print(f"{username} may work for {client}")


@wall_app.command("touches")
@cli_errors
def touches(username: str, as_operator: AsOperator = None) -> None:
    """Which clients' data a person has seen."""
    with open_services() as services:
        for touch in services.walls.touches(local_operator(services, as_operator), username):
            console.print(f"{touch.client_id}\t{touch.first_at.isoformat()}\t{touch.via}", highlight=False)
