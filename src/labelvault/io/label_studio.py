"""Label Studio exports: read them, map them to a LabelVault schema, and turn results into answers.

Two export formats are read:

- **JSON** (Label Studio's own format): a list of tasks, each ``{"id", "data": {...},
  "annotations": [...], "predictions": [...]}``; an annotation has ``result`` (a list of regions
  ``{"from_name", "to_name", "type", "value", ...}``), ``completed_by`` (a user id, or in older
  versions ``{"id", "email", ...}``), ``created_username`` (``"email, id"``), ``created_at``,
  ``lead_time`` (seconds), ``was_cancelled`` (skipped) and ``ground_truth``; a prediction has
  ``model_version``, ``score`` and ``result``. A single task object (one file of a cloud-storage
  export) is read as a list of one.
- **JSON-MIN**: one flat record per annotation (the task's data keys, ``id``, one key per
  control tag with a shortened value, ``annotator``, ``annotation_id``, ``created_at``,
  ``lead_time``). It does not say which keys are data and which are answers, nor a choice from a
  text answer, so it needs the labeling config.

Five result types are understood: ``choices`` (single: a ``label`` question; multiple:
``multi_label``), ``rating``, ``textarea`` (``text``), ``labels`` over text (``span``) and
``rectanglelabels`` (``bbox``: Label Studio's percentages of the image become fractions of 1,
and a rotated box becomes its axis-aligned envelope, which needs ``original_width`` and
``original_height``). Anything else (polygons, brushes, relations, per-region answers, ...) is
refused by name, or dropped and counted when the caller asks for that.

The labeling config (the project's XML) is optional. With it, question names, choice options,
label sets, ``choice="multiple"``, ``maxRating`` and which data key each object tag shows come
from the config; without it they are inferred from the results themselves.

Pure format knowledge: no database. Problems raise :class:`LabelStudioInvalid` naming the place
(``tasks[3] (id 17).annotations[0] (id 45).result[2] (sentiment): ...``); the use case
(``io/label_studio_import.py``) collects them.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from labelvault.domain.schema import (
    BboxQuestion,
    LabelQuestion,
    MultiLabelQuestion,
    ProjectSchema,
    RatingQuestion,
    SpanQuestion,
    TextQuestion,
    describe_value,
    json_type,
    parse_schema,
    quote,
)
from labelvault.errors import ImportInvalid, SchemaInvalid

__all__ = [
    "SUPPORTED_TYPES",
    "LabelConfig",
    "LabelStudioInvalid",
    "LsAnnotation",
    "LsPrediction",
    "LsTask",
    "Mapping",
    "convert_result",
    "identifier",
    "infer_mapping",
    "map_to_schema",
    "parse_label_config",
    "read_export",
]

# Label Studio result type -> the LabelVault question types it may land in.
SUPPORTED_TYPES: dict[str, tuple[str, ...]] = {
    "choices": ("label", "multi_label"),
    "rating": ("rating",),
    "textarea": ("text",),
    "labels": ("span",),
    "rectanglelabels": ("bbox",),
}
_CONTROL_TAGS = {
    "choices": "choices",
    "rating": "rating",
    "textarea": "textarea",
    "labels": "labels",
    "rectanglelabels": "rectanglelabels",
}
# Result types that draw a region; a classification result sharing a region's id is per-region.
_REGION_TYPES = frozenset({
    "labels", "rectanglelabels", "rectangle", "polygon", "polygonlabels", "ellipse", "ellipselabels",
    "keypoint", "keypointlabels", "brush", "brushlabels", "hypertextlabels", "paragraphlabels",
    "timeserieslabels", "videorectangle",
})
_IDENTIFIER_BAD = re.compile(r"[^A-Za-z0-9_]")
DEFAULT_MAX_RATING = 5
MAX_TEXT_LENGTH = 1_000_000
DEFAULT_TEXT_LENGTH = 10_000
IMPORTED_MODEL = "label-studio"
DELETED_USER = "deleted"


class LabelStudioInvalid(Exception):
    """One place of the export does not fit; ``where`` names it, ``reason`` says why."""

    def __init__(self, where: str, reason: str, *, task: int | None = None, question: str | None = None) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where = where
        self.reason = reason
        self.task = task
        self.question = question

    @property
    def message(self) -> str:
        return str(self)


# --------------------------------------------------------------------------- the labeling config


@dataclass(frozen=True)
class Control:
    """A control tag of the config (``<Choices name="sentiment" toName="text">``)."""

    name: str
    kind: str  # a Label Studio result type: choices, rating, textarea, labels, rectanglelabels, or the tag
    to_name: str
    labels: tuple[str, ...] = ()
    multiple: bool = False
    max_rating: int = DEFAULT_MAX_RATING
    required: bool = False

    @property
    def supported(self) -> bool:
        return self.kind in SUPPORTED_TYPES


@dataclass(frozen=True)
class LabelConfig:
    controls: dict[str, Control]
    # Object tag name -> the data key it shows ("text" for <Text name="text" value="$review"/> is "review").
    objects: dict[str, str]
    object_tags: dict[str, str]  # object tag name -> tag (Text, HyperText, Image, ...)


def parse_label_config(document: str | bytes) -> LabelConfig:
    """Parse Label Studio's labeling config (``<View>...</View>``)."""
    if isinstance(document, bytes):
        try:
            document = document.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _config_error(f"not UTF-8 text (bad byte at position {exc.start})") from None
    if not document.strip():
        raise _config_error("it is empty")
    # A labeling config never needs a DTD; refusing one rules out entity expansion attacks.
    upper = document.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise _config_error("DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        line, column = exc.position
        raise _config_error(f"not valid XML ({_expat_reason(exc)} at line {line}, column {column + 1})") from None
    controls: dict[str, Control] = {}
    objects: dict[str, str] = {}
    object_tags: dict[str, str] = {}
    for element in root.iter():
        name = element.get("name")
        if not name:
            continue
        to_name = element.get("toName")
        value = element.get("value")
        if to_name:
            kind = _CONTROL_TAGS.get(element.tag.lower(), element.tag.lower())
            labels = tuple(
                label
                for child in element.iter()
                if child is not element and child.tag in ("Choice", "Label")
                for label in [child.get("alias") or child.get("value")]
                if label
            )
            controls[name] = Control(
                name=name,
                kind=kind,
                to_name=to_name.split(",")[0].strip(),
                labels=labels,
                multiple=element.get("choice", "single") == "multiple",
                max_rating=_int_attribute(element, "maxRating", DEFAULT_MAX_RATING),
                required=element.get("required", "false").lower() == "true",
            )
        elif value and value.startswith("$"):
            objects[name] = value[1:]
            object_tags[name] = element.tag
    if not controls:
        raise _config_error("it has no control tags (tags with name and toName, such as <Choices>)")
    return LabelConfig(controls=controls, objects=objects, object_tags=object_tags)


def _expat_reason(exc: ElementTree.ParseError) -> str:
    return str(exc).split(":", 1)[0]


def _int_attribute(element: ElementTree.Element, name: str, default: int) -> int:
    text = element.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise _config_error(f"<{element.tag} name={quote(element.get('name') or '')}>: {name} must be a whole "
                            f"number, got {quote(text)}") from None


def _config_error(reason: str) -> ImportInvalid:
    message = f"label config: {reason}"
    return ImportInvalid(message, details={"errors": [{"where": "config", "message": message}]})


# --------------------------------------------------------------------------- the export


@dataclass
class LsAnnotation:
    where: str
    id: str | None
    annotator_key: str  # stable identity of the person in Label Studio: "id:10" or "email:a@b.c"
    annotator_id: int | None
    annotator_email: str | None
    created_at: datetime | None
    lead_time: float | None
    cancelled: bool
    ground_truth: bool
    result: list[Any]


@dataclass
class LsPrediction:
    where: str
    model: str
    score: float | None
    result: list[Any]


@dataclass
class LsTask:
    index: int
    where: str
    id: str
    data: dict[str, Any]
    annotations: list[LsAnnotation] = field(default_factory=list)
    predictions: list[LsPrediction] = field(default_factory=list)
    meta: Any = None


def read_export(raw: bytes, config: LabelConfig | None) -> tuple[str, list[LsTask]]:
    """The export's format ("json" or "json-min") and its tasks, checked for shape."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _file_error(f"not valid JSON ({exc.msg} at character {exc.pos + 1})") from None
    if isinstance(document, dict):
        document = [document]  # one task: a cloud-storage export writes a file per task
    if not isinstance(document, list):
        raise _file_error(f"expected a list of tasks, got {json_type(document)}")
    if not document:
        raise _file_error("it holds no tasks")
    first = document[0]
    if isinstance(first, dict) and "data" not in first and ("annotator" in first or "annotation_id" in first):
        if config is None:
            raise _file_error(
                "this is a JSON-MIN export, which does not tell task data from answers: give the labeling "
                "config too (--config), or export as JSON"
            )
        return "json-min", _read_json_min(document, config)
    return "json", [_read_task(index, item) for index, item in enumerate(document)]


def _file_error(reason: str) -> ImportInvalid:
    message = f"Label Studio export: {reason}"
    return ImportInvalid(message, details={"errors": [{"where": "file", "message": message}]})


def _task_id(value: Any, where: str, index: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        got = "missing" if value is None else describe_value(value)
        raise LabelStudioInvalid(where, f"the task has no id (got {got}); the id becomes the external_id",
                                 task=index)
    text = str(value)
    if len(text) > 200:
        raise LabelStudioInvalid(where, "the task id is longer than 200 characters", task=index)
    return text


def _read_task(index: int, item: Any) -> LsTask:
    where = f"tasks[{index}]"
    if not isinstance(item, dict):
        raise LabelStudioInvalid(where, f"expected a task (a JSON object), got {json_type(item)}", task=index)
    task_id = _task_id(item.get("id"), where, index)
    where = f"tasks[{index}] (id {task_id})"
    data = item.get("data")
    if not isinstance(data, dict):
        raise LabelStudioInvalid(where, f"data must be an object, got {json_type(data)}", task=index)
    task = LsTask(index=index, where=where, id=task_id, data=data, meta=item.get("meta"))
    annotations = item.get("annotations", item.get("completions")) or []
    if not isinstance(annotations, list):
        raise LabelStudioInvalid(where, f"annotations must be a list, got {json_type(annotations)}", task=index)
    for position, annotation in enumerate(annotations):
        task.annotations.append(_read_annotation(index, f"{where}.annotations[{position}]", annotation))
    predictions = item.get("predictions") or []
    if not isinstance(predictions, list):
        raise LabelStudioInvalid(where, f"predictions must be a list, got {json_type(predictions)}", task=index)
    for position, prediction in enumerate(predictions):
        task.predictions.append(_read_prediction(index, f"{where}.predictions[{position}]", prediction))
    return task


def _read_annotation(index: int, where: str, item: Any) -> LsAnnotation:
    if not isinstance(item, dict):
        raise LabelStudioInvalid(where, f"expected an annotation (a JSON object), got {json_type(item)}", task=index)
    annotation_id = item.get("id")
    if annotation_id is not None:
        where = f"{where} (id {annotation_id})"
    result = item.get("result") or []
    if not isinstance(result, list):
        raise LabelStudioInvalid(where, f"result must be a list, got {json_type(result)}", task=index)
    user_id, email = _annotator(item.get("completed_by"), item.get("created_username"))
    return LsAnnotation(
        where=where,
        id=None if annotation_id is None else str(annotation_id),
        annotator_key=_annotator_key(user_id, email),
        annotator_id=user_id,
        annotator_email=email,
        created_at=_timestamp(item.get("created_at"), f"{where}.created_at", index),
        lead_time=_lead_time(item.get("lead_time"), where, index),
        cancelled=bool(item.get("was_cancelled") or item.get("skipped")),
        ground_truth=bool(item.get("ground_truth")),
        result=result,
    )


def _annotator_key(user_id: int | None, email: str | None) -> str:
    # Label Studio empties completed_by when a user is deleted; their work stays, under one name.
    return f"id:{user_id}" if user_id is not None else f"email:{email}" if email else DELETED_USER


def _annotator(completed_by: Any, created_username: Any) -> tuple[int | None, str | None]:
    """(Label Studio user id, e-mail) from the forms exports use: an id, an object, or "email, id"."""
    user_id: int | None = None
    email: str | None = None
    if isinstance(completed_by, dict):
        raw_id = completed_by.get("id")
        user_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
        raw_email = completed_by.get("email")
        email = raw_email.strip() or None if isinstance(raw_email, str) else None
    elif isinstance(completed_by, int) and not isinstance(completed_by, bool):
        user_id = completed_by
    elif isinstance(completed_by, str) and completed_by.strip():
        text = completed_by.strip()
        if text.isdigit():
            user_id = int(text)
        else:
            email = text
    if email is None and isinstance(created_username, str) and created_username.strip():
        # "alice@example.com, 10": the e-mail, then the id.
        name, _, trailing = created_username.strip().rpartition(",")
        if name and trailing.strip().isdigit():
            email = name.strip() or None
            user_id = user_id if user_id is not None else int(trailing.strip())
        else:
            email = created_username.strip()
    return user_id, email


def _timestamp(value: Any, where: str, index: int) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise LabelStudioInvalid(where, f"expected an ISO 8601 time, got {describe_value(value)}", task=index)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LabelStudioInvalid(where, f"expected an ISO 8601 time, got {quote(value)}", task=index) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _lead_time(value: Any, where: str, index: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise LabelStudioInvalid(f"{where}.lead_time", f"expected seconds (0 or more), got {describe_value(value)}",
                                 task=index)
    return float(value)


def _read_prediction(index: int, where: str, item: Any) -> LsPrediction:
    if not isinstance(item, dict):
        raise LabelStudioInvalid(where, f"expected a prediction (a JSON object), got {json_type(item)}", task=index)
    result = item.get("result") or []
    if not isinstance(result, list):
        raise LabelStudioInvalid(where, f"result must be a list, got {json_type(result)}", task=index)
    model = item.get("model_version")
    model = model.strip() if isinstance(model, str) and model.strip() else IMPORTED_MODEL
    score = item.get("score")
    # LabelVault keeps scores from 0 to 1 (they drive uncertainty); other scales are not guessed at.
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        score = None
    return LsPrediction(where=where, model=model[:200], score=None if score is None else float(score), result=result)


def _read_json_min(records: list[Any], config: LabelConfig) -> list[LsTask]:
    """JSON-MIN: one record per annotation; records of one task share its id."""
    tasks: dict[str, LsTask] = {}
    data_keys = set(config.objects.values())
    for position, record in enumerate(records):
        where = f"records[{position}]"
        if not isinstance(record, dict):
            raise LabelStudioInvalid(where, f"expected a record (a JSON object), got {json_type(record)}",
                                     task=position)
        task_id = _task_id(record.get("id"), where, position)
        task = tasks.get(task_id)
        if task is None:
            data = {key: value for key, value in record.items() if key in data_keys}
            task = tasks[task_id] = LsTask(index=len(tasks), where=f"tasks[{len(tasks)}] (id {task_id})",
                                           id=task_id, data=data)
        where = f"{where} (task id {task_id})"
        result: list[Any] = []
        for name, control in config.controls.items():
            if name in record:
                result.extend(_min_results(control, record[name]))
        if "annotator" not in record and "annotation_id" not in record:
            continue  # a task without annotations
        user_id, email = _annotator(record.get("annotator"), None)
        annotation_id = record.get("annotation_id")
        task.annotations.append(
            LsAnnotation(
                where=f"{where}.annotation" + ("" if annotation_id is None else f" (id {annotation_id})"),
                id=None if annotation_id is None else str(annotation_id),
                annotator_key=_annotator_key(user_id, email),
                annotator_id=user_id,
                annotator_email=email,
                created_at=_timestamp(record.get("created_at"), f"{where}.created_at", task.index),
                lead_time=_lead_time(record.get("lead_time"), where, task.index),
                cancelled=False,  # JSON-MIN leaves cancelled annotations out
                ground_truth=False,
                result=result,
            )
        )
    return list(tasks.values())


def _min_results(control: Control, value: Any) -> list[dict[str, Any]]:
    """Undo JSON-MIN's shortening: one choice or one text becomes a plain string."""
    base = {"from_name": control.name, "to_name": control.to_name, "type": control.kind}
    if control.kind == "choices" and isinstance(value, str):
        return [{**base, "value": {"choices": [value]}}]
    if control.kind == "textarea" and isinstance(value, str):
        return [{**base, "value": {"text": [value]}}]
    items = value if isinstance(value, list) else [value]
    results: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            results.append({**base, "value": item})
            continue
        item = dict(item)
        extra = {key: item.pop(key) for key in ("original_width", "original_height") if key in item}
        results.append({**base, **extra, "value": item})
    return results


# --------------------------------------------------------------------------- from Label Studio to a schema


@dataclass
class QuestionMap:
    """Where one control tag's results go."""

    from_name: str
    ls_type: str
    question: str  # the LabelVault question's name
    lv_type: str


@dataclass
class Mapping:
    """How an export lands in a project: its schema, data keys -> fields, controls -> questions."""

    schema: ProjectSchema
    fields: dict[str, str]  # data key -> field name
    questions: dict[str, QuestionMap]  # from_name -> question
    metadata_keys: list[str]  # data keys kept in the task's metadata (not shown)
    ignored_controls: list[str] = field(default_factory=list)  # config controls of unsupported types

    def describe(self) -> dict[str, Any]:
        return {
            "schema": self.schema.to_dict(),
            "fields": dict(self.fields),
            "questions": {name: {"type": q.ls_type, "question": q.question, "question_type": q.lv_type}
                          for name, q in self.questions.items()},
            "metadata_keys": list(self.metadata_keys),
            "ignored_controls": list(self.ignored_controls),
        }


def identifier(name: str) -> str:
    """A LabelVault identifier for a Label Studio name: ``my-tag`` -> ``my_tag``, ``1st`` -> ``_1st``."""
    text = _IDENTIFIER_BAD.sub("_", name) or "_"
    if not (text[0].isalpha() or text[0] == "_"):
        text = "_" + text
    return text[:64]


def _unique(names: dict[str, str]) -> dict[str, str]:
    """Make the mapped identifiers distinct: ``a-b`` and ``a_b`` become ``a_b`` and ``a_b_2``."""
    seen: set[str] = set()
    out: dict[str, str] = {}
    for source, target in names.items():
        candidate, n = target, 2
        while candidate in seen:
            candidate = f"{target[:60]}_{n}"
            n += 1
        seen.add(candidate)
        out[source] = candidate
    return out


@dataclass
class _Seen:
    """What the results of one control tag show, for inferring its question."""

    ls_type: str
    to_name: str
    labels: list[str] = field(default_factory=list)
    multiple: bool = False
    max_rating: int = 0
    longest_text: int = 0
    data_keys: set[str] = field(default_factory=set)


def _results(task: LsTask) -> Iterable[tuple[str, dict[str, Any]]]:
    for annotation in task.annotations:
        if annotation.cancelled:
            continue
        for position, item in enumerate(annotation.result):
            yield f"{annotation.where}.result[{position}]", item
    for prediction in task.predictions:
        for position, item in enumerate(prediction.result):
            yield f"{prediction.where}.result[{position}]", item


def infer_mapping(tasks: list[LsTask], config: LabelConfig | None, *, skip_unsupported: bool = False) -> Mapping:
    """A new project's schema for an export: fields from the data, questions from the results
    (and the config, when given)."""
    seen: dict[str, _Seen] = {}
    if config is not None:
        for control in config.controls.values():
            if control.supported:
                from_config = _Seen(control.kind, control.to_name, labels=list(control.labels),
                                    multiple=control.multiple, max_rating=control.max_rating)
                if control.to_name in config.objects:
                    from_config.data_keys.add(config.objects[control.to_name])
                seen[control.name] = from_config
    for task in tasks:
        for where, item in _results(task):
            if not isinstance(item, dict):
                continue  # reported by convert_result
            ls_type, from_name = item.get("type"), item.get("from_name")
            if not isinstance(from_name, str) or ls_type not in SUPPORTED_TYPES:
                if skip_unsupported:
                    continue
                raise _unsupported(where, item, task.index)
            if config is not None and from_name not in config.controls:
                raise LabelStudioInvalid(f"{where} ({from_name})", f"the config has no control tag {quote(from_name)}",
                                         task=task.index)
            info = seen.get(from_name)
            if info is None:
                info = seen[from_name] = _Seen(ls_type, str(item.get("to_name") or ""), max_rating=DEFAULT_MAX_RATING)
            elif info.ls_type != ls_type:
                raise LabelStudioInvalid(
                    f"{where} ({from_name})",
                    f"type {quote(str(ls_type))} differs from {quote(info.ls_type)} seen before for the same from_name",
                    task=task.index,
                )
            _observe(info, item, task, config)
    if not seen:
        raise _file_error(
            "no choices, rating, textarea, labels or rectanglelabels results to infer questions from; "
            "give the labeling config (--config)"
        )
    image_keys = {key for info in seen.values() if info.ls_type == "rectanglelabels" for key in info.data_keys}
    if config is not None:
        # Image classification: an <Image> tag shows the key, whatever the questions about it.
        image_keys |= {config.objects[name] for name, tag in config.object_tags.items() if tag == "Image"}
    else:
        image_keys |= _image_file_keys(tasks)
    text_keys = {key for info in seen.values() if info.ls_type == "labels" for key in info.data_keys}
    field_names, metadata_keys, fields = _infer_fields(tasks, image_keys, text_keys, config)
    question_names = _unique({name: identifier(name) for name in seen})
    questions: list[Any] = []
    maps: dict[str, QuestionMap] = {}
    for name, info in seen.items():
        required = bool(config and config.controls[name].required)
        question = _question(question_names[name], name, info, field_names, required)
        questions.append(question)
        maps[name] = QuestionMap(name, info.ls_type, question.name, question.type)
    try:
        schema = parse_schema({"fields": fields, "questions": [q.model_dump(exclude_none=True) for q in questions]})
    except SchemaInvalid as exc:
        raise _file_error(f"the inferred schema is not valid: {exc.message}") from None
    ignored = [c.name for c in config.controls.values() if not c.supported] if config else []
    return Mapping(schema, field_names, maps, metadata_keys, ignored)


def _observe(info: _Seen, item: dict[str, Any], task: LsTask, config: LabelConfig | None) -> None:
    key = _data_key(item, info, task, config)
    if key is not None:
        info.data_keys.add(key)
    value = item.get("value")
    if not isinstance(value, dict):
        return
    if info.ls_type == "textarea":
        # History decides the length bound: an old long answer must still fit.
        info.longest_text = max(info.longest_text, len(_joined_text(value.get("text")) or ""))
    if config is not None:
        return  # with a config, options, label sets and scales are the config's
    if info.ls_type == "choices":
        choices = value.get("choices")
        if isinstance(choices, list):
            info.multiple = info.multiple or len(choices) > 1
            _add_labels(info, choices)
    elif info.ls_type == "rating":
        rating = value.get("rating")
        if isinstance(rating, int) and not isinstance(rating, bool):
            info.max_rating = max(info.max_rating, rating)
    elif info.ls_type != "textarea":
        _add_labels(info, value.get(info.ls_type) or value.get("labels") or [])


def _add_labels(info: _Seen, labels: Any) -> None:
    if isinstance(labels, list):
        for label in labels:
            if isinstance(label, str) and label not in info.labels:
                info.labels.append(label)


def _data_key(item: dict[str, Any], info: _Seen, task: LsTask, config: LabelConfig | None) -> str | None:
    """The data key a region lies on: from the config, the result's ``source``, or its to_name."""
    to_name = str(item.get("to_name") or info.to_name)
    if config is not None and to_name in config.objects:
        return config.objects[to_name]
    source = item.get("source")
    if isinstance(source, str) and source.startswith("$"):
        return source[1:]
    if to_name in task.data:
        return to_name
    if info.ls_type == "labels":
        value = item.get("value") or {}
        text, start, end = value.get("text"), value.get("start"), value.get("end")
        if isinstance(text, str) and isinstance(start, int) and isinstance(end, int):
            for key, data in task.data.items():
                if isinstance(data, str) and data[start:end] == text:
                    return key
    strings = [key for key, data in task.data.items() if isinstance(data, str)]
    if info.ls_type == "rectanglelabels":
        # Newer exports drop "source": take the one key that holds an image reference.
        images = [key for key in strings if _looks_like_image(task.data[key])]
        return images[0] if len(images) == 1 else None
    return strings[0] if len(strings) == 1 else None


_IMAGE_REFERENCE = re.compile(
    r"^(?:(?:https?|s3|gs|azure-blob|file):|/data/|data:image/)|\.(?:jpe?g|png|gif|bmp|webp|tiff?|svg)(?:[?#].*)?$",
    re.IGNORECASE,
)


def _looks_like_image(value: str) -> bool:
    return bool(_IMAGE_REFERENCE.search(value.strip()))


_IMAGE_FILE = re.compile(r"^data:image/|\.(?:jpe?g|png|gif|bmp|webp|tiff?)(?:[?#].*)?$", re.IGNORECASE)


def _image_file_keys(tasks: list[LsTask]) -> set[str]:
    """Data keys that name an image file in every task that has them (``.../0001.jpg``)."""
    verdict: dict[str, bool] = {}
    for task in tasks:
        for key, value in task.data.items():
            is_image = isinstance(value, str) and bool(_IMAGE_FILE.search(value.strip()))
            verdict[key] = verdict.get(key, True) and is_image
    return {key for key, is_image in verdict.items() if is_image}


def _infer_fields(
    tasks: list[LsTask], image_keys: set[str], text_keys: set[str], config: LabelConfig | None
) -> tuple[dict[str, str], list[str], list[dict[str, Any]]]:
    """Every data key holding text in every task where it appears becomes a field; the rest is metadata."""
    present: dict[str, int] = {}
    textual: dict[str, bool] = {}
    for task in tasks:
        for key, value in task.data.items():
            present[key] = present.get(key, 0) + 1
            textual[key] = textual.get(key, True) and isinstance(value, str) and (key not in image_keys or bool(value))
    shown = [key for key in present if textual[key]]
    if config is not None:
        # With a config, only what its object tags show is a field.
        shown = [key for key in shown if key in set(config.objects.values())] or shown
    for key in (*image_keys, *text_keys):
        if key not in shown:
            raise _file_error(
                f"results point at data key {quote(key)}, which "
                + ("no task has" if key not in present else "does not hold text in every task")
            )
    names = _unique({key: identifier(key) for key in shown})
    fields = [
        {"name": names[key], "kind": "image" if key in image_keys else "text", "required": present[key] == len(tasks)}
        for key in shown
    ]
    if not fields:
        raise _file_error("no data key holds text in every task, so there is nothing to show; "
                          "check the export's data")
    metadata = [key for key in present if key not in names]
    return names, metadata, fields


def _question(name: str, from_name: str, info: _Seen, field_names: dict[str, str], required: bool) -> Any:
    if info.ls_type == "choices":
        labels = info.labels or ["yes", "no"]
        if info.multiple or len(labels) < 2:
            return MultiLabelQuestion(name=name, labels=labels, required=required,
                                      max_selected=None if info.multiple else 1)
        return LabelQuestion(name=name, labels=labels, required=required)
    if info.ls_type == "rating":
        # Label Studio's scale is 1..maxRating (5 unless the config says otherwise).
        return RatingQuestion(name=name, min=1, max=max(2, info.max_rating), required=required)
    if info.ls_type == "textarea":
        longest = max(DEFAULT_TEXT_LENGTH, info.longest_text)
        return TextQuestion(name=name, max_length=min(MAX_TEXT_LENGTH, longest), required=required)
    keys = sorted(info.data_keys)
    if not keys:
        raise _file_error(
            f"cannot tell which data key the {info.ls_type} of {quote(from_name)} lie on "
            f"(to_name {quote(info.to_name)}); give the labeling config (--config)"
        )
    if len(keys) > 1:
        raise _file_error(f"the {info.ls_type} of {quote(from_name)} lie on several data keys "
                          f"({', '.join(quote(k) for k in keys)})")
    labels = info.labels or ["label"]
    if info.ls_type == "labels":
        # Label Studio lets spans overlap; so does the imported question.
        return SpanQuestion(name=name, field=field_names[keys[0]], labels=labels, allow_overlap=True,
                            required=required)
    return BboxQuestion(name=name, field=field_names[keys[0]], labels=labels, required=required)


def map_to_schema(schema: ProjectSchema, tasks: list[LsTask], *, skip_unsupported: bool = False) -> Mapping:
    """How an export lands in an existing project: data keys and from_names by (identifier) name."""
    fields = {}
    metadata: list[str] = []
    for task in tasks:
        for key in task.data:
            if key in fields or key in metadata:
                continue
            name = identifier(key)
            if schema.has_field(name):
                fields[key] = name
            else:
                metadata.append(key)
    maps: dict[str, QuestionMap] = {}
    for task in tasks:
        for where, item in _results(task):
            if not isinstance(item, dict):
                continue
            ls_type, from_name = item.get("type"), item.get("from_name")
            if not isinstance(from_name, str) or ls_type not in SUPPORTED_TYPES:
                if skip_unsupported:
                    continue
                raise _unsupported(where, item, task.index)
            if from_name in maps:
                continue
            name = identifier(from_name)
            if not schema.has_question(name):
                raise LabelStudioInvalid(
                    f"{where} ({from_name})",
                    f"the project has no question {quote(name)} for this {ls_type} result "
                    f"(questions are {', '.join(quote(q) for q in schema.question_names)})",
                    task=task.index,
                )
            question = schema.question(name)
            if question.type not in SUPPORTED_TYPES[str(ls_type)]:
                raise LabelStudioInvalid(
                    f"{where} ({from_name})",
                    f"question {quote(name)} is a {question.type} question; a {ls_type} result needs "
                    + " or ".join(SUPPORTED_TYPES[str(ls_type)]),
                    task=task.index,
                )
            maps[from_name] = QuestionMap(from_name, str(ls_type), name, question.type)
    return Mapping(schema, fields, maps, metadata)


def _unsupported(where: str, item: dict[str, Any], index: int) -> LabelStudioInvalid:
    ls_type = item.get("type")
    label = f" ({item['from_name']})" if isinstance(item.get("from_name"), str) else ""
    return LabelStudioInvalid(
        f"{where}{label}",
        f"result type {describe_value(ls_type)} is not supported (supported: {', '.join(SUPPORTED_TYPES)}); "
        "pass --skip-unsupported to import the rest",
        task=index,
    )


# --------------------------------------------------------------------------- results -> answer values


def convert_result(
    mapping: Mapping, payload: dict[str, Any], results: list[Any], where: str, index: int,
    *, skip_unsupported: bool = False,
) -> tuple[dict[str, Any], int]:
    """One annotation's (or prediction's) results as a LabelVault answer document, and the
    number of results dropped as unsupported."""
    answer: dict[str, Any] = {}
    dropped = 0
    region_ids = {
        item.get("id") for item in results
        if isinstance(item, dict) and item.get("type") in _REGION_TYPES and item.get("id") is not None
    }
    for position, item in enumerate(results):
        here = f"{where}.result[{position}]"
        if not isinstance(item, dict):
            raise LabelStudioInvalid(here, f"expected a result (a JSON object), got {json_type(item)}", task=index)
        from_name = item.get("from_name")
        if isinstance(from_name, str):
            here = f"{here} ({from_name})"
        ls_type = item.get("type")
        target = mapping.questions.get(from_name) if isinstance(from_name, str) else None
        per_region = ls_type in ("choices", "rating", "textarea") and item.get("id") in region_ids
        if target is None or ls_type not in SUPPORTED_TYPES or per_region:
            if skip_unsupported:
                dropped += 1
                continue
            if per_region:
                raise LabelStudioInvalid(here, f"per-region {ls_type} results are not supported; pass "
                                         "--skip-unsupported to import the rest", task=index)
            raise _unsupported(here, item, index)
        if ls_type != target.ls_type:
            raise LabelStudioInvalid(here, f"type {quote(str(ls_type))} differs from {quote(target.ls_type)}",
                                     task=index)
        value = item.get("value")
        if not isinstance(value, dict):
            raise LabelStudioInvalid(here, f"value must be an object, got {json_type(value)}", task=index)
        question = mapping.schema.question(target.question)
        try:
            _convert_one(answer, question, ls_type, item, value, payload)
        except ValueError as exc:
            raise LabelStudioInvalid(here, str(exc), task=index, question=target.question) from None
    return answer, dropped


def _convert_one(answer: dict[str, Any], question: Any, ls_type: str, item: dict[str, Any], value: dict[str, Any],
                 payload: dict[str, Any]) -> None:
    name = question.name
    if ls_type in ("choices", "rating", "textarea") and name in answer:
        raise ValueError(f"a second {ls_type} result for the same question")
    if ls_type == "choices":
        choices = value.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"value.choices must be a list of text, got {describe_value(choices)}")
        if question.type == "label":
            if len(choices) != 1:
                raise ValueError(f"{len(choices)} choices selected, but question {quote(name)} takes exactly one")
            answer[name] = choices[0]
        else:
            answer[name] = list(choices)
    elif ls_type == "rating":
        rating = value.get("rating")
        if isinstance(rating, float) and rating.is_integer():
            rating = int(rating)
        if isinstance(rating, bool) or not isinstance(rating, int):
            raise ValueError(f"value.rating must be a whole number, got {describe_value(rating)}")
        answer[name] = rating
    elif ls_type == "textarea":
        text = _joined_text(value.get("text"))
        if text is None:
            raise ValueError(f"value.text must be a list of text, got {describe_value(value.get('text'))}")
        answer[name] = text
    elif ls_type == "labels":
        spans = answer.setdefault(name, [])
        for span in _spans(value, payload.get(question.field)):
            if span not in spans:
                spans.append(span)
    else:
        boxes = answer.setdefault(name, [])
        boxes.extend(_boxes(item, value))


def _joined_text(text: Any) -> str | None:
    # Several submissions of one text area (maxSubmissions) are kept as lines of one answer.
    if isinstance(text, str):
        return text
    if isinstance(text, list) and all(isinstance(t, str) for t in text):
        return "\n".join(text)
    return None


def _labels_of(value: dict[str, Any], key: str) -> list[str]:
    labels = value.get(key)
    if labels is None and key != "labels":
        labels = value.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise ValueError(f"value.{key} must be a non-empty list of labels, got {describe_value(labels)}")
    return labels


def _spans(value: dict[str, Any], text: Any) -> list[dict[str, Any]]:
    start, end = value.get("start"), value.get("end")
    if isinstance(start, str) or isinstance(end, str):
        raise ValueError("spans with XPath offsets (HyperText) are not supported; only plain text spans")
    for key, number in (("start", start), ("end", end)):
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"value.{key} must be a whole number, got {describe_value(number)}")
    assert isinstance(start, int) and isinstance(end, int)
    given = value.get("text")
    if isinstance(text, str):
        start, end = _python_offsets(text, start, end, given if isinstance(given, str) else None)
    span: dict[str, Any] = {"start": start, "end": end}
    if isinstance(given, str) and isinstance(text, str) and text[start:end] == given:
        span["text"] = given
    return [{**span, "label": label} for label in _labels_of(value, "labels")]


def _python_offsets(text: str, start: int, end: int, given: str | None) -> tuple[int, int]:
    """Label Studio counts offsets in UTF-16 code units (JavaScript strings); Python counts code
    points. They differ after any character outside the Basic Multilingual Plane (emoji)."""
    if given is None or text[start:end] == given or not any(ord(c) > 0xFFFF for c in text):
        if given is not None and text[start:end] != given:
            raise ValueError(
                f"span [{start}, {end}) text {quote(given)} does not match the task text there: "
                f"{quote(text[start:end])}"
            )
        return start, end
    converted = _from_utf16(text, start), _from_utf16(text, end)
    if text[converted[0]:converted[1]] != given:
        raise ValueError(
            f"span [{start}, {end}) text {quote(given)} does not match the task text there "
            f"(neither as characters nor as UTF-16 units)"
        )
    return converted


def _from_utf16(text: str, offset: int) -> int:
    units = 0
    for index, char in enumerate(text):
        if units >= offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def _number(value: dict[str, Any], key: str) -> float:
    number = value.get(key)
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise ValueError(f"value.{key} must be a number (percent of the image), got {describe_value(number)}")
    return float(number)


def _boxes(item: dict[str, Any], value: dict[str, Any]) -> list[dict[str, Any]]:
    """Percent of the image (0..100, top-left corner, rotation in degrees about that corner)
    -> LabelVault's fractions of the image (x, y, w, h, axis-aligned)."""
    x, y, w, h = (_number(value, key) for key in ("x", "y", "width", "height"))
    rotation = value.get("rotation") or 0
    if isinstance(rotation, bool) or not isinstance(rotation, int | float):
        raise ValueError(f"value.rotation must be a number of degrees, got {describe_value(rotation)}")
    if rotation % 360:
        width, height = item.get("original_width"), item.get("original_height")
        if not (isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0):
            raise ValueError("a rotated box needs original_width and original_height to be turned into an "
                             "axis-aligned box")
        x, y, w, h = _envelope(x, y, w, h, float(rotation), float(width), float(height))
    left, top = min(max(x / 100, 0.0), 1.0), min(max(y / 100, 0.0), 1.0)
    right, bottom = min(max((x + w) / 100, 0.0), 1.0), min(max((y + h) / 100, 0.0), 1.0)
    if right - left <= 0 or bottom - top <= 0:
        raise ValueError(f"the box (x {x:g}, y {y:g}, width {w:g}, height {h:g} percent) has no area inside the image")
    box = {"x": left, "y": top, "w": right - left, "h": bottom - top}
    return [{**box, "label": label} for label in _labels_of(value, "rectanglelabels")]


def _envelope(x: float, y: float, w: float, h: float, degrees: float, width: float,
              height: float) -> tuple[float, float, float, float]:
    # Rotate in pixels (percentages of width and height are different units), then back to percent.
    px, py, pw, ph = x * width / 100, y * height / 100, w * width / 100, h * height / 100
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    corners = [(px + cx * cos - cy * sin, py + cx * sin + cy * cos) for cx, cy in ((0, 0), (pw, 0), (pw, ph), (0, ph))]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return (min(xs) * 100 / width, min(ys) * 100 / height, (max(xs) - min(xs)) * 100 / width,
            (max(ys) - min(ys)) * 100 / height)
