"""`labelvault predictor` and `labelvault predict`, the real console script in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import SCHEMA, Cli

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_an_operator_sets_a_predictor_runs_it_and_a_failing_one_is_one_clear_error(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["PYTHONPATH"] = str(ROOT)  # the test predictors live in tests/integration/predictor_helpers.py
    cli.ok("init", "--password-file", cli.file("operator.pw", "operator-password-1\n"))
    cli.ok("client", "create", "acme")
    cli.ok("project", "create", "acme", "reviews", "--schema", cli.file("schema.yaml", SCHEMA))
    rows = "".join(json.dumps({"external_id": f"r{i}", "data": {"text": f"sure 0.{i + 1}"}}) + "\n" for i in range(7))
    cli.ok("import", "acme/reviews", cli.file("tasks.jsonl", rows))
    assert "acme/reviews has no predictor" in cli.ok("predictor", "show", "acme/reviews")

    out = cli.ok("predictor", "set", "acme/reviews", "--question", "sentiment", "--model-name", "kw",
                 "--entry-point", "tests.integration.predictor_helpers:confident", "--batch-size", "3")
    assert "model kw@1" in out and "7 open tasks to score" in out
    out = cli.ok("predict", "acme/reviews")
    assert "kw@1: 7 tasks scored, 7 suggestions, 3 batches" in out
    assert "0 tasks scored" in cli.ok("predict", "acme/reviews")  # nothing left for this version
    assert "7 tasks scored" in cli.ok("predict", "acme/reviews", "--all")
    assert "0 open tasks to score" in cli.ok("predictor", "show", "acme/reviews")

    cli.ok("predictor", "set", "acme/reviews", "--question", "sentiment", "--model-version", "2",
           "--entry-point", "tests.integration.predictor_helpers:raises")
    failed = cli("predict", "acme/reviews")
    assert failed.code == 1
    assert "batch 1 (tasks 1-7): predictor tests.integration.predictor_helpers:raises raised RuntimeError" in (
        failed.error_line)

    refused = cli("predictor", "set", "acme/reviews", "--question", "sentiment", "--url", "http://10.0.0.5/x")
    assert refused.code == 0  # the host is checked when the predictor is called, against the install's list
    result = cli("predict", "acme/reviews")
    assert result.code == 1 and "LABELVAULT_PREDICTOR_ALLOWED_HOSTS" in result.error_line
    assert "predictor of acme/reviews removed" in cli.ok("predictor", "clear", "acme/reviews")
