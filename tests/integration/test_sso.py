"""Single sign-on against a real OpenID provider started inside the test on a loopback port.

The provider is Authlib's server side (authorization code grant with PKCE and the OpenID Connect
extension, in-memory clients and codes), served by Flask/werkzeug in a thread, with its own RSA
signing key, JWKS and discovery document. The browser is httpx, following redirects by hand:
LabelVault (a TestClient on the real app) -> provider's authorize endpoint -> LabelVault's
callback. Knobs on the provider make it misbehave: another ``iss``, an expired ID token.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode, UserInfo
from fastapi.testclient import TestClient
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select
from werkzeug.serving import make_server

from labelvault.bootstrap import Services, build_services
from labelvault.errors import InvalidInput
from labelvault.server import build_app
from labelvault.settings import Settings
from labelvault.storage.models import AuditEntry, PendingSsoLogin, UserIdentity
from tests.conftest import World

CLIENT_ID = "labelvault"
CLIENT_SECRET = "provider-issued-secret-123"
BASE_URL = "http://localhost"  # the TestClient's address; the redirect URL must be https or loopback
REDIRECT_URL = f"{BASE_URL}/login/sso/callback"
ROLE_MAP = {
    "acme-labelers": [["acme", "labeler"]],
    "acme-leads": [["acme", "manager"], ["acme", "reviewer"]],
    "globex-reviewers": [["globex", "reviewer"]],
}


# --- The OpenID provider -------------------------------------------------------------------------


@dataclass
class ProviderUser:
    sub: str
    preferred_username: str
    name: str
    groups: list[str]


@dataclass
class ProviderClient(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in {"openid", "profile", "email"})

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: ProviderUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class Provider:
    """A small OpenID provider. ``signed_in`` is the person logged in at the provider (the test
    plays them); ``token_issuer`` and ``id_token_lifetime`` make it issue bad tokens on purpose."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "provider-key-1", "use": "sig", "alg": "RS256"})
        self.clients = {CLIENT_ID: ProviderClient(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URL])}
        self.codes: dict[str, Code] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.signed_in: ProviderUser | None = None
        self.issuer = ""
        self.token_issuer: str | None = None  # None: its own issuer
        self.id_token_lifetime = 300
        self.forged_key: RSAKey | None = None  # signs instead of the published key
        self.app = self._build_app()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _build_app(self) -> Flask:
        app = Flask("test-openid-provider")
        provider = self

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                provider.codes[code] = Code(code, req.client.get_client_id(), req.payload.redirect_uri, req.scope,
                                            req.user, data.get("nonce"), data.get("code_challenge"),
                                            data.get("code_challenge_method"))

            def query_authorization_code(self, code: str, client: ProviderClient) -> Code | None:
                found = provider.codes.get(code)
                return found if found is not None and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> ProviderUser:
                return authorization_code.user

        class S256Only(CodeChallenge):
            def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
                if grant.request.payload.data.get("code_challenge_method") != "S256":
                    raise InvalidRequestError("this provider requires PKCE with S256")
                super().validate_code_challenge(grant, redirect_uri)

        class OpenID(OpenIDCode):
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: ProviderClient) -> RSAKey:
                return provider.forged_key or provider.key

            def get_client_algorithm(self, client: ProviderClient) -> str:
                return "RS256"

            def get_encode_header(self, client: ProviderClient) -> dict[str, str]:
                return {"alg": "RS256", "kid": "provider-key-1"}

            def get_client_claims(self, client: ProviderClient) -> dict[str, Any]:
                now = int(time.time())
                lifetime = provider.id_token_lifetime
                return {"iss": provider.token_issuer or provider.issuer, "aud": [client.get_client_id()],
                        "iat": now + min(0, lifetime) - 60, "exp": now + lifetime}

            def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
                return UserInfo(sub=user.sub, preferred_username=user.preferred_username, name=user.name,
                                email=f"{user.preferred_username}@example.org", groups=user.groups)

        server = AuthorizationServer(app, query_client=self.clients.get, save_token=lambda token, req: None)
        server.register_grant(CodeGrant, [S256Only(required=True), OpenID(require_nonce=True)])

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify({
                "issuer": provider.issuer,
                "authorization_endpoint": f"{provider.issuer}/authorize",
                "token_endpoint": f"{provider.issuer}/token",
                "jwks_uri": f"{provider.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            })

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(KeySet([provider.key]).as_dict(private=False))

        @app.get("/authorize")
        def authorize() -> Any:
            provider.authorize_requests.append(dict(request.args))
            return server.create_authorization_response(grant_user=provider.signed_in)

        @app.post("/token")
        def token() -> Any:
            return server.create_token_response()

        return app

    def __enter__(self) -> Provider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    mp = pytest.MonkeyPatch()
    mp.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the provider speaks http on loopback
    with Provider() as running:
        yield running
    mp.undo()


@pytest.fixture(autouse=True)
def _fresh_provider(provider: Provider) -> None:
    provider.token_issuer = None
    provider.id_token_lifetime = 300
    provider.forged_key = None
    provider.signed_in = None
    provider.authorize_requests.clear()


# --- LabelVault configured for it ----------------------------------------------------------------


def sso_settings(settings: Settings, provider: Provider, **more: Any) -> Settings:
    return settings.model_copy(update={
        "sso_issuer": provider.issuer, "sso_client_id": CLIENT_ID, "sso_client_secret": CLIENT_SECRET,
        "sso_redirect_url": REDIRECT_URL, "sso_provider_name": "Acme ID", "sso_role_map": json.dumps(ROLE_MAP),
        **more,
    })


@pytest.fixture
def sso_services(world: World, settings: Settings, provider: Provider) -> Iterator[Services]:
    services = build_services(sso_settings(settings, provider))
    yield services
    services.close()


@pytest.fixture
def browser(sso_services: Services) -> Iterator[TestClient]:
    with TestClient(build_app(sso_services), base_url=BASE_URL, follow_redirects=False) as client:
        yield client


def to_provider(browser: TestClient, next_path: str = "/") -> str:
    """Click "Sign in with ...": LabelVault answers with a redirect to the provider."""
    response = browser.get("/login/sso", params={"next": next_path})
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(browser.app.state.services.settings.sso_issuer + "/authorize?")  # type: ignore[attr-defined]
    return location


def at_provider(provider: Provider, authorize_url: str, user: ProviderUser) -> str:
    """The person signs in at the provider, which redirects back to LabelVault's callback."""
    provider.signed_in = user
    response = httpx.get(authorize_url, follow_redirects=False)
    assert response.status_code == 302, response.text
    callback = response.headers["location"]
    assert callback.startswith(REDIRECT_URL + "?"), callback
    return callback


def back_at_labelvault(browser: TestClient, callback_url: str) -> httpx.Response:
    parts = urlsplit(callback_url)
    return browser.get(f"{parts.path}?{parts.query}")


def sign_in(browser: TestClient, provider: Provider, user: ProviderUser, next_path: str = "/") -> httpx.Response:
    return back_at_labelvault(browser, at_provider(provider, to_provider(browser, next_path), user))


def audit_actions(services: Services) -> list[tuple[str, str, dict[str, Any]]]:
    services.audit.sequence()  # PostgreSQL: number what acts wrote (audit/log.py)
    with services.uow_factory.system() as uow:
        rows = uow.session.execute(select(AuditEntry.action, AuditEntry.outcome, AuditEntry.entry)
                                   .order_by(AuditEntry.seq)).all()
    return [(a, o, json.loads(entry).get("details") or {}) for a, o, entry in rows]


def roles_of(services: Services, username: str) -> set[tuple[str, str]]:
    actor = services.accounts.actor_by_username(username)
    return {(c.slug, r.value) for c in services.web_sessions.memberships(actor) for r in c.roles}


ALICE = ProviderUser("00u-alice-7f3a", "alice", "Alice Example", ["acme-labelers", "staff"])


# --- Cases ---------------------------------------------------------------------------------------


def test_sign_in_creates_the_user_with_mapped_roles_and_a_session_that_works(
    browser: TestClient, provider: Provider, sso_services: Services
) -> None:
    response = sign_in(browser, provider, ALICE, next_path="/api/me")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/api/me"
    assert "lv_session=" in response.headers["set-cookie"]

    # PKCE with S256 and a nonce went to the provider.
    sent = provider.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"] and sent["nonce"]
    assert "openid" in sent["scope"].split()

    me = browser.get("/api/me")
    assert me.status_code == 200 and me.json()["username"] == "alice"
    assert browser.get("/").status_code == 200  # a protected page
    assert roles_of(sso_services, "alice") == {("acme", "labeler")}

    with sso_services.uow_factory.system() as uow:
        identity = uow.session.scalar(select(UserIdentity).where(UserIdentity.subject == ALICE.sub))
        assert identity is not None and identity.issuer == provider.issuer
        assert uow.session.scalar(select(PendingSsoLogin)) is None  # the pending login was taken
    actions = audit_actions(sso_services)
    assert ("login.succeeded", "ok") in [(a, o) for a, o, _ in actions]
    assert any(a == "web_session.started" and d.get("method") == "sso" for a, _, d in actions)
    assert any(a == "role.granted" and d.get("method") == "sso" for a, _, d in actions)


def test_the_next_sign_in_finds_the_same_person_and_sets_their_mapped_roles_again(
    browser: TestClient, provider: Provider, sso_services: Services, world: World
) -> None:
    assert sign_in(browser, provider, ALICE).status_code == 303
    world.services.accounts.grant_role(world.operator, world.client_b, "alice", "viewer")  # by hand: not mapped

    moved = ProviderUser(ALICE.sub, "alice", "Alice Example", ["acme-leads", "globex-reviewers"])
    browser.cookies.clear()
    assert sign_in(browser, provider, moved).status_code == 303
    assert roles_of(sso_services, "alice") == {
        ("acme", "manager"), ("acme", "reviewer"), ("globex", "reviewer"), ("globex", "viewer")}
    assert sum(1 for u in sso_services.accounts.list_users(world.operator)[0] if u.username.startswith("alice")) == 1


def test_a_provider_account_named_like_a_local_user_gets_a_user_of_its_own(
    browser: TestClient, provider: Provider, sso_services: Services
) -> None:
    impostor = ProviderUser("00u-someone-else", "operator", "Not The Operator", [])
    assert sign_in(browser, provider, impostor).status_code == 303
    me = browser.get("/api/me").json()
    assert me["username"] != "operator" and me["username"].startswith("operator-")
    assert me["is_operator"] is False


def test_a_pending_login_is_in_the_database_so_another_server_process_can_finish_it(
    browser: TestClient, provider: Provider, world: World, settings: Settings
) -> None:
    callback = at_provider(provider, to_provider(browser), ALICE)
    other = build_services(sso_settings(settings, provider))  # a second server over the same database
    try:
        with TestClient(build_app(other), base_url=BASE_URL, follow_redirects=False) as second:
            second.cookies.update(browser.cookies)
            response = back_at_labelvault(second, callback)
            assert response.status_code == 303, response.text
            assert second.get("/api/me").json()["username"] == "alice"
    finally:
        other.close()


def test_a_token_from_another_issuer_is_refused(
    browser: TestClient, provider: Provider, sso_services: Services
) -> None:
    provider.token_issuer = "https://evil.example.org"
    response = sign_in(browser, provider, ALICE)
    assert response.status_code == 401
    assert "Single sign-on failed" in response.text
    assert "issued by &#39;https://evil.example.org&#39;, not by the configured provider" in response.text
    assert "lv_session=" not in response.headers.get("set-cookie", "")
    assert browser.get("/api/me").status_code == 401
    with pytest.raises(Exception, match="not found"):
        sso_services.accounts.actor_by_username("alice")
    assert any(a == "login.failed" and o == "denied" and d.get("reason") == "bad_iss"
               for a, o, d in audit_actions(sso_services))


def test_a_replayed_state_is_refused(browser: TestClient, provider: Provider, sso_services: Services) -> None:
    callback = at_provider(provider, to_provider(browser), ALICE)
    state_cookie = browser.cookies.get("lv_sso_state")
    assert back_at_labelvault(browser, callback).status_code == 303

    browser.cookies.set("lv_sso_state", state_cookie or "", path="/login/sso")  # even with the cookie back
    replay = back_at_labelvault(browser, callback)
    assert replay.status_code == 401
    assert "already used or has expired" in replay.text
    assert any(a == "login.failed" and d.get("reason") == "unknown_state" for a, _, d in audit_actions(sso_services))


def test_a_callback_in_a_browser_that_did_not_start_the_login_is_refused(
    browser: TestClient, provider: Provider, sso_services: Services
) -> None:
    callback = at_provider(provider, to_provider(browser), ALICE)  # the attacker's own login
    with TestClient(build_app(sso_services), base_url=BASE_URL, follow_redirects=False) as victim:
        response = back_at_labelvault(victim, callback)
        assert response.status_code == 401
        assert "started in another browser" in response.text
        assert victim.get("/api/me").status_code == 401


def test_an_expired_id_token_is_refused(browser: TestClient, provider: Provider, sso_services: Services) -> None:
    provider.id_token_lifetime = -600  # expired ten minutes ago: beyond the clock leeway
    response = sign_in(browser, provider, ALICE)
    assert response.status_code == 401
    assert "the ID token has expired" in response.text
    assert browser.get("/api/me").status_code == 401


def test_an_id_token_signed_with_another_key_is_refused(
    browser: TestClient, provider: Provider, sso_services: Services
) -> None:
    provider.forged_key = RSAKey.generate_key(2048, parameters={"kid": "provider-key-1"})
    response = sign_in(browser, provider, ALICE)
    assert response.status_code == 401
    assert "signature does not verify" in response.text


def test_the_provider_refusing_the_person_is_shown_on_the_login_page(
    browser: TestClient, provider: Provider, sso_services: Services
) -> None:
    to_provider(browser)
    state = browser.cookies.get("lv_sso_state")
    response = browser.get("/login/sso/callback", params={"error": "access_denied", "state": state,
                                                         "error_description": "not allowed here"})
    assert response.status_code == 401
    assert "the sign-in provider refused: not allowed here" in response.text


# --- Local passwords switched off ----------------------------------------------------------------


@pytest.fixture
def sso_only(world: World, settings: Settings, provider: Provider) -> Iterator[TestClient]:
    services = build_services(sso_settings(settings, provider, password_login=False))
    try:
        with TestClient(build_app(services), base_url=BASE_URL, follow_redirects=False) as client:
            yield client
    finally:
        services.close()


def test_password_login_is_refused_when_switched_off(
    sso_only: TestClient, provider: Provider, world: World
) -> None:
    from tests.conftest import OPERATOR_PASSWORD

    api = sso_only.post("/api/auth/token", json={"username": "operator", "password": OPERATOR_PASSWORD, "name": "x"})
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "password_login_disabled"
    assert "password login is switched off" in api.json()["error"]["message"]

    sso_only.cookies.set("lv_login_csrf", "login-form-token-0123456789abcdef", path="/login")
    web = sso_only.post("/login", data={"username": "operator", "password": OPERATOR_PASSWORD,
                                        "login_token": "login-form-token-0123456789abcdef", "next": "/"})
    assert web.status_code == 403
    assert "password login is switched off on this server; sign in with Acme ID instead" in web.text
    assert "lv_session=" not in web.headers.get("set-cookie", "")

    page = sso_only.get("/login")
    assert "Sign in with Acme ID" in page.text
    assert 'type="password"' not in page.text

    assert sign_in(sso_only, provider, ALICE).status_code == 303  # single sign-on still works
    assert sso_only.get("/api/me").json()["username"] == "alice"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_passwords_cannot_be_switched_off_without_single_sign_on(settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="needs single sign-on"):
        build_services(settings.model_copy(update={"password_login": False}))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_client_secret_can_come_from_a_file_and_bad_settings_are_named(
    settings: Settings, provider: Provider, tmp_path: Any
) -> None:
    secret = tmp_path / "sso-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    services = build_services(sso_settings(settings, provider, sso_client_secret=None, sso_client_secret_file=secret))
    try:
        assert services.sso.config is not None and services.sso.config.client_secret == CLIENT_SECRET
    finally:
        services.close()
    with pytest.raises(InvalidInput, match="LABELVAULT_SSO_ISSUER"):
        build_services(sso_settings(settings, provider, sso_issuer="http://idp.example.org"))
    with pytest.raises(InvalidInput, match="unknown role 'boss'"):
        build_services(sso_settings(settings, provider, sso_role_map='{"g": [["acme", "boss"]]}'))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_unreachable_provider_is_said_on_the_login_page(settings: Settings, provider: Provider) -> None:
    import socket

    with socket.socket() as unused:  # a loopback port where nothing listens
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    services = build_services(sso_settings(settings, provider, sso_issuer=f"http://127.0.0.1:{port}"))
    try:
        with TestClient(build_app(services), base_url=BASE_URL, follow_redirects=False) as client:
            response = client.get("/login/sso")
            assert response.status_code == 401
            assert "could not be reached" in response.text
    finally:
        services.close()
