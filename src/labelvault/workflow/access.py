"""Reading an actor's roles inside the unit of work that is about to use them."""

from __future__ import annotations

from labelvault.domain.access import Actor, ClientAccess, Role
from labelvault.storage.unit_of_work import UnitOfWork


def access_in(uow: UnitOfWork, actor: Actor) -> ClientAccess:
    roles = frozenset(Role(r) for r in uow.memberships.roles_of(actor.user_id))
    return ClientAccess(actor=actor, client_id=uow.client_id, roles=roles)
