"""One ``Settings`` object built from the environment, secure by default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

from hub.errors import UsageError

DEFAULT_HUB_ORGAN_ID = "000.00.99.G22"


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _number(env: dict[str, str], name: str, default, kind=int):
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a {'whole ' if kind is int else ''}number; "
                         f"unset it for the default ({default})") from None


@dataclass(frozen=True)
class Settings:
    """Hub configuration. Every field has an environment variable; defaults are safe."""

    data_dir: Path
    """``HUB_DATA_DIR``: state folder (SQLite file, development PKI, embedded broker journal)."""

    database_url: str
    """``HUB_DATABASE_URL``: SQLAlchemy async URL; default ``sqlite+aiosqlite:///<data_dir>/hub.db``.
    A ``postgresql://`` URL is rewritten to use asyncpg."""

    amqp_url: str | None = None
    """``HUB_AMQP_URL``: RabbitMQ URL for the hub's own connection; unset = embedded in-process broker.
    Several nodes of a cluster separated by commas (``amqp://u:p@n1:5672/vh,n2:5672``): the
    connection moves to the next node whenever it must reconnect (``hub.backbone.nodes``)."""

    max_package_bytes: int = 50 * 1024 * 1024
    """``HUB_MAX_PACKAGE_BYTES``: size cap applied before parsing."""

    allow_sha1: bool = False
    """``HUB_ALLOW_SHA1``: legacy allowance for RSA-SHA1 signatures; each acceptance is flagged."""

    hub_organ_id: str = DEFAULT_HUB_ORGAN_ID
    """``HUB_ORGAN_ID``: the hub's own agency code (TraceHeader, status 02 refusals)."""

    hub_key_file: Path | None = None
    """``HUB_KEY_FILE``: the hub's signing key (PEM); default ``<data_dir>/pki/<hub_organ_id>.key``."""

    hub_cert_file: Path | None = None
    """``HUB_CERT_FILE``: the hub's certificate (PEM); default ``<data_dir>/pki/<hub_organ_id>.pem``."""

    management_url: str | None = None
    """``HUB_AMQP_MANAGEMENT_URL``: RabbitMQ management API (`hub agency broker-user`, queue stats); default
    ``http://<HUB_AMQP_URL host>:15672`` with HUB_AMQP_URL's credentials (creating users needs an administrator)."""

    prefetch: int = field(default=256)
    """``HUB_PREFETCH``: intake messages in flight per worker (they are processed in batches)."""

    check_processes: int = 1
    """``HUB_CHECK_PROCESSES``: processes for the CPU-bound checks (0 = in the event loop)."""

    seal_entries: int = 1000
    """``HUB_SEAL_ENTRIES``: sign an audit checkpoint after this many new entries..."""

    seal_seconds: float = 10.0
    """``HUB_SEAL_SECONDS``: ...or after this many seconds, whichever comes first."""

    audit: bool = True
    """``HUB_AUDIT``: ``off`` skips audit entries entirely — only to measure their cost (`hub bench`)."""

    http_host: str = "127.0.0.1"
    """``HUB_HTTP_HOST``: address the HTTP API and console of `hub serve` listen on."""

    http_port: int = 8080
    """``HUB_HTTP_PORT``: their port (`hub serve`, `hub demo`)."""

    vdxp_key_file: Path | None = None
    """``HUB_VDXP_KEY_FILE``: the AES key VDXP secrets are encrypted under; default ``<data_dir>/vdxp.key``."""

    vdxp_max_failures: int = 5
    """``HUB_VDXP_MAX_FAILURES``: a VDXP item acknowledged ``fail`` this many times goes to the dead letters."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("HUB_DATA_DIR") or platformdirs.user_data_dir("edxml-hub"))
        db = env.get("HUB_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'hub.db'}"
        hub_id = env.get("HUB_ORGAN_ID") or DEFAULT_HUB_ORGAN_ID
        s = cls(
            data_dir=data_dir,
            database_url=normalize_db_url(db),
            amqp_url=env.get("HUB_AMQP_URL") or None,
            max_package_bytes=_number(env, "HUB_MAX_PACKAGE_BYTES", 50 * 1024 * 1024),
            allow_sha1=_bool(env.get("HUB_ALLOW_SHA1")),
            hub_organ_id=hub_id,
            hub_key_file=Path(env["HUB_KEY_FILE"]) if env.get("HUB_KEY_FILE") else None,
            hub_cert_file=Path(env["HUB_CERT_FILE"]) if env.get("HUB_CERT_FILE") else None,
            management_url=env.get("HUB_AMQP_MANAGEMENT_URL") or None,
            prefetch=_number(env, "HUB_PREFETCH", 256),
            check_processes=_number(env, "HUB_CHECK_PROCESSES", 1),
            seal_entries=_number(env, "HUB_SEAL_ENTRIES", 1000),
            seal_seconds=_number(env, "HUB_SEAL_SECONDS", 10.0, float),
            audit=_bool(env.get("HUB_AUDIT"), True),
            http_host=env.get("HUB_HTTP_HOST") or "127.0.0.1",
            http_port=_number(env, "HUB_HTTP_PORT", 8080),
            vdxp_key_file=Path(env["HUB_VDXP_KEY_FILE"]) if env.get("HUB_VDXP_KEY_FILE") else None,
            vdxp_max_failures=_number(env, "HUB_VDXP_MAX_FAILURES", 5),
        )
        return replace(s, **overrides) if overrides else s

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


def normalize_db_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    return url
