"""The message backbone: one async contract, RabbitMQ and an embedded in-process broker.

Import the contract from here; the RabbitMQ implementation is loaded only when used.
"""

from hub.backbone.base import (
    DEFAULT_PREFETCH,
    Backbone,
    Callback,
    Consumer,
    Incoming,
    Message,
    Outgoing,
    connect,
    inbox_key,
    inbox_queue,
)
from hub.backbone.embedded import EmbeddedBroker
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
