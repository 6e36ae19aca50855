"""Settings, read once by the bootstrap from ``LABELVAULT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABELVAULT_", extra="ignore")

    home: Path = Field(default=Path("./labelvault-data"), description="Data directory: database, keys, files.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; SQLite in the home directory when unset, or postgresql+psycopg://...",
    )
    migration_database_url: str | None = Field(
        default=None,
        description="Owner connection for migrations (PostgreSQL); the app then connects as a role without "
        "ownership, and row-level security applies to it. Unset: migrations use database_url.",
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    keys_dir: Path | None = Field(default=None, description="Key directory; <home>/keys when unset.")
    master_key: str | None = Field(
        default=None, description="Base64 master key from a secret manager, instead of <keys_dir>/master.key."
    )
    max_request_bytes: int = Field(
        default=256 * 1024 * 1024, description="Largest request body accepted (413 above it)."
    )
    import_allowed_hosts: str = Field(
        default="", description="Comma-separated hosts that imports by URL may fetch from (none by default)."
    )
    import_allow_private: bool = Field(
        default=False, description="Let URL imports reach private, loopback and link-local addresses."
    )
    import_max_bytes: int = Field(default=1 << 30, description="Largest file an import by URL may download.")
    # Webhooks (workflow/webhooks.py): outbound like URL imports, only to allowed hosts.
    webhook_allowed_hosts: str = Field(
        default="", description="Comma-separated hosts that webhook endpoints may be on (none by default)."
    )
    webhook_allow_private: bool = Field(
        default=False, description="Let webhooks reach private, loopback and link-local addresses."
    )
    webhook_dispatch: bool = Field(
        default=True, description="Run the webhook dispatcher in each server process (several may run at once)."
    )
    audit_sequence_seconds: float = Field(
        default=0.1, gt=0, description="PostgreSQL: how often a server process numbers the audit entries that "
        "acts wrote into the log (a pending entry is in the log's tree once numbered).",
    )
    audit_sequence_idle_seconds: float = Field(
        default=1.0, gt=0, description="PostgreSQL: the wait instead, after a round that found no pending entry.",
    )
    webhook_poll_seconds: float = Field(default=1.0, gt=0, description="How often an idle dispatcher looks for work.")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="Time allowed for one webhook request.")
    webhook_max_attempts: int = Field(default=10, ge=1, description="Attempts before a delivery is given up.")
    webhook_max_age_seconds: int = Field(
        default=86400, ge=1, description="Age after which a delivery is given up, whatever its attempts."
    )
    webhook_retry_base_seconds: float = Field(
        default=30.0, gt=0, description="Wait after the first failed attempt; doubled after each one (+-20% jitter)."
    )
    webhook_retry_max_seconds: float = Field(default=21600.0, gt=0, description="Longest wait between attempts.")
    metrics_allowed_addresses: str = Field(
        default="127.0.0.1/32,::1/128",
        description="Addresses (CIDR, comma-separated) that may read /metrics without an operator token.",
    )
    log_level: str = Field(default="INFO", description="Log level of the JSON logs on stderr.")
    file_store: str = Field(default="local", description="Where sealed files go: local (<home>/files) or s3.")
    s3_bucket: str | None = Field(default=None, description="S3 bucket for files (file_store=s3).")
    s3_prefix: str = Field(default="labelvault", description="Key prefix inside the bucket.")
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, Ceph...).")
    s3_region: str | None = Field(default=None, description="S3 region.")
    s3_access_key_id: str | None = Field(default=None, description="S3 access key (else the usual AWS sources).")
    s3_secret_access_key: str | None = Field(default=None, description="S3 secret key.")
    db_pool_size: int = Field(
        default=10, ge=1, le=200,
        description="Database connections kept per server process (as many more may open under load).",
    )
    lease_seconds: int = Field(default=600, ge=10, description="Default lease length for new projects.")
    worker_threads: int = Field(
        default=40, ge=1, le=1000,
        description="Threads per server process that run requests' database work (the event loop hands them over).",
    )
    token_cache_seconds: float = Field(
        default=5.0, ge=0, le=300,
        description="Seconds a server process keeps an API token's owner after looking it up (0: look up on every "
        "request). A revoked token stops working at once on the process that revoked it, within this time on others.",
    )
    sqlite_synchronous: str = Field(
        default="FULL", description="SQLite synchronous pragma: FULL survives power loss, NORMAL a crash."
    )
    # Single sign-on (OpenID Connect). Off while sso_issuer is unset.
    sso_issuer: str | None = Field(
        default=None, description="OpenID provider's issuer URL (its discovery document is <issuer>/.well-known/"
        "openid-configuration); https, or http on a loopback address only.",
    )
    sso_client_id: str | None = Field(default=None, description="Client id of LabelVault at the OpenID provider.")
    sso_client_secret: str | None = Field(
        default=None, description="Client secret (prefer sso_client_secret_file, or a secret manager's environment)."
    )
    sso_client_secret_file: Path | None = Field(
        default=None, description="File holding the client secret (read at start, surrounding whitespace dropped).",
    )
    sso_redirect_url: str | None = Field(
        default=None, description="Callback URL registered at the provider: https://<this host>/login/sso/callback.",
    )
    sso_scopes: str = Field(default="openid profile email", description="Scopes asked for (openid is always added).")
    sso_provider_name: str = Field(default="single sign-on", description="Shown on the button: Sign in with <name>.")
    sso_roles_claim: str = Field(
        default="groups", description="ID token claim whose values (a string or a list) map to client roles."
    )
    sso_role_map: str = Field(
        default="{}", description='JSON: claim value -> [[client slug, role], ...], e.g. {"acme-labelers": '
        '[["acme", "labeler"]]}. The pairs named here are set from the claim at every sign-in.',
    )
    password_login: bool = Field(
        default=True, description="Accept passwords (web login and POST /api/auth/token); false leaves only SSO.",
    )

    # Model predictors (workflow/predictions.py): an http predictor receives task payloads, so its
    # host must be listed here, apart from the URL import's list (data going out, not coming in).
    predictor_allowed_hosts: str = Field(
        default="", description="Comma-separated hosts that http predictors may be called on (none by default).",
    )
    predictor_allow_private: bool = Field(
        default=False, description="Let http predictors be on private, loopback and link-local addresses.",
    )
    predictor_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest answer an http predictor may send for one batch.",
    )
    predictor_secrets: str = Field(
        default="{}", description='JSON: secret name -> header value, e.g. {"sentiment-api": "Bearer ..."}; a '
        "predictor names one as its auth_secret (prefer predictor_secrets_file or a secret manager).",
    )
    predictor_secrets_file: Path | None = Field(
        default=None, description="JSON file of predictor secrets (name -> header value), read at start.",
    )
    predictor_poll_seconds: float = Field(
        default=10.0, ge=0, description="How often a server process calls projects' predictors on the tasks they "
        "have not scored yet (new tasks get suggestions without `labelvault predict`); 0 turns it off.",
    )

    @field_validator("sqlite_synchronous")
    @classmethod
    def _known_sync_mode(cls, value: str) -> str:
        value = value.upper()
        if value not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'labelvault.db').resolve()}"

    @property
    def resolved_keys_dir(self) -> Path:
        return self.keys_dir or self.home / "keys"

    @property
    def files_dir(self) -> Path:
        return self.home / "files"
