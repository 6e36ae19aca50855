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
