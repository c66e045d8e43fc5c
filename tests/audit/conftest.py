"""Fixtures of the audit-log tests: a migrated database (SQLite and PostgreSQL) and the hub's signing identity."""

import pytest

from hub.pki.identity import Identity
from tests.conftest import HUB


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


@pytest.fixture
def hub_id(pki):
    return Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert)
