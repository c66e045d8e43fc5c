"""Alembic migrations produce exactly the tables the code uses, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.store.engine import make_engine, migrate
from hub.store.tables import metadata


# SQLite cannot hold the trigram index (0034, PostgreSQL only), so alembic skips it there with a warning
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index "
                            "'ix_records_document_trgm'")
async def test_migrations_match_the_table_definitions(db_url_empty):
    engine = make_engine(db_url_empty)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent: every worker runs it at start
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == []
    finally:
        await engine.dispose()


def test_the_head_read_from_the_scripts_is_alembics():
    from alembic.script import ScriptDirectory

    from hub.store.engine import alembic_config, head_revisions

    assert head_revisions() == frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


async def test_a_current_schema_is_not_migrated_again_and_an_old_one_is(db_url_empty, monkeypatch):
    """A start on a database at the head runs no Alembic at all; one behind it is brought to the head."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from hub.store.engine import alembic_config, head_revisions

    first = list(ScriptDirectory.from_config(alembic_config()).walk_revisions())[-1].revision
    engine = make_engine(db_url_empty)
    upgrades: list[str] = []
    upgrade = command.upgrade
    monkeypatch.setattr(command, "upgrade", lambda cfg, rev: (upgrades.append(rev), upgrade(cfg, rev)))
    try:
        await migrate(engine, first)
        await migrate(engine)  # behind: migrated
        await migrate(engine)  # current: nothing to do
        async with engine.connect() as conn:
            import sqlalchemy as sa

            at = {r[0] for r in await conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    finally:
        await engine.dispose()
    assert upgrades == [first, "head"] and at == set(head_revisions())
