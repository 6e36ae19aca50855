"""examples/quickstart.py runs against a real server process, and again after labelers answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import OPERATOR_PASSWORD, World
from tests.e2e.server_process import ServerProcess

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


@pytest.fixture
def server(world: World, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(world.services.settings, tmp_path / "server.log").start()
    yield process
    process.stop()


def run_quickstart(server: ServerProcess, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(QUICKSTART)], env={**os.environ, "LABELVAULT_URL": server.url, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("backend", ["sqlite"])
def test_quickstart_runs_and_runs_again(world: World, server: ServerProcess, tmp_path: Path) -> None:
    env = {"LABELVAULT_TOKEN": world.tokens["manager_a"], "LABELVAULT_CLIENT": "acme"}
    first = run_quickstart(server, env, tmp_path)
    assert "tasks: 10 new, 0 already there" in first
    assert "suggestions: 10 on 10 tasks" in first and "answers so far: 0" in first

    # A labeler answers three tasks; the model's suggestions are there to start from.
    labeler = {"Authorization": f"Bearer {world.tokens['labeler_a']}"}
    with httpx.Client(base_url=server.url, headers=labeler, timeout=30) as http:
        project_id = int(first.split("project ")[1].split()[0])
        for _ in range(3):
            task = http.post(f"/api/projects/{project_id}/tasks/next").json()
            assert task["suggestions"][0]["model"] == "toy-model-v1"
            http.post(f"/api/projects/{project_id}/tasks/{task['task_id']}/answers",
                      json={"answer": task["suggestions"][0]["answer"]}).raise_for_status()

    # With a password instead of a token this time (as after `labelvault demo`).
    second = run_quickstart(server, {"LABELVAULT_USERNAME": "operator", "LABELVAULT_PASSWORD": OPERATOR_PASSWORD,
                                     "LABELVAULT_CLIENT": "acme"}, tmp_path)
    assert "tasks: 0 new, 10 already there" in second
    assert "answers so far: 3" in second and "labeler_a" in second
    exported = [json.loads(line) for line in (tmp_path / "quickstart-export.jsonl").read_text().splitlines()]
    assert len(exported) == 10 and sum(len(row["answers"]) for row in exported) == 3
