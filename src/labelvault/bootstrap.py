"""The one place that wires settings, engine, keyring and use cases together."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlalchemy import Engine

from labelvault.crypto.keyring import Keyring
from labelvault.errors import InvalidInput
from labelvault.settings import Settings
from labelvault.storage.engine import build_engine
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.accounts import AccountService
from labelvault.workflow.clients import ClientService
from labelvault.workflow.labeling import LabelingService
from labelvault.workflow.projects import ProjectService
from labelvault.workflow.review import ReviewService


@dataclass
class Services:
    settings: Settings
    engine: Engine
    keyring: Keyring
    uow_factory: UnitOfWorkFactory
    accounts: AccountService
    clients: ClientService
    projects: ProjectService
    labeling: LabelingService
    reviews: ReviewService

    def close(self) -> None:
        self.engine.dispose()


def open_keyring(settings: Settings, *, create: bool = False) -> Keyring:
    keys_dir = settings.resolved_keys_dir
    if settings.master_key:
        try:
            master = base64.b64decode(settings.master_key, validate=True)
        except ValueError:
            raise InvalidInput("LABELVAULT_MASTER_KEY is not valid base64") from None
        return Keyring.open(keys_dir, master_key=master)
    return Keyring.initialize(keys_dir) if create else Keyring.open(keys_dir)


def build_services(settings: Settings, *, create_keys: bool = False) -> Services:
    engine = build_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    keyring = open_keyring(settings, create=create_keys)
    uow_factory = UnitOfWorkFactory(engine, keyring)
    return Services(
        settings=settings,
        engine=engine,
        keyring=keyring,
        uow_factory=uow_factory,
        accounts=AccountService(uow_factory),
        clients=ClientService(uow_factory),
        projects=ProjectService(uow_factory, default_lease_seconds=settings.lease_seconds),
        labeling=LabelingService(uow_factory),
        reviews=ReviewService(uow_factory),
    )
