"""Alembic migrations produce exactly the tables the code uses, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.store.engine import make_engine, migrate
from hub.store.tables import metadata


# SQLite cannot hold the trigram index (0034, PostgreSQL only), so alembic skips it there with a warning
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index "
                            "'ix_records_document_trgm'")
async def test_migrations_match_the_table_definitions(db_url):
    engine = make_engine(db_url)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent: every worker runs it at start
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == []
    finally:
        await engine.dispose()
