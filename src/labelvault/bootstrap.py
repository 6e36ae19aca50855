"""The one place that wires settings, engine, keyring and use cases together."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from labelvault.crypto.keyring import Keyring
from labelvault.errors import InvalidInput
from labelvault.settings import Settings
from labelvault.storage.engine import build_engine
from labelvault.storage.rls import grant_app_role
from labelvault.storage.unit_of_work import UnitOfWorkFactory

if TYPE_CHECKING:
    from labelvault.audit.log import AuditService
    from labelvault.io.answers import AnswerService
    from labelvault.io.exporter import ExportService
    from labelvault.io.fetch import FetchPolicy, UrlImportService
    from labelvault.io.importer import ImportService
    from labelvault.io.label_studio_import import LabelStudioImportService
    from labelvault.io.predictors import PredictorCallPolicy
    from labelvault.io.suggestions import SuggestionService
    from labelvault.quality.gold import GoldService
    from labelvault.quality.qualification import QualificationService
    from labelvault.quality.reports import QualityService
    from labelvault.workflow.accounts import AccountService
    from labelvault.workflow.backup import BackupService
    from labelvault.workflow.clients import ClientService
    from labelvault.workflow.files import FileService
    from labelvault.workflow.labeling import LabelingService
    from labelvault.workflow.ledger import BonusService
    from labelvault.workflow.offboarding import BundleImporter, OffboardingService
    from labelvault.workflow.predictions import PredictionService
    from labelvault.workflow.projects import ProjectService
    from labelvault.workflow.reports import ReportService
    from labelvault.workflow.review import ReviewService
    from labelvault.workflow.sso import SsoService
    from labelvault.workflow.status import StatusService
    from labelvault.workflow.tasks import TaskService
    from labelvault.workflow.trails import TrailService
    from labelvault.workflow.walls import WallService
    from labelvault.workflow.web_sessions import WebSessionService
    from labelvault.workflow.webhooks import WebhookConfig, WebhookDispatcher, WebhookService


class Services:
    """The install's use cases over one engine and key ring.

    Each use case is built on first use and then kept, and its module imported only then: a command
    of the CLI runs with what it uses, not with every module of the product (importing them all is
    most of a command's start-up; see docs/benchmarks.md, "CLI start-up"). ``build_services`` builds
    them all at once unless asked not to: a server does, so no request pays for an import, no two
    threads build one use case, and a bad setting stops it at start.
    """

    def __init__(self, settings: Settings, engine: Engine, keyring: Keyring, uow_factory: UnitOfWorkFactory) -> None:
        self.settings = settings
        self.engine = engine
        self.keyring = keyring
        self.uow_factory = uow_factory

    def build_all(self) -> None:
        for name, member in vars(Services).items():
            if isinstance(member, cached_property):
                getattr(self, name)

    def close(self) -> None:
        self.uow_factory.close()
        self.engine.dispose()

    @cached_property
    def audit(self) -> AuditService:
        from labelvault.audit.log import AuditService

        return AuditService(self.uow_factory, self.settings.resolved_keys_dir / "audit-signing.key")

    @cached_property
    def accounts(self) -> AccountService:
        from labelvault.workflow.accounts import build_accounts

        accounts = build_accounts(self.settings, self.uow_factory)  # password_login false: passwords refused
        # A deactivated person's leases go back to the queues at once (read when it happens: the
        # queue's service is built on first use).
        accounts.on_deactivated.append(lambda actor, user_id: self.labeling.release_leases_of(actor, user_id))
        return accounts

    @cached_property
    def web_sessions(self) -> WebSessionService:
        from labelvault.workflow.web_sessions import WebSessionService

        return WebSessionService(self.uow_factory, self.accounts)

    @cached_property
    def sso(self) -> SsoService:
        from labelvault.workflow.sso import build_sso

        return build_sso(self.settings, self.uow_factory, self.web_sessions)

    @cached_property
    def clients(self) -> ClientService:
        from labelvault.workflow.clients import ClientService

        return ClientService(self.uow_factory)

    @cached_property
    def projects(self) -> ProjectService:
        from labelvault.workflow.projects import ProjectService

        return ProjectService(self.uow_factory, default_lease_seconds=self.settings.lease_seconds)

    @cached_property
    def tasks(self) -> TaskService:
        from labelvault.workflow.tasks import TaskService

        return TaskService(self.uow_factory, audit=self.audit)

    @cached_property
    def labeling(self) -> LabelingService:
        from labelvault.quality.adaptive import extend_overlap_when_unsure
        from labelvault.quality.gold import check_suspension, pick_gold_task, score_gold_answer, suspension_reads
        from labelvault.quality.qualification import check_qualification, pick_test_task
        from labelvault.workflow.labeling import LabelingService, QueueHooks
        from labelvault.workflow.walls import queue_wall_check, queue_wall_reads, queue_wall_record
        from labelvault.workflow.webhooks import on_task_complete

        hooks = QueueHooks(
            eligibility=[queue_wall_check, check_suspension, check_qualification],
            eligibility_reads=[queue_wall_reads, suspension_reads],
            pickers=[pick_test_task, pick_gold_task],
            on_grant=[queue_wall_record],
            on_submit=[score_gold_answer],
            # Webhooks last: they see the task after adaptive overlap may have asked for more answers.
            on_complete=[extend_overlap_when_unsure, on_task_complete],
            on_refused=[self.webhooks.on_queue_refused],
        )
        return LabelingService(self.uow_factory, hooks, self.audit)

    @cached_property
    def reviews(self) -> ReviewService:
        from labelvault.workflow.review import ReviewService
        from labelvault.workflow.webhooks import on_answers_rejected

        return ReviewService(self.uow_factory, self.audit, on_reject=[on_answers_rejected])

    @cached_property
    def reports(self) -> ReportService:
        from labelvault.workflow.reports import ReportService

        return ReportService(self.uow_factory, audit=self.audit)

    @cached_property
    def bonuses(self) -> BonusService:
        from labelvault.workflow.ledger import BonusService

        return BonusService(self.uow_factory)

    @cached_property
    def walls(self) -> WallService:
        from labelvault.workflow.walls import WallService

        return WallService(self.uow_factory)

    @cached_property
    def trails(self) -> TrailService:
        from labelvault.workflow.trails import TrailService

        return TrailService(self.uow_factory, self.audit)

    @cached_property
    def gold(self) -> GoldService:
        from labelvault.quality.gold import GoldService

        return GoldService(self.uow_factory)

    @cached_property
    def qualifications(self) -> QualificationService:
        from labelvault.quality.qualification import QualificationService

        return QualificationService(self.uow_factory)

    @cached_property
    def quality(self) -> QualityService:
        from labelvault.quality.reports import QualityService

        return QualityService(self.uow_factory)

    @cached_property
    def imports(self) -> ImportService:
        from labelvault.io.importer import ImportService

        return ImportService(self.uow_factory, audit=self.audit)

    @cached_property
    def label_studio(self) -> LabelStudioImportService:
        from labelvault.io.label_studio_import import LabelStudioImportService

        return LabelStudioImportService(self.uow_factory, audit=self.audit,
                                        default_lease_seconds=self.settings.lease_seconds)

    @cached_property
    def files(self) -> FileService:
        from labelvault.workflow.files import FileService, file_store_for

        return FileService(self.uow_factory, file_store_for(self.settings))

    @cached_property
    def exports(self) -> ExportService:
        from labelvault.io.exporter import ExportService

        return ExportService(self.uow_factory, audit=self.audit, files=self.files)

    @cached_property
    def answers(self) -> AnswerService:
        from labelvault.io.answers import AnswerService

        return AnswerService(self.uow_factory, audit=self.audit)

    @cached_property
    def suggestions(self) -> SuggestionService:
        from labelvault.io.suggestions import SuggestionService

        return SuggestionService(self.uow_factory, audit=self.audit)

    @cached_property
    def offboarding(self) -> OffboardingService:
        from labelvault.workflow.offboarding import OffboardingService

        return OffboardingService(self.uow_factory, self.exports, self.audit, self.files)

    @cached_property
    def bundles(self) -> BundleImporter:
        from labelvault.workflow.offboarding import BundleImporter

        return BundleImporter(self.uow_factory, self.offboarding, self.clients, self.projects, self.imports,
                              self.accounts, self.gold, self.files)

    @cached_property
    def webhooks(self) -> WebhookService:
        from labelvault.workflow.webhooks import WebhookService

        return WebhookService(self.uow_factory, webhook_config(self.settings))

    @cached_property
    def webhook_dispatcher(self) -> WebhookDispatcher:
        from labelvault.workflow.webhooks import WebhookDispatcher

        return WebhookDispatcher(self.uow_factory, self.webhooks.config)

    @cached_property
    def backups(self) -> BackupService:
        from labelvault.workflow.backup import BackupService

        return BackupService(self.uow_factory, self.settings, self.files.store)

    @cached_property
    def status(self) -> StatusService:
        from labelvault.workflow.status import StatusService

        return StatusService(self.uow_factory)

    @cached_property
    def predictions(self) -> PredictionService:
        from labelvault.workflow.predictions import PredictionService

        return PredictionService(self.uow_factory, predictor_policy(self.settings), self.audit)

    @cached_property
    def url_imports(self) -> UrlImportService:
        from labelvault.io.fetch import UrlImportService

        settings = self.settings
        return UrlImportService(self.imports, fetch_policy(
            settings.import_allowed_hosts, allow_private=settings.import_allow_private,
            max_bytes=settings.import_max_bytes))


def open_keyring(settings: Settings, *, create: bool = False) -> Keyring:
    keys_dir = settings.resolved_keys_dir
    if settings.master_key:
        try:
            master = base64.b64decode(settings.master_key, validate=True)
        except ValueError:
            raise InvalidInput("LABELVAULT_MASTER_KEY is not valid base64") from None
        return Keyring.open(keys_dir, master_key=master)
    return Keyring.initialize(keys_dir) if create else Keyring.open(keys_dir)


def fetch_policy(hosts: str, *, allow_private: bool, **limits: Any) -> FetchPolicy:
    """Where outbound requests may go: ``hosts`` is a setting's comma-separated list of host names;
    ``limits`` are the ``FetchPolicy`` fields the setting's use gives (``max_bytes``, ``timeout``)."""
    from labelvault.io.fetch import FetchPolicy

    allowed = frozenset(h.strip().lower() for h in hosts.split(",") if h.strip())
    return FetchPolicy(allowed_hosts=allowed, allow_private=allow_private, **limits)


def webhook_config(settings: Settings) -> WebhookConfig:
    from labelvault.workflow.webhooks import WebhookConfig

    return WebhookConfig(
        policy=fetch_policy(settings.webhook_allowed_hosts, allow_private=settings.webhook_allow_private,
                            timeout=settings.webhook_timeout_seconds),
        max_attempts=settings.webhook_max_attempts,
        max_age=timedelta(seconds=settings.webhook_max_age_seconds),
        retry_base_seconds=settings.webhook_retry_base_seconds,
        retry_max_seconds=settings.webhook_retry_max_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
    )


def build_services(settings: Settings, *, create_keys: bool = False, lazy: bool = False) -> Services:
    """The services of an install. ``lazy``: each use case is built when first used (the CLI, whose
    commands each use a few); else all now, as a server needs them (see ``Services``)."""
    engine = build_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous,
                          pool_size=settings.db_pool_size)
    keyring = open_keyring(settings, create=create_keys)
    services = Services(settings, engine, keyring, UnitOfWorkFactory(engine, keyring))
    if not lazy:
        services.build_all()
    return services


def predictor_policy(settings: Settings) -> PredictorCallPolicy:
    """Where http predictors may be called, and the secrets their auth headers may carry."""
    from labelvault.io.predictors import PredictorCallPolicy

    secrets: dict[str, str] = {}
    for source, text in (("LABELVAULT_PREDICTOR_SECRETS", settings.predictor_secrets),
                         ("LABELVAULT_PREDICTOR_SECRETS_FILE", settings.predictor_secrets_file.read_text()
                          if settings.predictor_secrets_file else "{}")):
        try:
            found = json.loads(text or "{}")
        except ValueError:
            raise InvalidInput(f"{source} is not valid JSON") from None
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            raise InvalidInput(f"{source} must be a JSON object of names to text")
        secrets.update(found)
    fetch = fetch_policy(settings.predictor_allowed_hosts, allow_private=settings.predictor_allow_private,
                         max_bytes=settings.predictor_max_bytes)
    return PredictorCallPolicy(fetch=fetch, secrets=secrets)


def initialize(settings: Settings, operator_username: str | None, operator_password: str | None) -> Services:
    """Create what is missing (home, keys, schema), migrate to head, add the first operator if none.
    The services returned build each use case on first use (``build_services(lazy=True)``)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    services = build_services(settings, create_keys=True, lazy=True)
    migrate(services)
    if operator_username and operator_password is not None:
        with services.uow_factory.system() as uow:
            has_operator = uow.users.operators_exist()
        if not has_operator:
            services.accounts.create_user(None, operator_username, operator_password, is_operator=True)
    return services


def migrate(services: Services) -> tuple[str | None, str]:
    """Apply pending migrations as the owner; returns (revision before, head).

    With a separate owner connection (PostgreSQL), the application's role is then granted what it
    needs on the tables as they now are (and no UPDATE or DELETE on the audit log). Then the data
    steps that need the key ring, which a migration does not have: skip reasons written before they
    were sealed are sealed."""
    from labelvault.storage.migrate import current_revision, head_revision, upgrade
    from labelvault.workflow.content import seal_legacy_plaintext

    settings = services.settings
    if not settings.migration_database_url:
        before = current_revision(services.engine)
        upgrade(services.engine)
    else:
        owner = create_engine(settings.migration_database_url, poolclass=NullPool)
        try:
            before = current_revision(owner)
            upgrade(owner)
            app_role = services.engine.url.username
            if owner.dialect.name == "postgresql" and app_role and app_role != owner.url.username:
                with owner.begin() as connection:
                    grant_app_role(connection, app_role)
        finally:
            owner.dispose()
    seal_legacy_plaintext(services.uow_factory)
    return before, head_revision()
