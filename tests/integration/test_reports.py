"""Spend, earnings, payout CSV, cost per accepted answer and throughput."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from labelvault.errors import InvalidInput
from labelvault.storage.models import LedgerEntry
from labelvault.workflow.ledger import MAX_NOTE, ledger_note
from labelvault.workflow.reports import major_units, rows_to_csv
from tests.conftest import World
from tests.integration.queue_helpers import label_once, make_labelers, make_project


def test_spend_per_project_and_day_adds_up_the_ledger(world: World) -> None:
    first = make_project(world, "first", tasks=3, rate_per_answer=150)
    second = make_project(world, "second", tasks=3, rate_per_answer=40)
    labeler = world.actors["labeler_a"]
    for _ in range(3):
        label_once(world, labeler, first)
    label_once(world, labeler, second)
    rows = world.services.reports.spend(world.operator, world.client_a)
    assert [(r.project, r.amount, r.currency) for r in rows] == [("first", 450, "USD"), ("second", 40, "USD")]
    daily = world.services.reports.spend(world.operator, world.client_a, by_day=True)
    assert {r.day for r in daily} == {datetime.now(UTC).date()}


def test_earnings_and_the_payout_csv_per_person_for_a_period(world: World) -> None:
    project_id = make_project(world, tasks=5, rate_per_answer=1999)
    a, b = make_labelers(world, 2)
    label_once(world, a, project_id)
    label_once(world, a, project_id)
    label_once(world, b, project_id)
    world.services.bonuses.grant(world.operator, world.client_a, project_id, b.username, 500, "great work")
    now = datetime.now(UTC)
    rows = world.services.reports.earnings(world.operator, world.client_a, since=now - timedelta(hours=1),
                                           until=now + timedelta(hours=1))
    assert [(r.username, r.amount, r.answers) for r in rows] == [(a.username, 3998, 2), (b.username, 2499, 1)]
    csv_text = rows_to_csv(list(rows))
    assert csv_text.splitlines()[0] == "user_id,username,amount,currency,answers,reviews,amount_major"
    assert f",{a.username},3998,USD,2,0,39.98" in csv_text
    before = world.services.reports.earnings(world.operator, world.client_a, until=now - timedelta(hours=1))
    assert before == []


def test_money_is_rendered_exactly_without_floats() -> None:
    assert major_units(12345, "USD") == "123.45"
    assert major_units(-5, "EUR") == "-0.05"
    assert major_units(700, "JPY") == "700"


def test_cost_per_accepted_answer(world: World) -> None:
    project_id = make_project(world, tasks=3, rate_per_answer=100, rate_per_review=50, review_policy="all")
    labeler, reviewer = world.actors["labeler_a"], world.actors["reviewer_a"]
    for _ in range(2):
        task_id = label_once(world, labeler, project_id)
        world.services.reviews.next_item(reviewer, world.client_a, project_id)
        world.services.reviews.decide(reviewer, world.client_a, project_id, task_id, decision="accept")
    costs = world.services.reports.project_costs(world.operator, world.client_a, project_id)
    assert (costs.spent, costs.accepted_answers, costs.cost_per_accepted_answer) == (300, 2, 150)


def test_throughput_counts_answers_and_server_measured_time(world: World) -> None:
    project_id = make_project(world, tasks=3)
    labeler = world.actors["labeler_a"]
    for _ in range(3):
        label_once(world, labeler, project_id)
    rows = world.services.reports.throughput(world.operator, world.client_a, project_id)
    assert [(r.username, r.answers) for r in rows] == [(labeler.username, 3)]
    assert rows[0].working_ms >= 0


def test_reports_of_another_client_are_not_found(world: World) -> None:
    import pytest

    from labelvault.errors import NotFound

    with pytest.raises(NotFound):
        world.services.reports.spend(world.actors["manager_b"], world.client_a)


def test_a_bonus_keeps_the_managers_note_sealed_and_a_note_too_long_is_refused(world: World) -> None:
    project_id = make_project(world, tasks=1)
    labeler = world.actors["labeler_a"]
    bonuses = world.services.bonuses
    bonuses.grant(world.operator, world.client_a, project_id, labeler.username, 250, "é" * MAX_NOTE)
    with pytest.raises(InvalidInput) as refused:
        bonuses.grant(world.operator, world.client_a, project_id, labeler.username, 250, "x" * (MAX_NOTE + 1))
    assert refused.value.details == {"field": "note"}
    with world.services.uow_factory.for_client(world.client_a) as uow:
        entries = uow.session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "bonus")).all()
        assert [(e.amount, e.legacy_note, ledger_note(uow, e)) for e in entries] == [(250, "", "é" * MAX_NOTE)]
        # Sealed: not even a tenth of the note in the clear (one "é", two bytes, turns up by chance
        # in about one random ciphertext of this size in 150).
        assert entries[0].sealed_note is not None and ("é" * 10).encode() not in entries[0].sealed_note
    assert world.services.projects.get(world.operator, world.client_a, project_id).spent == 250
