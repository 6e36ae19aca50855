"""The manager's task browser through the real app: the list by state and external id, one task with
its answers, skips, leases and reviews, client text shown as text, who may see what, and the
forms that change a task (priority, more answers, removal)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from labelvault.domain.access import Actor
from labelvault.storage.models import AuditEntry
from tests.browser.web import Projects, csrf_of, form_login
from tests.conftest import World
from tests.e2e.test_web_pages import client, projects, sqlite_only

__all__ = ["client", "projects"]  # the web pages' fixtures: an app with people and projects

MARKUP = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; and &lt;img src=x onerror=alert(1)&gt;"


def as_(client: TestClient, username: str) -> TestClient:
    client.cookies.clear()
    response = form_login(client, username)
    assert response.status_code == 303, response.text
    return client


def person(world: World, username: str) -> Actor:
    return world.services.accounts.actor_by_username(username)


def answer_next(world: World, project_id: int, username: str, answer: dict) -> int:
    """``username`` takes the next task of the project and answers it; its id."""
    actor = person(world, username)
    task = world.services.labeling.next_task(actor, world.client_a, project_id)
    world.services.labeling.submit(actor, world.client_a, project_id, task.task_id, answer)
    return task.task_id


def task_id_of(world: World, project_id: int, external_id: str, client_id: int | None = None) -> int:
    tasks, _ = world.services.tasks.list(world.operator, client_id or world.client_a, project_id,
                                         external_id=external_id)
    return tasks[0].id


def listed(html: str) -> list[tuple[str, str]]:
    """(external id, state) of each row of the task table."""
    rows = html.split('id="tasks"')[1].split("</table>")[0].split("<tr data-task=")[1:]
    return [(re.search(r"<code>([^<]+)</code>", row).group(1),  # type: ignore[union-attr]
             re.search(r'data-state="(\w+)"', row).group(1)) for row in rows]  # type: ignore[union-attr]


@sqlite_only
def test_the_task_list_shows_each_state_and_filters_by_state_and_external_id(client: TestClient, world: World,
                                                                             projects: Projects) -> None:
    services, pid = world.services, projects.ids["label"]  # review policy "all": answers wait for review
    services.imports.import_rows(world.operator, world.client_a, pid, [
        {"external_id": "l2", "data": {"text": "Meh."}}, {"external_id": "l3", "data": {"text": "Fine."}}])
    services.gold.import_rows(world.operator, world.client_a, pid, [
        {"external_id": "g1", "data": {"text": "Great!"}, "gold": {"sentiment": "positive"}}])
    reviewed = answer_next(world, pid, "ann", {"sentiment": "positive"})
    services.reviews.next_item(person(world, "rex"), world.client_a, pid)
    services.reviews.decide(person(world, "rex"), world.client_a, pid, reviewed, decision="accept")
    answer_next(world, pid, "ann", {"sentiment": "neutral"})

    dashboard = as_(client, "max").get(f"/projects/{pid}/dashboard").text
    assert f'href="/projects/{pid}/tasks"' in dashboard
    page = client.get(f"/projects/{pid}/tasks")
    assert page.status_code == 200 and "4 tasks" in page.text
    assert listed(page.text) == [("l1", "complete"), ("l2", "in_review"), ("l3", "open"), ("g1", "gold")]
    assert f'href="/projects/{pid}/tasks/{reviewed}"' in page.text  # a manager opens them from here

    assert listed(client.get(f"/projects/{pid}/tasks", params={"state": "open"}).text) == [("l3", "open")]
    assert listed(client.get(f"/projects/{pid}/tasks", params={"state": "gold"}).text) == [("g1", "gold")]
    found = client.get(f"/projects/{pid}/tasks", params={"external_id": " l2 "}).text
    assert listed(found) == [("l2", "in_review")] and "1 task " in found
    nothing = client.get(f"/projects/{pid}/tasks", params={"external_id": "nope", "state": "open"}).text
    assert listed(nothing) == [] and "No tasks match." in nothing
    bad = client.get(f"/projects/{pid}/tasks", params={"state": "finished"})
    assert bad.status_code == 400 and "text/html" in bad.headers["content-type"] and "state must be one of" in bad.text

    first = client.get(f"/projects/{pid}/tasks", params={"limit": 3}).text
    assert [e for e, _ in listed(first)] == ["l1", "l2", "l3"] and "showing 1 to 3" in first
    assert 'href="?limit=3&amp;offset=3" rel="next">Next' in first and 'rel="prev"' not in first
    second = client.get(f"/projects/{pid}/tasks", params={"limit": 3, "offset": 3}).text
    assert listed(second) == [("g1", "gold")] and 'href="?limit=3" rel="prev">Previous' in second
    assert 'rel="next"' not in second

    # Anyone with a role may list (ids and counters only), but only managers get links to the tasks.
    viewer = as_(client, "vic").get(f"/projects/{pid}/tasks")
    assert viewer.status_code == 200 and len(listed(viewer.text)) == 4
    assert f'href="/projects/{pid}/tasks/' not in viewer.text and "/dashboard" not in viewer.text


@sqlite_only
def test_a_manager_opens_a_task_and_sees_its_text_answers_skips_and_leases(client: TestClient, world: World,
                                                                           projects: Projects) -> None:
    services, pid = world.services, projects.ids["label"]
    services.imports.import_rows(world.operator, world.client_a, pid, [{"external_id": "l2", "data": {"text": "Meh."}}])
    ann = person(world, "ann")
    first = services.labeling.next_task(ann, world.client_a, pid)  # l1
    services.labeling.skip(ann, world.client_a, pid, first.task_id, "cannot tell irony from praise here")
    assert answer_next(world, pid, "labeler_a", {"sentiment": "negative"}) == first.task_id
    held = services.labeling.next_task(ann, world.client_a, pid)  # l2, leased to ann

    page = as_(client, "max").get(f"/projects/{pid}/tasks/{first.task_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "I love this phone." in html and "<code class=\"external-id\">l1</code>" in html
    assert 'id="task-state" data-state="in_review"' in html
    answer = html.split('data-labeler="labeler_a"')[1].split("</tr>")[0]
    assert "<dt>sentiment</dt>" in answer and "negative" in answer and "submitted" in answer
    skips = html.split('id="skips"')[1].split("</section>")[0]
    assert "ann" in skips and "cannot tell irony from praise here" in skips
    suggestions = html.split('id="suggestions"')[1].split("</section>")[0]
    assert "m1" in suggestions and "neutral" in suggestions and "score 0.4" in suggestions
    assert "Nobody holds it." in html and "Not reviewed." in html

    leased = client.get(f"/projects/{pid}/tasks/{held.task_id}").text
    assert 'data-holder="ann"' in leased and "labeling" in leased and "No answers yet." in leased

    services.audit.sequence()
    with services.uow_factory.system() as uow:
        reads = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "task.read")).all()
    assert [(r.actor, r.outcome) for r in reads] == [("max", "ok"), ("max", "ok")]  # each opening witnessed


@sqlite_only
def test_client_text_in_a_task_is_shown_escaped_never_as_markup(client: TestClient, world: World,
                                                                projects: Projects) -> None:
    services, label, text = world.services, projects.ids["label"], projects.ids["text"]
    services.imports.import_rows(world.operator, world.client_a, label, [
        {"external_id": "x1", "priority": 10, "data": {"text": f"text {MARKUP}"},
         "metadata": {"source": f"meta {MARKUP}"}}])
    ann = person(world, "ann")
    skipped = services.labeling.next_task(ann, world.client_a, label)
    services.labeling.skip(ann, world.client_a, label, skipped.task_id, f"skip {MARKUP}")
    answer_next(world, label, "labeler_a", {"sentiment": "positive"})
    rex = person(world, "rex")
    services.reviews.next_item(rex, world.client_a, label)
    services.reviews.decide(rex, world.client_a, label, skipped.task_id, decision="reject", reason=f"reject {MARKUP}")
    services.imports.import_rows(world.operator, world.client_a, text, [
        {"external_id": "x2", "priority": 10, "data": {"notes": f"notes **bold** {MARKUP}"}}])
    noted = answer_next(world, text, "ann", {"reply": f"reply {MARKUP}"})

    as_(client, "max")
    labeled = client.get(f"/projects/{label}/tasks/{skipped.task_id}").text
    markdown = client.get(f"/projects/{text}/tasks/{noted}").text
    for html in (labeled, markdown):
        assert "<script>alert" not in html and "<img" not in html
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    for shown in ("text", "meta", "skip", "reject"):
        assert f"{shown} {ESCAPED}" in labeled, shown
    assert f"reply {ESCAPED}" in markdown
    assert f"notes <strong>bold</strong> {ESCAPED}" in markdown  # the labeling screen's sanitised markdown


@sqlite_only
def test_task_pages_carry_the_security_headers_and_no_inline_scripts(client: TestClient, world: World,
                                                                     projects: Projects) -> None:
    pid = projects.ids["label"]
    answer_next(world, pid, "ann", {"sentiment": "positive"})
    as_(client, "max")
    for url in (f"/projects/{pid}/tasks", f"/projects/{pid}/tasks/{task_id_of(world, pid, 'l1')}"):
        response = client.get(url)
        assert "script-src 'self'" in response.headers["content-security-policy"], url
        assert response.headers["cache-control"] == "no-store"
        html = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), url
        assert not re.search(r"\sstyle\s*=", html, re.I), url


@sqlite_only
def test_a_labeler_may_not_open_a_task_and_strangers_and_other_projects_get_404(client: TestClient, world: World,
                                                                                projects: Projects) -> None:
    label, text = projects.ids["label"], projects.ids["text"]
    task = task_id_of(world, label, "l1")
    as_(client, "ann")
    assert client.get(f"/projects/{label}/tasks").status_code == 200  # labelers may list
    refused = client.get(f"/projects/{label}/tasks/{task}")
    assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]
    assert "needs the role manager" in refused.text and "I love this phone." not in refused.text

    as_(client, "bob")  # a labeler of the other client
    for url in (f"/projects/{label}/tasks", f"/projects/{label}/tasks/{task}"):
        stranger = client.get(url)
        assert stranger.status_code == 404 and "Not found" in stranger.text, url
        assert "I love this phone." not in stranger.text and "l1" not in stranger.text

    as_(client, "max")
    other_project = client.get(f"/projects/{text}/tasks/{task}")
    assert other_project.status_code == 404 and "I love this phone." not in other_project.text
    foreign_task = task_id_of(world, projects.foreign, "g1", client_id=world.client_b)
    for url in (f"/projects/{projects.foreign}/tasks", f"/projects/{projects.foreign}/tasks/{foreign_task}",
                f"/projects/{label}/tasks/999999", "/projects/999999/tasks"):
        missing = client.get(url)
        assert missing.status_code == 404 and "Globex" not in missing.text, url


@sqlite_only
def test_the_priority_form_needs_its_csrf_token_and_then_moves_the_task(client: TestClient, world: World,
                                                                        projects: Projects) -> None:
    pid = projects.ids["label"]
    task = task_id_of(world, pid, "l1")
    url = f"/projects/{pid}/tasks/{task}/priority"

    def priority() -> int:
        return world.services.tasks.list(world.operator, world.client_a, pid, external_id="l1")[0][0].priority

    page = as_(client, "max").get(f"/projects/{pid}/tasks/{task}").text
    assert f'action="{url}"' in page and 'name="priority"' in page
    for refused in ({"priority": "7"}, {"priority": "7", "csrf_token": "forged"}):
        response = client.post(url, data=refused, follow_redirects=False)
        assert response.status_code == 403 and "the form is out of date" in response.text
    assert priority() == 0

    done = client.post(url, data={"priority": "7", "csrf_token": csrf_of(page)}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/projects/{pid}/tasks/{task}?done=priority_saved#priority"
    assert priority() == 7
    shown = client.get(done.headers["location"]).text
    assert "Priority saved" in shown and '<div class="stat-value" id="task-priority">7</div>' in shown

    for bad, message in (("high", "not a whole number"), ("", "enter a whole number"), (str(10**9), "priority")):
        response = client.post(url, data={"priority": bad, "csrf_token": csrf_of(page)})
        assert response.status_code == 400 and message in response.text, bad
    assert priority() == 7

    labeler_page = as_(client, "ann").get("/").text
    refused = client.post(url, data={"priority": "1", "csrf_token": csrf_of(labeler_page)})
    assert refused.status_code == 403 and priority() == 7


@sqlite_only
def test_a_task_nobody_answered_can_be_removed_from_its_page_and_an_answered_one_cannot(
    client: TestClient, world: World, projects: Projects
) -> None:
    pid = projects.ids["label"]
    world.services.imports.import_rows(world.operator, world.client_a, pid,
                                       [{"external_id": "l2", "data": {"text": "Imported by mistake."}}])
    answered = answer_next(world, pid, "ann", {"sentiment": "positive"})  # l1
    untouched = task_id_of(world, pid, "l2")
    assert answered != untouched
    as_(client, "max")
    assert 'id="remove"' not in client.get(f"/projects/{pid}/tasks/{answered}").text  # paid work stays
    page = client.get(f"/projects/{pid}/tasks/{untouched}").text
    url = f"/projects/{pid}/tasks/{untouched}/remove"
    assert f'action="{url}"' in page

    unconfirmed = client.post(url, data={"csrf_token": csrf_of(page)})
    assert unconfirmed.status_code == 400 and "tick the box" in unconfirmed.text
    assert client.post(url, data={"confirm": "true", "csrf_token": "forged"}).status_code == 403
    assert task_id_of(world, pid, "l2") == untouched  # still there

    done = client.post(url, data={"confirm": "true", "csrf_token": csrf_of(page)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/projects/{pid}/tasks?done=task_removed"
    assert "Task removed" in client.get(done.headers["location"]).text
    assert world.services.tasks.list(world.operator, world.client_a, pid, external_id="l2")[1] == 0
    assert client.get(f"/projects/{pid}/tasks/{untouched}").status_code == 404
    # An answered task is refused by the use case even when the form is posted anyway.
    refused = client.post(f"/projects/{pid}/tasks/{answered}/remove",
                          data={"confirm": "true", "csrf_token": csrf_of(page)})
    assert refused.status_code == 409 and "have answers" in refused.text


@sqlite_only
def test_the_more_answers_form_sends_a_complete_task_back_to_the_queue(client: TestClient, world: World,
                                                                       projects: Projects) -> None:
    pid = projects.ids["label"]
    task = answer_next(world, pid, "ann", {"sentiment": "positive"})  # l1, complete (overlap 1)
    page = as_(client, "max").get(f"/projects/{pid}/tasks/{task}").text
    url = f"/projects/{pid}/tasks/{task}/more-answers"
    assert f'action="{url}"' in page
    assert client.post(url, data={"more": "1", "csrf_token": "forged"}).status_code == 403
    for bad in ("", "two", "0"):
        assert client.post(url, data={"more": bad, "csrf_token": csrf_of(page)}).status_code == 400, bad
    done = client.post(url, data={"more": "2", "csrf_token": csrf_of(page)}, follow_redirects=False)
    assert done.status_code == 303
    shown = client.get(done.headers["location"]).text
    assert "More answers asked" in shown and 'data-state="open"' in shown
    summary = world.services.tasks.list(world.operator, world.client_a, pid, external_id="l1")[0][0]
    assert (summary.state, summary.required_answers) == ("open", 3)
