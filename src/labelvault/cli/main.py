"""The ``labelvault`` command line: operators install, run, onboard and move data with it."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Annotated

import typer

from labelvault.cli import (
    io_commands,
    label_studio_commands,
    ops_commands,
    predict_commands,
    quality_commands,
    queue_commands,
    task_commands,
)
from labelvault.cli.audit_commands import audit_app
from labelvault.cli.common import (
    AsOperator,
    cli_errors,
    console,
    every_page,
    fail,
    load_settings,
    local_operator,
    open_services,
    prompt_new_password,
    read_secret_file,
)
from labelvault.cli.wall_commands import wall_app
from labelvault.cli.webhook_commands import webhook_app

app = typer.Typer(
    help="LabelVault: a labeling platform whose clients' data stays sealed, walled and witnessed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(help="Users and their API tokens.", no_args_is_help=True)
client_app = typer.Typer(help="Clients (tenants) and their members.", no_args_is_help=True)
project_app = typer.Typer(help="Projects: schemas and settings.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(client_app, name="client")
app.add_typer(project_app, name="project")
keys_app = typer.Typer(help="Encryption keys (kept outside the database).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(wall_app, name="wall")
app.add_typer(audit_app, name="audit")
app.add_typer(webhook_app, name="webhook")


@app.command()
@cli_errors
def init(
    username: Annotated[str, typer.Option(help="Username of the first operator.")] = "admin",
    password_file: Annotated[
        Path | None, typer.Option(help="File holding the operator's password (else you are asked).")
    ] = None,
) -> None:
    """Create the data directory, keys and database, and the first operator account."""
    from labelvault.bootstrap import initialize

    settings = load_settings()
    password = read_secret_file(password_file) if password_file else None
    services = initialize(settings, None, None)
    try:
        with services.uow_factory.system() as uow:
            has_operator = uow.users.operators_exist()
        if not has_operator:
            password = password if password is not None else prompt_new_password()
            services.accounts.create_user(None, username, password, is_operator=True)
            console.print(f"operator [bold]{username}[/bold] created")
        console.print(f"LabelVault ready in {settings.home.resolve()} ({services.engine.url.get_backend_name()})")
    finally:
        services.close()


@app.command(name="upgrade")
@cli_errors
def upgrade_command() -> None:
    """Apply pending database migrations (refuses a database newer than this version)."""
    from labelvault.bootstrap import migrate

    with open_services() as services:
        before, head = migrate(services)
        console.print(f"database at {head} (was {before or 'empty'})")


@app.command()
@cli_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (LABELVAULT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (LABELVAULT_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (on SQLite they take turns to write).")] = 1,
) -> None:
    """Run the server."""
    from labelvault.server import run

    settings = load_settings()
    run(settings, host=host or settings.host, port=port or settings.port, workers=workers)


@app.command()
@cli_errors
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the server afterwards.")] = True,
) -> None:
    """Create (once) a demo install with a client, one project per question type and sample tasks; serve it."""
    from labelvault.bootstrap import initialize
    from labelvault.demo.seed import DEMO_USERNAME, seed_demo
    from labelvault.server import run

    settings = load_settings()
    credentials = settings.home / "demo-login.txt"
    login: str | None = None
    if credentials.exists():
        login = credentials.read_text().split("password: ", 1)[1].strip()
        services = initialize(settings, None, None)
    else:
        password = secrets.token_urlsafe(12)
        services = initialize(settings, DEMO_USERNAME, password)
        if services.accounts.first_operator().username == DEMO_USERNAME:  # we made it: hand it out
            credentials.write_text(f"username: {DEMO_USERNAME}\npassword: {password}\n")
            credentials.chmod(0o600)
            login = password
    try:
        summary = seed_demo(services)
    finally:
        services.close()
    console.print(f"[green]demo ready[/green] in {settings.home.resolve()}: {summary}")
    url = f"http://{settings.host}:{settings.port}"
    if login is not None:
        console.print(f"open {url}/ and log in as [bold]{DEMO_USERNAME}[/bold] / [bold]{login}[/bold]")
        console.print(f"API docs at {url}/api/docs (credentials also in {credentials})")
    else:
        console.print(f"open {url}/ and log in with the operator account made by 'labelvault init'")
        console.print(f"API docs at {url}/api/docs")
    if serve_after:
        run(settings, host=settings.host, port=settings.port)


@user_app.command("create")
@cli_errors
def user_create(
    username: str,
    operator: Annotated[bool, typer.Option("--operator", help="Make an operator of the install.")] = False,
    password_file: Annotated[Path | None, typer.Option(help="File holding the password.")] = None,
    no_password: Annotated[bool, typer.Option(help="Token-only account (no password login).")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Create a user."""
    password = None if no_password else (read_secret_file(password_file) if password_file else None)
    if password is None and not no_password:
        raise fail("pass --password-file FILE, or --no-password for a token-only account")
    with open_services() as services:
        actor = local_operator(services, as_operator)
        services.accounts.create_user(actor, username, password, is_operator=operator)
        console.print(f"user [bold]{username}[/bold] created")


@user_app.command("token")
@cli_errors
def user_token(
    username: str,
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")] = "cli",
    as_operator: AsOperator = None,
) -> None:
    """Issue an API token for a user and print it (shown once)."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        issued = services.accounts.issue_token(actor, name, for_username=username)
        typer.echo(issued.token)


@user_app.command("tokens")
@cli_errors
def user_tokens(username: str, as_operator: AsOperator = None) -> None:
    """List a person's API tokens (tab-separated): id, name, first characters, scopes, created,
    revoked (or "active"). ``user revoke-token ID`` revokes one."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        owner = services.accounts.actor_by_username(username).user_id
        for token in every_page(functools.partial(services.accounts.list_tokens, actor, user_id=owner)):
            revoked = token.revoked_at.isoformat(timespec="seconds") if token.revoked_at else "active"
            typer.echo(f"{token.id}\t{token.name}\t{token.display_prefix}\t{' '.join(token.scopes)}\t"
                       f"{token.created_at.isoformat(timespec='seconds')}\t{revoked}")


@user_app.command("revoke-token")
@cli_errors
def user_revoke_token(token_id: int, as_operator: AsOperator = None) -> None:
    """Revoke an API token by its id (``user tokens USERNAME`` lists them): it stops working at once
    here, within LABELVAULT_TOKEN_CACHE_SECONDS on running servers."""
    with open_services() as services:
        services.accounts.revoke_token(local_operator(services, as_operator), token_id)
        console.print(f"token {token_id} revoked", highlight=False)


@user_app.command("password")
@cli_errors
def user_password(
    username: str,
    password_file: Annotated[Path | None, typer.Option(help="File holding the new password (else asked).")] = None,
    as_operator: AsOperator = None,
) -> None:
    """Set a new password for a person who lost theirs: their web sessions end, their earlier failed
    logins are forgotten; API tokens stay (revoke them apart if they may be known to others)."""
    password = read_secret_file(password_file) if password_file else prompt_new_password(username)
    with open_services() as services:
        services.accounts.reset_password(local_operator(services, as_operator), username, password)
        console.print(f"new password set for {username}", highlight=False)


@user_app.command("list")
@cli_errors
def user_list(as_operator: AsOperator = None) -> None:
    """List users (tab-separated): id, username, display name, operator or not, active or deactivated."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        for user in every_page(functools.partial(services.accounts.list_users, actor)):
            typer.echo(f"{user.id}\t{user.username}\t{user.display_name}\t"
                       f"{'operator' if user.is_operator else 'user'}\t{'active' if user.is_active else 'deactivated'}")


@user_app.command("deactivate")
@cli_errors
def user_deactivate(username: str, as_operator: AsOperator = None) -> None:
    """Deactivate a person who leaves: their password, API tokens and web sessions stop working at
    once, and the tasks they held go back to the queues; their work, earnings and audit trail
    stay. ``user reactivate`` undoes it."""
    with open_services() as services:
        services.accounts.set_active(local_operator(services, as_operator), username, active=False)
        console.print(f"{username} is deactivated", highlight=False)


@user_app.command("reactivate")
@cli_errors
def user_reactivate(username: str, as_operator: AsOperator = None) -> None:
    """Let a deactivated person log in and work again (their earlier tokens work again too)."""
    with open_services() as services:
        services.accounts.set_active(local_operator(services, as_operator), username, active=True)
        console.print(f"{username} is active", highlight=False)


@client_app.command("create")
@cli_errors
def client_create(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    currency: Annotated[str, typer.Option(help="ISO 4217 currency for rates and pay.")] = "USD",
    as_operator: AsOperator = None,
) -> None:
    """Create a client, with its own encryption keys."""
    with open_services() as services:
        info = services.clients.create(local_operator(services, as_operator), slug, name, currency=currency)
        console.print(f"client [bold]{info.slug}[/bold] created (id {info.id})")


@client_app.command("add-member")
@cli_errors
def client_add_member(
    client: str,
    username: str,
    role: Annotated[str, typer.Argument(help="manager, reviewer, labeler or viewer")],
    as_operator: AsOperator = None,
) -> None:
    """Give a user a role in a client."""
    with open_services() as services:
        client_id = services.clients.resolve(client)
        services.accounts.grant_role(local_operator(services, as_operator), client_id, username, role)
        console.print(f"{username} is {role} in {client}")


@client_app.command("list")
@cli_errors
def client_list(as_operator: AsOperator = None) -> None:
    """List clients: id, slug, name, status (tab-separated)."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        for info in every_page(functools.partial(services.clients.list, actor)):
            typer.echo(f"{info.id}\t{info.slug}\t{info.name}\t{info.status}")  # tab-separated, for scripts


@client_app.command("offboard")
@cli_errors
def client_offboard(
    client: str,
    to: Annotated[Path, typer.Option("--to", help="New directory for the export bundle and certificate.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the client's keys and data are destroyed.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Export everything of a client (signed manifest), destroy its keys, delete its data, certify it."""
    if not yes:
        raise fail("offboarding destroys the client's keys and data after exporting them: add --yes to confirm")
    with open_services() as services:
        client_id = services.clients.resolve(client)
        with console.status("offboarding") as status:
            result = services.offboarding.offboard(
                local_operator(services, as_operator), client_id, to, progress=lambda step: status.update(step)
            )
        console.print(
            f"client {result.slug} offboarded: {result.files} files exported to {result.directory}, keys destroyed, "
            f"{sum(result.deleted.values())} rows deleted; "
            f"certificate in {result.directory / 'deletion-certificate.json'}"
        )


@client_app.command("import-bundle")
@cli_errors
def client_import_bundle(
    directory: Path,
    slug: Annotated[str | None, typer.Option(help="Slug in this install (default: the bundle's).")] = None,
    as_operator: AsOperator = None,
) -> None:
    """Restore an offboarding bundle (checked against its signed manifest) as a new client."""
    with open_services() as services:
        result = services.bundles.import_bundle(local_operator(services, as_operator), directory, slug=slug)
        console.print(
            f"client {result.slug} restored: {result.projects} projects, {result.tasks} tasks,"
            f" {result.answers} answers, {result.reviews} reviews, {result.files} files"
        )
        if result.files_unplaced:
            console.print(f"{result.files_unplaced} files of the bundle belong to no project (no task refers to"
                          " them; the bundle predates files carrying their project): they stay in the bundle")


@keys_app.command("rotate")
@cli_errors
def keys_rotate() -> None:
    """Re-wrap every client key under a new master key, without downtime."""
    with open_services() as services:
        before = services.keyring.master_key_id
        services.keyring.rotate_master()
        services.audit.record(
            "keys.master_rotated",
            actor=local_operator(services),
            object_kind="master_key",
            object_id=services.keyring.master_key_id,
            details={"previous": before},
        )
        console.print(
            f"master key rotated ({before} -> {services.keyring.master_key_id}); "
            f"{len(services.keyring.client_ids())} client keys re-wrapped"
        )


@project_app.command("create")
@cli_errors
def project_create(
    client: str,
    slug: str,
    schema: Annotated[Path, typer.Option(help="Schema document (YAML or JSON).", exists=False)],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    overlap: Annotated[int, typer.Option(help="Answers wanted per task, from distinct labelers.")] = 1,
    as_operator: AsOperator = None,
) -> None:
    """Create a project in a client from a schema file."""
    with open_services() as services:
        client_id = services.clients.resolve(client)
        info = services.projects.create(
            local_operator(services, as_operator),
            client_id,
            slug=slug,
            name=name,
            schema=schema.read_text(),
            overlap=overlap,
        )
        console.print(f"project [bold]{client}/{info.slug}[/bold] created (id {info.id})")


@project_app.command("list")
@cli_errors
def project_list(client: str, as_operator: AsOperator = None) -> None:
    """List a client's projects (tab-separated): id, the reference other commands take
    (client/project), name, status, tasks, and answers given of those needed (gold tasks left out)."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        client_id = services.clients.resolve(client)
        client_slug = services.clients.get(actor, client_id).slug
        projects = every_page(functools.partial(services.projects.list, actor, client_id))
        for info in projects:
            done = services.projects.progress(actor, client_id, info.id)
            typer.echo(f"{info.id}\t{client_slug}/{info.slug}\t{info.name}\t{info.status}\t"
                       f"{done['tasks']} tasks\t{done['answers_given']}/{done['answers_needed']} answers")


io_commands.register(app)
label_studio_commands.register(app)
queue_commands.register(app, project_app)
quality_commands.register(app)
ops_commands.register(app, keys_app)
predict_commands.register(app)
task_commands.register(app)


if __name__ == "__main__":
    app()
