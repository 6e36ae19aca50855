"""A labeler who opens another client's project or task gets 404, in the page and in the API."""

from __future__ import annotations

from tests.browser.conftest import Site


def test_a_labeler_opening_another_clients_project_or_task_gets_404(site: Site) -> None:
    services, world = site.world.services, site.world
    bob = services.accounts.actor_by_username("bob")
    foreign_task = services.labeling.next_task(bob, world.client_b, site.projects.foreign).task_id

    labeler = site.open_as("ann")
    page = labeler.page
    for path in (f"/projects/{site.projects.foreign}/label", f"/projects/{site.projects.foreign}/review",
                 f"/projects/{site.projects.foreign}/dashboard", f"/clients/{world.client_b}"):
        response = labeler.go(path)
        assert response.status == 404, path  # type: ignore[attr-defined]
        assert page.locator("h1").inner_text() == "Not found"
        assert "Globex" not in page.content()
    labeler.shot("not-found")

    labeler.go("/")
    calls = page.evaluate(
        """async ([project, task]) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const post = (url, body) => fetch(url, {method: "POST", headers: {"X-CSRF-Token": csrf,
                "Content-Type": "application/json", "Accept": "application/json"}, body: JSON.stringify(body)});
            const next = await post(`/api/projects/${project}/tasks/next`, {});
            const answer = await post(`/api/projects/${project}/tasks/${task}/answers`,
                                      {answer: {sentiment: "positive"}});
            const feedback = await fetch(`/api/projects/${project}/feedback`);
            return [next.status, answer.status, feedback.status, (await next.json()).error.code];
        }""",
        [site.projects.foreign, foreign_task],
    )
    assert calls == [404, 404, 404, "not_found"]


def test_a_labeler_who_saw_a_competitor_is_told_about_the_conflict_wall(site: Site) -> None:
    services, world = site.world.services, site.world
    services.walls.create_class(world.operator, "frontier-labs")
    for client in (world.client_a, world.client_b):
        services.walls.add_client(world.operator, "frontier-labs", client)
    services.accounts.grant_role(world.operator, world.client_a, "bob", "labeler")
    bob = services.accounts.actor_by_username("bob")
    services.labeling.next_task(bob, world.client_b, site.projects.foreign)  # bob has seen Globex data

    labeler = site.open_as("bob")
    labeler.go(f"/projects/{site.projects.ids['label']}/label")
    labeler.page.locator("#empty[data-reason='conflict_of_interest']").wait_for()
    assert "conflict of interest" in labeler.page.locator("#empty-title").inner_text()
    assert labeler.page.locator("#task .field").count() == 0  # nothing of Acme's task was shown
    labeler.shot("label-conflict-of-interest")
