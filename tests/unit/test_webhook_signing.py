"""Webhook signatures and the retry schedule, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook

from labelvault.workflow.webhooks import WebhookConfig, new_secret, secret_bytes, sign


def test_our_signature_is_the_one_the_standard_webhooks_package_computes() -> None:
    secret = new_secret()
    body = '{"type":"task.completed","timestamp":"2026-11-26T01:00:00Z","data":{"task_id":7}}'
    at = datetime(2026, 11, 26, 1, 0, 5, tzinfo=UTC)
    ours = sign(secret_bytes(secret), "msg_abc", int(at.timestamp()), body.encode())
    assert ours == Webhook(secret).sign("msg_abc", at, body)
    assert len(secret_bytes(secret)) == 32 and secret.startswith("whsec_")
    assert new_secret() != secret


def test_waits_double_from_the_base_up_to_the_cap_with_a_fifth_of_jitter() -> None:
    config = WebhookConfig(retry_base_seconds=30, retry_max_seconds=600)
    for attempt, nominal in ((1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (12, 600)):
        waits = [config.backoff(attempt) for _ in range(200)]
        assert all(timedelta(seconds=0.8 * nominal) <= w <= timedelta(seconds=1.2 * nominal) for w in waits)
        assert len(set(waits)) > 1  # jittered, so retries of many deliveries spread out
