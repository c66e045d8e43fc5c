"""What the ``hub`` command says when something goes wrong: one line and an exit code, never
a Python traceback (``HUB_DEBUG=1`` adds it, for a bug report).

Exit codes: 2 for what the operator can fix (a usage error, something named that does not
exist, an unreachable or misconfigured database, broker or port), 1 for a refusal or a failed
check, 130 for Ctrl-C.
"""

from __future__ import annotations

import errno
import os
import traceback
from urllib.parse import unquote, urlsplit

from hub.errors import HubError, UsageError

USAGE = 2
FAILED = 1

_DB_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "alembic", "hub.store")
# HubError codes the operator fixes by changing the command or the set-up (exit 2).
_USAGE_CODES = ("usage.", "state.conflict", "backbone.unavailable", "backbone.management")


def explain(exc: BaseException, args=None, settings=None) -> tuple[str, int]:
    """``(one line, exit code)`` for an exception that reached the command line."""
    if isinstance(exc, HubError):
        rc = USAGE if isinstance(exc, UsageError) or exc.code.startswith(_USAGE_CODES) else FAILED
        if exc.code == "backbone.unavailable":
            return broker_hint(exc, getattr(settings, "amqp_url", None), "HUB_AMQP_URL"), USAGE
        if isinstance(exc, UsageError) and exc.code in ("usage.invalid", "usage.not_found", "usage.agency_code"):
            return exc.message, rc
        return f"{exc.code}: {exc.message}", rc
    if from_database(exc):
        return database_hint(exc, os.environ.get("HUB_DATABASE_URL") or getattr(settings, "database_url", None)), USAGE
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) \
            and hasattr(args, "port") and exc.filename is None:
        host = getattr(args, "host", None) or getattr(settings, "http_host", "127.0.0.1")
        port = args.port if args.port is not None else getattr(settings, "http_port", 8080)
        where = f"{host}:{port}"
        what = "is in use by another program" if exc.errno == errno.EADDRINUSE else "cannot be used here"
        return (f"cannot listen on {where}: the address {what}; pass another --port "
                "(or set HUB_HTTP_PORT), or stop what listens there"), USAGE
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {(exc.strerror or str(exc)).lower()}; check the path", USAGE
    return (f"unexpected error ({type(exc).__name__}: {_first_line(exc)}); "
            "run again with HUB_DEBUG=1 to see where, and report it"), FAILED


def debug_trace(exc: BaseException) -> str | None:
    """The traceback, only when HUB_DEBUG asks for it."""
    if os.environ.get("HUB_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        return "".join(traceback.format_exception(exc))
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"


def from_database(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) was raised by the database driver or the hub's store."""
    seen = 0
    while exc is not None and seen < 10:
        mod = type(exc).__module__ or ""
        if mod.startswith(_DB_MODULES[:4]):
            return True
        tb = exc.__traceback__
        while tb is not None:
            if (tb.tb_frame.f_globals.get("__name__") or "").startswith(_DB_MODULES):
                return True
            tb = tb.tb_next
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _safe_url(url: str | None) -> str:
    """A URL without its password."""
    if not url:
        return "(unset)"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable)"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def database_hint(exc: BaseException, url: str | None) -> str:
    """One line about a database that cannot be used, naming HUB_DATABASE_URL."""
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(_first_line(e) for e in _chain(exc))
    shown = _safe_url(url)
    if names & {"ArgumentError", "NoSuchModuleError"}:
        return (f"HUB_DATABASE_URL={shown} is not a database URL the hub can use: "
                "give postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE or sqlite:///PATH (unset: SQLite in HUB_DATA_DIR)")
    if "InvalidCatalogNameError" in names or "does not exist" in text and "database" in text:
        db = urlsplit(url or "").path.lstrip("/") or "?"
        return f"database {db!s} does not exist on {_host(url)}: create it (createdb {db}) or fix HUB_DATABASE_URL"
    if names & {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"} or "password authentication" in text:
        return f"PostgreSQL at {_host(url)} refused the login of HUB_DATABASE_URL={shown}: check its user and password"
    if "unable to open database file" in text:
        return f"cannot open the SQLite file of HUB_DATABASE_URL={shown}: check the folder exists and is writable"
    reason = _first_line(_innermost(exc))
    return (f"cannot use the database HUB_DATABASE_URL={shown} ({reason}): check the URL and that the "
            "database server is running")


def broker_hint(exc: BaseException, url: str | None, variable: str) -> str:
    """One line about a RabbitMQ connection that failed, naming the variable to fix."""
    text = getattr(exc, "message", None) or str(exc)
    if not url:
        return f"RabbitMQ unavailable: {text}"
    parts = urlsplit(url)
    host = f"{parts.hostname or 'localhost'}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
    user = unquote(parts.username or "guest")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    if "ACCESS_REFUSED" in text or "Login was refused" in text:
        return f"RabbitMQ at {host} refused the login of user {user}: check the user and password in {variable}"
    if "Connection.Close" in text or "NOT_ALLOWED" in text or "vhost" in text.lower():
        return (f"RabbitMQ at {host} refused virtual host {vhost!s} for user {user}: it does not exist or the user "
                f"has no permission there; create it (rabbitmqctl add_vhost {vhost}; rabbitmqctl set_permissions -p "
                f"{vhost} {user} ...) or fix the path of {variable}")
    return f"cannot reach RabbitMQ at {host} ({text.removeprefix('RabbitMQ unavailable: ')}): is it running? check {variable}"


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen and len(out) < 10:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _innermost(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or _chain(exc)[-1]


def _host(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
