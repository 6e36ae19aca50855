"""Clients (tenants): creation with their own keys, and listing what an actor may see."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, ClientPolicy
from labelvault.errors import Conflict, InvalidInput, NotFound
from labelvault.storage.models import Client, DataKey
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.access import access_in

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def check_slug(slug: str, what: str) -> str:
    if not SLUG.match(slug):
        raise InvalidInput(
            f"{what} slug {slug!r} must be 1 to 63 lowercase letters, digits or dashes",
            details={"field": "slug"},
        )
    return slug


CURRENCY = re.compile(r"[A-Z]{3}")


def check_currency(currency: str) -> str:
    """A client's currency: an ISO 4217 code (amounts are whole numbers of its minor unit)."""
    if not CURRENCY.fullmatch(currency):
        raise InvalidInput("currency must be an ISO 4217 code such as USD", details={"field": "currency"})
    return currency


@dataclass(frozen=True, slots=True)
class ClientInfo:
    id: int
    slug: str
    name: str
    currency: str
    status: str
    created_at: datetime


def client_info(client: Client) -> ClientInfo:
    return ClientInfo(client.id, client.slug, client.name, client.currency, client.status, client.created_at)


class ClientService:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    def create(self, actor: Actor, slug: str, name: str, *, currency: str = "USD") -> ClientInfo:
        ClientPolicy.create(actor)
        check_slug(slug, "client")
        check_currency(currency)
        with self.uow_factory.system(write=True) as uow:
            if uow.clients.by_slug(slug) is not None:
                raise Conflict(f"client {slug!r} exists already", details={"field": "slug"})
            client = uow.clients.add(Client(slug=slug, name=name or slug, currency=currency))
            audit_log.append(uow, "client.created", actor=actor, client_id=client.id, object_kind="client",
                             object_id=client.id)
            uow.commit()
        self.ensure_keys(client.id)
        return client_info(client)

    def ensure_keys(self, client_id: int) -> None:
        """Give the client its key-encryption key (outside the DB) and a data key (wrapped, inside)."""
        keyring = self.uow_factory.keyring
        if not keyring.has_client_key(client_id):
            keyring.create_client_key(client_id)
        with self.uow_factory.for_client(client_id, write=True) as uow:
            if uow.data_keys.active() is None:
                key = uow.data_keys.add(DataKey(wrapped_key=keyring.new_data_key(client_id)))
                audit_log.append(uow, "key.created", actor=None, client_id=client_id, object_kind="data_key",
                                 object_id=key.id)
            uow.commit()

    def resolve(self, reference: str | int) -> int:
        """A client id from an id or a slug (existence only; access is checked by the use case)."""
        with self.uow_factory.system() as uow:
            client = (
                uow.clients.get(int(reference))
                if isinstance(reference, int) or str(reference).isdigit()
                else uow.clients.by_slug(str(reference))
            )
            if client is None:
                raise NotFound(f"client {reference!r} not found")
            return client.id

    def get(self, actor: Actor, client_id: int) -> ClientInfo:
        with self.uow_factory.for_client(client_id) as uow:
            ClientPolicy.view(access_in(uow, actor))
            client = uow.clients.get(client_id)
            if client is None:
                raise NotFound("client not found")
            return client_info(client)

    def list(self, actor: Actor, *, offset: int = 0, limit: int = 100) -> tuple[list[ClientInfo], int]:
        if actor.is_operator:
            with self.uow_factory.system() as uow:
                return [client_info(c) for c in uow.clients.list(offset=offset, limit=limit)], uow.clients.count()
        # Which clients a person belongs to is the one cross-client read a member needs.
        with self.uow_factory.all_clients() as uow:
            client_ids = sorted({m.client_id for m in uow.memberships.of_user(actor.user_id)})
            page = [uow.clients.get(cid) for cid in client_ids[offset : offset + limit]]
            return [client_info(c) for c in page if c is not None], len(client_ids)
