"""Seed the demo install: a client "demo", one project per main question type, sample tasks.

The tasks are generated from small hand-written lists of parts kept next to this module
(``tickets.yaml``, ``news.yaml``, ``answers.yaml``, ``entities.yaml``; schemas in
``projects.yaml``). Nothing is downloaded: the shape pictures are SVG drawn here and embedded as
``data:`` URLs. Generation is deterministic (one seeded random generator per project), so the
external ids and contents are the same on every machine, and seeding is idempotent: the client
and projects are created only if missing, and tasks are imported by external id.

Everything goes through the use cases in ``services``, as the operator, like any other client.
"""

from __future__ import annotations

import base64
import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from labelvault.domain.access import Actor, Role
from labelvault.errors import NotFound

if TYPE_CHECKING:
    from labelvault.bootstrap import Services

__all__ = [
    "DEMO_CLIENT",
    "DEMO_USERNAME",
    "TASKS_PER_PROJECT",
    "DemoProject",
    "demo_projects",
    "seed_demo",
]

DEMO_USERNAME = "admin"
DEMO_CLIENT = "demo"
DEMO_CLIENT_NAME = "Demo Lab"
TASKS_PER_PROJECT = 50
DEMO_ROLES = (Role.MANAGER, Role.REVIEWER, Role.LABELER)

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DemoProject:
    slug: str
    name: str
    schema: dict[str, Any]
    rows: list[Row]  # import rows: {"external_id", "data", "suggestions"?}


# --------------------------------------------------------------------------- seeding


def seed_demo(services: Services) -> str:
    """Create what is missing of the demo and return a one-line summary of what is there."""
    operator = _demo_operator(services)
    client_id = _ensure_client(services, operator)
    for role in DEMO_ROLES:
        services.accounts.grant_role(operator, client_id, operator.username, role.value)
    projects = demo_projects()
    total = 0
    for project in projects:
        project_id = _ensure_project(services, operator, client_id, project)
        tasks = services.projects.progress(operator, client_id, project_id)["tasks"]
        if tasks < len(project.rows):
            # Idempotent by external id: a half-finished earlier run is completed, nothing doubled.
            services.imports.import_rows(operator, client_id, project_id, project.rows)
            tasks = services.projects.progress(operator, client_id, project_id)["tasks"]
        total += tasks
    return f"client {DEMO_CLIENT}, {len(projects)} projects, {total} tasks"


def _demo_operator(services: Services) -> Actor:
    try:
        actor = services.accounts.actor_by_username(DEMO_USERNAME)
    except NotFound:
        actor = None
    if actor is None or not actor.is_operator:
        # An install made with `labelvault init --username someone`: seed as its first operator.
        actor = services.accounts.first_operator()
    return actor


def _ensure_client(services: Services, operator: Actor) -> int:
    try:
        client_id = services.clients.resolve(DEMO_CLIENT)
    except NotFound:
        return services.clients.create(operator, DEMO_CLIENT, DEMO_CLIENT_NAME).id
    services.clients.ensure_keys(client_id)  # idempotent; completes a run interrupted after create
    return client_id


def _ensure_project(services: Services, operator: Actor, client_id: int, project: DemoProject) -> int:
    try:
        found_client, project_id = services.projects.locate(f"{DEMO_CLIENT}/{project.slug}")
    except NotFound:
        info = services.projects.create(
            operator, client_id, slug=project.slug, name=project.name, schema=project.schema
        )
        return info.id
    assert found_client == client_id
    return project_id


# --------------------------------------------------------------------------- the projects


def demo_projects() -> list[DemoProject]:
    """The demo projects with their generated tasks (the same on every call and machine)."""
    projects = []
    for entry in _load("projects.yaml"):
        slug = entry["slug"]
        rng = random.Random(f"labelvault-demo/{slug}")
        rows = list(_GENERATORS[slug](rng, TASKS_PER_PROJECT))
        for index, row in enumerate(rows, start=1):
            row["external_id"] = f"{slug}-{index:03d}"
        projects.append(DemoProject(slug, entry["name"], entry["schema"], rows))
    return projects


@cache
def _load_cached(name: str) -> Any:
    return yaml.safe_load(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def _load(name: str) -> Any:
    # A fresh copy each time: generators and callers may mutate what they get.
    return copy.deepcopy(_load_cached(name))


def _row(data: dict[str, Any], suggestion: dict[str, Any] | None = None) -> Row:
    row: Row = {"data": data}
    if suggestion is not None:
        row["suggestions"] = [suggestion]
    return row


def _suggestion(model: str, answer: dict[str, Any], score: float) -> dict[str, Any]:
    return {"model": model, "answer": answer, "score": round(score, 2)}


def _fill(template: str, values: dict[str, str]) -> str:
    return template.format_map(values) if "{" in template else template


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


# -- support tickets: label, and the customer messages of the text project


def _ticket(rng: random.Random, parts: dict[str, Any], category: str) -> tuple[str, str]:
    plan, other_plan = rng.sample(parts["plans"], 2)
    values = {
        "product": rng.choice(parts["products"]),
        "feature": rng.choice(parts["features"]),
        "amount": f"${rng.choice([19, 29, 49, 99, 149, 299, 480])}.00",
        "plan": plan,
        "other_plan": other_plan,
        "error": rng.choice(parts["errors"]),
        "month": rng.choice(parts["months"]),
        "weekday": rng.choice(parts["weekdays"]),
    }
    ticket = rng.choice(parts["categories"][category])
    subject = _sentence_case(_fill(ticket["subject"], values))
    lines = [rng.choice(parts["openings"]), _sentence_case(_fill(ticket["body"], values)),
             rng.choice(parts["closings"])]
    return subject, "\n".join(line for line in lines if line)


def _support_triage(rng: random.Random, count: int) -> Iterator[Row]:
    parts = _load("tickets.yaml")
    categories = list(parts["categories"])
    for index in range(count):
        category = categories[index % len(categories)] if index < len(categories) else rng.choice(categories)
        subject, body = _ticket(rng, parts, category)
        if rng.random() < 0.8:  # the model is right most of the time, and sure of itself when it is
            guess, score = category, rng.uniform(0.62, 0.98)
        else:
            guess, score = rng.choice([c for c in categories if c != category]), rng.uniform(0.34, 0.61)
        suggestion = _suggestion("triage-classifier-v3", {"category": guess}, score)
        yield _row({"subject": subject, "body": body}, suggestion)


_ACCOUNT_NAMES = ["Jordan Blake", "Priya Shah", "Ana Costa", "Tom Becker", "Lea Dubois", "Sam Wright",
                  "Yuki Sato", "Omar Farouk", "Nina Petrova", "Ben Carter"]
_COMPANIES = ["Fernwood Studio", "Hilltop Dental", "Copperleaf Legal", "Brightside Tutors", "Orchard & Co",
              "Pine Street Bakery", "Lumen Architects", "Riverbend Clinic"]


def _support_replies(rng: random.Random, count: int) -> Iterator[Row]:
    parts = _load("tickets.yaml")
    categories = list(parts["categories"])
    for _ in range(count):
        category = rng.choice(categories)
        subject, body = _ticket(rng, parts, category)
        name, company = rng.choice(_ACCOUNT_NAMES), rng.choice(_COMPANIES)
        account = "\n".join([
            f"**{company}**, contact {name}",
            "",
            f"- Plan: {rng.choice(parts['plans'])}, {rng.randint(2, 60)} seats",
            f"- Customer since: {rng.choice(parts['months'])} {rng.randint(2018, 2025)}",
            f"- Open tickets: {rng.randint(0, 3)}",
            f"- Last payment: {'paid' if rng.random() < 0.85 else 'failed'}",
        ])
        conversation = [{"role": "user", "content": f"{subject}\n\n{body}\n\n{name.split()[0]}"}]
        yield _row({"conversation": conversation, "account": account})


# -- news: multi_label


def _news_topics(rng: random.Random, count: int) -> Iterator[Row]:
    parts = _load("news.yaml")
    topics = list(parts["topics"])
    for index in range(count):
        main = topics[index % len(topics)]
        chosen = [main]
        if rng.random() < 0.45:
            chosen.append(rng.choice([t for t in topics if t != main]))
        values = {"place": rng.choice(parts["places"]), "number": str(rng.randint(2, 40))}
        headline = _fill(rng.choice(parts["topics"][main]["headlines"]), values)
        sentences = [_fill(rng.choice(parts["topics"][topic]["sentences"]), values) for topic in chosen]
        if len(chosen) == 1 and rng.random() < 0.5:
            extra = [s for s in parts["topics"][main]["sentences"] if _fill(s, values) not in sentences]
            sentences.append(_fill(rng.choice(extra), values))
        suggestion = None
        if rng.random() < 0.6:
            guess = [t for t in topics if t in chosen]  # schema order, as the validator keeps it
            if rng.random() < 0.25:
                guess = guess[:1]
            suggestion = _suggestion("topic-tagger-v1", {"topics": guess}, rng.uniform(0.5, 0.95))
        yield _row({"headline": headline, "snippet": " ".join(sentences)}, suggestion)


# -- assistant answers: rating, ranking and preference


_QUALITIES = ("complete", "short", "wrong", "vague", "refusal")


def _answer(rng: random.Random, parts: dict[str, Any], item: dict[str, Any], quality: str) -> str:
    intro = rng.choice(parts["intros"])
    if quality == "complete":
        return intro + " ".join(item["facts"])
    if quality == "short":
        return intro + item["facts"][0]
    if quality == "wrong":
        return intro + item["wrong"]
    if quality == "vague":
        return item["vague"]
    return rng.choice(parts["refusals"])


def _answer_helpfulness(rng: random.Random, count: int) -> Iterator[Row]:
    parts = _load("answers.yaml")
    pairs = [(item, quality) for item in parts["questions"] for quality in _QUALITIES]
    rng.shuffle(pairs)
    expected = {"complete": 5, "short": 3, "wrong": 1, "vague": 2, "refusal": 2}
    for item, quality in pairs[:count]:
        conversation = [
            {"role": "user", "content": item["question"]},
            {"role": "assistant", "content": _answer(rng, parts, item, quality)},
        ]
        suggestion = None
        if rng.random() < 0.5:  # a reward model that is usually within one point
            guess = min(5, max(1, expected[quality] + rng.choice([-1, 0, 0, 0, 1])))
            suggestion = _suggestion("reward-model-small", {"helpfulness": guess}, rng.uniform(0.4, 0.9))
        yield _row({"conversation": conversation}, suggestion)


_MODELS = ["model-a", "model-b", "model-c", "model-d"]


def _answer_ranking(rng: random.Random, count: int) -> Iterator[Row]:
    parts = _load("answers.yaml")
    questions = parts["questions"]
    for index in range(count):
        item = questions[index % len(questions)]
        qualities = rng.sample(_QUALITIES, rng.choice([3, 4]))
        models = rng.sample(_MODELS, len(qualities))
        candidates = [
            {"id": f"c{n + 1}", "text": _answer(rng, parts, item, quality), "model": model}
            for n, (quality, model) in enumerate(zip(qualities, models, strict=True))
        ]
        yield _row({"prompt": item["question"], "candidates": candidates})


def _pairwise_preference(rng: random.Random, count: int) -> Iterator[Row]:
    parts = _load("answers.yaml")
    questions = parts["questions"]
    for index in range(count):
        item = questions[index % len(questions)]
        if rng.random() < 0.15:  # equally good (or bad): a tie is the right answer
            first = second = rng.choice(["complete", "vague"])
        else:
            first, second = rng.sample(_QUALITIES, 2)
        model_a, model_b = rng.sample(_MODELS, 2)
        responses = [
            {"id": "a", "text": _answer(rng, parts, item, first), "model": model_a},
            {"id": "b", "text": _answer(rng, parts, item, second), "model": model_b},
        ]
        suggestion = None
        if rng.random() < 0.5:
            rank = {quality: position for position, quality in enumerate(_QUALITIES)}
            if rank[first] == rank[second]:
                answer: dict[str, Any] = {"choice": "tie"}
            else:
                gap = abs(rank[first] - rank[second])
                answer = {"choice": "a" if rank[first] < rank[second] else "b", "strength": min(3, gap)}
            suggestion = _suggestion("judge-model-v2", {"preference": answer}, rng.uniform(0.45, 0.9))
        yield _row({"prompt": item["question"], "responses": responses}, suggestion)


# -- sentences with entities: span


def _named_entities(rng: random.Random, count: int) -> Iterator[Row]:
    parts = _load("entities.yaml")
    pools = {"PERSON": parts["people"], "ORG": parts["organisations"], "PLACE": parts["places"]}
    templates = parts["templates"]
    for index in range(count):
        template = templates[index % len(templates)]
        text, spans = _render_entities(rng, template, pools)
        suggestion = None
        if rng.random() < 0.7:
            found = [span for span in spans if rng.random() < 0.85]  # the tagger misses some
            suggestion = _suggestion("ner-tagger-v4", {"entities": found}, rng.uniform(0.55, 0.97))
        yield _row({"sentence": text}, suggestion)


def _render_entities(
    rng: random.Random, template: str, pools: dict[str, list[str]]
) -> tuple[str, list[dict[str, Any]]]:
    """Fill ``{PERSON}``/``{ORG}``/``{PLACE}`` slots, never the same name twice, recording spans."""
    text = ""
    spans: list[dict[str, Any]] = []
    used: set[str] = set()
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        label, _, rest = after.partition("}")
        text += before
        name = rng.choice([n for n in pools[label] if n not in used])
        used.add(name)
        if not text:
            name = _sentence_case(name)
        # "the Meridian Institute": the article is not part of the name.
        article = next((a for a in ("the ", "The ") if name.startswith(a)), "")
        start = len(text) + len(article)
        text += name
        spans.append({"start": start, "end": len(text), "label": label})
    return text + rest, spans


# -- pictures of shapes: bbox

_WIDTH, _HEIGHT = 240, 160
_COLOURS = ["#d1495b", "#edae49", "#00798c", "#30638e", "#66a182", "#8d6a9f", "#2e4057"]
_BACKGROUNDS = ["#ffffff", "#f4f1de", "#eef2f7", "#f7f0f5"]


def _shape_boxes(rng: random.Random, count: int) -> Iterator[Row]:
    for _ in range(count):
        image, boxes = _shape_picture(rng)
        suggestion = None
        if rng.random() < 0.6:  # a detector whose boxes are a little off
            jittered = [_jitter(rng, box) for box in boxes if rng.random() < 0.9]
            suggestion = _suggestion("shape-detector-v1", {"shapes": jittered}, rng.uniform(0.5, 0.95))
        yield _row({"image": image}, suggestion)


def _shape_picture(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    """An SVG with 1 to 3 shapes in distinct cells of a 3x2 grid, and their true boxes."""
    cells = rng.sample([(column, row) for column in range(3) for row in range(2)], rng.randint(1, 3))
    elements = [f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="{rng.choice(_BACKGROUNDS)}"/>']
    boxes = []
    cell_w, cell_h = _WIDTH / 3, _HEIGHT / 2
    for column, row in cells:
        kind = rng.choice(["circle", "square", "triangle"])
        size = rng.randint(28, 60)
        x = column * cell_w + rng.uniform(6, cell_w - size - 6)
        y = row * cell_h + rng.uniform(6, cell_h - size - 6)
        colour = rng.choice(_COLOURS)
        if kind == "circle":
            r = size / 2
            elements.append(f'<circle cx="{x + r:.1f}" cy="{y + r:.1f}" r="{r:.1f}" fill="{colour}"/>')
        elif kind == "square":
            elements.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{size}" height="{size}" fill="{colour}"/>')
        else:
            points = f"{x + size / 2:.1f},{y:.1f} {x + size:.1f},{y + size:.1f} {x:.1f},{y + size:.1f}"
            elements.append(f'<polygon points="{points}" fill="{colour}"/>')
        boxes.append({
            "x": round(x / _WIDTH, 4), "y": round(y / _HEIGHT, 4),
            "w": round(size / _WIDTH, 4), "h": round(size / _HEIGHT, 4), "label": kind,
        })
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}">{"".join(elements)}</svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode(), boxes


def _jitter(rng: random.Random, box: dict[str, Any]) -> dict[str, Any]:
    x = min(max(box["x"] + rng.uniform(-0.015, 0.015), 0.0), 0.95)
    y = min(max(box["y"] + rng.uniform(-0.02, 0.02), 0.0), 0.95)
    w = min(box["w"] * rng.uniform(0.9, 1.1), 1.0 - x)
    h = min(box["h"] * rng.uniform(0.9, 1.1), 1.0 - y)
    return {"x": round(x, 4), "y": round(y, 4), "w": round(w, 4), "h": round(h, 4), "label": box["label"]}


_GENERATORS: dict[str, Callable[[random.Random, int], Iterator[Row]]] = {
    "support-triage": _support_triage,
    "news-topics": _news_topics,
    "answer-helpfulness": _answer_helpfulness,
    "answer-ranking": _answer_ranking,
    "pairwise-preference": _pairwise_preference,
    "support-replies": _support_replies,
    "named-entities": _named_entities,
    "shape-boxes": _shape_boxes,
}
