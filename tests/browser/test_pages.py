"""Every page renders in Chromium without a script error or a Content-Security-Policy violation;
a screenshot of each is kept."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Site
from tests.conftest import OPERATOR_PASSWORD


def task_with_history(site: Site) -> int:
    """A task of the text project with metadata, a suggestion, a skip and an answer (so its page
    shows every part), among two more; its id."""
    world, pid = site.world, site.projects.ids["text"]
    services = world.services
    services.imports.import_rows(world.operator, world.client_a, pid, [
        {"external_id": "t2", "priority": 5, "metadata": {"source": "support inbox", "ticket": 4811},
         "data": {"notes": "Charged **twice** for order 4811.\n\n> Please fix this today."},
         "suggestions": [{"model": "draft-model", "answer": {"reply": "We refunded the second payment."},
                          "score": 0.62}]},
        {"external_id": "t3", "data": {"notes": "Where is my parcel?"}},
    ])
    ann, labeler = (services.accounts.actor_by_username(name) for name in ("ann", "labeler_a"))
    task = services.labeling.next_task(ann, world.client_a, pid).task_id
    services.labeling.skip(ann, world.client_a, pid, task, "I cannot see the order history")
    assert services.labeling.next_task(labeler, world.client_a, pid).task_id == task
    services.labeling.submit(labeler, world.client_a, pid, task, {"reply": "Sorry! We refunded the second charge."})
    return task


@pytest.mark.parametrize("width", [1400, 900])
def test_every_page_renders_cleanly_for_each_audience(site: Site, width: int) -> None:
    world, ids = site.world, site.projects.ids
    suffix = "" if width == 1400 else f"-{width}"
    task = task_with_history(site)
    visitors = {
        "ann": ["/", f"/projects/{ids['preference']}/label", f"/projects/{ids['span']}/label"],
        "max": ["/", f"/projects/{ids['label']}/dashboard", f"/clients/{world.client_a}",
                f"/projects/{ids['label']}/review", f"/projects/{ids['text']}/tasks",
                f"/projects/{ids['text']}/tasks/{task}"],
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
