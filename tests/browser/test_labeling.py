"""A labeler answers a task of every question type with the keyboard and the mouse."""

from __future__ import annotations

import struct
import zlib
from typing import Any

from tests.browser.conftest import Site, Tab


def stored_answer(site: Site, kind: str) -> dict[str, Any]:
    """The answer as the server stored it (read back through the reviewer's queue)."""
    services = site.world.services
    reviewer = services.accounts.actor_by_username("rex")
    item = services.reviews.next_item(reviewer, site.world.client_a, site.projects.ids[kind])
    assert len(item.answers) == 1
    return item.answers[0].value


def open_task(tab: Tab, site: Site, kind: str) -> str:
    tab.go(f"/projects/{site.projects.ids[kind]}/label")
    tab.next_task(None)
    tab.page.locator(".q").first.wait_for()
    task = tab.task_id()
    assert task is not None
    return task


def submit_and_expect_no_more(tab: Tab, task: str, key: str = "Enter") -> None:
    tab.page.keyboard.press(key)
    tab.next_task(task)
    empty = tab.page.locator("#empty")
    empty.wait_for()
    assert empty.get_attribute("data-reason") == "no_tasks"


def mouse_select(tab: Tab, selector: str, text: str) -> None:
    """Select ``text`` inside the element with a real mouse drag across it."""
    box = tab.page.evaluate(
        """([selector, text]) => {
            const area = document.querySelector(selector);
            const node = [...area.childNodes].find((n) => n.nodeType === 3 && n.data.includes(text));
            const start = node.data.indexOf(text);
            const range = document.createRange();
            range.setStart(node, start); range.setEnd(node, start + text.length);
            const r = range.getBoundingClientRect();
            return {x: r.left, y: r.top, w: r.width, h: r.height};
        }""",
        [selector, text],
    )
    y = box["y"] + box["h"] / 2
    tab.page.mouse.move(box["x"] + 1, y)
    tab.page.mouse.down()
    tab.page.mouse.move(box["x"] + box["w"] - 1, y, steps=8)
    tab.page.mouse.up()


def drag(tab: Tab, x1: float, y1: float, x2: float, y2: float) -> None:
    tab.page.mouse.move(x1, y1)
    tab.page.mouse.down()
    tab.page.mouse.move(x2, y2, steps=8)
    tab.page.mouse.up()


def test_a_labeler_answers_every_question_type_with_keys_and_mouse(site: Site) -> None:
    tab = site.open_as("ann")
    page = tab.page

    # label: the model's suggestion is pre-filled; a number key replaces it, Enter submits.
    task = open_task(tab, site, "label")
    assert page.locator(".suggestion-note").inner_text().startswith("Pre-filled by m1")
    assert page.locator(".opt.on").inner_text().endswith("neutral")
    page.keyboard.press("2")
    tab.shot("label-label")
    submit_and_expect_no_more(tab, task)
    tab.shot("label-no-tasks")
    assert stored_answer(site, "label") == {"sentiment": "negative"}

    # multi_label: one by mouse, one by key.
    task = open_task(tab, site, "multi_label")
    page.get_by_role("button", name="money").click()
    page.keyboard.press("3")
    tab.shot("label-multi-label")
    submit_and_expect_no_more(tab, task)
    assert stored_answer(site, "multi_label") == {"topics": ["money", "science"]}

    # rating: the key is the value; the chat is shown as messages.
    task = open_task(tab, site, "rating")
    assert page.locator(".msg-user").inner_text().endswith("What is 2+2?")
    page.keyboard.press("4")
    page.keyboard.press("ArrowRight")
    tab.shot("label-rating")
    submit_and_expect_no_more(tab, task)
    assert stored_answer(site, "rating") == {"helpful": 5}

    # ranking: type candidate numbers best first, then drag one to the top.
    task = open_task(tab, site, "ranking")
    page.keyboard.press("3")
    page.keyboard.press("1")
    assert page.locator(".order-line").inner_text() == "3 \u203a 1 \u203a 2"  # 3 > 1 > 2
    items = page.locator(".rank-item")
    items.nth(2).drag_to(items.nth(0))
    assert [items.nth(i).get_attribute("data-candidate") for i in range(3)] == ["1", "2", "0"]
    tab.shot("label-ranking")
    submit_and_expect_no_more(tab, task)
    assert stored_answer(site, "ranking") == {"order": [1, 2, 0]}

    # preference: click B, then the strength by key.
    task = open_task(tab, site, "preference")
    page.locator(".pair .candidate[data-side='b']").click()
    page.keyboard.press("3")
    assert "chosen" in (page.locator(".pair .candidate[data-side='b']").get_attribute("class") or "")
    tab.shot("label-preference")
    submit_and_expect_no_more(tab, task)
    assert stored_answer(site, "preference") == {"better": {"choice": "b", "strength": 3}}

    # text: markdown notes rendered (and sanitised) by the server; Ctrl+Enter submits from the box.
    task = open_task(tab, site, "text")
    page.locator(".field-markdown strong", has_text="paid twice").wait_for()
    page.locator("textarea").click()
    page.keyboard.type("We refunded the second payment.")
    assert page.locator(".counter").inner_text().startswith("31 / 200")
    tab.shot("label-text")
    submit_and_expect_no_more(tab, task, "Control+Enter")
    assert stored_answer(site, "text") == {"reply": "We refunded the second payment."}

    # span: select with the mouse, press the label's number; a wrong span is deleted with its delete button.
    task = open_task(tab, site, "span")
    mouse_select(tab, ".span-text", "Ada Lovelace")
    page.keyboard.press("1")
    mouse_select(tab, ".span-text", "born")
    page.keyboard.press("2")
    page.locator(".item-list li", has_text="born").get_by_role("button", name="delete span").click()
    mouse_select(tab, ".span-text", "London")
    page.keyboard.press("2")
    assert page.locator(".span-text mark").count() == 2
    tab.shot("label-span")
    submit_and_expect_no_more(tab, task)
    assert stored_answer(site, "span") == {"entities": [
        {"start": 0, "end": 12, "label": "PERSON", "text": "Ada Lovelace"},
        {"start": 25, "end": 31, "label": "PLACE", "text": "London"},
    ]}

    # bbox: draw two boxes, relabel one by key, move and resize one, draw a stray one and delete it.
    task = open_task(tab, site, "bbox")
    layer = page.locator(".bbox-layer").bounding_box()
    assert layer is not None
    sx, sy = layer["width"] / 400, layer["height"] / 250  # the picture is 400 x 250

    def at(x: float, y: float) -> tuple[float, float]:
        return layer["x"] + x * sx, layer["y"] + y * sy

    drag(tab, *at(70, 70), *at(130, 130))  # around the circle (60..140), a bit small
    drag(tab, *at(250, 120), *at(330, 200))  # around the square
    page.keyboard.press("2")  # the selected (last) box is a square
    drag(tab, *at(80, 80), *at(70, 70))  # move the first box up-left by 10
    page.locator(".bbox").nth(0).click()
    handle = page.locator(".bbox.selected .bbox-handle.se").bounding_box()
    assert handle is not None
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    drag(tab, hx, hy, hx + 20 * sx, hy + 20 * sy)  # resize to 80 x 80
    drag(tab, *at(360, 20), *at(390, 40))  # a stray box ...
    page.keyboard.press("Delete")  # ... deleted
    assert page.locator(".bbox").count() == 2
    tab.shot("label-bbox")
    submit_and_expect_no_more(tab, task)
    boxes = stored_answer(site, "bbox")["shapes"]
    assert [b["label"] for b in boxes] == ["circle", "square"]
    for box, expected in zip(boxes, ((60, 60, 80, 80), (250, 120, 80, 80)), strict=True):
        x, y, w, h = expected
        assert abs(box["x"] - x / 400) < 0.02 and abs(box["y"] - y / 250) < 0.03
        assert abs(box["w"] - w / 400) < 0.02 and abs(box["h"] - h / 250) < 0.03

    # rubric: each criterion is a step; answering one moves on to the next.
    task = open_task(tab, site, "rubric")
    page.keyboard.press("2")
    page.keyboard.press("1")
    tab.shot("label-rubric")
    submit_and_expect_no_more(tab, task)
    assert stored_answer(site, "rubric") == {"quality": {"clarity": 2, "tone": "formal"}}

    assert tab.dialogs == [] and tab.errors == [] and tab.console_errors == []


def test_each_submit_brings_the_next_task_in_the_same_request(site: Site) -> None:
    world = site.world
    world.services.imports.import_rows(world.operator, world.client_a, site.projects.ids["label"],
                                       [{"external_id": f"l{i}", "data": {"text": f"Review number {i}."}}
                                        for i in (2, 3)])
    tab = site.open_as("ann")
    queue_requests: list[str] = []
    tab.page.on("request", lambda request: queue_requests.append(request.url.split("/api/projects/")[-1])
                if "/tasks/" in request.url else None)
    task = open_task(tab, site, "label")
    shown = [task]
    for _ in range(2):
        tab.page.keyboard.press("1")
        tab.page.keyboard.press("Enter")
        tab.next_task(task)
        task = tab.task_id()
        assert task is not None and task not in shown
        shown.append(task)
    tab.page.keyboard.press("1")
    submit_and_expect_no_more(tab, task)
    # One next to start, then every answer brought the following task (or the reason for none).
    project = site.projects.ids["label"]
    assert queue_requests == [f"{project}/tasks/next"] + [f"{project}/tasks/{t}/answers?next=true" for t in shown]
    assert tab.errors == [] and tab.console_errors == []


def png(width: int, height: int) -> bytes:
    """A plain PNG picture (one colour), made here: the test needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xf3\xef\xdc" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_a_picture_uploaded_as_a_file_is_shown_for_boxes(site: Site) -> None:
    from tests.browser.web import SCHEMAS

    world, services = site.world, site.world.services
    project = services.projects.create(world.operator, world.client_a, slug="files", name="Boxes on files",
                                       schema=SCHEMAS["bbox"])
    info = services.files.upload(world.operator, world.client_a, project.id, "shapes.png", "image/png",
                                 png(400, 250))
    services.imports.import_rows(world.operator, world.client_a, project.id,
                                 [{"external_id": "f1", "data": {"image": info.ref}}])
    tab = site.open_as("ann")
    tab.go(f"/projects/{project.id}/label")
    image = tab.page.locator(".bbox-stage img")
    image.wait_for()
    for _ in range(50):  # wait_for_function would need eval, which the page's CSP forbids: poll
        if tab.page.evaluate("(img) => img.complete && img.naturalWidth", image.element_handle()):
            break
        tab.page.wait_for_timeout(100)
    assert tab.page.evaluate("(img) => img.naturalWidth", image.element_handle()) == 400
    assert image.get_attribute("src") == f"/api/projects/{project.id}/files/{info.id}"
    tab.shot("label-bbox-file")

    # Skip with a reason, then the screen says why there is nothing: none left, then paused.
    page = tab.page
    page.keyboard.press("s")
    page.locator("#skip-reason").fill("The picture is too blurry to judge")
    page.keyboard.press("Enter")
    page.locator("#empty:not([hidden])").wait_for()
    assert page.locator("#empty").get_attribute("data-reason") == "no_tasks"
    from labelvault.workflow.projects import ProjectSettings

    services.projects.update(world.operator, world.client_a, project.id, ProjectSettings(status="paused"))
    page.keyboard.press("r")
    page.locator("#empty[data-reason='project_inactive']").wait_for()
    assert page.locator("#empty-title").inner_text() == "This project is paused"
    tab.shot("label-paused")
    assert tab.errors == [] and tab.console_errors == []
