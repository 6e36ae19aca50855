"""`labelvault webhook ...` through the real console script, delivering to a real local receiver."""

from __future__ import annotations

import re

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from labelvault.bootstrap import build_services
from labelvault.settings import Settings
from tests.e2e.test_cli import Cli, acme_reviews_with_lena, cli
from tests.integration.test_webhooks import Receiver, receiver

__all__ = ["cli", "receiver"]  # fixtures, shared with the other tests

pytestmark = pytest.mark.e2e


def test_an_operator_adds_a_webhook_delivers_reads_the_log_retries_and_removes_it(
    cli: Cli, receiver: Receiver
) -> None:
    cli.env.update(LABELVAULT_WEBHOOK_ALLOWED_HOSTS="127.0.0.1", LABELVAULT_WEBHOOK_ALLOW_PRIVATE="true")
    acme_reviews_with_lena(cli, 1)

    refused = cli("webhook", "add", "acme/reviews", "http://example.com/hook", "--event", "task.completed")
    assert refused.code != 0 and "allow-list" in refused.error_line
    out = cli.ok("webhook", "add", "acme/reviews", receiver.url, "--event", "task.completed",
                 "--event", "project.completed")
    match = re.search(r"webhook (\d+) added.*secret \(shown once\): (whsec_\S+)", out, re.S)
    assert match, out
    webhook_id, secret = match.groups()
    listed = cli.ok("webhook", "list", "acme/reviews").split()  # rich prints tabs as spaces
    assert listed == [webhook_id, "active", "project.completed,task.completed", receiver.url]

    # A labeler answers through the use case (the CLI has no labeling command); same install.
    services = build_services(Settings(home=cli.home, sqlite_synchronous="NORMAL"))
    try:
        client_id, project_id = services.projects.locate("acme/reviews")
        lena = services.accounts.actor_by_username("lena")
        task = services.labeling.next_task(lena, client_id, project_id)
        services.labeling.submit(lena, client_id, project_id, task.task_id, {"sentiment": "positive"})
    finally:
        services.close()

    assert "2 delivered, 0 to retry, 0 failed" in cli.ok("webhook", "deliver")
    assert sorted(orjson.loads(r.body)["type"] for r in receiver.requests) == ["project.completed", "task.completed"]
    for received in receiver.requests:
        Webhook(secret).verify(received.body, received.headers)
    log = cli.ok("webhook", "deliveries", "acme/reviews", "--attempts")
    assert log.split().count("delivered") == 2 and "2 of 2 deliveries" in log
    assert re.search(r"#1\s+\S+\s+200\s+\d+ ms", log), log
    delivery_id = log.split()[0]
    assert f"delivery {delivery_id} queued again" in cli.ok("webhook", "retry", "acme/reviews", delivery_id)
    assert "1 delivered" in cli.ok("webhook", "deliver")
    assert len(receiver.requests) == 3
    assert f"webhook {webhook_id} removed" in cli.ok("webhook", "remove", "acme/reviews", webhook_id)
    assert cli.ok("webhook", "list", "acme/reviews") == ""
