"""Single sign-on through a real ``labelvault serve`` process and the in-test OpenID provider:
the browser (httpx, redirects followed by hand) goes server -> provider -> server, over sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import World
from tests.e2e.server_process import ServerProcess
from tests.integration.test_sso import CLIENT_ID, CLIENT_SECRET, ROLE_MAP, Provider, ProviderUser, provider  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture
def sso_server(world: World, provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
               ) -> Iterator[ServerProcess]:
    server = ServerProcess(world.services.settings, tmp_path / "server.log")
    redirect = f"{server.url}/login/sso/callback"
    provider.clients[CLIENT_ID].redirect_uris.append(redirect)
    for name, value in {
        "SSO_ISSUER": provider.issuer, "SSO_CLIENT_ID": CLIENT_ID, "SSO_REDIRECT_URL": redirect,
        "SSO_ROLE_MAP": json.dumps(ROLE_MAP), "SSO_PROVIDER_NAME": "Acme ID", "PASSWORD_LOGIN": "false",
    }.items():
        monkeypatch.setenv(f"LABELVAULT_{name}", value)
    secret = tmp_path / "sso-secret"
    secret.write_text(CLIENT_SECRET)
    monkeypatch.setenv("LABELVAULT_SSO_CLIENT_SECRET_FILE", str(secret))
    server.start()
    yield server
    server.stop()
    provider.clients[CLIENT_ID].redirect_uris.remove(redirect)


def test_a_person_signs_in_through_the_provider_on_a_real_server(sso_server: ServerProcess, provider: Provider,  # noqa: F811
                                                                 ) -> None:
    provider.signed_in = ProviderUser("00u-e2e-1", "erin", "Erin", ["globex-reviewers"])
    with httpx.Client(base_url=sso_server.url, follow_redirects=False) as browser:
        page = browser.get("/login")
        assert "Sign in with Acme ID" in page.text and 'type="password"' not in page.text
        to_provider = browser.get("/login/sso", params={"next": "/api/me"})
        assert to_provider.status_code == 303
        at_provider = httpx.get(to_provider.headers["location"], follow_redirects=False)
        assert at_provider.status_code == 302
        callback = at_provider.headers["location"]
        assert callback.startswith(f"{sso_server.url}/login/sso/callback?")
        back = browser.get(callback)
        assert back.status_code == 303 and back.headers["location"] == "/api/me"
        me = browser.get("/api/me")
        assert me.status_code == 200 and me.json()["username"] == "erin"
        assert browser.get(callback).status_code == 401  # the same callback again: the state is used up

    refused = httpx.post(f"{sso_server.url}/api/auth/token",
                         json={"username": "operator", "password": "operator-password-1", "name": "x"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "password_login_disabled"
