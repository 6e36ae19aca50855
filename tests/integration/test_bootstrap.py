"""Services built all at once (a server) or each on first use (a CLI command)."""

from __future__ import annotations

import pytest

from labelvault.bootstrap import build_services
from labelvault.errors import InvalidInput
from labelvault.settings import Settings


def test_a_bad_setting_stops_services_built_at_once_but_only_the_use_case_that_needs_it_when_lazy(
    settings: Settings,
) -> None:
    bad = settings.model_copy(update={"predictor_secrets": "{not json"})
    with pytest.raises(InvalidInput, match="LABELVAULT_PREDICTOR_SECRETS is not valid JSON"):
        build_services(bad)

    services = build_services(bad, lazy=True)
    try:
        operator = services.accounts.first_operator()
        services.clients.create(operator, "acme", "Acme")
        assert [client.slug for client in services.clients.list(operator)[0]] == ["acme"]
        with pytest.raises(InvalidInput, match="LABELVAULT_PREDICTOR_SECRETS is not valid JSON"):
            services.predictions  # noqa: B018 (built on first use: here)
    finally:
        services.close()


def test_a_lazy_use_case_is_built_once_and_shared_by_those_that_use_it(settings: Settings) -> None:
    services = build_services(settings, lazy=True)
    try:
        audit = services.audit
        assert services.audit is audit
        # The export service and the offboarding built on it share the one audit log and file store.
        assert services.offboarding.exports is services.exports
        assert services.exports.audit is audit and services.exports.files is services.files
    finally:
        services.close()
