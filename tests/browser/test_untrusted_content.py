"""Task content is data: markup in it is shown as text and runs nothing."""

from __future__ import annotations

from tests.browser.conftest import Site

SCRIPT = "<script>alert('xss-script')</script>"
IMAGE = "<img src=x onerror=\"alert('xss-img');window.__pwned=1\">"
PAYLOAD = f"Hello {SCRIPT} and {IMAGE} bye"

SCHEMA = {
    "fields": [
        {"name": "text", "kind": "text", "title": f"Text {SCRIPT}"},
        {"name": "notes", "kind": "markdown", "title": "Notes"},
        {"name": "chat", "kind": "chat", "title": "Chat"},
        {"name": "answers", "kind": "candidates", "title": "Candidates"},
    ],
    "questions": [
        {"name": "verdict", "type": "label", "labels": [IMAGE, "fine"], "title": f"Verdict {SCRIPT}"},
        {"name": "order", "type": "ranking", "field": "answers"},
    ],
    "instructions": f"Guidelines {SCRIPT} {IMAGE} [click](javascript:alert('xss-link'))",
}


def test_markup_in_tasks_is_shown_as_text_and_runs_nothing(site: Site) -> None:
    world = site.world
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="xss", name=f"XSS {SCRIPT}",
                                       schema=SCHEMA)
    from labelvault.workflow.projects import ProjectSettings

    services.projects.update(world.operator, world.client_a, project.id, ProjectSettings(review_policy="all"))
    row = {"external_id": "x1", "data": {
        "text": PAYLOAD,
        "notes": f"**bold** {SCRIPT} {IMAGE} <iframe src='javascript:alert(1)'></iframe>",
        "chat": [{"role": "user", "content": PAYLOAD}, {"role": "assistant", "content": IMAGE}],
        "answers": [PAYLOAD, {"text": SCRIPT, "model": IMAGE}],
    }}
    services.imports.import_rows(world.operator, world.client_a, project.id, [row])

    labeler = site.open_as("ann")
    page = labeler.page
    labeler.go(f"/projects/{project.id}/label")
    page.locator(".q").first.wait_for()
    page.locator(".field-markdown strong", has_text="bold").wait_for()
    assert page.locator(".field-text .text-block").inner_text() == PAYLOAD
    assert page.get_by_text(PAYLOAD).count() >= 2  # the text field and the chat message
    assert page.locator(".msg-assistant").inner_text().endswith(IMAGE)
    assert page.locator(".field-title", has_text=f"Text {SCRIPT}").is_visible()
    assert page.get_by_role("button", name=IMAGE).is_visible()
    # Nothing of it became markup: no injected image, script, frame or link.
    assert page.locator("#task img, #questions img").count() == 0
    assert page.locator("iframe").count() == 0
    assert page.locator("#task script, #questions script, .guidelines script").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    labeler.shot("untrusted-content-labeler")
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.locator("#empty:not([hidden])").wait_for()

    reviewer = site.open_as("rex")
    reviewer.go(f"/projects/{project.id}/review")
    reviewer.page.locator(".answers-table").wait_for()
    assert IMAGE in reviewer.page.locator(".answers-table").inner_text()
    reviewer.shot("untrusted-content-reviewer")

    manager = site.open_as("max")
    manager.go("/")
    assert manager.page.get_by_text(f"XSS {SCRIPT}").is_visible()

    for tab in (labeler, reviewer, manager):
        assert tab.dialogs == [], tab.dialogs
        assert tab.errors == []
        assert tab.page.evaluate("() => window.__pwned") is None


def test_a_bonus_note_and_a_reviewers_reason_on_the_earnings_page_are_text(site: Site) -> None:
    world, services = site.world, site.world.services
    pid = site.projects.ids["label"]
    ann, rex = (services.accounts.actor_by_username(name) for name in ("ann", "rex"))
    task = services.labeling.next_task(ann, world.client_a, pid)
    services.labeling.submit(ann, world.client_a, pid, task.task_id, {"sentiment": "positive"})
    services.reviews.next_item(rex, world.client_a, pid)
    services.reviews.decide(rex, world.client_a, pid, task.task_id, decision="reject", reason=f"No: {IMAGE}")
    note = f"Thanks {SCRIPT} {IMAGE}"
    services.bonuses.grant(world.operator, world.client_a, pid, "ann", 500, note)

    labeler = site.open_as("ann")
    page = labeler.page
    page.locator(f"a[href='/clients/{world.client_a}/earnings']").click()
    page.locator("#money-events").wait_for()
    assert page.locator(".ledger-note").inner_text() == note
    assert page.locator(".ledger-reason").inner_text() == f"No: {IMAGE}"
    assert page.locator("#money-events img, #money-events script").count() == 0
    labeler.shot("earnings-labeler")
    assert labeler.dialogs == [] and labeler.errors == [] and labeler.console_errors == []
    assert page.evaluate("() => window.__pwned") is None
