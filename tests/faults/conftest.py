"""Fixtures of the fault tests: a PostgreSQL server and a 3-node RabbitMQ cluster of their own
(free ports, temp dirs, its own EPMD), which the tests stop, restart and kill; a
primary/standby pair for the failover. The shared services are never
touched. Starting fails (never skips) when the server binaries are missing."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.faults.cluster import Postgres, PostgresPair, RabbitCluster
from tests.faults.stream import Broker


@pytest.fixture(scope="session")
def own_pg():
    # not under pytest's basetemp: pytest keeps that 0700, and the server runs as ``postgres``
    root = Path(tempfile.mkdtemp(prefix="hub-fault-pg-"))
    pg = Postgres(root)
    pg.start()
    try:
        yield pg
    finally:
        pg.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def own_pg_url(own_pg):
    """A fresh database on our own PostgreSQL; the server is restarted if a test left it stopped."""
    if not own_pg.running:
        own_pg.start()
    return own_pg.create_database(f"hub_fault_{uuid.uuid4().hex[:10]}")


@pytest.fixture
def pg_pair():
    """A PostgreSQL primary with a synchronous streaming standby of its own (promotion is one-way)."""
    root = Path(tempfile.mkdtemp(prefix="hub-fault-pair-"))
    pair = PostgresPair(root)
    try:
        pair.start()
        yield pair
    finally:
        pair.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbit_cluster(tmp_path_factory):
    cluster = RabbitCluster(tmp_path_factory.mktemp("rmq"), nodes=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def broker(rabbit_cluster):
    """The streams' vhost and agency users on the cluster (rabbitmqctl is slow: made once)."""
    return Broker.make(rabbit_cluster)
