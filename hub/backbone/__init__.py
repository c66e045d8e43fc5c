"""The message backbone: one async contract, RabbitMQ and an embedded in-process broker.

Import the contract, :func:`connect` and :class:`EmbeddedBroker` from here; the RabbitMQ
implementation (aio-pika) is loaded only when ``connect`` is given an ``amqp://`` URL.
"""

from hub.backbone.base import (
    DEFAULT_PREFETCH,
    Backbone,
    Callback,
    Consumer,
    Incoming,
    Message,
    Outgoing,
    inbox_key,
    inbox_queue,
)
from hub.backbone.embedded import EmbeddedBroker
from hub.backbone.factory import connect
from hub.backbone.topology import DEFAULT_DELIVERY_LIMIT

__all__ = [
    "DEFAULT_DELIVERY_LIMIT",
    "DEFAULT_PREFETCH",
    "Backbone",
    "Callback",
    "Consumer",
    "EmbeddedBroker",
    "Incoming",
    "Message",
    "Outgoing",
    "connect",
    "inbox_key",
    "inbox_queue",
]
