"""The audit log on the command line: checkpoints, verification, a client's trail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labelvault.cli.common import cli_errors, console, fail, open_services

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("checkpoint")
@cli_errors
def checkpoint(out: Annotated[Path | None, typer.Option(help="Also write the signed checkpoint here.")] = None) -> None:
    """Sign the current tree head (Ed25519); keep the output somewhere the server cannot write."""
    with open_services() as services:
        info = services.audit.checkpoint()
        if out is not None:
            out.write_text(info.text)
        typer.echo(info.text, nl=False)


@audit_app.command("verify")
@cli_errors
def verify(
    checkpoint: Annotated[list[Path] | None, typer.Option(help="A checkpoint kept outside (repeatable).")] = None,
) -> None:
    """Check every entry and checkpoint; name the first bad entry."""
    with open_services() as services:
        texts = [path.read_text() for path in checkpoint or []]
        report = services.audit.verify(texts)
        if not report.ok:
            where = f" (first bad entry: seq {report.first_bad_seq})" if report.first_bad_seq is not None else ""
            raise fail(f"audit log FAILED verification: {report.problem}: {report.message}{where}")
        console.print(f"audit log OK: {report.size} entries, {report.checkpoints_checked} checkpoints consistent")


@audit_app.command("trail")
@cli_errors
def trail(client: str, out: Annotated[Path, typer.Option(help="JSONL file to write.")]) -> None:
    """Export one client's entries (JSONL, the exact bytes hashed into the log)."""
    with open_services() as services:
        client_id = services.clients.resolve(client)
        count = 0
        with out.open("wb") as handle:
            for line in services.audit.trail(client_id):
                handle.write(line)
                count += 1
        console.print(f"{count} entries of client {client} written to {out}")


@audit_app.command("public-key")
@cli_errors
def public_key() -> None:
    """Print the public key that verifies checkpoints."""
    with open_services() as services:
        typer.echo(services.audit.public_key_pem(), nl=False)
