"""One ``Settings`` object built from the ``HUB_*`` environment variables, secure by default.

A pydantic-settings model: each field names its variable (``validation_alias``), pydantic
parses and checks the value, and a bad one becomes one ``UsageError`` line naming the
variable and what it expects. An empty variable counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from hub.errors import UsageError

DEFAULT_HUB_ORGAN_ID = "000.00.99.G22"

# What each pydantic type expects, in the words of the error line.
_EXPECTS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "bool_parsing": "on or off (1/true/yes/on or 0/false/no/off)",
    "greater_than_equal": "a number >= {ge}",
    "greater_than": "a number > {gt}",
    "less_than_equal": "a number <= {le}",
}


class Settings(BaseSettings):
    """Hub configuration. Every field has an environment variable; defaults are safe."""

    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, populate_by_name=True, extra="ignore",
                                      case_sensitive=True)

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("edxml-hub")),
                           validation_alias="HUB_DATA_DIR")
    """``HUB_DATA_DIR``: state folder (SQLite file, development PKI, adapters' inboxes and seen-lists)."""

    database_url: str = Field("", validation_alias="HUB_DATABASE_URL")
    """``HUB_DATABASE_URL``: SQLAlchemy async URL; default ``sqlite+aiosqlite:///<data_dir>/hub.db``.
    A ``postgresql://`` URL is rewritten to use asyncpg."""

    amqp_url: str | None = Field(None, validation_alias="HUB_AMQP_URL")
    """``HUB_AMQP_URL``: RabbitMQ URL for the hub's own connection; unset = embedded in-process broker.
    Several nodes of a cluster separated by commas (``amqp://u:p@n1:5672/vh,n2:5672``): the
    connection moves to the next node whenever it must reconnect (``hub.backbone.nodes``)."""

    adapter_amqp_url: str | None = Field(None, validation_alias="HUB_ADAPTER_AMQP_URL")
    """``HUB_ADAPTER_AMQP_URL``: the agency adapter's own RabbitMQ URL (`hub send/inbox/status`)."""

    max_package_bytes: int = Field(50 * 1024 * 1024, ge=1, le=4 * 1024 ** 3, validation_alias="HUB_MAX_PACKAGE_BYTES")
    """``HUB_MAX_PACKAGE_BYTES``: size cap applied before parsing (up to 4 GiB; scanned dossiers of
    several hundred MB are fine: packages over ``HUB_BY_REFERENCE_BYTES`` never travel in a message)."""

    by_reference_bytes: int = Field(16 * 1024 * 1024, ge=1024, validation_alias="HUB_BY_REFERENCE_BYTES")
    """``HUB_BY_REFERENCE_BYTES``: a package (or delivered copy) larger than this travels by reference:
    its bytes are stored in the database (``hub.store.blobs``) and the message carries their SHA-256.
    Keep it well under RabbitMQ's ``max_message_size`` (128 MB by default)."""

    allow_sha1: bool = Field(False, validation_alias="HUB_ALLOW_SHA1")
    """``HUB_ALLOW_SHA1``: legacy allowance for RSA-SHA1 signatures; each acceptance is flagged."""

    hub_organ_id: str = Field(DEFAULT_HUB_ORGAN_ID, validation_alias="HUB_ORGAN_ID")
    """``HUB_ORGAN_ID``: the hub's own agency code (TraceHeader, status 02 refusals)."""

    hub_key_file: Path | None = Field(None, validation_alias="HUB_KEY_FILE")
    """``HUB_KEY_FILE``: the hub's signing key (PEM); default ``<data_dir>/pki/<hub_organ_id>.key``."""

    hub_cert_file: Path | None = Field(None, validation_alias="HUB_CERT_FILE")
    """``HUB_CERT_FILE``: the hub's certificate (PEM); default ``<data_dir>/pki/<hub_organ_id>.pem``."""

    management_url: str | None = Field(None, validation_alias="HUB_AMQP_MANAGEMENT_URL")
    """``HUB_AMQP_MANAGEMENT_URL``: RabbitMQ management API (`hub agency broker-user`, queue stats); default
    ``http://<HUB_AMQP_URL host>:15672`` with HUB_AMQP_URL's credentials (creating users needs an administrator)."""

    prefetch: int = Field(256, ge=1, validation_alias="HUB_PREFETCH")
    """``HUB_PREFETCH``: intake messages in flight per worker (they are processed in batches)."""

    pipeline_depth: int = Field(1, ge=1, le=16, validation_alias="HUB_PIPELINE_DEPTH")
    """``HUB_PIPELINE_DEPTH``: batches a worker holds recorded but not yet acked (1: the next batch
    is recorded only once the previous one is published and acked). 1 by default: on a quiet
    machine 2 was 29 % slower (``hub bench --ab HUB_PIPELINE_DEPTH=1``, README Performance)."""

    check_processes: int = Field(1, ge=0, validation_alias="HUB_CHECK_PROCESSES")
    """``HUB_CHECK_PROCESSES``: processes for the CPU-bound checks (0 = in the event loop)."""

    gc_freeze: bool = Field(True, validation_alias="HUB_GC_FREEZE")
    """``HUB_GC_FREEZE``: once started, ``hub serve`` and its check processes move what start-up
    built out of the garbage collector's sight (``hub.heap``), so its full collections no longer
    stall them for 60-90 ms; ``off`` only to measure that (``hub bench --ab HUB_GC_FREEZE=off``)."""

    seal_entries: int = Field(1000, ge=1, validation_alias="HUB_SEAL_ENTRIES")
    """``HUB_SEAL_ENTRIES``: sign an audit checkpoint after this many new entries..."""

    seal_seconds: float = Field(10.0, gt=0, validation_alias="HUB_SEAL_SECONDS")
    """``HUB_SEAL_SECONDS``: ...or after this many seconds, whichever comes first."""

    audit: bool = Field(True, validation_alias="HUB_AUDIT")
    """``HUB_AUDIT``: ``off`` skips audit entries entirely — only to measure their cost (`hub bench`)."""

    http_host: str = Field("127.0.0.1", validation_alias="HUB_HTTP_HOST")
    """``HUB_HTTP_HOST``: address the HTTP API and console of `hub serve` listen on."""

    http_port: int = Field(8080, ge=0, le=65535, validation_alias="HUB_HTTP_PORT")
    """``HUB_HTTP_PORT``: their port (`hub serve`, `hub demo`)."""

    vdxp_key_file: Path | None = Field(None, validation_alias="HUB_VDXP_KEY_FILE")
    """``HUB_VDXP_KEY_FILE``: the AES key VDXP secrets are encrypted under; default ``<data_dir>/vdxp.key``."""

    vdxp_max_failures: int = Field(5, validation_alias="HUB_VDXP_MAX_FAILURES")
    """``HUB_VDXP_MAX_FAILURES``: a VDXP item acknowledged ``fail`` this many times goes to the dead letters."""

    intake_seen_days: float = Field(30.0, ge=0, le=36500, validation_alias="HUB_INTAKE_SEEN_DAYS")
    """``HUB_INTAKE_SEEN_DAYS``: how long the idempotency table (``intake_seen``) remembers a recorded
    intake message; the elected sweeper prunes older rows hourly (``hub.pipeline.retention``); 0 keeps them all."""

    api_url: str | None = Field(None, validation_alias="HUB_API_URL")
    """``HUB_API_URL``: for ``hub inbox`` and ``hub send``, an adapter's commands: the hub's HTTP API,
    where packages delivered by reference are fetched (``GET /api/v1/blobs/{sha256}``) and packages
    over the broker's message limit are sent (``POST /api/v1/documents``)."""

    api_token: str | None = Field(None, repr=False, validation_alias="HUB_API_TOKEN")
    """``HUB_API_TOKEN``: for ``hub inbox`` and ``hub send``: the agency's API token for them (never printed)."""

    registry_poll_seconds: float = Field(2.0, gt=0, le=3600, validation_alias="HUB_REGISTRY_POLL_SECONDS")
    """``HUB_REGISTRY_POLL_SECONDS``: how often an instance reads the registry version (a change made
    through any instance is used by every other's checks at most this long after it commits)."""

    registry_log_hours: float = Field(24.0, gt=0, le=8760, validation_alias="HUB_REGISTRY_LOG_HOURS")
    """``HUB_REGISTRY_LOG_HOURS``: how long the registry change log keeps a change (table
    ``registry_changes``): an instance whose registry is older than the log loads it whole again."""

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, values: Any) -> Any:
        """The database defaults to SQLite in the data folder; ``postgresql://`` means asyncpg."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        data_key = "HUB_DATA_DIR" if "HUB_DATA_DIR" in values else "data_dir"
        data_dir = values.get(data_key) or platformdirs.user_data_dir("edxml-hub")
        values[data_key] = data_dir
        db_key = "HUB_DATABASE_URL" if "HUB_DATABASE_URL" in values else "database_url"
        db = values.get(db_key) or f"sqlite+aiosqlite:///{Path(data_dir) / 'hub.db'}"
        values[db_key] = normalize_db_url(str(db))
        return values

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        env = _ENV.get()  # no .env file, no secrets folder: the environment (or from_env's mapping) only
        return init_settings, (env_settings if env is None else _MappingSource(settings_cls, env))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default ``os.environ``); ``overrides`` (field names) win over it."""
        token = _ENV.set(os.environ if env is None else env)
        try:
            return cls(**overrides)
        except ValidationError as e:
            raise UsageError(_explain(e)) from None
        finally:
            _ENV.reset(token)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (field names), like ``dataclasses.replace``."""
        return self.model_copy(update=changes)

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def key_file(self) -> Path:
        return self.hub_key_file or self.pki_dir / f"{self.hub_organ_id}.key"

    @property
    def cert_file(self) -> Path:
        return self.hub_cert_file or self.pki_dir / f"{self.hub_organ_id}.pem"

    @property
    def vdxp_key(self) -> Path:
        return self.vdxp_key_file or self.data_dir / "vdxp.key"


_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("hub_settings_env", default=None)


class _MappingSource(EnvSettingsSource):
    """The environment source of pydantic-settings, over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        self._mapping = dict(env)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._mapping.items() if v != ""}  # case-sensitive, empty = unset


def _explain(e: ValidationError) -> str:
    """One line: the first bad variable, its value, what it expects, and the way out."""
    err = e.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else "a HUB_* variable"
    field = next((f for f, info in Settings.model_fields.items() if info.validation_alias == name), None)
    expects = _EXPECTS.get(err["type"], "").format(**err.get("ctx", {})) or f"valid ({err['msg'].lower()})"
    default = Settings.model_fields[field].default if field else None
    if isinstance(default, bool):
        default = "on" if default else "off"
    hint = f"; unset it for the default ({default})" if field and default not in (None, "") else ""
    return f"{name}={err.get('input')!r} is not {expects}{hint}"


def normalize_db_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    return url
