"""Who is acting, and what each role may do. One policy per resource, asked by the use cases.

Rule of disclosure: a person with no role in a client is told the object does not exist
(``NotFound``), never that it is forbidden, so ids of other clients reveal nothing. A member
whose role is not enough for the action gets ``PermissionDenied``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from labelvault.errors import NotFound, PermissionDenied


class Role(StrEnum):
    MANAGER = "manager"
    REVIEWER = "reviewer"
    LABELER = "labeler"
    VIEWER = "viewer"


class Scope(StrEnum):
    """What an API token may be used for; a token never exceeds its user's roles."""

    READ = "read"
    LABEL = "label"
    MANAGE = "manage"


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated person (or their API token, whose scopes limit what it may do)."""

    user_id: int
    username: str
    is_operator: bool = False
    scopes: frozenset[Scope] = ALL_SCOPES

    def require_scope(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(f"this token lacks the scope {scope.value!r}")


@dataclass(frozen=True, slots=True)
class ClientAccess:
    """An actor as seen inside one client: their roles there."""

    actor: Actor
    client_id: int
    roles: frozenset[Role] = field(default_factory=frozenset)

    @property
    def is_member(self) -> bool:
        return self.actor.is_operator or bool(self.roles)

    def has(self, *roles: Role) -> bool:
        return self.actor.is_operator or any(role in self.roles for role in roles)


def _require(access: ClientAccess, what: str, action: str, *roles: Role, scope: Scope = Scope.READ) -> None:
    if not access.is_member:
        raise NotFound(f"{what} not found")
    access.actor.require_scope(scope)
    if not access.has(*roles):
        needed = " or ".join(role.value for role in roles)
        raise PermissionDenied(f"{action} needs the role {needed}")


class ClientPolicy:
    @staticmethod
    def view(access: ClientAccess) -> None:
        _require(access, "client", "viewing the client", *Role)

    @staticmethod
    def manage(access: ClientAccess) -> None:
        _require(access, "client", "managing the client", Role.MANAGER, scope=Scope.MANAGE)

    @staticmethod
    def create(actor: Actor) -> None:
        actor.require_scope(Scope.MANAGE)
        if not actor.is_operator:
            raise PermissionDenied("creating clients needs an operator")

    @staticmethod
    def read_own_earnings(access: ClientAccess) -> None:
        # Anyone with a role may be paid (answers, reviews, bonuses), so anyone with a role may read
        # their own money events; a read-only token is enough.
        _require(access, "client", "reading your earnings", *Role)


class ProjectPolicy:
    @staticmethod
    def view(access: ClientAccess) -> None:
        _require(access, "project", "viewing the project", *Role)

    @staticmethod
    def manage(access: ClientAccess) -> None:
        _require(access, "project", "changing the project", Role.MANAGER, scope=Scope.MANAGE)

    @staticmethod
    def import_tasks(access: ClientAccess) -> None:
        _require(access, "project", "importing tasks", Role.MANAGER, scope=Scope.MANAGE)

    @staticmethod
    def export(access: ClientAccess) -> None:
        _require(access, "project", "exporting the project", Role.MANAGER, scope=Scope.MANAGE)

    @staticmethod
    def read_own_earnings(access: ClientAccess) -> None:
        _require(access, "project", "reading your earnings", *Role)

    @staticmethod
    def label(access: ClientAccess) -> None:
        # Labeling is a role of its own; operators and managers do not silently become labelers.
        if not access.is_member:
            raise NotFound("project not found")
        access.actor.require_scope(Scope.LABEL)
        if Role.LABELER not in access.roles:
            raise PermissionDenied("labeling needs the role labeler in this client")


class UserPolicy:
    @staticmethod
    def administer(actor: Actor) -> None:
        actor.require_scope(Scope.MANAGE)
        if not actor.is_operator:
            raise PermissionDenied("managing users needs an operator")

    @staticmethod
    def grant_role(access: ClientAccess) -> None:
        _require(access, "client", "granting roles", Role.MANAGER, scope=Scope.MANAGE)
