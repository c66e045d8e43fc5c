"""How the ``hub`` commands print and read files: one place for the output conventions
(errors and warnings on stderr prefixed ``hub:``, ``--json`` with ISO 8601 times) and for
turning an unreadable file into a :class:`UsageError` naming it."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timezone
from pathlib import Path

from cryptography import x509

from hub.errors import UsageError


def out(*a) -> None:
    print(*a, flush=True)


def err(msg: str) -> None:
    print(f"hub: {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"hub: warning: {msg}", file=sys.stderr, flush=True)


def to_json(value) -> str:
    """JSON for --json: dates and times in ISO 8601 (with ``T``; stored times are UTC), UTF-8 text as is."""

    def default(o):
        if isinstance(o, datetime):
            return (o if o.tzinfo else o.replace(tzinfo=timezone.utc)).isoformat()
        if isinstance(o, date):
            return o.isoformat()
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        return str(o)

    return json.dumps(value, default=default, ensure_ascii=False, indent=1)


def read(path: str, what: str = "file") -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}") from None


def load_certs(paths: list[str]) -> list[x509.Certificate]:
    certs = []
    for p in paths or []:
        data = read(p, "certificate")
        try:
            certs.extend(x509.load_pem_x509_certificates(data))
        except ValueError as e:
            raise UsageError(f"{p} is not a PEM certificate: {e}") from e
    return certs
