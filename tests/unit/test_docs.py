"""The docs are tested: every setting and every command is documented, and the architecture page
says what the import contracts enforce."""

from __future__ import annotations

import ast
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from labelvault.cli.main import app
from labelvault.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every command and sub-command of the CLI, as name paths: ("init",), ("client", "create"), ..."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


ALL_COMMANDS = list(command_paths())
LEAF_COMMANDS = [path for path in ALL_COMMANDS if path and not any(
    other[: len(path)] == path and len(other) > len(path) for other in ALL_COMMANDS
)]


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented_in_the_readme(name: str) -> None:
    variable = f"LABELVAULT_{name.upper()}"
    assert re.search(rf"\b{variable}\b", README), f"README.md does not document {variable}"


@pytest.mark.parametrize("path", [p for p in ALL_COMMANDS if p], ids=" ".join)
def test_every_command_is_documented_in_the_readme(path: tuple[str, ...]) -> None:
    command = "labelvault " + " ".join(path)
    assert re.search(rf"{re.escape(command)}(?![\w-])", README), f"README.md does not document `{command}`"


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "labelvault")
def test_every_command_has_help(path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELVAULT_HOME", str(tmp_path / "home"))  # --help must not need an install
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert not (tmp_path / "home").exists()


def test_every_leaf_command_explains_itself_in_its_help() -> None:
    root = typer.main.get_command(app)
    for path in LEAF_COMMANDS:
        command: Any = root
        for name in path:
            command = command.commands[name]
        assert (command.help or "").strip(), f"`labelvault {' '.join(path)}` has no help text"


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", section, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_quick_start_is_two_commands_and_the_second_is_what_ci_runs() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    install_and_demo, tests = commands
    assert "pip install" in install_and_demo and "labelvault demo" in install_and_demo
    assert tests == "bash .ci/run"


def test_ci_script_is_strict_and_executable() -> None:
    script = ROOT / ".ci" / "run"
    text = script.read_text(encoding="utf-8")
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in text
    for step in ("pip install", "lint-imports", "ruff check", "pytest -n 2"):
        assert step in text, step


def test_readme_links_point_to_existing_files() -> None:
    for target in re.findall(r"\]\(((?!https?:|#)[^)]+)\)", README):
        assert (ROOT / target).exists(), f"README.md links to missing {target}"
    assert "docs/architecture.md" in README and "docs/benchmarks.md" in README


def test_readme_names_where_browser_screenshots_go() -> None:
    assert "test-artifacts/screenshots/" in README


def contracts() -> list[dict[str, Any]]:
    return PYPROJECT["tool"]["importlinter"]["contracts"]


def short(module: str) -> str:
    return module.removeprefix("labelvault.")


def test_architecture_page_draws_the_layers_of_the_layers_contract() -> None:
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    expected = [" ".join(layer.replace("labelvault.", "").split()) for layer in layers["layers"]]
    drawing = ARCHITECTURE.split("## Layers", 1)[1].split("```", 2)[1]
    drawn = [line.split("  ")[0].strip() for line in drawing.splitlines()]
    drawn = [line for line in drawn if line and line != "|"]
    assert drawn == expected


def test_architecture_page_names_every_contract_and_every_module_in_it() -> None:
    section = ARCHITECTURE.split("### What may import what", 1)[1].split("\n## ", 1)[0]
    numbered = re.findall(r"^\d+\. \*\*", section, flags=re.MULTILINE)
    assert len(numbered) == len(contracts()), "one numbered paragraph per contract"
    for contract in contracts():
        modules = [*contract.get("source_modules", []), *contract.get("forbidden_modules", [])]
        modules += [m for layer in contract.get("layers", []) for m in re.split(r"\s*[|:]\s*", layer.strip())]
        for module in modules:
            assert f"`{short(module)}`" in section, f"{module} of contract {contract['id']!r} is not described"
        for ignored in contract.get("ignore_imports", []):
            assert f"`{ignored}`" in section, f"the exemption {ignored!r} is not explained"


# --------------------------------------------------------------------------- the quick start's install


def top_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported: module level, outside TYPE_CHECKING and
    ``try/except ImportError`` blocks (lazy imports inside functions are optional features)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def installed_with(requirements: list[str]) -> set[str]:
    """Distributions that `pip install` of these requirements brings, transitively (normalised names)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        extras = requirement.extras or {""}
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(sub)
    return seen


def test_every_module_level_third_party_import_comes_with_pip_install() -> None:
    """`pip install -e .` alone must bring everything the package imports (quick start, command 1)."""
    provided = installed_with(PYPROJECT["project"]["dependencies"])
    distributions = metadata.packages_distributions()
    missing: dict[str, set[str]] = {}
    for path in sorted((ROOT / "src" / "labelvault").rglob("*.py")):
        for module in top_level_imports(path):
            if module in sys.stdlib_module_names or module in ("labelvault", "__future__"):
                continue
            dists = {canonicalize_name(d) for d in distributions.get(module, [module])}
            if not dists & provided:
                missing.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not in [project] dependencies: {missing}"
