"""Shared by the web tests (TestClient) and the browser tests (Chromium): people who log in with
a password, projects of every question type, and logging in through the form."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from fastapi.testclient import TestClient

from tests.conftest import World

PASSWORD = "web-password-1"
LOGIN_TOKEN = "login-form-token-0123456789abcdef"

# People with passwords (the world's people are token-only): name -> (client "a" or "b", roles).
PEOPLE = {
    "ann": ("a", ("labeler",)),
    "rex": ("a", ("reviewer",)),
    "max": ("a", ("manager",)),
    "vic": ("a", ("viewer",)),
    "bob": ("b", ("labeler",)),
}


def add_people(world: World) -> None:
    accounts = world.services.accounts
    for name, (client, roles) in PEOPLE.items():
        accounts.create_user(world.operator, name, PASSWORD)  # type: ignore[arg-type]
        for role in roles:
            accounts.grant_role(world.operator, world.client_a if client == "a" else world.client_b,  # type: ignore[arg-type]
                                name, role)


def form_login(client: TestClient, username: str, password: str = PASSWORD, **headers: str):  # type: ignore[no-untyped-def]
    """Log in through the form, as a browser with the login page open (its token cookie and field)."""
    client.cookies.set("lv_login_csrf", LOGIN_TOKEN, path="/login")
    return client.post("/login", data={"username": username, "password": password, "login_token": LOGIN_TOKEN,
                                       "next": "/"}, headers=headers, follow_redirects=False)


def csrf_of(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "page has no CSRF token"
    return match.group(1)


TEXT = {"name": "text", "kind": "text", "title": "Text"}
CANDIDATES = {"name": "answers", "kind": "candidates", "title": "Answers"}

# One schema per question type, each with a task or two.
SCHEMAS: dict[str, dict] = {
    "label": {"instructions": "Pick the **sentiment**.", "fields": [TEXT],
              "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative", "neutral"]}]},
    "multi_label": {"fields": [TEXT], "questions": [{"name": "topics", "type": "multi_label",
                                                     "labels": ["sport", "money", "science"], "min_selected": 1}]},
    "rating": {"fields": [{"name": "chat", "kind": "chat", "title": "Conversation"}],
               "questions": [{"name": "helpful", "type": "rating", "min": 1, "max": 5}]},
    "ranking": {"fields": [TEXT, CANDIDATES], "questions": [{"name": "order", "type": "ranking", "field": "answers"}]},
    "preference": {"fields": [TEXT, CANDIDATES],
                   "questions": [{"name": "better", "type": "preference", "field": "answers", "strength_levels": 3}]},
    "text": {"fields": [{"name": "notes", "kind": "markdown", "title": "Notes"}],
             "questions": [{"name": "reply", "type": "text", "min_length": 5, "max_length": 200}]},
    "span": {"fields": [TEXT], "questions": [{"name": "entities", "type": "span", "field": "text",
                                              "labels": ["PERSON", "PLACE"]}]},
    "bbox": {"fields": [{"name": "image", "kind": "image", "title": "Picture"}],
             "questions": [{"name": "shapes", "type": "bbox", "field": "image", "labels": ["circle", "square"]}]},
    "rubric": {"fields": [TEXT], "questions": [{"name": "quality", "type": "rubric", "criteria": [
        {"name": "clarity", "type": "rating", "min": 1, "max": 3},
        {"name": "tone", "type": "label", "labels": ["formal", "casual"]}]}]},
}

_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="250"><rect width="400" height="250" '
        'fill="#f3efdc"/><circle cx="100" cy="100" r="40" fill="#3b82f6"/><rect x="250" y="120" width="80" '
        'height="80" fill="#e11d48"/></svg>')
PICTURE = "data:image/svg+xml;base64," + base64.b64encode(_SVG.encode()).decode()

ROWS: dict[str, list[dict]] = {
    "label": [{"external_id": "l1", "data": {"text": "I love this phone."},
               "suggestions": [{"model": "m1", "answer": {"sentiment": "neutral"}, "score": 0.4}]}],
    "multi_label": [{"external_id": "m1", "data": {"text": "The central bank raised rates after the final."}}],
    "rating": [{"external_id": "r1", "data": {"chat": [{"role": "user", "content": "What is 2+2?"},
                                                        {"role": "assistant", "content": "4."}]}}],
    "ranking": [{"external_id": "k1", "data": {"text": "Boil an egg?", "answers": ["6 minutes", "an hour", "12 min"]}}],
    "preference": [{"external_id": "p1", "data": {"text": "Sleep?", "answers": [
        {"id": "x", "text": "7 to 9 hours", "model": "m-a"}, {"id": "y", "text": "2 hours", "model": "m-b"}]}}],
    "text": [{"external_id": "t1", "data": {"notes": "The customer **paid twice**.\n\n- refund one\n- apologise"}}],
    "span": [{"external_id": "s1", "data": {"text": "Ada Lovelace was born in London."}}],
    "bbox": [{"external_id": "b1", "data": {"image": PICTURE}}],
    "rubric": [{"external_id": "u1", "data": {"text": "Dear team, thanks."}}],
}


@dataclass
class Projects:
    ids: dict[str, int]
    foreign: int  # a project of client b


def add_projects(world: World, kinds: tuple[str, ...] = tuple(SCHEMAS), *, review_policy: str = "all") -> Projects:
    from labelvault.workflow.projects import ProjectSettings

    services = world.services
    ids = {}
    for kind in kinds:
        project = services.projects.create(world.operator, world.client_a, slug=kind.replace("_", "-"),  # type: ignore[arg-type]
                                           name=f"{kind.replace('_', ' ').title()} project", schema=SCHEMAS[kind])
        services.projects.update(world.operator, world.client_a, project.id,  # type: ignore[arg-type]
                                 ProjectSettings(review_policy=review_policy, rate_per_answer=25))
        services.imports.import_rows(world.operator, world.client_a, project.id, ROWS[kind])  # type: ignore[arg-type]
        ids[kind] = project.id
    foreign = services.projects.create(world.operator, world.client_b, slug="secret", name="Globex secret",  # type: ignore[arg-type]
                                       schema=SCHEMAS["label"])
    services.imports.import_rows(world.operator, world.client_b, foreign.id,  # type: ignore[arg-type]
                                 [{"external_id": "g1", "data": {"text": "Globex roadmap"}}])
    return Projects(ids, foreign.id)
