"""Browser tests: the real ``labelvault serve`` in a subprocess, driven by Debian's Chromium.

Each test gets a fresh install from the ``world`` fixture (on SQLite: what is tested here is the
pages, the scripts and the browser's security policy; the database half is covered elsewhere),
people with passwords and one project per question type, and a running server. Screenshots of
every page go to ``test-artifacts/screenshots/`` (named in the README).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.browser.web import PASSWORD, Projects, add_people, add_projects
from tests.conftest import World
from tests.e2e.server_process import ServerProcess

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def backend() -> str:
    """SQLite only for browser tests (overrides the SQLite/PostgreSQL parametrisation)."""
    return "sqlite"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Site:
    url: str
    world: World
    projects: Projects
    browser: object
    pages: list = field(default_factory=list)

    def open_as(self, username: str, password: str = PASSWORD, *, width: int = 1400, height: int = 900) -> Tab:
        """A new browser (its own cookies) logged in through the login form."""
        context = self.browser.new_context(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
        tab = Tab(context.new_page(), self.url)
        self.pages.append(tab)
        tab.page.goto(self.url + "/login")
        tab.page.fill("input[name=username]", username)
        tab.page.fill("input[name=password]", password)
        tab.page.click("button[type=submit]")
        tab.page.wait_for_url(self.url + "/")
        return tab


class Tab:
    """One page, with what it did that it should not have: dialogs, script errors, console errors
    (the browser reports Content-Security-Policy violations there)."""

    def __init__(self, page: object, base: str) -> None:
        self.page = page
        self.base = base
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        page.on("dialog", self._dialog)  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: self.errors.append(str(error)))  # type: ignore[attr-defined]
        page.on("console", self._console)  # type: ignore[attr-defined]

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    def _console(self, message: object) -> None:
        text = message.text  # type: ignore[attr-defined]
        # An API answering 404 or 409 (no tasks) is logged by the browser too: that is expected.
        if message.type == "error" and not text.startswith("Failed to load resource: the server responded"):  # type: ignore[attr-defined]
            self.console_errors.append(text)

    def go(self, path: str) -> object:
        return self.page.goto(self.base + path)  # type: ignore[attr-defined]

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
        self.page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path

    def next_task(self, previous: str | None) -> None:
        """Wait until the labeling screen shows another task (or the no-tasks screen)."""
        page = self.page
        if previous is None:
            page.locator("#workspace[data-task-id], #empty:not([hidden])").first.wait_for()  # type: ignore[attr-defined]
        else:
            page.locator(f"#workspace:not([data-task-id='{previous}']), #empty:not([hidden])").first.wait_for()  # type: ignore[attr-defined]

    def task_id(self) -> str | None:
        return self.page.get_attribute("#workspace", "data-task-id")  # type: ignore[attr-defined,no-any-return]


def start_patiently(server: ServerProcess, timeout: float = 120) -> None:
    """``server.start()``, waiting longer: on a busy CI machine importing the app alone can take
    most of the 30 s that ``ServerProcess`` allows."""
    try:
        server.start()
        return
    except RuntimeError:
        if server.process is None or server.process.poll() is not None:
            raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited: {server.log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"server did not start within {timeout + 30:.0f} s")


@pytest.fixture
def site(world: World, browser: object, tmp_path: Path) -> Iterator[Site]:
    add_people(world)
    projects = add_projects(world)
    server = ServerProcess(world.services.settings, tmp_path / "server.log")
    start_patiently(server)
    running = Site(server.url, world, projects, browser)
    try:
        yield running
    finally:
        for tab in running.pages:
            tab.page.context.close()  # type: ignore[attr-defined]
        server.stop()
