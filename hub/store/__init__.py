"""The database: table definitions, engine factory, Alembic migrations."""
