"""Browser sessions: log in with a password, look a session up, check its CSRF token, log out.

Sessions live in the database (``web_sessions``), never in a process, so any server process
can serve any request. The cookie holds 32 random bytes (URL-safe base64); only their SHA-256
is stored, so a database dump hands out no live session. Every login makes a new session id
(and drops the one the browser came with), so an id planted before login is worthless.

Each session has its own CSRF token, sent back in form posts (field ``csrf_token``) and in
``fetch()`` requests (header ``X-CSRF-Token``), and compared in constant time.

Lifetime: a session ends after :data:`IDLE_TIMEOUT` without a request, and at the latest
:data:`MAX_AGE` after login. ``last_seen_at`` is written at most every :data:`TOUCH_EVERY`, so
reading pages does not turn into a database write per request.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, ClientPolicy, Role, UserPolicy
from labelvault.errors import NotAuthenticated, PermissionDenied
from labelvault.storage.models import Client, Membership, WebSession, utcnow
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.accounts import AccountService, token_digest

# Names shared by the interfaces that accept a session (web pages and the JSON API).
SESSION_COOKIE = "lv_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

IDLE_TIMEOUT = timedelta(hours=2)
MAX_AGE = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=2)


# Sessions are stored by the SHA-256 of their id, as tokens are (accounts ends them by it too).
_digest = token_digest


@dataclass(frozen=True, slots=True)
class WebLogin:
    """A new session: ``session_id`` goes into the cookie and is never stored or shown again."""

    session_id: str
    csrf_token: str
    actor: Actor
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class WebSessionInfo:
    actor: Actor
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ClientRoles:
    """A person's roles in one client (what the pages offer them there)."""

    client_id: int
    slug: str
    name: str
    currency: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)


class WebSessionService:
    def __init__(self, uow_factory: UnitOfWorkFactory, accounts: AccountService) -> None:
        self.uow_factory = uow_factory
        self.accounts = accounts

    def login(self, username: str, password: str, *, address: str = "", replacing: str | None = None) -> WebLogin:
        """Check the password (throttled and audited by the accounts), then start a new session."""
        actor = self.accounts.authenticate(username, password, address=address)
        return self.start(actor, address=address, replacing=replacing)

    def start(self, actor: Actor, *, address: str = "", replacing: str | None = None,
              method: str = "password") -> WebLogin:
        """A new session for a person whose identity is already checked (a password, single sign-on)."""
        session_id = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + IDLE_TIMEOUT
        with self.uow_factory.system(write=True) as uow:
            if replacing:
                uow.web_sessions.remove(_digest(replacing))
            uow.web_sessions.remove_expired(now)
            row = uow.web_sessions.add(WebSession(
                id_hash=_digest(session_id), user_id=actor.user_id, csrf_token=csrf_token,
                created_at=now, expires_at=expires, last_seen_at=now,
            ))
            audit_log.append(uow, "web_session.started", actor=actor, object_kind="web_session",
                             object_id=row.id, details={"address": address[:64], "method": method})
            uow.commit()
        return WebLogin(session_id, csrf_token, actor, expires)

    def lookup(self, session_id: str) -> WebSessionInfo:
        """The session's person and CSRF token; ``NotAuthenticated`` if it is unknown or over."""
        if not session_id or len(session_id) > 100:
            raise NotAuthenticated("please log in")
        now = utcnow()
        with self.uow_factory.system() as uow:
            row = uow.web_sessions.by_hash(_digest(session_id))
            user = uow.users.get(row.user_id) if row is not None else None
            if row is None or user is None or not user.is_active or row.expires_at <= now:
                raise NotAuthenticated("your session has ended; please log in again")
            actor = Actor(user_id=user.id, username=user.username, is_operator=user.is_operator)
            info = WebSessionInfo(actor, row.csrf_token, row.expires_at)
            stale = now - row.last_seen_at >= TOUCH_EVERY
            row_id, created = row.id, row.created_at
        if stale:
            expires = min(now + IDLE_TIMEOUT, created + MAX_AGE)
            with self.uow_factory.system(write=True) as uow:
                uow.web_sessions.touch(row_id, now, expires)
                uow.commit()
            info = WebSessionInfo(actor, info.csrf_token, expires)
        return info

    @staticmethod
    def check_csrf(session: WebSessionInfo, token: str | None) -> None:
        if not token or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
            raise PermissionDenied("the form is out of date or did not come from this site; reload and try again",
                                   code="csrf_failed")

    def logout(self, session_id: str) -> None:
        if not session_id or len(session_id) > 100:
            return
        with self.uow_factory.system(write=True) as uow:
            row = uow.web_sessions.by_hash(_digest(session_id))
            if row is not None:
                user = uow.users.get(row.user_id)
                actor = Actor(user.id, user.username, user.is_operator) if user is not None else None
                uow.web_sessions.remove(row.id_hash)
                audit_log.append(uow, "web_session.ended", actor=actor, object_kind="web_session", object_id=row.id)
            uow.commit()

    def memberships(self, actor: Actor, user_id: int | None = None) -> list[ClientRoles]:
        """The clients a person belongs to, with their roles there (the pages they are offered).

        A person asks for their own; an operator may ask for anyone's. Reading one person's
        memberships across clients is the one cross-client read this needs (ids and roles only).
        """
        target = actor.user_id if user_id is None else user_id
        if target != actor.user_id:
            UserPolicy.administer(actor)
        with self.uow_factory.all_clients() as uow:
            rows = uow.session.execute(
                select(Membership.client_id, Membership.role).where(Membership.user_id == target)
            ).all()
            roles: dict[int, set[Role]] = {}
            for client_id, role in rows:
                roles.setdefault(client_id, set()).add(Role(role))
            clients = uow.session.scalars(select(Client).where(Client.id.in_(roles)).order_by(Client.name)).all()
            return [ClientRoles(c.id, c.slug, c.name, c.currency, frozenset(roles[c.id])) for c in clients]

    def request_offboarding(self, actor: Actor, client_id: int) -> int:
        """A client's manager asks the operator to offboard it: recorded in the audit log only.

        The offboarding itself is an operator command; this is the request it answers to.
        Returns the audit entry's sequence number (shown as the request's reference). No free
        text is recorded: audit entries never hold content, and they outlive the client.
        """
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ClientPolicy.manage(access_in(uow, actor))
            seq = audit_log.append(uow, "client.offboarding_requested", actor=actor, client_id=client_id,
                                   object_kind="client", object_id=client_id)
            uow.commit()
            return seq
