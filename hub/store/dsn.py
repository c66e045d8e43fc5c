"""PostgreSQL connection strings as libpq writes them, for asyncpg through SQLAlchemy.

Several hosts (``postgresql://hub@db1:5432,db2:5432/hub?target_session_attrs=read-write``):
asyncpg tries them in order and, with ``target_session_attrs=read-write``, takes the one that
accepts writes, so a promoted standby is found on the next connection without a restart.
SQLAlchemy spells several hosts as repeated ``host=`` query parameters; :func:`split_hosts`
rewrites the libpq form into that one.

Timeouts, from the URL or the defaults below: ``connect_timeout`` (seconds per host, as in
libpq) and ``statement_timeout`` (milliseconds, PostgreSQL's setting; 0 turns it off).
``application_name`` (as in libpq) names the process in ``pg_stat_activity``: which instance
holds the sealer's or the sweeper's lock shows there.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from hub.errors import UsageError

DEFAULT_PORT = 5432
CONNECT_TIMEOUT = 10.0  # seconds to reach one host before trying the next
STATEMENT_TIMEOUT_MS = 60_000  # no statement of the hub runs that long; a stuck one is cancelled


def split_hosts(url: str) -> str:
    """``scheme://user@h1:p1,h2:p2/db?q`` → ``scheme://user@/db?host=h1:p1&host=h2:p2&q``;
    a URL naming one host comes back unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    if "," not in hostlist:
        return url
    hosts = []
    for h in hostlist.split(","):
        name, colon, port = h.rpartition(":") if not h.endswith("]") else (h, "", "")
        if not colon:
            name, port = h, str(DEFAULT_PORT)
        if not name or not port.isdigit():
            raise UsageError(f"HUB_DATABASE_URL: {h!r} is not host:port (several hosts: h1:5432,h2:5432)")
        hosts.append(f"{name}:{port}")
    path, q, query = tail.partition("?")
    params = [("host", h) for h in hosts] + parse_qsl(query, keep_blank_values=True)
    return f"{scheme}://{userinfo}{at}/{path}?{urlencode(params, safe=':[]')}"


def connect_args(query: dict) -> tuple[dict, dict]:
    """Take the timeouts out of the URL's query (asyncpg would not understand them as strings):
    returns (the remaining query, asyncpg's connect arguments)."""
    query = dict(query)
    try:
        connect = float(query.pop("connect_timeout", CONNECT_TIMEOUT))
        statement = int(query.pop("statement_timeout", STATEMENT_TIMEOUT_MS))
    except (TypeError, ValueError):
        raise UsageError("HUB_DATABASE_URL: connect_timeout (seconds) and statement_timeout (milliseconds) "
                         "must be numbers") from None
    settings = {"statement_timeout": str(statement)}
    if query.get("application_name"):
        settings["application_name"] = str(query.pop("application_name"))
    return query, {"timeout": connect, "server_settings": settings}
