"""Project schema documents: the fields a task shows and the typed questions asked about it.

A schema arrives as YAML or JSON text (or an already parsed dict) and is turned into a
``ProjectSchema`` by :func:`parse_schema`. Every problem becomes one
:class:`~labelvault.errors.SchemaInvalid` whose message names the offending element in plain
words (``questions[2] (sentiment): labels must be unique ("pos" appears twice)``) and whose
``details`` list every problem as ``{"loc": ..., "message": ...}``.

Pure Python: this module imports nothing from labelvault except the error hierarchy.
"""

from __future__ import annotations

import json
import math
import re
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from labelvault.errors import SchemaInvalid

__all__ = [
    "IDENTIFIER_PATTERN",
    "BboxQuestion",
    "Criterion",
    "FieldKind",
    "FieldSpec",
    "LabelQuestion",
    "MultiLabelQuestion",
    "PreferenceQuestion",
    "ProjectSchema",
    "Question",
    "QuestionType",
    "RankingQuestion",
    "RatingQuestion",
    "RubricQuestion",
    "SpanQuestion",
    "TextQuestion",
    "describe_value",
    "json_type",
    "parse_schema",
    "quote",
]

IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)

# Bounds that keep a schema sane; they are generous on purpose.
MAX_LABEL_LENGTH = 200
MAX_TEXT_ANSWER_LENGTH = 1_000_000
MAX_STRENGTH_LEVELS = 10
MAX_RATING_SPAN = 100


# --------------------------------------------------------------------------- value descriptions


def json_type(value: Any) -> str:
    """The JSON-ish name of a value's type, as users know it from their data files."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def quote(value: str, limit: int = 60) -> str:
    """A string in double quotes, shortened so that a huge value cannot flood a message."""
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return json.dumps(value, ensure_ascii=False)


def describe_value(value: Any) -> str:
    """A short description of a bad value for an error message: ``3.5``, ``true``, ``"x"``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def format_number(value: float) -> str:
    """Numbers as people write them (``1.2``, not ``1.2000000000000002``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.10g}"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _quoted_list(items: Iterable[str]) -> str:
    return ", ".join(quote(item) for item in items)


# --------------------------------------------------------------------------- reusable constraints

# Two custom error kinds: a "predicate" reads after the element's name ("labels must be unique"),
# a "sentence" stands on its own after the owner ("min (5) must be less than max (3)").
_PREDICATE = "lv_predicate"
_SENTENCE = "lv_sentence"


def _predicate(text: str) -> PydanticCustomError:
    # The text goes through the context so that braces in user values are never format fields.
    return PydanticCustomError(_PREDICATE, "{text}", {"text": text})


def _sentence(text: str) -> PydanticCustomError:
    return PydanticCustomError(_SENTENCE, "{text}", {"text": text})


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER_RE.match(value):
        raise _predicate(
            "must be an identifier: a letter or _ followed by letters, digits or _, "
            f"at most 64 characters (got {quote(value)})"
        )
    return value


def _check_label(value: str) -> str:
    if not value.strip():
        raise _predicate("must not be blank")
    if value != value.strip():
        # "pos " and "pos" would silently be two different labels in imported answers.
        raise _predicate(f"must not start or end with spaces (got {quote(value)})")
    return value


Identifier = Annotated[StrictStr, AfterValidator(_check_identifier)]
LabelName = Annotated[
    StrictStr, Field(min_length=1, max_length=MAX_LABEL_LENGTH), AfterValidator(_check_label)
]


def _unique_labels(labels: list[str]) -> list[str]:
    duplicates = [label for label, count in Counter(labels).items() if count > 1]
    if duplicates:
        raise _predicate(f"must be unique ({quote(duplicates[0])} appears twice)")
    return labels


Labels = Annotated[list[LabelName], AfterValidator(_unique_labels)]


# --------------------------------------------------------------------------- fields


class FieldKind(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    IMAGE = "image"
    CHAT = "chat"
    CANDIDATES = "candidates"


class FieldSpec(BaseModel):
    """One element of a task's data that the labeler sees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier
    kind: FieldKind
    required: StrictBool = True
    title: StrictStr | None = None


# --------------------------------------------------------------------------- questions


class QuestionType(StrEnum):
    LABEL = "label"
    MULTI_LABEL = "multi_label"
    RATING = "rating"
    RANKING = "ranking"
    PREFERENCE = "preference"
    TEXT = "text"
    SPAN = "span"
    BBOX = "bbox"
    RUBRIC = "rubric"


class _QuestionBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier
    title: StrictStr | None = None
    required: StrictBool = True
    help: StrictStr | None = None


class LabelQuestion(_QuestionBase):
    """Pick exactly one of N labels."""

    type: Literal["label"] = "label"
    labels: Annotated[Labels, Field(min_length=2)]


class MultiLabelQuestion(_QuestionBase):
    """Pick any number of labels, within ``min_selected`` and ``max_selected``."""

    type: Literal["multi_label"] = "multi_label"
    labels: Annotated[Labels, Field(min_length=1)]
    min_selected: Annotated[StrictInt, Field(ge=0)] = 0
    max_selected: Annotated[StrictInt, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _selection_bounds_fit(self) -> MultiLabelQuestion:
        if self.min_selected > len(self.labels):
            raise _sentence(f"min_selected ({self.min_selected}) is more than the {len(self.labels)} labels")
        if self.max_selected is not None and self.max_selected < self.min_selected:
            raise _sentence(
                f"max_selected ({self.max_selected}) must be at least min_selected ({self.min_selected})"
            )
        return self


class RatingQuestion(_QuestionBase):
    """An integer on the scale ``min..max`` (both included)."""

    type: Literal["rating"] = "rating"
    min: StrictInt
    max: StrictInt

    @model_validator(mode="after")
    def _scale_is_sane(self) -> RatingQuestion:
        if self.min >= self.max:
            raise _sentence(f"min ({self.min}) must be less than max ({self.max})")
        if self.max - self.min > MAX_RATING_SPAN:
            raise _sentence(
                f"the scale {self.min}..{self.max} is too wide: max - min must be at most {MAX_RATING_SPAN}"
            )
        return self


class RankingQuestion(_QuestionBase):
    """Order all candidates of a ``candidates`` field, best first."""

    type: Literal["ranking"] = "ranking"
    field: Identifier


class PreferenceQuestion(_QuestionBase):
    """A versus B: the first two candidates of a ``candidates`` field, with tie and strength."""

    type: Literal["preference"] = "preference"
    field: Identifier
    allow_tie: StrictBool = True
    strength_levels: Annotated[StrictInt, Field(ge=2, le=MAX_STRENGTH_LEVELS)] | None = None


class TextQuestion(_QuestionBase):
    """Free text within length bounds (in characters)."""

    type: Literal["text"] = "text"
    min_length: Annotated[StrictInt, Field(ge=0)] = 0
    max_length: Annotated[StrictInt, Field(ge=1, le=MAX_TEXT_ANSWER_LENGTH)] = 10_000

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> TextQuestion:
        if self.min_length > self.max_length:
            raise _sentence(f"min_length ({self.min_length}) must be at most max_length ({self.max_length})")
        return self


class SpanQuestion(_QuestionBase):
    """Labelled character spans over a ``text`` or ``markdown`` field."""

    type: Literal["span"] = "span"
    field: Identifier
    labels: Annotated[Labels, Field(min_length=1)]
    allow_overlap: StrictBool = False


class BboxQuestion(_QuestionBase):
    """Labelled boxes on an ``image`` field, in coordinates relative to the image size."""

    type: Literal["bbox"] = "bbox"
    field: Identifier
    labels: Annotated[Labels, Field(min_length=1)]


# A rubric criterion is any question except another rubric (rubrics do not nest).
Criterion = Annotated[
    LabelQuestion
    | MultiLabelQuestion
    | RatingQuestion
    | RankingQuestion
    | PreferenceQuestion
    | TextQuestion
    | SpanQuestion
    | BboxQuestion,
    Field(discriminator="type"),
]


def _duplicate_name(items: Sequence[Any]) -> str | None:
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            return str(item.name)
        seen.add(item.name)
    return None


class RubricQuestion(_QuestionBase):
    """Several criteria answered together; the answer is ``{criterion_name: value}``."""

    type: Literal["rubric"] = "rubric"
    criteria: Annotated[list[Criterion], Field(min_length=1)]

    @field_validator("criteria")
    @classmethod
    def _criteria_names_are_unique(cls, criteria: list[Any]) -> list[Any]:
        duplicate = _duplicate_name(criteria)
        if duplicate is not None:
            raise _predicate(f"must have unique names ({quote(duplicate)} appears twice)")
        return criteria

    def criterion(self, name: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.name == name:
                return criterion
        raise KeyError(f"rubric {quote(self.name)} has no criterion {quote(name)}")


Question = Annotated[
    LabelQuestion
    | MultiLabelQuestion
    | RatingQuestion
    | RankingQuestion
    | PreferenceQuestion
    | TextQuestion
    | SpanQuestion
    | BboxQuestion
    | RubricQuestion,
    Field(discriminator="type"),
]

QUESTION_CLASSES: dict[str, type[BaseModel]] = {
    "label": LabelQuestion,
    "multi_label": MultiLabelQuestion,
    "rating": RatingQuestion,
    "ranking": RankingQuestion,
    "preference": PreferenceQuestion,
    "text": TextQuestion,
    "span": SpanQuestion,
    "bbox": BboxQuestion,
    "rubric": RubricQuestion,
}

# Which field kinds a question's ``field`` may point at.
_FIELD_KINDS_FOR: dict[str, tuple[FieldKind, ...]] = {
    "ranking": (FieldKind.CANDIDATES,),
    "preference": (FieldKind.CANDIDATES,),
    "span": (FieldKind.TEXT, FieldKind.MARKDOWN),
    "bbox": (FieldKind.IMAGE,),
}

_T = TypeVar("_T")


# --------------------------------------------------------------------------- the schema


class ProjectSchema(BaseModel):
    """The validated schema of one project."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: Annotated[list[FieldSpec], Field(min_length=1)]
    questions: Annotated[list[Question], Field(min_length=1)]
    instructions: StrictStr | None = None

    # Lookup tables and compiled validators, built lazily once per schema object.
    _derived: _Derived | None = PrivateAttr(default=None)

    @field_validator("fields", "questions")
    @classmethod
    def _names_are_unique(cls, items: list[Any]) -> list[Any]:
        duplicate = _duplicate_name(items)
        if duplicate is not None:
            raise _predicate(f"must have unique names ({quote(duplicate)} appears twice)")
        return items

    @model_validator(mode="after")
    def _field_references_resolve(self) -> ProjectSchema:
        # Raised as SchemaInvalid directly (pydantic lets non-ValueErrors through) so that every
        # dangling reference is reported with its own location.
        fields = {spec.name: spec for spec in self.fields}
        problems: list[dict[str, str]] = []
        for index, question in enumerate(self.questions):
            owner_loc = f"questions[{index}]"
            owner_words = f"questions[{index}] ({question.name})"
            problems.extend(_reference_problems(question, fields, owner_loc, owner_words))
            if isinstance(question, RubricQuestion):
                for sub_index, criterion in enumerate(question.criteria):
                    problems.extend(
                        _reference_problems(
                            criterion,
                            fields,
                            f"{owner_loc}.criteria[{sub_index}]",
                            f"{owner_words}.criteria[{sub_index}] ({criterion.name})",
                        )
                    )
        if problems:
            raise SchemaInvalid(_summary([p["message"] for p in problems]), details=problems)
        return self

    def _state(self) -> _Derived:
        # Straight to pydantic's private dict: attribute access to private attrs is slow and this
        # sits on the per-row import path. The owner check makes copies (model_copy, copy.copy)
        # build their own state instead of sharing the original's stale one.
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        state: _Derived | None = private.get("_derived")
        if state is None or state.owner() is not self:
            state = private["_derived"] = _Derived(self)
        return state

    # -- lookups

    def __getstate__(self) -> dict[Any, Any]:
        # Derived state holds closures and a weak reference: rebuild it after unpickling.
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private:
            state["__pydantic_private__"] = {**private, "_derived": None}
        return state

    def field(self, name: str) -> FieldSpec:
        """The field called ``name``; ``KeyError`` if there is none."""
        try:
            return self._state().fields[name]
        except KeyError:
            raise KeyError(f"schema has no field {quote(name)}") from None

    def question(self, name: str) -> Question:
        """The top-level question called ``name``; ``KeyError`` if there is none."""
        try:
            return self._state().questions[name]
        except KeyError:
            raise KeyError(f"schema has no question {quote(name)}") from None

    def has_field(self, name: str) -> bool:
        return name in self._state().fields

    def has_question(self, name: str) -> bool:
        return name in self._state().questions

    @property
    def field_names(self) -> list[str]:
        return [spec.name for spec in self.fields]

    @property
    def question_names(self) -> list[str]:
        return [question.name for question in self.questions]

    def fields_of_kind(self, *kinds: FieldKind | str) -> list[FieldSpec]:
        return [spec for spec in self.fields if spec.kind in kinds]

    def questions_of_type(self, *types: QuestionType | str) -> list[Question]:
        """Top-level questions of the given types (rubric criteria are not included)."""
        return [question for question in self.questions if question.type in types]

    def label_questions(self) -> list[Question]:
        """``label`` and ``multi_label`` questions (top level)."""
        return self.questions_of_type(QuestionType.LABEL, QuestionType.MULTI_LABEL)

    def iter_questions(self) -> Iterator[tuple[str, Criterion]]:
        """Every answerable leaf question with its answer path (``"quality.clarity"`` in rubrics)."""
        for question in self.questions:
            if isinstance(question, RubricQuestion):
                for criterion in question.criteria:
                    yield f"{question.name}.{criterion.name}", criterion
            else:
                yield question.name, question

    # -- serialisation and caching

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`parse_schema` turns back into an equal schema."""
        data = self.model_dump(mode="json", exclude_none=True)
        # Name and type first, as people write them.
        data["questions"] = [_name_type_first(question) for question in data["questions"]]
        for question in data["questions"]:
            if "criteria" in question:
                question["criteria"] = [_name_type_first(criterion) for criterion in question["criteria"]]
        return data

    def __eq__(self, other: object) -> bool:
        # Pydantic's equality would also compare the private caches; only the document matters.
        if not isinstance(other, ProjectSchema):
            return NotImplemented
        return (self.fields, self.questions, self.instructions) == (
            other.fields,
            other.questions,
            other.instructions,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable lists inside: not hashable

    def memo(self, key: str, build: Callable[[ProjectSchema], _T]) -> _T:
        """Build something derived from this schema once (e.g. a compiled validator) and keep it."""
        memo = self._state().memo
        try:
            return memo[key]
        except KeyError:
            value = memo[key] = build(self)
            return value


class _Derived:
    """What a schema object computes from itself: lookup tables and memoized builds."""

    __slots__ = ("fields", "memo", "owner", "questions")

    def __init__(self, schema: ProjectSchema) -> None:
        self.owner = weakref.ref(schema)  # weak: no reference cycle through the private dict
        self.fields: dict[str, FieldSpec] = {spec.name: spec for spec in schema.fields}
        self.questions: dict[str, Any] = {question.name: question for question in schema.questions}
        self.memo: dict[str, Any] = {}


def _name_type_first(question: dict[str, Any]) -> dict[str, Any]:
    return {"name": question["name"], "type": question["type"], **question}


def _reference_problems(
    question: Any, fields: dict[str, FieldSpec], loc: str, words: str
) -> list[dict[str, str]]:
    kinds = _FIELD_KINDS_FOR.get(question.type)
    if kinds is None:
        return []
    target = fields.get(question.field)
    expected = " or ".join(str(kind) for kind in kinds)
    needs = f"{_article(question.type)} {question.type} question needs {_article(expected)} {expected} field"
    if target is None:
        message = (
            f"{words}: field {quote(question.field)} does not exist "
            f"({needs}; fields are {_quoted_list(fields)})"
        )
    elif target.kind not in kinds:
        message = (
            f"{words}: field {quote(question.field)} is {_article(target.kind)} {target.kind} field, "
            f"but {needs}"
        )
    else:
        return []
    return [{"loc": f"{loc}.field", "message": message}]


# --------------------------------------------------------------------------- parsing


def parse_schema(document: str | bytes | dict[str, Any] | ProjectSchema) -> ProjectSchema:
    """Parse and validate a schema document given as YAML text, JSON text or a dict.

    Raises :class:`SchemaInvalid` for any problem, naming where it is.
    """
    if isinstance(document, ProjectSchema):
        return document
    data = _load(document) if isinstance(document, str | bytes) else document
    if not isinstance(data, dict):
        raise SchemaInvalid(
            f"a schema document must be a mapping with fields and questions, got {json_type(data)}",
            details=[{"loc": "", "message": f"expected a mapping, got {json_type(data)}"}],
        )
    try:
        return ProjectSchema.model_validate(data)
    except ValidationError as exc:
        problems = [_translate(error, data) for error in exc.errors(include_url=False)]
        raise SchemaInvalid(_summary([p["message"] for p in problems]), details=problems) from None


def _load(document: str | bytes) -> Any:
    if isinstance(document, bytes):
        try:
            document = document.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            message = f"schema document is not UTF-8 text (bad byte at position {exc.start})"
            raise SchemaInvalid(message, details=[{"loc": "", "message": message}]) from None
    if not document.strip():
        message = "schema document is empty"
        raise SchemaInvalid(message, details=[{"loc": "", "message": message}])
    json_error: json.JSONDecodeError | None = None
    if document.lstrip().startswith("{"):
        # JSON first: YAML rejects some valid JSON (tabs for indentation, for one).
        try:
            return json.loads(document)
        except json.JSONDecodeError as exc:
            json_error = exc
    try:
        return yaml.safe_load(document)
    except yaml.YAMLError as exc:
        if json_error is not None:
            message = (
                f"schema document is not valid JSON: {json_error.msg} "
                f"at line {json_error.lineno}, column {json_error.colno}"
            )
        else:
            message = f"schema document is not valid YAML: {_yaml_problem(exc)}"
        raise SchemaInvalid(message, details=[{"loc": "", "message": message}]) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def _summary(messages: list[str], shown: int = 3) -> str:
    if len(messages) == 1:
        return messages[0]
    head = "; ".join(messages[:shown])
    rest = len(messages) - shown
    suffix = f"; and {rest} more" if rest > 0 else ""
    return f"schema has {len(messages)} problems: {head}{suffix}"


# --------------------------------------------------------------------------- pydantic errors → words

_ITEM_LISTS = ("fields", "questions", "criteria")


def _child(node: Any, key: Any) -> Any:
    try:
        if isinstance(node, dict):
            return node.get(key)
        if isinstance(node, list | tuple) and isinstance(key, int):
            return node[key] if -len(node) <= key < len(node) else None
    except TypeError:
        return None
    return None


def _translate(error: Any, data: dict[str, Any]) -> dict[str, str]:
    """Turn one pydantic error into ``{"loc", "message"}`` with the element named in words."""
    loc = list(error["loc"])
    machine: list[str] = []  # questions[2].labels[1]
    owner_words = ""  # questions[2] (sentiment)
    attribute: list[str] = []  # labels[1]
    owner_node: Any = data
    owner_list: str | None = None  # which list the owner item is in, for extra-key hints
    node: Any = data
    previous: Any = None
    i = 0
    while i < len(loc):
        segment = loc[i]
        is_item = isinstance(segment, int) and previous in _ITEM_LISTS
        node = _child(node, segment)
        if isinstance(segment, int) and machine:
            machine[-1] += f"[{segment}]"
        else:
            machine.append(f"[{segment}]" if isinstance(segment, int) else str(segment))
        if is_item:
            # Everything so far (attribute included) becomes part of the owner's name.
            base = owner_words + ("." if owner_words and attribute else "") + ".".join(attribute)
            name = _child(node, "name")
            label = f"{base}[{segment}]" if base else f"[{segment}]"
            if isinstance(name, str) and name:
                label += f" ({name})"
            owner_words, attribute, owner_node, owner_list = label, [], node, previous
            # Discriminated unions put the tag ("label", "rating", ...) after the index: skip it.
            tag = _child(node, "type")
            if i + 1 < len(loc) and isinstance(tag, str) and loc[i + 1] == tag:
                i += 1
        elif isinstance(segment, int):
            if attribute:
                attribute[-1] += f"[{segment}]"
            else:
                attribute.append(f"[{segment}]")
        else:
            attribute.append(str(segment))
        previous = segment
        i += 1

    subject = ".".join(attribute)
    if error["type"] == "extra_forbidden":
        # The unknown key itself is the news, so it becomes a sentence about the owner.
        reason = f"unknown key {quote(str(loc[-1]))}{_allowed_keys_hint(owner_node, owner_list)}"
        is_sentence = True
    else:
        reason, is_sentence = _reason(error)
    if is_sentence or not (subject or owner_words):
        message = f"{owner_words}: {reason}" if owner_words else reason
    elif subject:
        message = f"{owner_words}: {subject} {reason}" if owner_words else f"{subject} {reason}"
    else:
        message = f"{owner_words} {reason}"
    return {"loc": ".".join(machine), "message": message}


def _allowed_keys_hint(owner_node: Any, owner_list: str | None) -> str:
    model: type[BaseModel] | None
    if owner_list == "fields":
        model = FieldSpec
    elif owner_list in ("questions", "criteria"):
        model = QUESTION_CLASSES.get(str(_child(owner_node, "type")))
    else:
        model = ProjectSchema
    if model is None:
        return ""
    allowed = [name for name in model.model_fields if name != "type"]
    return f" (allowed: {', '.join(allowed)})"


def _reason(error: Any) -> tuple[str, bool]:
    """The reason in words, and whether it is a whole sentence (vs. a predicate on the element)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    got = json_type(value)
    if kind == _SENTENCE:
        return ctx.get("text", error["msg"]), True
    if kind == _PREDICATE:
        return ctx.get("text", error["msg"]), False
    if kind == "missing":
        return "is required", False
    if kind == "string_type":
        hint = ""
        if isinstance(value, bool | int | float):
            # YAML turns bare yes/no/on/off and numbers into non-text values.
            hint = " (put it in quotes)"
        return f"must be text, got {got}{hint}", False
    if kind == "int_type":
        return f"must be a whole number, got {describe_value(value)}", False
    if kind == "bool_type":
        return f"must be true or false, got {describe_value(value)}", False
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {got}", False
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping, got {got}", False
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"must have at least {n} item{'s' if n != 1 else ''}, got {ctx.get('actual_length')}", False
    if kind == "too_long":
        n = ctx.get("max_length")
        return f"must have at most {n} item{'s' if n != 1 else ''}, got {ctx.get('actual_length')}", False
    if kind == "string_too_short":
        return "must not be empty", False
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long", False
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, got {describe_value(value)}", False
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}, got {describe_value(value)}", False
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}, got {describe_value(value)}", False
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}, got {describe_value(value)}", False
    if kind == "enum":
        expected = ", ".join(kind_.value for kind_ in FieldKind)
        return f"must be one of {expected} (got {describe_value(value)})", False
    if kind == "union_tag_invalid":
        tag = ctx.get("tag")
        expected = str(ctx.get("expected_tags", ", ".join(QUESTION_CLASSES))).replace("'", "")
        if tag == "rubric" and "rubric" not in expected:
            return "a rubric criterion cannot be a rubric itself (rubrics do not nest)", True
        return f"unknown question type {describe_value(tag)}; expected one of {expected}", True
    if kind == "union_tag_not_found":
        return f"type is required (one of {', '.join(QUESTION_CLASSES)})", True
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {describe_value(value)}", False
    # Anything else: pydantic's own words, tidied (never the only information: the path is there).
    msg = str(error.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg[:1].lower() + msg[1:], False
