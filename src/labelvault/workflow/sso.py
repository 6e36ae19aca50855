"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, as a relying party.

``SsoService.begin`` makes a pending login (state, nonce, PKCE verifier) and the address at the
provider to send the browser to. ``SsoService.complete`` takes the provider's answer: it takes
the pending login out of the database (so a state works once, on any server process), exchanges
the code for tokens, verifies the ID token (signature against the provider's JWKS, ``iss``,
``aud``, ``exp``, ``nonce``), finds or creates the person by (issuer, subject), never by e-mail,
sets their client roles from the mapped claim, audits the login and starts a web session.

The protocol pieces are Authlib's (authorization URI, PKCE S256, ID token claims) and joserfc's
(JWS); HTTP to the provider is httpx, with short timeouts. Provider metadata and keys are cached
per process for a while: they are public and every process can fetch its own.

Local passwords can be switched off (``LABELVAULT_PASSWORD_LOGIN=false``):
:class:`PasswordlessAccountService` then refuses every password, on the web and the API alike.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, InvalidKeyIdError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, Role
from labelvault.errors import InvalidInput, NotAuthenticated, PermissionDenied
from labelvault.settings import Settings
from labelvault.storage.models import Membership, PendingSsoLogin, User, UserIdentity, utcnow
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.web_sessions import WebLogin, WebSessionService

log = logging.getLogger(__name__)

PENDING_FOR = timedelta(minutes=10)
CLOCK_LEEWAY_SECONDS = 60
METADATA_TTL_SECONDS = 3600
HTTP_TIMEOUT = httpx.Timeout(10.0)
# Asymmetric signatures only: "none" and HS* (keyed with the client secret) are never accepted.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _refused(message: str, reason: str) -> NotAuthenticated:
    return NotAuthenticated(message, code="sso_refused", details={"reason": reason})


def _secure_url(url: str) -> bool:
    """https, or http to a loopback address (a provider on the same machine, as in tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SsoConfig:
    """What the operator configured (see the ``sso_*`` settings)."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_url: str
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    provider_name: str = "single sign-on"
    roles_claim: str = "groups"
    # claim value -> the (client slug, role) pairs it gives
    role_map: Mapping[str, tuple[tuple[str, Role], ...]] = field(default_factory=dict)

    @property
    def managed_pairs(self) -> frozenset[tuple[str, Role]]:
        """The roles that single sign-on owns: set from the claim at every sign-in."""
        return frozenset(pair for pairs in self.role_map.values() for pair in pairs)

    @classmethod
    def from_values(
        cls, *, issuer: str, client_id: str | None, client_secret: str | None, client_secret_file: Path | None,
        redirect_url: str | None, scopes: str, provider_name: str, roles_claim: str, role_map: str,
    ) -> SsoConfig:
        """Check and parse the settings; ``InvalidInput`` names the setting that is wrong."""
        issuer = issuer.rstrip("/")
        if not _secure_url(issuer):
            raise InvalidInput("LABELVAULT_SSO_ISSUER must be an https URL (http only on a loopback address)")
        if not client_id:
            raise InvalidInput("single sign-on needs LABELVAULT_SSO_CLIENT_ID")
        if client_secret_file is not None:
            try:
                client_secret = client_secret_file.read_text().strip()
            except OSError as exc:
                raise InvalidInput(f"cannot read LABELVAULT_SSO_CLIENT_SECRET_FILE: {exc.strerror}") from None
        if not client_secret:
            raise InvalidInput("single sign-on needs LABELVAULT_SSO_CLIENT_SECRET_FILE or LABELVAULT_SSO_CLIENT_SECRET")
        if not redirect_url or not _secure_url(redirect_url) or not urlsplit(redirect_url).path.endswith(
                "/login/sso/callback"):
            raise InvalidInput("LABELVAULT_SSO_REDIRECT_URL must be https://<this server>/login/sso/callback")
        words = [s for s in re.split(r"[\s,]+", scopes) if s]
        if "openid" not in words:
            words.insert(0, "openid")
        return cls(issuer=issuer, client_id=client_id, client_secret=client_secret, redirect_url=redirect_url,
                   scopes=tuple(words), provider_name=provider_name or "single sign-on",
                   roles_claim=roles_claim, role_map=parse_role_map(role_map))


def parse_role_map(text: str) -> dict[str, tuple[tuple[str, Role], ...]]:
    """``{"acme-labelers": [["acme", "labeler"]], ...}`` -> claim value -> ((client slug, role), ...)."""
    problem = InvalidInput('LABELVAULT_SSO_ROLE_MAP must be JSON like {"acme-labelers": [["acme", "labeler"]]}')
    try:
        raw = json.loads(text or "{}")
    except ValueError:
        raise problem from None
    if not isinstance(raw, dict):
        raise problem
    parsed: dict[str, tuple[tuple[str, Role], ...]] = {}
    for value, pairs in raw.items():
        if not isinstance(pairs, list):
            raise problem
        out: list[tuple[str, Role]] = []
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise problem
            try:
                out.append((pair[0], Role(pair[1])))
            except ValueError:
                raise InvalidInput(f"LABELVAULT_SSO_ROLE_MAP: unknown role {pair[1]!r}; expected one of "
                                   f"{', '.join(r.value for r in Role)}") from None
        parsed[str(value)] = tuple(out)
    return parsed


@dataclass(frozen=True, slots=True)
class LoginOptions:
    """What the login page offers."""

    enabled: bool
    provider_name: str
    passwords: bool


@dataclass(frozen=True, slots=True)
class SsoStart:
    """Where to send the browser, and the state to bind to it (a cookie) until it comes back."""

    authorization_url: str
    state: str


@dataclass(frozen=True, slots=True)
class SsoLogin:
    login: WebLogin
    next_path: str
    created: bool


class ProviderMetadata:
    """The provider's discovery document and keys, fetched on first use and cached for a while."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._lock = threading.Lock()
        self._document: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None or time.monotonic() - self._fetched_at > METADATA_TTL_SECONDS:
                self._document = self._fetch_document()
                self._keys = None
                self._fetched_at = time.monotonic()
            return self._document

    def keys(self, *, refresh: bool = False) -> KeySet:
        document = self.document()
        with self._lock:
            if self._keys is None or refresh:
                self._keys = KeySet.import_key_set(_get_json(document["jwks_uri"], "its signing keys"))
            return self._keys

    def _fetch_document(self) -> dict[str, Any]:
        document = _get_json(self.issuer + "/.well-known/openid-configuration", "its discovery document")
        if document.get("issuer", "").rstrip("/") != self.issuer:
            raise _refused(f"the provider's discovery document names the issuer {document.get('issuer')!r}, "
                           f"not the configured {self.issuer!r}", "issuer_mismatch")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(key), str) or not _secure_url(document[key]):
                raise _refused(f"the provider's discovery document has no usable {key}", "bad_discovery")
        return document


def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT, follow_redirects=False)
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("sso: cannot fetch %s", what, extra={"error": type(exc).__name__})
        raise _refused(f"the sign-in provider could not be reached for {what}; try again later",
                       "provider_unreachable") from None
    if not isinstance(data, dict):
        raise _refused(f"the sign-in provider sent an unusable {what}", "bad_discovery")
    return data


class SsoService:
    """OpenID Connect sign-in for the web pages (``config`` None: switched off)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, web_sessions: WebSessionService, config: SsoConfig | None,
                 *, passwords: bool = True) -> None:
        self.uow_factory = uow_factory
        self.web_sessions = web_sessions
        self.config = config
        self.metadata = ProviderMetadata(config.issuer) if config else None
        self.login_options = LoginOptions(enabled=config is not None,
                                          provider_name=config.provider_name if config else "",
                                          passwords=passwords)

    def _config(self) -> tuple[SsoConfig, ProviderMetadata]:
        if self.config is None or self.metadata is None:
            raise PermissionDenied("single sign-on is not configured on this server", code="sso_off")
        return self.config, self.metadata

    def begin(self, next_path: str = "/") -> SsoStart:
        """Record a pending login and return the provider's address for the browser to go to."""
        config, metadata = self._config()
        endpoint = metadata.document()["authorization_endpoint"]
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        now = utcnow()
        with self.uow_factory.system(write=True) as uow:
            uow.session.execute(delete(PendingSsoLogin).where(PendingSsoLogin.expires_at <= now))
            uow.session.add(PendingSsoLogin(state_hash=_digest(state), nonce=nonce, code_verifier=verifier,
                                            next_path=next_path[:2000], created_at=now, expires_at=now + PENDING_FOR))
            uow.commit()
        url = prepare_grant_uri(
            endpoint, client_id=config.client_id, response_type="code", redirect_uri=config.redirect_url,
            scope=" ".join(config.scopes), state=state, nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
        )
        return SsoStart(url, state)

    def complete(self, params: Mapping[str, str], *, bound_state: str | None, address: str = "",
                 replacing: str | None = None) -> SsoLogin:
        """Finish a login from the provider's callback parameters; ``bound_state`` is the state that
        this browser started with (its cookie). Every refusal is a ``NotAuthenticated`` with code
        ``sso_refused``, a message people can act on, and an audit entry."""
        try:
            return self._complete(params, bound_state, address, replacing)
        except NotAuthenticated as refused:
            reason = refused.details.get("reason", "refused") if isinstance(refused.details, dict) else "refused"
            with self.uow_factory.system(write=True) as uow:
                audit_log.append(uow, "login.failed", actor=None, object_kind="sso",
                                 object_id=(self.config.issuer if self.config else "")[:100], outcome="denied",
                                 details={"method": "sso", "reason": reason, "address": address[:64]})
                uow.commit()
            raise

    def _complete(self, params: Mapping[str, str], bound_state: str | None, address: str,
                  replacing: str | None) -> SsoLogin:
        config, metadata = self._config()
        state = params.get("state", "")
        if not state:
            raise _refused("the sign-in answer has no state; start again from the login page", "no_state")
        pending = self._take_pending(state)
        if pending is None:
            raise _refused("this sign-in link was already used or has expired; start again from the login page",
                           "unknown_state")
        nonce, verifier, next_path = pending
        if not bound_state or not hmac.compare_digest(bound_state.encode(), state.encode()):
            raise _refused("this sign-in was started in another browser; start again from the login page",
                           "state_not_bound")
        if "error" in params:
            description = params.get("error_description") or params["error"]
            raise _refused(f"the sign-in provider refused: {description[:200]}", "provider_error")
        code = params.get("code", "")
        if not code:
            raise _refused("the sign-in answer has no code; start again from the login page", "no_code")
        tokens = self._exchange(config, metadata, code, verifier)
        claims = self._verify_id_token(config, metadata, tokens, nonce)
        try:
            actor, created = self._find_or_create(config, claims)
        except IntegrityError:  # the same person's first sign-in, twice at once: the other one made the user
            actor, created = self._find_or_create(config, claims)
        self._set_roles(config, actor, claims)
        login = self.web_sessions.start(actor, address=address, replacing=replacing, method="sso")
        return SsoLogin(login, next_path, created)

    def _take_pending(self, state: str) -> tuple[str, str, str] | None:
        """Remove the pending login of this state; only the caller that removed it may use it."""
        now = utcnow()
        with self.uow_factory.system(write=True) as uow:
            row = uow.session.scalar(select(PendingSsoLogin).where(PendingSsoLogin.state_hash == _digest(state)))
            if row is None:
                return None
            found = (row.nonce, row.code_verifier, row.next_path)
            fresh = row.expires_at > now
            # Two callbacks racing with one state: the second DELETE finds no row (PostgreSQL waits for
            # the first to commit; SQLite writers are serialised), so only one of them goes on.
            taken = uow.session.execute(delete(PendingSsoLogin).where(PendingSsoLogin.id == row.id))
            uow.commit()
        return found if taken.rowcount == 1 and fresh else None  # type: ignore[attr-defined]

    def _exchange(self, config: SsoConfig, metadata: ProviderMetadata, code: str, verifier: str) -> dict[str, Any]:
        try:
            response = httpx.post(
                metadata.document()["token_endpoint"],
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": config.redirect_url,
                      "code_verifier": verifier},
                auth=(config.client_id, config.client_secret), headers={"Accept": "application/json"},
                timeout=HTTP_TIMEOUT, follow_redirects=False,
            )
            tokens = response.json()
        except (httpx.HTTPError, ValueError):
            raise _refused("the sign-in provider could not be reached to finish the sign-in; try again",
                           "provider_unreachable") from None
        if response.status_code != 200 or not isinstance(tokens, dict):
            error = tokens.get("error", "") if isinstance(tokens, dict) else ""
            raise _refused(f"the sign-in provider did not accept the sign-in code ({error or response.status_code}); "
                           "start again from the login page", "token_refused")
        if not isinstance(tokens.get("id_token"), str):
            raise _refused("the sign-in provider sent no ID token (is the openid scope allowed?)", "no_id_token")
        return tokens

    def _verify_id_token(self, config: SsoConfig, metadata: ProviderMetadata, tokens: Mapping[str, Any],
                         nonce: str) -> CodeIDToken:
        document = metadata.document()
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in SIGNING_ALGORITHMS]
        registry = JWSRegistry(algorithms=algorithms or ["RS256"])
        raw = tokens["id_token"]
        try:
            try:
                token = jwt.decode(raw, metadata.keys(), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys
                token = jwt.decode(raw, metadata.keys(refresh=True), registry=registry)
        except JoseError as exc:
            raise _refused(f"the ID token's signature does not verify with the provider's keys "
                           f"({exc.error})", "bad_signature") from None
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": config.issuer},
            "aud": {"essential": True, "value": config.client_id},
            "exp": {"essential": True}, "sub": {"essential": True}, "iat": {"essential": True},
        }
        params = {"nonce": nonce, "client_id": config.client_id}
        if isinstance(tokens.get("access_token"), str):
            params["access_token"] = tokens["access_token"]
        claims = CodeIDToken(token.claims, token.header, options, params)
        try:
            claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
        except ExpiredTokenError:
            raise _refused("the ID token has expired; sign in again (check that this server's clock is right)",
                           "expired") from None
        except (InvalidClaimError, MissingClaimError) as exc:
            raise _refused(_claim_message(exc.claim, token.claims, config), f"bad_{exc.claim}") from None
        except JoseError as exc:
            raise _refused(f"the ID token is not valid ({exc.error})", "bad_id_token") from None
        if "nonce" not in claims:
            raise _refused("the ID token carries no nonce; this provider cannot be used", "bad_nonce")
        return claims

    def _find_or_create(self, config: SsoConfig, claims: Mapping[str, Any]) -> tuple[Actor, bool]:
        """The person of (issuer, subject); created at their first sign-in. Never matched by
        e-mail or username: a provider's account named like a local one gets a user of its own."""
        subject = str(claims["sub"])
        if not subject or len(subject) > 255:
            raise _refused("the ID token's subject is empty or too long", "bad_sub")
        now = utcnow()
        with self.uow_factory.system(write=True) as uow:
            identity = uow.session.scalar(select(UserIdentity).where(
                UserIdentity.issuer == config.issuer, UserIdentity.subject == subject))
            created = identity is None
            if identity is None:
                username = _free_username(uow, _wanted_username(claims), config.issuer, subject)
                user = uow.users.add(User(username=username, password_hash=None, is_operator=False,
                                          display_name=str(claims.get("name") or username)[:200]))
                identity = UserIdentity(user_id=user.id, issuer=config.issuer, subject=subject, created_at=now)
                uow.session.add(identity)
                audit_log.append(uow, "user.created", actor=None, object_kind="user", object_id=user.id,
                                 details={"operator": False, "method": "sso"})
            else:
                user = uow.users.get(identity.user_id)
                if user is None or not user.is_active:
                    raise _refused("this account is switched off at LabelVault; ask an operator", "inactive")
            identity.last_login_at = now
            actor = Actor(user_id=user.id, username=user.username, is_operator=user.is_operator)
            audit_log.append(uow, "login.succeeded", actor=actor, object_kind="user", object_id=user.id,
                             details={"method": "sso", "issuer": config.issuer})
            uow.commit()
        return actor, created

    def _set_roles(self, config: SsoConfig, actor: Actor, claims: Mapping[str, Any]) -> None:
        """Grant the mapped roles that the claim gives, revoke the mapped ones it no longer gives.
        Roles that the map does not name (granted by hand) are left alone."""
        wanted = {pair for value in _claim_values(claims.get(config.roles_claim)) for pair in
                  config.role_map.get(value, ())}
        by_client: dict[str, set[Role]] = {}
        for slug, role in config.managed_pairs:
            by_client.setdefault(slug, set()).add(role)
        for slug, roles in sorted(by_client.items()):
            with self.uow_factory.system() as uow:
                client = uow.clients.by_slug(slug)
                client_id = client.id if client is not None and client.status == "active" else None
            if client_id is None:
                log.warning("sso: the role map names a client that does not exist or is not active",
                            extra={"client_slug": slug})
                continue
            with self.uow_factory.for_client(client_id, write=True) as uow:
                for role in sorted(roles):
                    membership = uow.memberships.find(actor.user_id, role.value)
                    if (slug, role) in wanted and membership is None:
                        uow.memberships.add(Membership(user_id=actor.user_id, role=role.value))
                        audit_log.append(uow, "role.granted", actor=None, client_id=client_id, object_kind="user",
                                         object_id=actor.user_id, details={"role": role.value, "method": "sso"})
                    elif (slug, role) not in wanted and membership is not None:
                        uow.memberships.remove(membership)
                        audit_log.append(uow, "role.revoked", actor=None, client_id=client_id, object_kind="user",
                                         object_id=actor.user_id, details={"role": role.value, "method": "sso"})
                uow.commit()


def _claim_values(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []


def _claim_message(claim: str, claims: Mapping[str, Any], config: SsoConfig) -> str:
    if claim == "iss":
        return (f"the ID token was issued by {str(claims.get('iss'))[:200]!r}, not by the configured provider "
                f"{config.issuer!r}")
    if claim in ("aud", "azp"):
        return "the ID token was issued for another application (its audience is not this server's client id)"
    if claim == "nonce":
        return "the ID token does not belong to this sign-in (nonce mismatch); start again from the login page"
    if claim in ("nbf", "iat"):
        return "the ID token is not valid yet; check that this server's clock is right"
    return f"the ID token's {claim!r} claim is missing or not valid"


def _wanted_username(claims: Mapping[str, Any]) -> str:
    for key in ("preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return re.sub(r"[^\w.@+-]", "-", value.strip())[:80]
    return "sso-user"


def _free_username(uow: Any, wanted: str, issuer: str, subject: str) -> str:
    if uow.users.by_username(wanted) is None:
        return wanted
    suffix = hashlib.sha256(f"{issuer}|{subject}".encode()).hexdigest()
    for length in (6, 10, 16):
        candidate = f"{wanted}-{suffix[:length]}"
        if uow.users.by_username(candidate) is None:
            return candidate
    return f"{wanted}-{suffix}"[:100]


def build_sso(settings: Settings, uow_factory: UnitOfWorkFactory, web_sessions: WebSessionService) -> SsoService:
    """The SSO service from the ``sso_*`` settings (off when no issuer is set)."""
    config = None
    if settings.sso_issuer:
        config = SsoConfig.from_values(
            issuer=settings.sso_issuer, client_id=settings.sso_client_id, client_secret=settings.sso_client_secret,
            client_secret_file=settings.sso_client_secret_file, redirect_url=settings.sso_redirect_url,
            scopes=settings.sso_scopes, provider_name=settings.sso_provider_name,
            roles_claim=settings.sso_roles_claim, role_map=settings.sso_role_map,
        )
    if not settings.password_login and config is None:
        raise InvalidInput("LABELVAULT_PASSWORD_LOGIN=false needs single sign-on (LABELVAULT_SSO_ISSUER and friends)")
    return SsoService(uow_factory, web_sessions, config, passwords=settings.password_login)
