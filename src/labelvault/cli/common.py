"""What every command shares: settings, services, the local operator, one-line errors.

Each command runs in a process of its own, and importing every module of the product was most of
its start-up: the command modules import the services (bootstrap) and the heavier modules inside
the commands that use them, and ``open_services`` builds each use case on first use.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from labelvault.domain.access import Actor
from labelvault.errors import LabelVaultError, NotFound
from labelvault.settings import Settings

if TYPE_CHECKING:
    from labelvault.bootstrap import Services

AsOperator = Annotated[str | None, typer.Option("--as", help="Operator account to act as (default: the first).")]

# soft_wrap: never break long lines (paths, URLs, tokens) when the output is a pipe or a file.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into one clear line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except LabelVaultError as exc:
            raise fail(exc.message) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise fail(f"{exc.strerror}: {exc.filename}") from None

    return wrapper


def load_settings() -> Settings:
    return Settings()


@contextmanager
def open_services(*, create_keys: bool = False) -> Iterator[Services]:
    settings = load_settings()
    if not create_keys and settings.database_url is None and not (settings.home / "labelvault.db").exists():
        raise fail(f"no LabelVault data in {settings.home.resolve()}: run 'labelvault init' first")
    from labelvault.bootstrap import build_services

    services = build_services(settings, create_keys=create_keys, lazy=True)  # a command uses a few
    try:
        yield services
    finally:
        services.close()


def local_operator(services: Services, username: str | None = None) -> Actor:
    """The CLI runs on the server with its keys: it acts as an operator account (audited as such)."""
    actor = services.accounts.actor_by_username(username) if username else services.accounts.first_operator()
    if not actor.is_operator:
        raise NotFound(f"{actor.username!r} is not an operator")
    return actor


def every_page(fetch: Callable[..., tuple[list[R], int]], page_size: int = 500) -> Iterator[R]:
    """Every item of a use case's listing (``fetch(offset=..., limit=...)`` returns a page and the
    total, as the services' ``list`` methods do), page by page: a listing never stops at one page."""
    offset = 0
    while True:
        items, total = fetch(offset=offset, limit=page_size)
        yield from items
        offset += len(items)
        if not items or offset >= total:
            return


def read_secret_file(path: Path) -> str:
    return path.read_text().strip("\r\n")


def prompt_new_password(who: str = "the operator") -> str:
    if not sys.stdin.isatty():
        raise fail("no terminal to ask for a password: pass --password-file")
    return str(typer.prompt(f"Password for {who}", hide_input=True, confirmation_prompt=True))
