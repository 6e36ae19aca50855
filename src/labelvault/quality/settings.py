"""A project's quality settings: gold rate, qualification, skills, suspension and adaptive overlap.

``ProjectService.update`` applies them with :func:`apply_quality_settings`, so the API, the CLI and
the web pages change them through one use case and one set of checks.

* ``gold_rate``: the chance (0..1) that a labeler's next task is a gold task, while regular work is left.
* ``show_gold_feedback``: labelers may read their own gold results (which tasks were gold, and the answer).
* ``qualification_required`` and ``qualification_pass_mark`` (0..1): a labeler first answers the project's
  qualification test (its gold tasks marked for the test) and needs this mean credit to go on.
* ``required_skills``: skill tags (``lang:de``, ``phd:chemistry``) a labeler must have been given.
* ``suspension_threshold`` (0..1 or none) and ``suspension_min_answers``: suspend a labeler whose honeypot
  accuracy is confidently below the threshold (the upper Wilson bound under it) after that many gold answers.
* ``max_overlap`` (or none) and ``confidence_threshold``: adaptive overlap. Tasks start with ``overlap``
  answers (the minimum k); one whose aggregate confidence is below the threshold gets one more answer at
  a time, up to ``max_overlap``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from labelvault.errors import InvalidInput
from labelvault.storage.models import Project

SKILL_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9_.+-]*(:[a-z0-9][a-z0-9_.+-]*)?$")
MAX_SKILL_LENGTH: Final = 100
MAX_OVERLAP: Final = 100


def check_skill(skill: str) -> str:
    """A skill tag, lower case: ``lang:de``, ``phd:chemistry``, ``medical``."""
    tag = skill.strip().lower()
    if not 0 < len(tag) <= MAX_SKILL_LENGTH or not SKILL_PATTERN.match(tag):
        raise InvalidInput(
            f"skill {skill!r} must look like 'area:name' or 'name' (letters, digits, . _ + -)",
            details={"field": "skill"},
        )
    return tag


def required_skills(project: Project) -> list[str]:
    return list(json.loads(project.required_skills_json)) if project.required_skills_json else []


def _share(value: float, name: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(f"{name} must be between 0 and 1", details={"field": name})
    return float(value)


def apply_quality_settings(project: Project, changes: Any) -> None:
    """Apply the quality fields of a ``ProjectSettings`` (None leaves a setting as it is)."""
    if changes.gold_rate is not None:
        project.gold_rate = _share(changes.gold_rate, "gold_rate")
    if changes.show_gold_feedback is not None:
        project.show_gold_feedback = bool(changes.show_gold_feedback)
    if changes.qualification_required is not None:
        project.qualification_required = bool(changes.qualification_required)
    if changes.qualification_pass_mark is not None:
        project.qualification_pass_mark = _share(changes.qualification_pass_mark, "qualification_pass_mark")
    if changes.required_skills is not None:
        skills = sorted({check_skill(s) for s in changes.required_skills})
        project.required_skills_json = json.dumps(skills) if skills else None
    if changes.suspension_threshold is not None:
        project.suspension_threshold = _share(changes.suspension_threshold, "suspension_threshold")
    if changes.clear_suspension_threshold:
        project.suspension_threshold = None
    if changes.suspension_min_answers is not None:
        if not 1 <= changes.suspension_min_answers <= 10_000:
            raise InvalidInput("suspension_min_answers must be between 1 and 10000",
                               details={"field": "suspension_min_answers"})
        project.suspension_min_answers = changes.suspension_min_answers
    if changes.confidence_threshold is not None:
        project.confidence_threshold = _share(changes.confidence_threshold, "confidence_threshold")
    if changes.max_overlap is not None:
        project.max_overlap = changes.max_overlap
    if changes.clear_max_overlap:
        project.max_overlap = None
    if project.max_overlap is not None and not project.overlap <= project.max_overlap <= MAX_OVERLAP:
        raise InvalidInput(
            f"max_overlap must be between overlap ({project.overlap}, the minimum k) and {MAX_OVERLAP}",
            details={"field": "max_overlap"},
        )


__all__ = ["apply_quality_settings", "check_skill", "required_skills"]
