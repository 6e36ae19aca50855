"""Every page renders in Chromium without a script error or a Content-Security-Policy violation;
a screenshot of each is kept."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Site
from tests.conftest import OPERATOR_PASSWORD


@pytest.mark.parametrize("width", [1400, 900])
def test_every_page_renders_cleanly_for_each_audience(site: Site, width: int) -> None:
    world, ids = site.world, site.projects.ids
    suffix = "" if width == 1400 else f"-{width}"
    visitors = {
        "ann": ["/", f"/projects/{ids['preference']}/label", f"/projects/{ids['span']}/label"],
        "max": ["/", f"/projects/{ids['label']}/dashboard", f"/clients/{world.client_a}",
                f"/projects/{ids['label']}/review"],
        "vic": [f"/clients/{world.client_a}/audit"],
    }
    tabs = []
    for username, paths in visitors.items():
        tab = site.open_as(username, width=width)
        tabs.append(tab)
        for path in paths:
            tab.go(path)
            if "/label" in path or "/review" in path:
                tab.page.locator(".q, #empty:not([hidden])").first.wait_for()
            tab.shot(f"{username}-{path.strip('/').replace('/', '-') or 'home'}{suffix}")
    operator = site.open_as("operator", OPERATOR_PASSWORD, width=width)
    tabs.append(operator)
    for path in ("/operator/clients", "/operator/walls", "/operator/users", "/account"):
        operator.go(path)
        operator.shot(f"{path.strip('/').replace('/', '-')}{suffix}")
    login = site.browser.new_page(viewport={"width": width, "height": 700})  # type: ignore[attr-defined]
    login.goto(site.url + "/login")
    login.screenshot(path=str(tabs[0].shot("login").parent / f"login{suffix}.png"))
    login.close()
    for tab in tabs:
        assert tab.errors == [] and tab.dialogs == [] and tab.console_errors == [], tab.console_errors
