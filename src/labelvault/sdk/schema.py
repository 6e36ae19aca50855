"""Project schemas as typed Python objects: the domain's own classes, under short names.

    import labelvault as lv

    schema = lv.schema.Schema(
        fields=[lv.schema.Field(name="text", kind="text")],
        questions=[lv.schema.Label(name="sentiment", labels=["positive", "negative"])],
    )
    project = client.create_project("acme", "Reviews", schema)

These are the classes the server validates with, so a mistake is reported when the object is made
(:class:`labelvault.errors.SchemaInvalid` for a whole schema from :func:`load`, pydantic's
``ValidationError`` for one object), before anything is sent. A dict or YAML text works as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelvault.domain.schema import (
    BboxQuestion,
    FieldKind,
    FieldSpec,
    LabelQuestion,
    MultiLabelQuestion,
    PreferenceQuestion,
    ProjectSchema,
    RankingQuestion,
    RatingQuestion,
    RubricQuestion,
    SpanQuestion,
    TextQuestion,
    parse_schema,
)

Schema = ProjectSchema
Field = FieldSpec
Label = LabelQuestion
MultiLabel = MultiLabelQuestion
Rating = RatingQuestion
Ranking = RankingQuestion
Preference = PreferenceQuestion
Text = TextQuestion
Span = SpanQuestion
Bbox = BboxQuestion
Rubric = RubricQuestion

SchemaLike = ProjectSchema | dict[str, Any] | str | Path


def load(source: SchemaLike) -> ProjectSchema:
    """A schema from an object, a dict, YAML or JSON text, or the path of a YAML or JSON file."""
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        return parse_schema(Path(source).read_text(encoding="utf-8"))
    return parse_schema(source)


def document(source: SchemaLike) -> dict[str, Any] | str:
    """What the API takes: a dict for objects, the text itself for YAML (the server reports its problems)."""
    if isinstance(source, ProjectSchema):
        return source.to_dict()
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        return Path(source).read_text(encoding="utf-8")
    return source


def _looks_like_path(text: str) -> bool:
    # YAML documents have a newline or a colon-space; a file name has neither (and exists).
    return "\n" not in text and ": " not in text and Path(text).suffix.lower() in (".yaml", ".yml", ".json") \
        and Path(text).is_file()


__all__ = [
    "Bbox", "Field", "FieldKind", "Label", "MultiLabel", "Preference", "Ranking", "Rating", "Rubric", "Schema",
    "SchemaLike", "Span", "Text", "document", "load",
]
