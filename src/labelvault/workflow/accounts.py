"""Users, passwords, API tokens and roles."""

from __future__ import annotations

import functools
import hashlib
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from labelvault import monitoring
from labelvault.audit import log as audit_log
from labelvault.domain.access import ALL_SCOPES, Actor, Role, Scope, UserPolicy
from labelvault.errors import (
    Conflict,
    InvalidInput,
    LoginThrottled,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from labelvault.settings import Settings
from labelvault.storage.models import ApiToken, LoginFailure, Membership, User, utcnow
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.access import access_in

# OWASP's argon2id baseline (m=19 MiB, t=2, p=1): about 20 ms here, so keep it off hot paths.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so timing does not reveal it. Made
    on first need, not at import: every process (each CLI command too) would pay the hash's 20-50 ms."""
    return _hasher.hash("labelvault-no-such-user")


TOKEN_PREFIX = "lv_"
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_ADDRESS = 50
MIN_PASSWORD_LENGTH = 10
_MAX_CACHED_TOKENS = 10_000
_random = random.Random()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    name: str
    token: str  # shown once, never stored


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    display_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    scopes: list[str]


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    username: str
    display_name: str
    is_operator: bool
    is_active: bool
    has_password: bool = False  # False: they log in through single sign-on or use API tokens only


def _user_info(user: User) -> UserInfo:
    return UserInfo(user.id, user.username, user.display_name, user.is_operator, user.is_active,
                    has_password=user.password_hash is not None)


def _user_actor(user: User, scopes: frozenset[Scope] = ALL_SCOPES) -> Actor:
    return Actor(user_id=user.id, username=user.username, is_operator=user.is_operator, scopes=scopes)


def _parse_scopes(scopes: Iterable[str] | None) -> frozenset[Scope]:
    if scopes is None:
        return ALL_SCOPES
    try:
        parsed = frozenset(Scope(s) for s in scopes)
    except ValueError:
        raise InvalidInput("scopes must be among read, label, manage", details={"field": "scopes"}) from None
    if not parsed:
        raise InvalidInput("a token needs at least one scope", details={"field": "scopes"})
    return parsed


class AccountService:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, token_cache_seconds: float = 5.0) -> None:
        self.uow_factory = uow_factory
        # Token digest -> (actor, monotonic expiry). Looking a token up was a transaction of its own
        # on every API request; for a few seconds the answer is kept. Revoking clears it at once in
        # this process; other server processes notice within ``token_cache_seconds``.
        self.token_cache_seconds = token_cache_seconds
        self._token_actors: dict[str, tuple[Actor, float]] = {}
        # Called with (operator, user id) once a deactivation is committed: what the person still
        # holds is let go (the bootstrap adds the queue's leases; accounts know nothing of queues).
        self.on_deactivated: list[Callable[[Actor, int], object]] = []

    def create_user(
        self,
        actor: Actor | None,
        username: str,
        password: str | None,
        *,
        is_operator: bool = False,
        display_name: str = "",
    ) -> int:
        """Create a user. ``actor`` None is allowed only for the first operator of an install."""
        username = username.strip()
        if not username or len(username) > 100:
            raise InvalidInput("username must be 1 to 100 characters", details={"field": "username"})
        password_hash = hash_password(password) if password is not None else None
        with self.uow_factory.system(write=True) as uow:
            if actor is None:
                if uow.users.operators_exist():
                    raise PermissionDenied("an operator exists already; log in as one to add users")
                is_operator = True
            else:
                UserPolicy.administer(actor)
            if uow.users.by_username(username) is not None:
                raise Conflict(f"user {username!r} exists already", details={"field": "username"})
            user = uow.users.add(
                User(
                    username=username,
                    password_hash=password_hash,
                    is_operator=is_operator,
                    display_name=display_name or username,
                )
            )
            audit_log.append(
                uow,
                "user.created",
                actor=actor,
                object_kind="user",
                object_id=user.id,
                details={"operator": is_operator},
            )
            uow.commit()
            return user.id

    def authenticate(self, username: str, password: str, *, address: str = "") -> Actor:
        """Check a password. Failures are counted in the database (so every server process sees
        them); too many for a username or an address in the window locks logins out for a while."""
        since = utcnow() - LOGIN_WINDOW
        with self.uow_factory.system() as uow:
            if uow.login_failures.count_for_username(username, since) >= MAX_FAILURES_PER_USERNAME or (
                address and uow.login_failures.count_for_address(address, since) >= MAX_FAILURES_PER_ADDRESS
            ):
                raise LoginThrottled(
                    f"too many failed logins; try again in {int(LOGIN_WINDOW.total_seconds() // 60)} minutes"
                )
            user = uow.users.by_username(username)
        stored = user.password_hash if user is not None and user.is_active else None
        try:
            _hasher.verify(stored or _dummy_hash(), password)
            if user is None or stored is None:
                raise VerificationError
        except (VerificationError, InvalidHashError):
            self._record_failure(username, address)
            raise NotAuthenticated("wrong username or password") from None
        with self.uow_factory.system(write=True) as uow:
            uow.login_failures.clear(username)
            audit_log.append(uow, "login.succeeded", actor=_user_actor(user), object_kind="user", object_id=user.id)
            uow.commit()
        return _user_actor(user)

    def _record_failure(self, username: str, address: str) -> None:
        monitoring.LOGIN_FAILURES.inc()
        with self.uow_factory.system(write=True) as uow:
            uow.login_failures.add(LoginFailure(username=username[:100], address=address[:64]))
            audit_log.append(
                uow,
                "login.failed",
                actor=None,
                object_kind="username",
                object_id=username[:100],
                outcome="denied",
                details={"address": address[:64]},
            )
            uow.commit()

    def issue_token(
        self, actor: Actor, name: str, *, for_username: str | None = None, scopes: Iterable[str] | None = None
    ) -> IssuedToken:
        """A new API token for the actor (or, for an operator, for another user), limited to ``scopes``."""
        chosen = _parse_scopes(scopes)
        if not chosen <= actor.scopes:
            raise PermissionDenied("a token cannot have scopes its maker's token lacks")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.uow_factory.system(write=True) as uow:
            user_id = actor.user_id
            if for_username is not None and for_username != actor.username:
                UserPolicy.administer(actor)
                user = uow.users.by_username(for_username)
                if user is None:
                    raise NotFound(f"user {for_username!r} not found")
                user_id = user.id
            row = uow.tokens.add(
                ApiToken(
                    user_id=user_id,
                    name=name[:100] or "token",
                    display_prefix=token[:10],
                    token_hash=token_digest(token),
                    scopes=" ".join(sorted(chosen)),
                )
            )
            audit_log.append(
                uow, "token.issued", actor=actor, object_kind="token", object_id=row.id, details={"user_id": user_id}
            )
            uow.commit()
            return IssuedToken(id=row.id, name=row.name, token=token)

    def cached_actor(self, token: str) -> Actor | None:
        """The token's owner if this process looked the token up in the last few seconds, else None."""
        return self._cached(token_digest(token))

    def _cached(self, digest: str) -> Actor | None:
        cached = self._token_actors.get(digest)
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    def actor_for_token(self, token: str) -> Actor:
        if not token.startswith(TOKEN_PREFIX):
            raise NotAuthenticated("not a LabelVault token")
        digest = token_digest(token)
        if (cached := self._cached(digest)) is not None:
            return cached
        with self.uow_factory.system() as uow:
            row = uow.tokens.owner_by_hash(digest)
        if row is None or row.revoked_at is not None or not row.is_active:
            raise NotAuthenticated("invalid or revoked token")
        actor = Actor(user_id=row.user_id, username=row.username, is_operator=row.is_operator,
                      scopes=_parse_scopes(row.scopes.split()))
        if self.token_cache_seconds > 0:
            if len(self._token_actors) >= _MAX_CACHED_TOKENS:
                self._token_actors.clear()
            # Jittered, so that tokens first seen together (a shift starting) are not all looked up
            # again in the same instant.
            lifetime = self.token_cache_seconds * _random.uniform(0.5, 1.0)
            self._token_actors[digest] = (actor, time.monotonic() + lifetime)
        return actor

    def list_tokens(self, actor: Actor, *, user_id: int | None = None, offset: int = 0,
                    limit: int = 100) -> tuple[list[TokenInfo], int]:
        """The actor's own tokens, or (operators) another person's: to find what to revoke."""
        owner = actor.user_id if user_id is None else user_id
        if owner != actor.user_id:
            UserPolicy.administer(actor)
        with self.uow_factory.system() as uow:
            if owner != actor.user_id and uow.users.get(owner) is None:
                raise NotFound(f"user {owner} not found")
            rows = uow.tokens.of_user(owner, offset=offset, limit=limit)
            items = [
                TokenInfo(r.id, r.name, r.display_prefix, r.created_at, r.revoked_at, r.scopes.split()) for r in rows
            ]
            return items, uow.tokens.count_of_user(owner)

    def get_user(self, actor: Actor, user_id: int) -> UserInfo:
        if actor.user_id != user_id:
            UserPolicy.administer(actor)
        with self.uow_factory.system() as uow:
            user = uow.users.get(user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            return _user_info(user)

    def list_users(self, actor: Actor, *, offset: int = 0, limit: int = 100) -> tuple[list[UserInfo], int]:
        UserPolicy.administer(actor)
        with self.uow_factory.system() as uow:
            return [_user_info(u) for u in uow.users.list(offset=offset, limit=limit)], uow.users.count()

    def revoke_token(self, actor: Actor, token_id: int) -> None:
        with self.uow_factory.system(write=True) as uow:
            row = uow.tokens.get(token_id)
            if row is None or (row.user_id != actor.user_id and not actor.is_operator):
                raise NotFound(f"token {token_id} not found")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                audit_log.append(uow, "token.revoked", actor=actor, object_kind="token", object_id=row.id)
            uow.commit()
        self._token_actors.clear()

    def change_password(self, actor: Actor, current_password: str, new_password: str, *, address: str = "",
                        keep_session: str | None = None) -> None:
        """A person changes their own password, giving the current one (checked, and throttled, as
        a login). Their other web sessions end; ``keep_session`` (the id of the one they did it in)
        goes on. API tokens stay: they are credentials of their own, revoked one by one."""
        self.authenticate(actor.username, current_password, address=address)
        keep_hash = token_digest(keep_session) if keep_session else None  # sessions are stored so
        self._store_password(actor, actor.user_id, new_password, "user.password_changed", keep_hash)

    def reset_password(self, actor: Actor, username: str, new_password: str) -> None:
        """An operator sets a new password for a person who lost theirs (or whose password may be
        known to others): every web session of theirs ends, and earlier failed logins are forgotten."""
        UserPolicy.administer(actor)
        target = self.actor_by_username(username)
        self._store_password(actor, target.user_id, new_password, "user.password_reset", None)

    def _store_password(self, actor: Actor, user_id: int, new_password: str, action: str,
                        keep_session_hash: str | None) -> None:
        password_hash = hash_password(new_password)  # refuses a short one before anything changes
        with self.uow_factory.system(write=True) as uow:
            user = uow.users.get(user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            user.password_hash = password_hash
            ended = uow.web_sessions.remove_of_user(user_id, keep_hash=keep_session_hash)
            uow.login_failures.clear(user.username)
            audit_log.append(uow, action, actor=actor, object_kind="user", object_id=user_id,
                             details={"sessions_ended": ended})
            uow.commit()

    def set_active(self, actor: Actor, username: str, *, active: bool) -> UserInfo:
        """Deactivate a person who leaves, or bring them back. Deactivated, their password and API
        tokens stop working and their web sessions end, at once (in other server processes, tokens within
        ``token_cache_seconds``); their answers, reviews, earnings, roles and audit trail stay as
        they are. Then ``on_deactivated`` lets go of what they held (the bootstrap's: their open
        leases, whose tasks go back to the queues at once). Operators only, and not on themselves
        (so an active operator is always left)."""
        UserPolicy.administer(actor)
        with self.uow_factory.system(write=True) as uow:
            user = uow.users.by_username(username.strip())
            if user is None:
                raise NotFound(f"user {username!r} not found")
            changed = user.is_active != active
            if changed:
                if user.id == actor.user_id:
                    raise Conflict("you cannot deactivate yourself; ask another operator")
                user.is_active = active
                if not active:  # ended, not just refused: a reactivation does not bring them back
                    uow.web_sessions.remove_of_user(user.id)
                audit_log.append(uow, "user.reactivated" if active else "user.deactivated", actor=actor,
                                 object_kind="user", object_id=user.id)
            uow.commit()
            info = _user_info(user)
        self._token_actors.clear()  # this process's cached tokens: the change applies at once
        if changed and not active:
            for let_go in self.on_deactivated:
                let_go(actor, info.id)
        return info

    def first_operator(self) -> Actor:
        with self.uow_factory.system() as uow:
            user = uow.users.first_operator()
            if user is None:
                raise NotFound("no operator account: run 'labelvault init'")
            return _user_actor(user)

    def actor_by_username(self, username: str) -> Actor:
        with self.uow_factory.system() as uow:
            user = uow.users.by_username(username)
            if user is None:
                raise NotFound(f"user {username!r} not found")
            return _user_actor(user)

    def grant_role(self, actor: Actor, client_id: int, username: str, role: str) -> None:
        try:
            role_value = Role(role)
        except ValueError:
            raise InvalidInput(
                f"unknown role {role!r}; expected one of {', '.join(r.value for r in Role)}",
                details={"field": "role"},
            ) from None
        target = self.actor_by_username(username)
        with self.uow_factory.for_client(client_id, write=True) as uow:
            UserPolicy.grant_role(access_in(uow, actor))
            if uow.clients.get(client_id) is None:
                raise NotFound("client not found")
            if uow.memberships.find(target.user_id, role_value) is None:
                uow.memberships.add(Membership(user_id=target.user_id, role=role_value.value))
                audit_log.append(
                    uow,
                    "role.granted",
                    actor=actor,
                    client_id=client_id,
                    object_kind="user",
                    object_id=target.user_id,
                    details={"role": role_value.value},
                )
            uow.commit()

    def revoke_role(self, actor: Actor, client_id: int, username: str, role: str) -> None:
        target = self.actor_by_username(username)
        with self.uow_factory.for_client(client_id, write=True) as uow:
            UserPolicy.grant_role(access_in(uow, actor))
            membership = uow.memberships.find(target.user_id, role)
            if membership is None:
                raise NotFound(f"{username!r} has no role {role!r} in this client")
            uow.memberships.remove(membership)
            audit_log.append(
                uow,
                "role.revoked",
                actor=actor,
                client_id=client_id,
                object_kind="user",
                object_id=target.user_id,
                details={"role": role},
            )
            uow.commit()


class PasswordlessAccountService(AccountService):
    """The accounts of an install where only single sign-on logs people in: every password is refused
    (the web login form and ``POST /api/auth/token`` both go through ``authenticate``)."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, provider_name: str = "single sign-on", *, token_cache_seconds: float = 5.0
    ) -> None:
        super().__init__(uow_factory, token_cache_seconds=token_cache_seconds)
        self.provider_name = provider_name

    def authenticate(self, username: str, password: str, *, address: str = "") -> Actor:
        raise self._password_login_off()

    def reset_password(self, actor: Actor, username: str, new_password: str) -> None:
        raise self._password_login_off()

    def _password_login_off(self) -> PermissionDenied:
        return PermissionDenied(
            f"password login is switched off on this server; sign in with {self.provider_name} instead",
            code="password_login_disabled",
        )


def build_accounts(settings: Settings, uow_factory: UnitOfWorkFactory) -> AccountService:
    """Password accounts, or (``password_login`` false) accounts that refuse every password."""
    if settings.password_login:
        return AccountService(uow_factory, token_cache_seconds=settings.token_cache_seconds)
    return PasswordlessAccountService(
        uow_factory, settings.sso_provider_name, token_cache_seconds=settings.token_cache_seconds
    )
