"""Creating an install: data directory, keys, database schema and the first operator."""

from __future__ import annotations

from dataclasses import dataclass

from labelvault.bootstrap import Services, build_services
from labelvault.settings import Settings
from labelvault.storage.migrate import upgrade


@dataclass(frozen=True, slots=True)
class InitResult:
    created_operator: bool
    database_url: str


def prepare_home(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.files_dir.mkdir(parents=True, exist_ok=True)


def initialize(settings: Settings, operator_username: str | None, operator_password: str | None) -> Services:
    """Idempotent: creates what is missing, migrates to head, adds the first operator if none."""
    prepare_home(settings)
    services = build_services(settings, create_keys=True)
    upgrade(services.engine)
    if operator_username and operator_password is not None:
        with services.uow_factory.system() as uow:
            has_operator = uow.users.operators_exist()
        if not has_operator:
            services.accounts.create_user(None, operator_username, operator_password, is_operator=True)
    return services
