"""The one place that wires settings, engine, keyring and use cases together."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from labelvault.audit.log import AuditService
from labelvault.crypto.keyring import Keyring
from labelvault.errors import InvalidInput
from labelvault.io.answers import AnswerService
from labelvault.io.exporter import ExportService
from labelvault.io.fetch import FetchPolicy, UrlImportService
from labelvault.io.importer import ImportService
from labelvault.io.label_studio_import import LabelStudioImportService
from labelvault.io.predictors import PredictorCallPolicy
from labelvault.io.suggestions import SuggestionService
from labelvault.quality.adaptive import extend_overlap_when_unsure
from labelvault.quality.gold import GoldService, check_suspension, pick_gold_task, score_gold_answer, suspension_reads
from labelvault.quality.qualification import QualificationService, check_qualification, pick_test_task
from labelvault.quality.reports import QualityService
from labelvault.settings import Settings
from labelvault.storage.engine import build_engine
from labelvault.storage.migrate import current_revision, head_revision, upgrade
from labelvault.storage.rls import grant_app_role
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.accounts import AccountService
from labelvault.workflow.backup import BackupService
from labelvault.workflow.clients import ClientService
from labelvault.workflow.content import seal_legacy_plaintext
from labelvault.workflow.files import FileService, file_store_for
from labelvault.workflow.labeling import LabelingService, QueueHooks
from labelvault.workflow.ledger import BonusService
from labelvault.workflow.offboarding import BundleImporter, OffboardingService
from labelvault.workflow.predictions import PredictionService
from labelvault.workflow.projects import ProjectService
from labelvault.workflow.reports import ReportService
from labelvault.workflow.review import ReviewService
from labelvault.workflow.sso import SsoService, build_accounts, build_sso
from labelvault.workflow.status import StatusService
from labelvault.workflow.trails import TrailService
from labelvault.workflow.walls import WallService, queue_wall_check, queue_wall_reads, queue_wall_record
from labelvault.workflow.web_sessions import WebSessionService
from labelvault.workflow.webhooks import (
    WebhookConfig,
    WebhookDispatcher,
    WebhookService,
    on_answers_rejected,
    on_task_complete,
)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    keyring: Keyring
    uow_factory: UnitOfWorkFactory
    accounts: AccountService
    clients: ClientService
    projects: ProjectService
    labeling: LabelingService
    reviews: ReviewService
    reports: ReportService
    bonuses: BonusService
    walls: WallService
    audit: AuditService
    trails: TrailService
    gold: GoldService
    qualifications: QualificationService
    quality: QualityService
    imports: ImportService
    label_studio: LabelStudioImportService
    offboarding: OffboardingService
    bundles: BundleImporter
    url_imports: UrlImportService
    backups: BackupService
    status: StatusService
    files: FileService
    exports: ExportService
    answers: AnswerService
    suggestions: SuggestionService
    web_sessions: WebSessionService
    sso: SsoService
    webhooks: WebhookService
    webhook_dispatcher: WebhookDispatcher
    predictions: PredictionService

    def close(self) -> None:
        self.engine.dispose()


def open_keyring(settings: Settings, *, create: bool = False) -> Keyring:
    keys_dir = settings.resolved_keys_dir
    if settings.master_key:
        try:
            master = base64.b64decode(settings.master_key, validate=True)
        except ValueError:
            raise InvalidInput("LABELVAULT_MASTER_KEY is not valid base64") from None
        return Keyring.open(keys_dir, master_key=master)
    return Keyring.initialize(keys_dir) if create else Keyring.open(keys_dir)


def webhook_config(settings: Settings) -> WebhookConfig:
    return WebhookConfig(
        policy=FetchPolicy(
            allowed_hosts=frozenset(h.strip().lower() for h in settings.webhook_allowed_hosts.split(",") if h.strip()),
            allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout_seconds,
        ),
        max_attempts=settings.webhook_max_attempts,
        max_age=timedelta(seconds=settings.webhook_max_age_seconds),
        retry_base_seconds=settings.webhook_retry_base_seconds,
        retry_max_seconds=settings.webhook_retry_max_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
    )


def build_services(settings: Settings, *, create_keys: bool = False) -> Services:
    engine = build_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous,
                          pool_size=settings.db_pool_size)
    keyring = open_keyring(settings, create=create_keys)
    uow_factory = UnitOfWorkFactory(engine, keyring)
    webhooks = WebhookService(uow_factory, webhook_config(settings))
    hooks = QueueHooks(
        eligibility=[queue_wall_check, check_suspension, check_qualification],
        eligibility_reads=[queue_wall_reads, suspension_reads],
        pickers=[pick_test_task, pick_gold_task],
        on_grant=[queue_wall_record],
        on_submit=[score_gold_answer],
        # Webhooks last: they see the task after adaptive overlap may have asked for more answers.
        on_complete=[extend_overlap_when_unsure, on_task_complete],
        on_refused=[webhooks.on_queue_refused],
    )
    audit = AuditService(uow_factory, settings.resolved_keys_dir / "audit-signing.key")
    accounts = build_accounts(settings, uow_factory)  # password_login false: passwords refused
    web_sessions = WebSessionService(uow_factory, accounts)
    clients = ClientService(uow_factory)
    projects = ProjectService(uow_factory, default_lease_seconds=settings.lease_seconds)
    imports = ImportService(uow_factory, audit=audit)
    files = FileService(uow_factory, file_store_for(settings))
    exports = ExportService(uow_factory, audit=audit, files=files)
    gold = GoldService(uow_factory)
    offboarding = OffboardingService(uow_factory, exports, audit, files)
    return Services(
        settings=settings,
        engine=engine,
        keyring=keyring,
        uow_factory=uow_factory,
        accounts=accounts,
        clients=clients,
        projects=projects,
        labeling=LabelingService(uow_factory, hooks, audit),
        reviews=ReviewService(uow_factory, audit, on_reject=[on_answers_rejected]),
        reports=ReportService(uow_factory, audit=audit),
        bonuses=BonusService(uow_factory),
        walls=WallService(uow_factory),
        audit=audit,
        trails=TrailService(uow_factory, audit),
        gold=gold,
        qualifications=QualificationService(uow_factory),
        quality=QualityService(uow_factory),
        imports=imports,
        label_studio=LabelStudioImportService(uow_factory, audit=audit, default_lease_seconds=settings.lease_seconds),
        exports=exports,
        answers=AnswerService(uow_factory, audit=audit),
        suggestions=SuggestionService(uow_factory, audit=audit),
        offboarding=offboarding,
        bundles=BundleImporter(uow_factory, offboarding, clients, projects, imports, accounts, gold, files),
        web_sessions=web_sessions,
        sso=build_sso(settings, uow_factory, web_sessions),
        webhooks=webhooks,
        webhook_dispatcher=WebhookDispatcher(uow_factory, webhooks.config),
        backups=BackupService(uow_factory, settings, files.store),
        status=StatusService(uow_factory),
        files=files,
        predictions=PredictionService(uow_factory, predictor_policy(settings), audit),
        url_imports=UrlImportService(imports, FetchPolicy(
            allowed_hosts=frozenset(h.strip().lower() for h in settings.import_allowed_hosts.split(",") if h.strip()),
            allow_private=settings.import_allow_private, max_bytes=settings.import_max_bytes,
        )),
    )


def predictor_policy(settings: Settings) -> PredictorCallPolicy:
    """Where http predictors may be called, and the secrets their auth headers may carry."""
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
    hosts = frozenset(h.strip().lower() for h in settings.predictor_allowed_hosts.split(",") if h.strip())
    fetch = FetchPolicy(allowed_hosts=hosts, allow_private=settings.predictor_allow_private,
                        max_bytes=settings.predictor_max_bytes)
    return PredictorCallPolicy(fetch=fetch, secrets=secrets)


def initialize(settings: Settings, operator_username: str | None, operator_password: str | None) -> Services:
    """Create what is missing (home, keys, schema), migrate to head, add the first operator if none."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    services = build_services(settings, create_keys=True)
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
