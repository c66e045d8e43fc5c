"""deploy/postgres/roles.sql: the hub's runtime role may append to the audit log and store packages,
never rewrite either."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from hub.store.engine import make_engine, migrate
from hub.audit.records import append_rows, record_row

ROLES_SQL = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "roles.sql"
pytestmark = pytest.mark.postgres


async def test_runtime_role_appends_but_cannot_rewrite(pg_url, pki):
    from hub.audit.sealer import seal
    from hub.pki.identity import Identity
    from tests.conftest import HUB

    owner = make_engine(pg_url)
    await migrate(owner)
    await owner.dispose()
    role = f"hub_app_{uuid.uuid4().hex[:8]}"
    dbname = pg_url.rsplit("/", 1)[1]
    p = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", dbname, "-v", "ON_ERROR_STOP=1",
                        "-v", f"hub_role={role}", "-f", str(ROLES_SQL)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    app = make_engine(pg_url.replace("postgres@", f"{role}@"))
    try:
        async with app.begin() as conn:
            await append_rows(conn, [record_row("test.appended", actor="role test")])
            assert (await conn.execute(sa.text("SELECT count(*) FROM records"))).scalar() == 1
            # packages are content-addressed evidence: stored once (again = nothing), never rewritten
            for _ in range(2):
                await conn.execute(sa.text(
                    "INSERT INTO packages (sha256, size, data, stored_at) VALUES ('ab', 1, 'x', now()) "
                    "ON CONFLICT DO NOTHING"))
            assert (await conn.execute(sa.text("SELECT count(*) FROM packages"))).scalar() == 1
            await append_rows(conn, [record_row("test.appended", actor="role test")])
            # an entry of a document with the recipient it concerns: the recipients' index (0040)
            await append_rows(conn, [record_row("edoc.delivered", document_id="1/ROLE", sender="000.00.00.G22",
                                                details={"recipient": "000.00.00.H41"},
                                                recipients=["000.00.00.H41"])])
            assert (await conn.execute(sa.text("SELECT recipient, seq FROM audit_recipients"))).all() == [
                ("000.00.00.H41", 3)]
        # the sealer runs as the runtime role: it inserts checkpoints and subtree hashes
        assert (await seal(app, Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert))).size == 3
        async with app.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM merkle_nodes"))).scalar() == 1
        # a registry change and the pruning of its log (hub.registry.changes) run as the runtime role
        from hub.registry import changes
        from hub.registry.store import add_agency

        await add_agency(app, "000.00.00.H77", name="role test", actor="role test")
        assert await changes.prune(app, keep_hours=0) == 1
        for stmt in ("UPDATE records SET actor = 'x'", "DELETE FROM records", "TRUNCATE records",
                     "UPDATE checkpoints SET root = 'x'", "DROP TABLE records",
                     "UPDATE packages SET data = 'y'", "DELETE FROM packages", "TRUNCATE packages",
                     "UPDATE merkle_nodes SET hash = 'x'", "DELETE FROM merkle_nodes", "TRUNCATE merkle_nodes",
                     "UPDATE audit_recipients SET seq = 1", "DELETE FROM audit_recipients",
                     "TRUNCATE audit_recipients"):
            with pytest.raises(DBAPIError) as e:
                async with app.begin() as conn:
                    await conn.execute(sa.text(stmt))
            assert "permission denied" in str(e.value) or "must be owner" in str(e.value), stmt
    finally:
        await app.dispose()
        admin = make_engine(pg_url)
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            await conn.execute(sa.text(f'DROP ROLE "{role}"'))
        await admin.dispose()
