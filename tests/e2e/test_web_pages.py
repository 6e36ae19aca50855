"""The web pages through the real app: who sees what, forms that change things, security headers,
no inline scripts, HTML errors, and 404 for anything of another client."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelvault.errors import NotAuthenticated, QueueRefused
from labelvault.server import build_app
from labelvault.storage.models import AuditEntry
from labelvault.web.charts import Series, bar_chart, line_chart
from labelvault.workflow.web_sessions import SESSION_COOKIE
from tests.browser.web import Projects, add_people, add_projects, csrf_of, form_login
from tests.conftest import OPERATOR_PASSWORD, World

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def projects(world: World) -> Projects:
    add_people(world)
    return add_projects(world, ("label", "text"))


@pytest.fixture
def client(world: World, projects: Projects) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as test_client:
        yield test_client


def as_(client: TestClient, username: str, password: str | None = None) -> TestClient:
    client.cookies.clear()
    response = form_login(client, username, *([password] if password else []))
    assert response.status_code == 303, response.text
    return client


def answer_one(world: World, projects: Projects, username: str = "ann") -> None:
    actor = world.services.accounts.actor_by_username(username)
    pid = projects.ids["label"]
    task = world.services.labeling.next_task(actor, world.client_a, pid)
    world.services.labeling.submit(actor, world.client_a, pid, task.task_id, {"sentiment": "positive"})


def test_a_labeler_opening_another_clients_project_gets_a_404_page(client: TestClient, projects: Projects) -> None:
    as_(client, "ann")
    for page in ("label", "review", "dashboard"):
        response = client.get(f"/projects/{projects.foreign}/{page}")
        assert response.status_code == 404, page
        assert "text/html" in response.headers["content-type"]
        assert "Not found" in response.text
        assert "Globex" not in response.text
    csrf = csrf_of(client.get("/").text)
    api = client.post(f"/api/projects/{projects.foreign}/tasks/next", headers={"X-CSRF-Token": csrf})
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"


@sqlite_only
def test_another_clients_client_pages_are_404_too(client: TestClient, world: World) -> None:
    as_(client, "max")
    for url in (f"/clients/{world.client_b}", f"/clients/{world.client_b}/audit"):
        assert client.get(url).status_code == 404


@sqlite_only
def test_every_page_carries_the_content_security_policy_and_friends(client: TestClient, world: World,
                                                                   projects: Projects) -> None:
    as_(client, "max")
    pid = projects.ids["label"]
    for url in ("/", f"/projects/{pid}/dashboard", f"/projects/{pid}/label", f"/projects/{pid}/review",
                f"/clients/{world.client_a}", f"/clients/{world.client_a}/audit",
                f"/clients/{world.client_a}/earnings", "/no-such-page", "/static/js/label.js"):
        response = client.get(url)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, url
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, url
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == ("no-cache" if url.startswith("/static/") else "no-store")


@sqlite_only
def test_pages_have_no_inline_scripts_styles_or_event_handlers(client: TestClient, world: World,
                                                              projects: Projects) -> None:
    as_(client, "operator", OPERATOR_PASSWORD)
    answer_one(world, projects)
    pid = projects.ids["label"]
    for url in ("/", f"/projects/{pid}/dashboard", f"/projects/{pid}/label", f"/projects/{pid}/review",
                f"/clients/{world.client_a}", f"/clients/{world.client_a}/audit",
                f"/clients/{world.client_a}/earnings", "/operator/clients",
                "/operator/walls", "/operator/users", "/no-such-page"):
        html = client.get(url).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), url
        assert not re.search(r"\sstyle\s*=", html, re.I), url
        assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', ""), url
        assert "https://" not in html, url


@sqlite_only
def test_a_labeler_sees_the_projects_of_their_clients_with_their_earnings(client: TestClient, world: World,
                                                                          projects: Projects) -> None:
    answer_one(world, projects)
    html = as_(client, "ann").get("/").text
    assert "Acme AI" in html and "Label project" in html and "Text project" in html
    assert "Globex" not in html
    assert 'data-earned="25"' in html and "$0.25" in html
    assert f'href="/projects/{projects.ids["label"]}/label"' in html
    assert "/dashboard" not in html  # not a manager


MARKUP = "<script>alert('note')</script> & <img src=x onerror=alert(1)>"


def test_a_labelers_earnings_page_lists_their_money_events_with_notes_as_text(client: TestClient, world: World,
                                                                              projects: Projects) -> None:
    services, pid = world.services, projects.ids["label"]
    ann, rex = (services.accounts.actor_by_username(name) for name in ("ann", "rex"))
    task = services.labeling.next_task(ann, world.client_a, pid)
    services.labeling.submit(ann, world.client_a, pid, task.task_id, {"sentiment": "positive"})
    services.reviews.next_item(rex, world.client_a, pid)
    services.reviews.decide(rex, world.client_a, pid, task.task_id, decision="reject", reason=f"reason {MARKUP}")
    services.bonuses.grant(world.operator, world.client_a, pid, "ann", 500, f"note {MARKUP}")
    services.bonuses.grant(world.operator, world.client_a, pid, "rex", 700, "for rex only")

    home = as_(client, "ann").get("/").text
    assert f'href="/clients/{world.client_a}/earnings"' in home
    response = client.get(f"/clients/{world.client_a}/earnings")
    assert response.status_code == 200, response.text
    html = response.text
    assert re.findall(r'data-kind="(\w+)"', html) == ["bonus", "reversal", "answer"]  # newest first
    assert re.findall(r'data-amount="(-?\d+)"', html) == ["500", "-25", "25"]
    assert 'data-earned="500"' in html and "$5.00" in html and "-$0.25" in html
    escaped = "&lt;script&gt;alert(&#39;note&#39;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;"
    assert f"note {escaped}" in html and f"reason {escaped}" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "for rex only" not in html and "$7.00" not in html
    one_project = client.get(f"/clients/{world.client_a}/earnings", params={"project": pid, "after": 0}).text
    assert re.findall(r'data-kind="(\w+)"', one_project) == ["bonus", "reversal", "answer"]
    label_page = client.get(f"/projects/{pid}/label").text
    assert f'href="/clients/{world.client_a}/earnings?project={pid}"' in label_page

    bob = as_(client, "bob").get(f"/clients/{world.client_a}/earnings")
    assert bob.status_code == 404 and "text/html" in bob.headers["content-type"] and "note" not in bob.text
    bad = as_(client, "ann").get(f"/clients/{world.client_a}/earnings", params={"after": -1})
    assert bad.status_code == 400 and "after" in bad.text
    services.audit.sequence()
    with services.uow_factory.system() as uow:
        reads = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "ledger.read_own")
                                    .order_by(AuditEntry.seq)).all()
    assert [(r.actor, r.outcome) for r in reads] == [("ann", "ok"), ("ann", "ok"), ("bob", "denied")]


@sqlite_only
def test_a_labeler_may_not_open_the_dashboard_of_their_own_client(client: TestClient, projects: Projects) -> None:
    response = as_(client, "ann").get(f"/projects/{projects.ids['label']}/dashboard")
    assert response.status_code == 403
    assert "needs the role manager" in response.text


@sqlite_only
def test_the_labeling_page_carries_the_schema_and_sanitised_guidelines(client: TestClient, projects: Projects) -> None:
    html = as_(client, "ann").get(f"/projects/{projects.ids['label']}/label").text
    config = re.search(r"data-config='([^']+)'", html)
    assert config is not None
    schema = orjson.loads(config.group(1).replace("&#34;", '"').replace("&amp;", "&"))["schema"]
    assert schema["questions"][0]["labels"] == ["positive", "negative", "neutral"]
    assert "Pick the <strong>sentiment</strong>." in html
    assert '<script type="module" src="/static/js/label.js"></script>' in html


@sqlite_only
def test_the_dashboard_shows_progress_charts_and_the_labeler_table(client: TestClient, world: World,
                                                                   projects: Projects) -> None:
    pid = projects.ids["label"]
    before = as_(client, "max").get(f"/projects/{pid}/dashboard").text
    assert 'data-given="0"' in before
    answer_one(world, projects)
    after = client.get(f"/projects/{pid}/dashboard").text
    assert 'data-given="1"' in after
    assert re.findall(r'class="chart-bar"[^>]*data-value="(\d+)"', after)[-1] == "1"  # today's bar
    assert '<tr data-user="ann">' in after
    assert "$0.25" in after  # spent, and ann's earnings
    assert '<svg class="chart"' in after and "Spend against budget" in after


@sqlite_only
def test_the_dashboard_offers_the_export_formats_the_project_can_fill(client: TestClient, world: World,
                                                                      projects: Projects) -> None:
    pid = projects.ids["label"]  # one label question
    answer_one(world, projects)
    page = as_(client, "max").get(f"/projects/{pid}/dashboard").text
    offered = re.findall(r'data-format="([a-z-]+)"', page)
    assert offered == ["jsonl", "aggregated-jsonl", "parquet", "aggregated-parquet", "csv", "hf-dataset"]
    csv = client.get(f"/api/projects/{pid}/export?format=csv")  # the link, with the page's session
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "positive" in csv.text


@sqlite_only
def test_the_labeler_table_shows_agreement_from_the_quality_report(client: TestClient, world: World,
                                                                    projects: Projects) -> None:
    from labelvault.workflow.projects import ProjectSettings

    pid = projects.ids["label"]
    world.services.projects.update(world.operator, world.client_a, pid, ProjectSettings(overlap=2))
    world.services.imports.import_rows(world.operator, world.client_a, pid, [
        {"external_id": "l2", "data": {"text": "Meh."}}, {"external_id": "l3", "data": {"text": "Fine."}}])
    for who in ("ann", "labeler_a"):
        actor = world.services.accounts.actor_by_username(who)
        while True:
            try:
                task = world.services.labeling.next_task(actor, world.client_a, pid)
            except QueueRefused:
                break
            world.services.labeling.submit(actor, world.client_a, pid, task.task_id, {"sentiment": "positive"})
    page = as_(client, "max").get(f"/projects/{pid}/dashboard").text
    ann = page.split('<tr data-user="ann">')[1].split("</tr>")[0]
    assert "100% (n=" in ann
    assert 'id="agreement"' in page and "<td>sentiment</td>" in page


@sqlite_only
def test_the_settings_form_changes_the_project(client: TestClient, world: World, projects: Projects) -> None:
    pid = projects.ids["label"]
    page = as_(client, "max").get(f"/projects/{pid}/dashboard").text
    form = {"csrf_token": csrf_of(page), "name": "Sentiment", "status": "active", "overlap": "3",
            "lease_minutes": "15", "review_policy": "sample", "review_sample_percent": "25", "pay_on": "accept",
            "rate_per_answer": "0.30", "rate_per_review": "0.05", "budget_cap": "12.50", "gold_percent": "10",
            "suspension_percent": "60",
            "rate_question": ["sentiment"], "rate_question_value": ["0.02"]}
    response = client.post(f"/projects/{pid}/settings", data=form, follow_redirects=False)
    assert response.status_code == 303
    info = world.services.projects.get(world.operator, world.client_a, pid)  # type: ignore[arg-type]
    assert (info.name, info.overlap, info.lease_seconds) == ("Sentiment", 3, 900)
    assert (info.review_policy, info.review_sample_rate, info.pay_on) == ("sample", 0.25, "accept")
    assert (info.rate_per_answer, info.rate_per_review, info.budget_cap) == (30, 5, 1250)
    assert info.question_rates == {"sentiment": 2}
    assert (info.gold_rate, info.suspension_threshold) == (0.1, 0.6)
    assert "Settings saved." in client.get(response.headers["location"]).text
    form.update(budget_cap="", rate_per_answer="0.301")
    refused = client.post(f"/projects/{pid}/settings", data=form)
    assert refused.status_code == 400 and "at most 2 decimals" in refused.text
    form.update(rate_per_answer="0.30")
    client.post(f"/projects/{pid}/settings", data=form)
    assert world.services.projects.get(world.operator, world.client_a, pid).budget_cap is None  # type: ignore[arg-type]


@sqlite_only
def test_the_settings_form_changes_the_guidelines_labelers_read(client: TestClient, world: World,
                                                                projects: Projects) -> None:
    pid = projects.ids["label"]
    page = as_(client, "max").get(f"/projects/{pid}/dashboard").text
    assert 'name="guidelines"' in page
    form = {"csrf_token": csrf_of(page), "guidelines": "Sarcasm is **negative**.\r\n\r\n<script>x()</script>",
            "guidelines_shown": "true"}
    assert client.post(f"/projects/{pid}/settings", data=form, follow_redirects=False).status_code == 303
    schema = world.services.projects.get(world.operator, world.client_a, pid).schema  # type: ignore[arg-type]
    assert schema.instructions == "Sarcasm is **negative**.\n\n<script>x()</script>"
    assert [q.name for q in schema.questions] == ["sentiment"]  # the questions stay
    client.post(f"/projects/{pid}/settings", data={"csrf_token": form["csrf_token"], "name": "Renamed"})
    assert world.services.projects.get(world.operator, world.client_a, pid).schema == schema  # type: ignore[arg-type]
    dashboard = client.get(f"/projects/{pid}/dashboard").text
    assert "Sarcasm is **negative**." in dashboard and "&lt;script&gt;x()&lt;/script&gt;" in dashboard
    labeling = as_(client, "ann").get(f"/projects/{pid}/label").text
    assert "Sarcasm is" in labeling and "<script>x()" not in labeling  # rendered without the script
    form["csrf_token"] = csrf_of(as_(client, "max").get(f"/projects/{pid}/dashboard").text)
    assert client.post(f"/projects/{pid}/settings", data={**form, "guidelines": ""}).status_code == 200
    assert world.services.projects.get(world.operator, world.client_a, pid).schema.instructions is None  # type: ignore[arg-type]


@sqlite_only
def test_the_import_form_imports_a_file_and_reports_bad_rows(client: TestClient, world: World,
                                                             projects: Projects) -> None:
    pid = projects.ids["label"]
    csrf = csrf_of(as_(client, "max").get(f"/projects/{pid}/dashboard").text)
    lines = b'{"external_id": "n1", "data": {"text": "one"}}\n{"external_id": "n2", "data": {"text": "two"}}\n'
    response = client.post(f"/projects/{pid}/import", data={"csrf_token": csrf},
                           files={"file": ("new.jsonl", io.BytesIO(lines), "application/x-ndjson")},
                           follow_redirects=False)
    assert response.status_code == 303
    assert "imported=2-0-0" in response.headers["location"]
    assert "Imported: 2 new, 0 already there" in client.get(response.headers["location"]).text
    bad = client.post(f"/projects/{pid}/import", data={"csrf_token": csrf},
                      files={"file": ("bad.jsonl", io.BytesIO(b'{"data": {"nope": 1}}\n'), "application/x-ndjson")})
    assert bad.status_code == 400
    assert "import rejected" in bad.text
    assert world.services.projects.progress(world.operator, world.client_a, pid)["tasks"] == 3  # type: ignore[arg-type]


@sqlite_only
def test_the_client_page_shows_spend_and_an_offboarding_request_is_audited(client: TestClient, world: World,
                                                                           projects: Projects) -> None:
    answer_one(world, projects)
    page = as_(client, "max").get(f"/clients/{world.client_a}").text
    assert "Projects and spend" in page and "$0.25" in page
    assert "Request offboarding" in page
    form = {"csrf_token": csrf_of(page), "confirm": "true"}
    response = client.post(f"/clients/{world.client_a}/offboarding", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert "Offboarding request recorded" in client.get(response.headers["location"]).text
    trail = [orjson.loads(line) for line in world.services.audit.trail(world.client_a)]
    requested = [e for e in trail if e["action"] == "client.offboarding_requested"]
    assert len(requested) == 1 and requested[0]["actor"] == "max"


@sqlite_only
def test_a_viewer_sees_the_audit_trail_but_neither_spend_nor_the_offboarding_button(
    client: TestClient, world: World, projects: Projects
) -> None:
    page = as_(client, "vic").get(f"/clients/{world.client_a}").text
    assert "Spend is shown to the client's managers." in page
    assert "Request offboarding" not in page
    form = {"csrf_token": csrf_of(page), "confirm": "true"}
    refused = client.post(f"/clients/{world.client_a}/offboarding", data=form)
    assert refused.status_code == 403
    assert client.get(f"/clients/{world.client_a}/audit").status_code == 200


@sqlite_only
def test_the_audit_trail_says_who_saw_the_data_and_filters(client: TestClient, world: World,
                                                           projects: Projects) -> None:
    answer_one(world, projects)
    page = as_(client, "vic").get(f"/clients/{world.client_a}/audit").text
    viewers = page.split('id="viewers"')[1].split("</table>")[0]
    assert "<td>ann</td>" in viewers
    filtered = client.get(f"/clients/{world.client_a}/audit", params={"actor": "ann", "action": "task.shown"}).text
    entries = filtered.split('id="entries"')[1].split("</table>")[0]
    assert entries.count("<tr") == 2  # the header and ann's one task.shown
    assert "<code>task.shown</code>" in entries
    assert client.get(f"/clients/{world.client_a}/audit", params={"since": "yesterday"}).status_code == 400


@sqlite_only
def test_operator_pages_list_and_change_clients_walls_users_and_roles(client: TestClient, world: World) -> None:
    as_(client, "operator", OPERATOR_PASSWORD)
    page = client.get("/operator/clients").text
    assert "Acme AI" in page and "Globex Labs" in page
    csrf = csrf_of(page)
    assert client.post("/operator/clients", data={"csrf_token": csrf, "slug": "initech", "name": "Initech",
                                                  "currency": "EUR"}).status_code == 200
    client.post("/operator/walls", data={"csrf_token": csrf, "name": "frontier-labs"})
    client.post("/operator/walls/members", data={"csrf_token": csrf, "class_name": "frontier-labs",
                                                 "client_id": str(world.client_a)})
    walls = client.get("/operator/walls").text
    assert 'data-class="frontier-labs"' in walls and "Acme AI" in walls.split('data-class="frontier-labs"')[1]
    client.post("/operator/users", data={"csrf_token": csrf, "username": "newbie", "password": "newbie-password-1"})
    client.post("/operator/roles", data={"csrf_token": csrf, "username": "newbie", "client_id": str(world.client_b),
                                         "role": "labeler"})
    users = client.get("/operator/users").text
    assert "Globex Labs: labeler" in users.split('data-user="newbie"')[1].split("</tr>")[0]
    newbie = world.services.accounts.actor_by_username("newbie")
    assert [m.slug for m in world.services.web_sessions.memberships(newbie)] == ["globex"]


@sqlite_only
def test_an_operator_deactivates_and_reactivates_a_user_from_the_users_page(client: TestClient, world: World) -> None:
    as_(client, "operator", OPERATOR_PASSWORD)
    page = client.get("/operator/users").text
    operator_row = page.split(f'data-user="{world.operator.username}"')[1].split("</tr>")[0]
    assert "Deactivate" not in operator_row and "you" in operator_row  # never themselves
    token = world.tokens["labeler_a"]
    done = client.post("/operator/users/active", data={"csrf_token": csrf_of(page), "username": "labeler_a",
                                                       "active": "false"})
    assert "User deactivated" in done.text
    row = done.text.split('data-user="labeler_a"')[1].split("</tr>")[0]
    assert "inactive" in row and "Reactivate" in row
    with pytest.raises(NotAuthenticated):
        world.services.accounts.actor_for_token(token)
    again = client.post("/operator/users/active", data={"csrf_token": csrf_of(done.text), "username": "labeler_a",
                                                        "active": "true"})
    assert "User reactivated" in again.text and world.services.accounts.actor_for_token(token).username == "labeler_a"
    forged = client.post("/operator/users/active", data={"csrf_token": "forged", "username": "labeler_a",
                                                         "active": "false"})
    assert forged.status_code == 403
    assert world.services.accounts.actor_for_token(token).username == "labeler_a"


@sqlite_only
def test_a_person_changes_their_password_on_their_account_page(client: TestClient, world: World) -> None:
    world.services.accounts.create_user(world.operator, "pat", "the-old-long-password")
    elsewhere = world.services.web_sessions.login("pat", "the-old-long-password").session_id
    as_(client, "pat", "the-old-long-password")
    page = client.get("/account")
    assert page.status_code == 200 and 'href="/account"' in page.text and "Change your password" in page.text
    form = {"csrf_token": csrf_of(page.text), "current_password": "the-old-long-password",
            "new_password": "the-new-long-password", "confirm_password": "the-new-long-password"}
    assert "the two new passwords differ" in client.post(
        "/account/password", data={**form, "confirm_password": "something-else-1"}).text
    wrong = client.post("/account/password", data={**form, "current_password": "not-the-password"})
    assert wrong.status_code == 401 and "wrong username or password" in wrong.text
    assert client.post("/account/password", data={**form, "csrf_token": "forged"}).status_code == 403

    done = client.post("/account/password", data=form)
    assert done.status_code == 200 and "Password changed" in done.text  # and still logged in here
    with pytest.raises(NotAuthenticated):
        world.services.web_sessions.lookup(elsewhere)
    assert world.services.accounts.authenticate("pat", "the-new-long-password").username == "pat"


@sqlite_only
def test_a_person_without_a_password_is_not_offered_to_change_one(client: TestClient, world: World) -> None:
    # On an install with both ways in, people created by single sign-on have no password here.
    world.services.accounts.create_user(world.operator, "sam", None)
    sam = world.services.accounts.actor_by_username("sam")
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, world.services.web_sessions.start(sam, method="sso").session_id)
    page = client.get("/account")
    assert page.status_code == 200 and "sam" in page.text
    assert "Change password" not in page.text and 'name="current_password"' not in page.text
    assert "You sign in with single sign-on" in page.text
    operators = client.get("/api/users", headers={"Authorization": f"Bearer {world.tokens['operator']}"}).json()
    assert {u["username"]: u["has_password"] for u in operators["items"]}["sam"] is False


@sqlite_only
def test_operator_pages_are_refused_to_everybody_else(client: TestClient) -> None:
    as_(client, "max")
    for url in ("/operator/clients", "/operator/walls", "/operator/users"):
        assert client.get(url).status_code == 403
    csrf = csrf_of(client.get("/").text)
    assert client.post("/operator/clients", data={"csrf_token": csrf, "slug": "x"}).status_code == 403


@sqlite_only
def test_markdown_is_rendered_without_scripts_handlers_or_javascript_links(client: TestClient) -> None:
    csrf = csrf_of(as_(client, "ann").get("/").text)
    texts = ["<script>alert(1)</script> **bold**", "<img src=x onerror=alert(1)>", "[x](javascript:alert(1))",
             "![i](data:image/png;base64,AAAA)"]
    refused = client.post("/render/markdown", json={"texts": texts}, headers={"Accept": "application/json"})
    assert refused.status_code == 403
    html = client.post("/render/markdown", json={"texts": texts},
                       headers={"X-CSRF-Token": csrf, "Accept": "application/json"}).json()["html"]
    assert "<strong>bold</strong>" in html[0]
    tags = re.findall(r"<[^>]*>", "".join(html).lower())
    assert not [t for t in tags if t.startswith("<script") or "onerror" in t or "javascript:" in t]
    assert "&lt;script&gt;" in html[0] and "&lt;img src=x onerror=alert(1)&gt;" in html[1]  # shown as text


@sqlite_only
def test_unknown_pages_are_html_and_unknown_api_paths_stay_json(client: TestClient) -> None:
    page = client.get("/nothing/here")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    api = client.get("/api/nothing-here")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_charts_are_plain_svg_with_escaped_text() -> None:
    bars = bar_chart([("<b>x</b>", 3), ("y", 0)], title="Answers <per> day")
    assert str(bars).startswith('<svg class="chart"')
    assert "<b>" not in str(bars) and "&lt;b&gt;x&lt;/b&gt;" in str(bars)
    assert 'data-value="3"' in str(bars)
    line = line_chart(["a", "b"], [Series("spent", [10, 40])], title="Spend", reference=("budget", 100))
    assert 'class="chart-reference"' in str(line) and "budget 100" in str(line)
    assert "nothing yet" in str(bar_chart([], title="empty"))
