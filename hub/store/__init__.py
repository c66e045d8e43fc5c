"""The database, the bottom layer (it imports nothing above it): table definitions (``tables``),
the engine factory and migrations (``engine``, Alembic), PostgreSQL connection strings with
several hosts and timeouts (``dsn``), leader election on advisory locks (``leader``) and the
links between documents (``links``)."""
