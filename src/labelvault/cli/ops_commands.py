"""Backup, restore and key export: what an operator needs to keep an install for years."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from labelvault.cli.common import AsOperator, cli_errors, console, fail, load_settings, local_operator, open_services


def _passphrase(path: Path | None, *, confirm: bool) -> str:
    if path is not None:
        return path.read_text().strip("\r\n")
    if not sys.stdin.isatty():
        raise fail("no terminal to ask for the passphrase: pass --passphrase-file")
    return str(typer.prompt("Passphrase for the key export", hide_input=True, confirmation_prompt=confirm))


@cli_errors
def backup(
    to: Annotated[Path, typer.Option("--to", help="New directory for the backup.")],
    as_operator: AsOperator = None,
) -> None:
    """Take a consistent online backup (database, files, manifest of hashes). Keys are not in it."""
    with open_services() as services:
        result = services.backups.backup(local_operator(services, as_operator), to)
        services.audit.record(
            "install.backed_up", actor=local_operator(services, as_operator), object_kind="backup", object_id=str(to)
        )
        console.print(
            f"backup written to {result.directory}: {result.files} files, migration {result.revision}; "
            "keys are NOT included (labelvault keys export)"
        )


@cli_errors
def restore(
    source: Annotated[Path, typer.Option("--from", help="A backup directory.")],
    keys: Annotated[Path | None, typer.Option(help="A key export (labelvault keys export).")] = None,
    passphrase_file: Annotated[Path | None, typer.Option(help="File holding the key export's passphrase.")] = None,
) -> None:
    """Rebuild an empty install from a backup (and its keys), then bring it to this version."""
    from labelvault.bootstrap import build_services, migrate
    from labelvault.workflow.backup import restore as restore_backup

    settings = load_settings()
    passphrase = _passphrase(passphrase_file, confirm=False) if keys is not None else None
    kind = restore_backup(settings, source, keys_file=keys, passphrase=passphrase)  # nothing written if refused
    settings.home.mkdir(parents=True, exist_ok=True)
    services = build_services(settings, lazy=True)
    try:
        before, head = migrate(services)
        report = services.audit.verify()
    finally:
        services.close()
    if not report.ok:
        raise fail(f"restored, but the audit log does not verify: {report.message}")
    console.print(
        f"restored {kind} install into {settings.home.resolve()} (migration {before} -> {head}); "
        f"audit log verified: {report.size} entries"
    )


@cli_errors
def keys_export(
    to: Annotated[Path, typer.Option("--to", help="File to write (must not exist).")],
    passphrase_file: Annotated[Path | None, typer.Option(help="File holding the passphrase (else asked).")] = None,
    as_operator: AsOperator = None,
) -> None:
    """Export the key directory sealed under a passphrase (argon2id). Keep it apart from backups."""
    with open_services() as services:
        actor = local_operator(services, as_operator)
        count = services.backups.export_keys(actor, to, _passphrase(passphrase_file, confirm=True))
        services.audit.record("keys.exported", actor=actor, object_kind="key_export", object_id=str(to))
    console.print(f"{count} key files sealed into {to}; store it apart from the database backups")


@cli_errors
def import_url(
    project: Annotated[str, typer.Argument(help="Project id or client-slug/project-slug.")],
    url: Annotated[str, typer.Argument(help="http(s) URL on a host of LABELVAULT_IMPORT_ALLOWED_HOSTS.")],
    format: Annotated[str | None, typer.Option(help="jsonl, csv or parquet (else from the URL).")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Write the valid rows and report the others.")] = False,
    as_operator: AsOperator = None,
) -> None:
    """Import tasks from a URL (allowed hosts only; private and metadata addresses refused)."""
    with open_services() as services:
        client_id, project_id = services.projects.locate(project)
        report = services.url_imports.import_url(
            local_operator(services, as_operator), client_id, project_id, url, format=format, skip_invalid=skip_invalid
        )
        console.print(
            f"{report.created} tasks created, {report.already_present} already present, {report.invalid} invalid"
        )


def register(app: typer.Typer, keys_app: typer.Typer) -> None:
    app.command("import-url")(import_url)
    app.command("backup")(backup)
    app.command("restore")(restore)
    keys_app.command("export")(keys_export)
