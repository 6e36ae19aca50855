"""A reviewer sees the answers side by side and rejects one; the labeler reads why."""

from __future__ import annotations

from tests.browser.conftest import Site


def answer_label_task(site: Site, username: str, label: str) -> None:
    services, client = site.world.services, site.world.client_a
    pid = site.projects.ids["label"]
    actor = services.accounts.actor_by_username(username)
    task = services.labeling.next_task(actor, client, pid)
    services.labeling.submit(actor, client, pid, task.task_id, {"sentiment": label})


def test_a_reviewer_rejects_an_answer_and_the_labeler_sees_the_feedback(site: Site) -> None:
    answer_label_task(site, "ann", "neutral")
    reviewer = site.open_as("rex")
    page = reviewer.page
    reviewer.go(f"/projects/{site.projects.ids['label']}/review")
    table = page.locator(".answers-table")
    table.wait_for()
    assert "ann" in table.locator("thead").inner_text()
    assert "neutral" in table.locator("tbody").inner_text()
    assert page.locator(".text-block", has_text="I love this phone.").is_visible()
    reviewer.shot("review-task")
    page.keyboard.press("r")
    page.locator("#reject-reason").fill("The text is plainly positive: see the guidelines on praise.")
    reviewer.shot("review-reject")
    page.keyboard.press("Control+Enter")
    page.locator("#empty:not([hidden])").wait_for()
    assert page.locator("#done-count").inner_text() == "1"
    reviewer.shot("review-nothing-left")

    labeler = site.open_as("ann")
    labeler.go(f"/projects/{site.projects.ids['label']}/label")
    count = labeler.page.locator("#feedback-count")
    count.filter(has_text="1").wait_for()
    labeler.page.click("#feedback-toggle")
    feedback = labeler.page.locator("#feedback-list li").first
    assert "The text is plainly positive" in feedback.inner_text()
    assert "your answer: sentiment: neutral" in feedback.inner_text()
    labeler.shot("label-feedback")
    # The rejected task went back to the queue, but not to the labeler who answered it.
    assert labeler.page.locator("#empty").get_attribute("data-reason") == "no_tasks"
    for tab in (reviewer, labeler):
        assert tab.dialogs == [] and tab.errors == [] and tab.console_errors == []


def test_a_reviewer_accepts_with_a_key_and_corrects_with_the_widgets(site: Site) -> None:
    services = site.world.services
    answer_label_task(site, "ann", "neutral")
    pid = site.projects.ids["rating"]
    ann = services.accounts.actor_by_username("ann")
    task = services.labeling.next_task(ann, site.world.client_a, pid)
    services.labeling.submit(ann, site.world.client_a, pid, task.task_id, {"helpful": 2})

    reviewer = site.open_as("rex")
    page = reviewer.page
    reviewer.go(f"/projects/{site.projects.ids['label']}/review")
    page.locator(".answers-table").wait_for()
    page.keyboard.press("a")
    page.locator("#empty:not([hidden])").wait_for()

    reviewer.go(f"/projects/{pid}/review")
    page.locator(".answers-table").wait_for()
    page.keyboard.press("c")
    page.locator("#questions .q").wait_for()
    page.keyboard.press("5")
    reviewer.shot("review-correct")
    page.keyboard.press("Enter")
    page.locator("#empty:not([hidden])").wait_for()
    assert reviewer.errors == [] and reviewer.console_errors == []
    costs = services.reports.project_costs(site.world.operator, site.world.client_a, site.projects.ids["label"])
    assert costs.accepted_answers == 1
