"""A robust aio-pika connection that rotates among the nodes of a RabbitMQ cluster.

aio-pika's ``connect_robust`` reconnects to the one URL it was given, so a hub whose node
died waited for that node. This connection takes every node (``hub.backbone.nodes``) and
moves to the next one on each new connection attempt after the first: a lost node is
replaced by a surviving one within a reconnect interval, and a node that is down at start
is skipped. Channels and consumers are restored on the new node by aio-pika as usual
(quorum queues live on every node of the cluster).
"""

from __future__ import annotations

import logging
from typing import Any

import aio_pika
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from hub.backbone.nodes import host_port, split_nodes

log = logging.getLogger(__name__)

RECONNECT_INTERVAL = 1.0  # seconds between attempts (aio-pika's default, 5 s, is slow for a failover)


class NodeRotatingConnection(RobustConnection):
    """``RobustConnection`` over several nodes: each connection attempt after the first goes to the next node.

    aio-pika clears ``transport`` at the start of every (re)connection attempt; that is the
    hook used to move on, since its reconnect loop calls ``Connection.connect`` directly.
    """

    def __init__(self, url: URL, loop=None, *, nodes: tuple[str, ...] = (), **kwargs: Any):
        self._nodes = tuple(URL(n) for n in nodes) or (URL(url),)
        self._node = 0
        self._attempted = False
        self._transport = None
        super().__init__(url=self._nodes[0], loop=loop, **kwargs)

    @property
    def url(self) -> URL:  # type: ignore[override]
        return self._nodes[self._node]

    @url.setter
    def url(self, value: URL) -> None:  # Connection.__init__ and update_secret set it
        value = URL(value)
        if value.with_password(None) != self._nodes[self._node].with_password(None):
            return
        nodes = list(self._nodes)
        nodes[self._node] = value
        self._nodes = tuple(nodes)

    @property
    def transport(self):  # type: ignore[override]
        return self._transport

    @transport.setter
    def transport(self, value) -> None:
        if value is None and not getattr(self, "_close_in_progress", True) and not self._close_called:
            # a new connection attempt (aio-pika's reconnect loop sets None first)
            if self._attempted and len(self._nodes) > 1:
                self._node = (self._node + 1) % len(self._nodes)
                log.warning("RabbitMQ: connecting to node %s", host_port(self.url))
            self._attempted = True
        self._transport = value

    @property
    def node(self) -> str:
        """``host:port`` of the node in use (or being tried)."""
        return host_port(self.url)


async def connect_nodes(url: str, *, timeout: float) -> RobustConnection:
    """Connect to the first node of ``url`` that answers, then stay robust across all of them."""
    nodes = split_nodes(url)
    last: BaseException | None = None
    for start in range(len(nodes)):
        order = nodes[start:] + nodes[:start]
        try:
            return await aio_pika.connect_robust(order[0], timeout=timeout, connection_class=NodeRotatingConnection,
                                                 nodes=order, reconnect_interval=RECONNECT_INTERVAL)
        except Exception as e:  # noqa: BLE001 - try the next node; the caller maps the last error
            last = e
            if len(nodes) > 1:
                log.warning("RabbitMQ node %s unreachable (%s); trying the next", host_port(order[0]), e)
    assert last is not None
    raise last
