"""A predictor's settings are checked against the schema, and only operators may name a module."""

from __future__ import annotations

import pytest

from labelvault.domain.access import Actor, ClientAccess, Role
from labelvault.domain.predictors import PredictorConfig, PredictorPolicy, check_predictor
from labelvault.domain.schema import parse_schema
from labelvault.errors import InvalidInput, PermissionDenied

SCHEMA = parse_schema({
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative"]}],
})


def config(**changes: object) -> PredictorConfig:
    base: dict[str, object] = {"kind": "http", "target": "https://models.example.com/v1/predict",
                               "question": "sentiment"}
    return PredictorConfig(**{**base, **changes})  # type: ignore[arg-type]


def test_defaults_are_filled_in_and_the_suggestion_model_carries_the_version() -> None:
    checked = check_predictor(config(model_version="7"), SCHEMA)
    assert checked.model_name == "models.example.com"
    assert checked.suggestion_model == "models.example.com@7"
    assert check_predictor(config(auth_secret="key"), SCHEMA).auth_header == "Authorization"
    named = check_predictor(config(kind="entry_point", target="acme_models.sentiment:predict"), SCHEMA)
    assert named.model_name == "predict" and named.runs_module_function
    assert not check_predictor(config(kind="entry_point", target="sentiment-v2"), SCHEMA).runs_module_function


@pytest.mark.parametrize(("changes", "field"), [
    ({"kind": "grpc"}, "kind"),
    ({"target": "ftp://models.example.com/"}, "target"),
    ({"target": "https://user:pw@models.example.com/"}, "target"),
    ({"kind": "entry_point", "target": "not a name!"}, "target"),
    ({"question": "topic"}, "question"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 1001}, "batch_size"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"model_version": "v 2"}, "model_version"),
    ({"kind": "entry_point", "target": "pkg:predict", "auth_secret": "key"}, "auth_secret"),
    ({"auth_secret": "key", "auth_header": "Bad Header"}, "auth_header"),
    ({"options": {"blob": "x" * 20_000}}, "options"),
])
def test_bad_settings_name_their_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_predictor(config(**changes), SCHEMA)
    assert refused.value.details == {"field": field}


def test_a_manager_may_choose_an_installed_entry_point_but_not_name_a_module() -> None:
    manager = ClientAccess(Actor(1, "mia"), 1, frozenset({Role.MANAGER}))
    operator = ClientAccess(Actor(2, "ops", is_operator=True), 1)
    module = check_predictor(config(kind="entry_point", target="os:system"), SCHEMA)
    installed = check_predictor(config(kind="entry_point", target="sentiment-v2"), SCHEMA)
    PredictorPolicy.configure(manager, installed)
    PredictorPolicy.configure(operator, module)
    with pytest.raises(PermissionDenied, match="only an operator"):
        PredictorPolicy.configure(manager, module)
    with pytest.raises(PermissionDenied):
        PredictorPolicy.configure(ClientAccess(Actor(3, "lee"), 1, frozenset({Role.LABELER})), installed)
