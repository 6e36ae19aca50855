"""The real `labelvault` console script, run in a subprocess as an operator would run it."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from labelvault.bootstrap import Services, build_services
from labelvault.domain.access import Actor
from labelvault.errors import NotAuthenticated
from labelvault.settings import Settings

pytestmark = pytest.mark.e2e

SCHEMA = """\
instructions: Is the review positive or negative?
fields:
  - {name: text, kind: text}
questions:
  - {name: sentiment, type: label, labels: [positive, negative]}
"""


def console_script() -> str:
    beside_python = Path(sys.executable).with_name("labelvault")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("labelvault")
    assert found, "the labelvault console script is not installed (pip install -e .)"
    return found


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The one line a failing command prints on stderr."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.err}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.files = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LABELVAULT_")}
        self.env.update(LABELVAULT_HOME=str(self.home), LABELVAULT_SQLITE_SYNCHRONOUS="NORMAL", COLUMNS="200")

    def file(self, name: str, text: str) -> Path:
        path = self.files / name
        path.write_text(text)
        return path

    def __call__(self, *args: str | Path) -> Result:
        process = subprocess.run(
            [console_script(), *map(str, args)], env=self.env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=120,
        )
        return Result(process.returncode, process.stdout, process.stderr)

    def ok(self, *args: str | Path) -> str:
        result = self(*args)
        assert result.code == 0, f"labelvault {' '.join(map(str, args))} failed:\n{result.err}{result.out}"
        return result.out


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One install with a client "acme", shared by the tests of refusals (each command is a process)."""
    cli = Cli(tmp_path_factory.mktemp("installed"))
    cli.ok("init", "--password-file", cli.file("operator.pw", "operator-password-1\n"))
    cli.ok("client", "create", "acme")
    return cli


def test_an_operator_sets_up_a_client_with_people_and_a_project(cli: Cli) -> None:
    password = cli.file("operator.pw", "operator-password-1\n")

    out = cli.ok("init", "--password-file", password)
    assert "operator admin created" in out
    assert (cli.home / "keys" / "master.key").exists()
    assert "created" not in cli.ok("init", "--password-file", password)  # harmless the second time

    assert "client acme created" in cli.ok("client", "create", "acme", "--name", "Acme AI")
    cli.ok("user", "create", "lena", "--password-file", cli.file("lena.pw", "lena-password-1"))
    assert "lena is labeler in acme" in cli.ok("client", "add-member", "acme", "lena", "labeler")
    out = cli.ok("project", "create", "acme", "reviews", "--schema", cli.file("schema.yaml", SCHEMA))
    assert "project acme/reviews created" in out
    token = cli.ok("user", "token", "lena").strip()
    assert token.startswith("lv_") and len(token.splitlines()) == 1


def test_commands_before_init_say_to_run_init(cli: Cli) -> None:
    result = cli("client", "list")
    assert result.code != 0
    assert "labelvault init" in result.error_line


def test_init_without_a_terminal_asks_for_a_password_file(cli: Cli) -> None:
    result = cli("init")
    assert result.code != 0
    assert "--password-file" in result.error_line


MODULES_LOADED = """\
import sys
from labelvault.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = ("sqlalchemy", "numpy", "pyarrow", "httpx", "alembic", "authlib", "psycopg",
         "labelvault.io.exporter", "labelvault.quality.consensus", "labelvault.workflow.sso")
print(code, *[name for name in heavy if name in sys.modules], file=sys.stderr)
"""


@pytest.mark.parametrize(("command", "loaded"), [
    (["--help"], []),  # no storage at all
    # Its own use case only: not the export, statistics or SSO stack, nor PostgreSQL's driver on SQLite.
    (["client", "list"], ["sqlalchemy"]),
])
def test_a_command_loads_only_what_it_runs(installed: Cli, command: list[str], loaded: list[str]) -> None:
    """Each command is a process of its own, whose start-up is mostly importing modules."""
    process = subprocess.run([sys.executable, "-c", MODULES_LOADED, *command], env=installed.env,
                             capture_output=True, text=True, timeout=120)
    assert process.stderr.split() == ["0", *loaded]


def test_unknown_client_is_one_clear_error(installed: Cli) -> None:
    result = installed("project", "create", "nope", "reviews", "--schema", installed.file("s.yaml", SCHEMA))
    assert result.code != 0
    assert "client 'nope' not found" in result.error_line


def test_a_bad_schema_file_names_the_problem(installed: Cli) -> None:
    bad = installed.file("bad.yaml", SCHEMA.replace("labels: [positive, negative]", "labels: [positive]"))
    result = installed("project", "create", "acme", "reviews", "--schema", bad)
    assert result.code != 0
    assert "questions[0] (sentiment): labels must have at least 2 items" in result.error_line

    result = installed("project", "create", "acme", "reviews", "--schema", installed.files / "missing.yaml")
    assert result.code != 0
    assert "missing.yaml" in result.error_line


def test_duplicates_and_bad_values_are_refused_with_one_line(installed: Cli) -> None:
    assert "exists already" in installed("client", "create", "acme").error_line
    assert "password too short" in installed(
        "user", "create", "kim", "--password-file", installed.file("short.pw", "short")
    ).error_line
    assert "unknown role 'boss'" in installed("client", "add-member", "acme", "admin", "boss").error_line


def _outside_path(manifest: dict[str, object], backup: Path) -> bytes:
    """The manifest with a file beside the backup (a copy of its database, the hash right) listed."""
    database_file = str(manifest["database_file"])
    shutil.copyfile(backup / database_file, backup.parent / "outside.sqlite")
    files = dict(manifest["files"])  # type: ignore[call-overload]
    return json.dumps(manifest | {"files": files | {"../outside.sqlite": files[database_file]}}).encode()


@pytest.mark.parametrize(("spoil", "said"), [
    (lambda manifest, backup: b'{"files": {', "manifest.json: not a JSON object"),
    (_outside_path, "manifest.json: files: '../outside.sqlite' is not a path inside the backup"),
])
def test_restore_refuses_a_bad_manifest_with_one_line_and_writes_nothing(
    installed: Cli, tmp_path: Path, spoil: Callable[[dict[str, object], Path], bytes], said: str
) -> None:
    backup = tmp_path / "backup"
    installed.ok("backup", "--to", backup)
    manifest = json.loads((backup / "manifest.json").read_bytes())
    (backup / "manifest.json").write_bytes(spoil(manifest, backup))
    fresh = Cli(tmp_path / "fresh")
    result = fresh("restore", "--from", backup)
    assert result.code != 0
    assert result.error_line == f"error: {said}"
    assert not fresh.home.exists()


def test_restore_refuses_a_file_the_manifest_does_not_list_with_one_line_naming_it(
    installed: Cli, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    installed.ok("backup", "--to", backup)
    (backup / "files" / "planted").mkdir(parents=True)
    (backup / "files" / "planted" / "stray.bin").write_bytes(b"never hashed")
    fresh = Cli(tmp_path / "fresh")
    result = fresh("restore", "--from", backup)
    assert result.code == 1
    assert result.error_line.startswith("error: files/planted/stray.bin in the backup is not listed in manifest.json")
    assert not fresh.home.exists()


def test_a_restore_whose_database_step_fails_says_so_in_one_line_leaves_no_keys_and_runs_again(
    installed: Cli, tmp_path: Path
) -> None:
    backup, keys = tmp_path / "backup", tmp_path / "keys.sealed"
    passphrase = installed.file("restore.pw", "correct horse battery staple\n")
    installed.ok("backup", "--to", backup)
    installed.ok("keys", "export", "--to", keys, "--passphrase-file", passphrase)
    taken = tmp_path / "taken"  # a plain file where the database's folder should be
    taken.write_text("not a folder")
    fresh = Cli(tmp_path / "fresh")
    fresh.env["LABELVAULT_DATABASE_URL"] = f"sqlite:///{taken / 'labelvault.db'}"
    result = fresh("restore", "--from", backup, "--keys", keys, "--passphrase-file", passphrase)
    assert result.code == 1
    assert result.error_line.startswith(f"error: restoring the database into {taken / 'labelvault.db'} failed")
    assert not fresh.home.exists()  # no keys left behind: the same restore can run again
    taken.unlink()
    out = fresh.ok("restore", "--from", backup, "--keys", keys, "--passphrase-file", passphrase)
    assert "audit log verified" in out
    assert (fresh.home / "keys" / "master.key").exists()


_ACME_TEMPLATE: list[Path] = []  # one install per test process, made by the commands below


def _acme_template() -> Path:
    """The home of an install made with the console script: client acme, project acme/reviews, and
    lena, a labeler of acme. Made once per test process and copied for each test that asks (five
    commands, each a process of its own, in every such test were a tenth of the suite's time)."""
    if not _ACME_TEMPLATE:
        root = Path(tempfile.mkdtemp(prefix="lv-cli-template-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        cli = Cli(root)
        cli.ok("init", "--password-file", cli.file("operator.pw", "operator-password-1\n"))
        cli.ok("client", "create", "acme")
        cli.ok("project", "create", "acme", "reviews", "--schema", cli.file("schema.yaml", SCHEMA))
        cli.ok("user", "create", "lena", "--no-password")
        cli.ok("client", "add-member", "acme", "lena", "labeler")
        _ACME_TEMPLATE.append(cli.home)
    return _ACME_TEMPLATE[0]


def acme_reviews_with_lena(cli: Cli, tasks: int, *settings: str) -> None:
    """An install with client acme, project acme/reviews (``settings`` given to ``project set``) with
    ``tasks`` tasks t0, t1, ..., and lena, a labeler of acme."""
    shutil.copytree(_acme_template(), cli.home)  # the database and the keys, file modes kept
    if settings:
        cli.ok("project", "set", "acme/reviews", *settings)
    rows = "".join(json.dumps({"external_id": f"t{i}", "data": {"text": f"review {i}"}}) + "\n" for i in range(tasks))
    cli.ok("import", "acme/reviews", cli.file("tasks.jsonl", rows))


@contextmanager
def as_lena(cli: Cli) -> Iterator[tuple[Services, Actor, int, int]]:
    """lena's work on acme/reviews, through the same install: (services, lena, client id, project id)."""
    services = build_services(Settings(home=cli.home))
    try:
        client_id, project_id = services.projects.locate("acme/reviews")
        yield services, services.accounts.actor_by_username("lena"), client_id, project_id
    finally:
        services.close()


def test_project_list_names_each_project_as_other_commands_take_it_with_its_progress(cli: Cli) -> None:
    acme_reviews_with_lena(cli, 3, "--overlap", "2")
    cli.ok("project", "create", "acme", "spam", "--schema", cli.file("schema.yaml", SCHEMA), "--name", "Spam or not")
    cli.ok("client", "create", "other")
    cli.ok("project", "create", "other", "secret", "--schema", cli.file("schema.yaml", SCHEMA))
    with as_lena(cli) as (services, lena, client_id, project_id):
        leased = services.labeling.next_task(lena, client_id, project_id)
        services.labeling.submit(lena, client_id, project_id, leased.task_id, {"sentiment": "positive"})

    lines = [line.split("\t") for line in cli.ok("project", "list", "acme").splitlines()]
    assert [line[1:] for line in lines] == [
        ["acme/reviews", "reviews", "active", "3 tasks", "1/6 answers"],
        ["acme/spam", "Spam or not", "active", "0 tasks", "0/0 answers"],
    ]
    # The reference printed is the one the other commands take, and so is the id printed first.
    assert cli.ok("project", "set", lines[0][1], "--lease-seconds", "60").startswith("reviews: ")
    assert cli.ok("project", "set", lines[1][0], "--lease-seconds", "60").startswith("spam: ")
    cli.ok("project", "set", "acme/spam", "--guidelines", cli.file("guide.md", "Spam sells **something**.\n"))
    with as_lena(cli) as (services, lena, _client_id, _project_id):
        spam = services.projects.locate("acme/spam")
        assert services.projects.get(services.accounts.first_operator(), *spam).schema.instructions == \
            "Spam sells **something**.\n"
    (cli.files / "latin1.md").write_bytes(b"caf\xe9")
    assert "not UTF-8 text" in cli("project", "set", "acme/spam", "--guidelines", cli.files / "latin1.md").error_line
    assert "client 'nope' not found" in cli("project", "list", "nope").error_line


def test_an_operator_deactivates_a_person_who_leaves_and_reactivates_them(cli: Cli) -> None:
    acme_reviews_with_lena(cli, 1)
    token = cli.ok("user", "token", "lena").strip()

    def lena_line() -> list[str]:
        return next(line.split("\t") for line in cli.ok("user", "list").splitlines() if "\tlena\t" in line)

    assert lena_line()[1:] == ["lena", "lena", "user", "active"]
    assert cli.ok("user", "deactivate", "lena").strip() == "lena is deactivated"
    assert lena_line()[4] == "deactivated"
    with as_lena(cli) as (services, _lena, _client_id, _project_id), pytest.raises(NotAuthenticated):
        services.accounts.actor_for_token(token)
    assert cli.ok("user", "reactivate", "lena").strip() == "lena is active"
    with as_lena(cli) as (services, _lena, _client_id, _project_id):
        assert services.accounts.actor_for_token(token).username == "lena"
    assert cli.ok("user", "password", "lena", "--password-file", cli.file("lena.pw", "lena-new-password-1")
                  ).strip() == "new password set for lena"
    with as_lena(cli) as (services, _lena, _client_id, _project_id):
        assert services.accounts.authenticate("lena", "lena-new-password-1").username == "lena"
    assert "password too short" in cli("user", "password", "lena", "--password-file", cli.file("s.pw", "short")
                                       ).error_line
    assert "no terminal" in cli("user", "password", "lena").error_line
    listed = [line.split("\t") for line in cli.ok("user", "tokens", "lena").splitlines()]
    assert [(name, scopes, revoked) for _id, name, _prefix, scopes, _created, revoked in listed] == [
        ("cli", "label manage read", "active")]
    assert listed[0][2] == token[:10]
    assert cli.ok("user", "revoke-token", listed[0][0]).strip() == f"token {listed[0][0]} revoked"
    assert cli.ok("user", "tokens", "lena").split("\t")[-1].strip() != "active"
    with as_lena(cli) as (services, _lena, _client_id, _project_id), pytest.raises(NotAuthenticated):
        services.accounts.actor_for_token(token)
    assert "you cannot deactivate yourself" in cli("user", "deactivate", "admin").error_line
    assert "user 'kim' not found" in cli("user", "deactivate", "kim").error_line


def test_report_skips_lists_every_skip_with_the_labelers_reason(cli: Cli) -> None:
    acme_reviews_with_lena(cli, 2)
    with as_lena(cli) as (services, lena, client_id, project_id):
        for reason in ("written in Finnish", ""):
            task = services.labeling.next_task(lena, client_id, project_id)
            services.labeling.skip(lena, client_id, project_id, task.task_id, reason)
    listed = json.loads(cli.ok("report", "skips", "acme/reviews"))
    assert [(s["external_id"], s["labeler"], s["reason"]) for s in listed] == [
        ("t0", "lena", "written in Finnish"), ("t1", "lena", "")]
    table = cli.ok("report", "skips", "acme/reviews", "--csv").splitlines()
    assert table[0] == "id,task_id,external_id,labeler_id,labeler,reason,skipped_at"
    assert ",t0," in table[1] and table[1].count("written in Finnish") == 1 and len(table) == 3


def test_money_reports_payout_and_bonus_through_the_console_script(cli: Cli) -> None:
    acme_reviews_with_lena(cli, 1, "--rate", "125", "--budget", "10000")
    with as_lena(cli) as (services, lena, client_id, project_id):
        task = services.labeling.next_task(lena, client_id, project_id)
        services.labeling.submit(lena, client_id, project_id, task.task_id, {"sentiment": "positive"})
    assert "bonus of 75 granted to lena" in cli.ok("bonus", "acme/reviews", "lena", "75", "--note", "careful work")

    spend = json.loads(cli.ok("report", "spend", "acme"))
    assert [(row["amount"], row["currency"]) for row in spend] == [(200, "USD")]  # 125 + the bonus
    earnings = json.loads(cli.ok("report", "earnings", "acme"))
    assert [(row["username"], row["amount"]) for row in earnings] == [("lena", 200)]
    costs = cli.ok("report", "costs", "acme/reviews")
    assert "spent 2.00 USD of 100.00" in costs and "1 accepted answers" in costs
    (row,) = json.loads(cli.ok("report", "throughput", "acme/reviews"))
    assert row["answers"] == 1
    ledger = json.loads(cli.ok("report", "ledger", "acme/reviews"))
    assert [(e["kind"], e["amount"], e["username"], e["note"]) for e in ledger] == [
        ("answer", 125, "lena", ""), ("bonus", 75, "lena", "careful work")]
    header, _, bonus = cli.ok("report", "ledger", "acme/reviews", "--csv").splitlines()
    assert header.startswith("id,kind,amount,currency,user_id,username") and ",bonus,75,USD," in bonus
    assert ",careful work," in bonus
    out = cli.files / "payout.csv"
    assert "1 payees written" in cli.ok("payout", "acme", "--since", "2020-01-01", "--until", "2100-01-01",
                                        "--out", out)
    header, line = out.read_text().splitlines()
    assert header.startswith("user_id,username,amount,currency") and ",lena,200,USD," in line
    bad = cli("payout", "acme", "--since", "yesterday", "--until", "2100-01-01", "--out", out)
    assert bad.code != 0 and "--since" in bad.err


def test_task_commands_list_by_state_open_one_and_move_tasks_up(cli: Cli) -> None:
    acme_reviews_with_lena(cli, 3)
    with as_lena(cli) as (services, lena, client_id, project_id):
        first = services.labeling.next_task(lena, client_id, project_id)
        services.labeling.submit(lena, client_id, project_id, first.task_id, {"sentiment": "positive"})

    lines = [line.split("\t") for line in cli.ok("task", "list", "acme/reviews").splitlines()]
    assert [line[1:] for line in lines] == [["t0", "complete", "1/1", "0"], ["t1", "open", "0/1", "0"],
                                            ["t2", "open", "0/1", "0"]]
    assert [line.split("\t")[1] for line in cli.ok("task", "list", "acme/reviews", "--state", "open").splitlines()
            ] == ["t1", "t2"]
    assert "state must be one of" in cli("task", "list", "acme/reviews", "--state", "done").error_line

    shown = json.loads(cli.ok("task", "show", "acme/reviews", "--external-id", "t0"))
    assert shown["payload"] == {"text": "review 0"} and shown["state"] == "complete"
    assert [(a["labeler"], a["value"]) for a in shown["answers"]] == [("lena", {"sentiment": "positive"})]
    assert json.loads(cli.ok("task", "show", "acme/reviews", lines[0][0]))["external_id"] == "t0"
    assert "no task with external id 'nope'" in cli("task", "show", "acme/reviews", "--external-id", "nope").error_line
    assert "give a task id or --external-id" in cli("task", "show", "acme/reviews").error_line

    assert cli.ok("task", "priority", "acme/reviews", "5", "t2").strip() == "priority 5: 1 task(s) changed"
    refused = cli("task", "priority", "acme/reviews", "9", "t1", "t7")
    assert refused.code == 1 and "'t7'" in refused.error_line
    lowered = cli.ok("task", "priority", "acme/reviews", "--id", lines[1][0], "--", "-1")  # "--": a negative number
    assert lowered.strip() == "priority -1: 1 task(s) changed"
    listed = [line.split("\t") for line in cli.ok("task", "list", "acme/reviews").splitlines()]
    priorities = {line[1]: line[4] for line in listed}
    assert priorities == {"t0": "0", "t1": "-1", "t2": "5"}
    with as_lena(cli) as (services, lena, client_id, project_id):
        assert services.labeling.next_task(lena, client_id, project_id).task_id == int(lines[2][0])  # t2 first

    assert cli.ok("task", "more-answers", "acme/reviews", "1", "t0").strip() == "1 task(s) want 1 more answer(s)"
    assert "add --yes to confirm" in cli("task", "remove", "acme/reviews", "t1").error_line
    assert "have answers and cannot be removed" in cli("task", "remove", "acme/reviews", "t0", "--yes").error_line
    assert cli.ok("task", "remove", "acme/reviews", "--from-file", cli.file("ids.txt", "t1\n\n"), "--yes"
                  ).strip() == "1 task(s) removed"
    listed = [line.split("\t")[1:4] for line in cli.ok("task", "list", "acme/reviews").splitlines()]
    assert listed == [["t0", "open", "1/2"], ["t2", "open", "0/1"]]
