"""A person's own money events: answers paid, reversals with the reviewer's reason, bonuses with the
manager's note; nobody else's, no other client's, every page audited and walled."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labelvault.domain.access import Actor, Scope
from labelvault.errors import ConflictOfInterest, InvalidInput, NotFound, PermissionDenied
from labelvault.storage.models import AuditEntry
from tests.conftest import World
from tests.integration.queue_helpers import label_once, make_labelers, make_project

REASON = "it is <b>negative</b>, read the last line"
NOTE = "careful work on the hard ones"


def paid_rejected_and_bonused(world: World) -> tuple[int, Actor, Actor]:
    """labeler_a: one answer rejected (paid, then reversed), one paid, a bonus; another labeler gets
    a bonus too. Returns the project and both labelers."""
    project_id = make_project(world, tasks=4, rate_per_answer=100, review_policy="all")
    labeler, reviewer = world.actors["labeler_a"], world.actors["reviewer_a"]
    (other,) = make_labelers(world, 1)
    task_id = label_once(world, labeler, project_id)
    world.services.reviews.next_item(reviewer, world.client_a, project_id)
    world.services.reviews.decide(reviewer, world.client_a, project_id, task_id, decision="reject", reason=REASON)
    label_once(world, labeler, project_id)
    label_once(world, other, project_id)
    bonuses = world.services.bonuses
    bonuses.grant(world.operator, world.client_a, project_id, labeler.username, 500, NOTE)
    bonuses.grant(world.operator, world.client_a, project_id, other.username, 700, "for the other one only")
    return project_id, labeler, other


def ledger_reads(world: World) -> list[tuple[str, str, str]]:
    world.services.audit.sequence()
    with world.services.uow_factory.system() as uow:
        rows = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "ledger.read_own")
                                   .order_by(AuditEntry.seq)).all()
        return [(r.actor, r.object_kind, r.outcome) for r in rows]


def test_a_labeler_sees_their_answers_paid_a_reversal_with_its_reason_and_their_bonus_with_its_note(
    world: World,
) -> None:
    project_id, labeler, other = paid_rejected_and_bonused(world)
    page = world.services.reports.own_ledger(labeler, world.client_a, project_id=project_id)
    assert [(e.kind, e.amount, e.note, e.reason) for e in page.items] == [
        ("answer", 100, "", ""), ("reversal", -100, "", REASON), ("answer", 100, "", ""), ("bonus", 500, NOTE, "")]
    assert {e.project_id for e in page.items} == {project_id} and page.items[0].project == "queue"
    assert page.items[0].answer_id == page.items[1].answer_id and page.items[0].task_id is not None
    assert all(e.currency == "USD" and isinstance(e.amount, int) for e in page.items)
    assert (page.total, page.earned, page.currency, page.next_after_id) == (4, 600, "USD", None)
    # The other labeler's bonus (and answer) are theirs alone.
    theirs = world.services.reports.own_ledger(other, world.client_a)
    assert [(e.kind, e.amount, e.note) for e in theirs.items] == [
        ("answer", 100, ""), ("bonus", 700, "for the other one only")]
    assert "for the other one only" not in {e.note for e in page.items}


def test_the_listing_spans_the_clients_projects_or_one_and_comes_in_keyset_pages(world: World) -> None:
    first = make_project(world, "first", tasks=2, rate_per_answer=10)
    second = make_project(world, "second", tasks=2, rate_per_answer=20)
    labeler = world.actors["labeler_a"]
    for project_id in (first, second, first, second):
        label_once(world, labeler, project_id)
    reports = world.services.reports
    everything = reports.own_ledger(labeler, world.client_a)
    assert [(e.project, e.amount) for e in everything.items] == [
        ("first", 10), ("second", 20), ("first", 10), ("second", 20)]
    assert (everything.total, everything.earned) == (4, 60)
    only_second = reports.own_ledger(labeler, world.client_a, project_id=second)
    assert [e.amount for e in only_second.items] == [20, 20] and only_second.earned == 40
    walked, after = [], 0
    while True:
        page = reports.own_ledger(labeler, world.client_a, after_id=after, limit=3)
        walked += page.items
        if page.next_after_id is None:
            break
        after = page.next_after_id
    assert walked == everything.items and len(walked) == 4
    newest = reports.own_ledger(labeler, world.client_a, limit=3, newest_first=True)
    older = reports.own_ledger(labeler, world.client_a, limit=3, newest_first=True, after_id=newest.next_after_id or 0)
    assert newest.items + older.items == everything.items[::-1] and older.next_after_id is None
    assert len(ledger_reads(world)) == 6  # one audit entry per page read: two listings, two pages, two pages


def test_each_page_read_is_audited_and_a_refusal_too(world: World) -> None:
    project_id, labeler, _ = paid_rejected_and_bonused(world)
    reports = world.services.reports
    first = reports.own_ledger(labeler, world.client_a, project_id=project_id, limit=2)
    reports.own_ledger(labeler, world.client_a, project_id=project_id, after_id=first.next_after_id or 0, limit=2)
    reports.own_ledger(labeler, world.client_a)
    with pytest.raises(NotFound):
        reports.own_ledger(world.actors["labeler_b"], world.client_a)
    assert ledger_reads(world) == [("labeler_a", "project", "ok"), ("labeler_a", "project", "ok"),
                                   ("labeler_a", "client", "ok"), ("labeler_b", "client", "denied")]


def test_another_clients_member_finds_neither_the_client_nor_its_project(world: World) -> None:
    project_id, _, _ = paid_rejected_and_bonused(world)
    reports = world.services.reports
    stranger = world.actors["labeler_b"]
    with pytest.raises(NotFound):
        reports.own_ledger(stranger, world.client_a)
    with pytest.raises(NotFound):
        reports.own_ledger(stranger, world.client_a, project_id=project_id)
    # A project of client A asked for in client B's scope (where the stranger is a member) is not there.
    with pytest.raises(NotFound):
        reports.own_ledger(stranger, world.client_b, project_id=project_id)
    # A member of client B with a bonus of their own sees only that, never A's entries.
    other_project = world.services.projects.create(world.operator, world.client_b, slug="b", name="b",
                                                   schema={"fields": [{"name": "text", "kind": "text"}],
                                                           "questions": [{"name": "ok", "type": "rating",
                                                                          "min": 1, "max": 3}]})
    world.services.bonuses.grant(world.operator, world.client_b, other_project.id, stranger.username, 5, "b's")
    assert [(e.amount, e.note) for e in reports.own_ledger(stranger, world.client_b).items] == [(5, "b's")]


def test_a_token_without_the_read_scope_is_refused(world: World) -> None:
    project_id, labeler, _ = paid_rejected_and_bonused(world)
    label_only = Actor(labeler.user_id, labeler.username, scopes=frozenset({Scope.LABEL}))
    with pytest.raises(PermissionDenied):
        world.services.reports.own_ledger(label_only, world.client_a, project_id=project_id)
    read_only = Actor(labeler.user_id, labeler.username, scopes=frozenset({Scope.READ}))
    assert world.services.reports.own_ledger(read_only, world.client_a).total == 4


def test_bad_paging_is_refused_naming_the_field(world: World) -> None:
    labeler = world.actors["labeler_a"]
    for kwargs, field in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"after_id": -1}, "after_id")):
        with pytest.raises(InvalidInput) as refused:
            world.services.reports.own_ledger(labeler, world.client_a, **kwargs)  # type: ignore[arg-type]
        assert refused.value.details == {"field": field}


def test_the_conflict_wall_holds_for_ones_own_ledger_too(world: World) -> None:
    walls = world.services.walls
    walls.create_class(world.operator, "frontier-labs")
    walls.add_client(world.operator, "frontier-labs", world.client_a)
    walls.add_client(world.operator, "frontier-labs", world.client_b)
    project_a = make_project(world, tasks=1, rate_per_answer=10)
    labeler = world.actors["labeler_a"]
    label_once(world, labeler, project_a)  # labeler_a has seen Acme's data
    world.services.accounts.grant_role(world.operator, world.client_b, "labeler_a", "labeler")
    with pytest.raises(ConflictOfInterest):
        world.services.reports.own_ledger(labeler, world.client_b)
    assert world.services.reports.own_ledger(labeler, world.client_a).total == 1
    assert ledger_reads(world)[0] == ("labeler_a", "client", "denied")
