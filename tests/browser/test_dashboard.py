"""A manager watches progress and the charts move as labelers answer."""

from __future__ import annotations

from tests.browser.conftest import Site


def chart_state(page) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    given = page.locator("[data-given]").get_attribute("data-given")
    today = page.locator("#chart-answers rect.chart-bar").last.get_attribute("data-value")
    spent = page.locator("#chart-spend circle.chart-dot").last.get_attribute("data-value")
    return given, today, spent


def test_a_manager_sees_progress_and_the_charts_change_after_answers(site: Site) -> None:
    pid = site.projects.ids["label"]
    manager = site.open_as("max")
    manager.go(f"/projects/{pid}/dashboard")
    assert chart_state(manager.page) == ("0", "0", "0")
    manager.shot("dashboard-before")

    labeler = site.open_as("ann")
    labeler.go(f"/projects/{pid}/label")
    labeler.next_task(None)
    task = labeler.task_id()
    labeler.page.keyboard.press("1")
    labeler.page.keyboard.press("Enter")
    labeler.next_task(task)

    manager.page.reload()
    assert chart_state(manager.page) == ("1", "1", "25")  # one answer today, 25 cents spent
    assert manager.page.locator("#labelers tr[data-user='ann']").is_visible()
    assert "$0.25" in manager.page.locator("#labelers").inner_text()
    manager.shot("dashboard-after")
    assert manager.console_errors == [] and manager.errors == []
