"""Several RabbitMQ nodes in one URL setting: ``amqp://u:p@h1:5672/vh,amqp://u:p@h2:5672/vh``.

``HUB_AMQP_URL`` (and an adapter's URL) may list the nodes of a cluster separated by
commas; the connection rotates among them when one is lost or cannot be reached. A node
may be written in full or as ``host:port`` alone, which takes the scheme, credentials,
vhost and query of the first URL: ``amqp://u:p@h1:5672/vh,h2:5672,h3:5672``.
"""

from __future__ import annotations

from yarl import URL

from hub.errors import UsageError


def split_nodes(url: str) -> tuple[str, ...]:
    """The node URLs of a (possibly comma-separated) AMQP URL, each complete."""
    parts = [p.strip() for p in url.split(",") if p.strip()]
    if not parts:
        raise UsageError("an empty AMQP URL", code="usage.invalid")
    first = parts[0]
    if not first.startswith(("amqp://", "amqps://")):
        raise UsageError(f"not an AMQP URL: {first.split('://', 1)[0]}://...", code="usage.invalid")
    base = URL(first)
    nodes = [first]
    for p in parts[1:]:
        if p.startswith(("amqp://", "amqps://")):
            nodes.append(p)
            continue
        if "://" in p or "/" in p or "@" in p:
            raise UsageError(f"node {p!r}: write a full amqp:// URL or host:port", code="usage.invalid")
        host, _, port = p.rpartition(":") if ":" in p else (p, "", "")
        try:
            u = base.with_host(host or p).with_port(int(port) if port else None)
        except ValueError as e:
            raise UsageError(f"node {p!r}: {e}", code="usage.invalid") from e
        nodes.append(str(u))
    return tuple(nodes)


def user_of(url: str) -> str:
    """The user the connection authenticates as (the first node's; ``guest`` when none)."""
    return URL(split_nodes(url)[0]).user or "guest"


def host_port(node: str | URL) -> str:
    """``host:port`` of one node URL (the AMQP default port when it has none)."""
    u = URL(node)
    return f"{u.host}:{u.port or (5671 if u.scheme == 'amqps' else 5672)}"


def describe(url: str) -> str:
    """The nodes without credentials, for logs and banners: ``h1:5672,h2:5672/vh``."""
    nodes = split_nodes(url)
    return f"{','.join(host_port(n) for n in nodes)}{URL(nodes[0]).raw_path or '/'}"
