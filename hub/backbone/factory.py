"""Opening a backbone connection: picks the implementation from the URL.

Sits above both implementations (:mod:`hub.backbone.embedded`, :mod:`hub.backbone.rabbit`)
so that the contract in :mod:`hub.backbone.base` never imports them. RabbitMQ (aio-pika)
is imported only when an ``amqp://`` URL asks for it.
"""

from __future__ import annotations

import hub.backbone.topology as topology
from hub.backbone.base import DEFAULT_USER, Backbone
from hub.backbone.embedded import EmbeddedBroker
from hub.errors import UsageError


async def connect(url: str | None, *, user: str | None = None, broker: EmbeddedBroker | None = None,
                  delivery_limit: int = topology.DEFAULT_DELIVERY_LIMIT) -> Backbone:
    """Open a backbone connection.

    ``url`` None or empty: the embedded broker ``broker`` (required then), as ``user``
    (default ``hub``). ``url`` ``amqp://`` or ``amqps://``: RabbitMQ, as the URL's user.
    ``delivery_limit`` is the ``x-delivery-limit`` this connection declares queues with.
    """
    if not url:
        if broker is None:
            raise UsageError("the embedded backbone needs a broker (HUB_AMQP_URL is empty)")
        return broker.connect(user or DEFAULT_USER, delivery_limit=delivery_limit)
    if not url.startswith(("amqp://", "amqps://")):
        raise UsageError(f"not an AMQP URL: {url.split('://', 1)[0]}://...")
    if user is not None:
        raise UsageError("for RabbitMQ the user comes from the URL, not the user argument")
    from hub.backbone.rabbit import RabbitBackbone

    return await RabbitBackbone.open(url, delivery_limit=delivery_limit)
