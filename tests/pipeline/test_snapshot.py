"""Registry changes reach the check processes as deltas: the same processes, the next checks see them."""

from __future__ import annotations

import asyncio
import pickle
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from hub.pipeline import snapshot
from hub.pipeline.checks import CheckContext
from hub.pipeline.runner import CheckRunner
from hub.pki import devpki
from hub.registry.model import Agency, Registry
from tests.conftest import G22, H41, H44, registry_for

NEW = "000.00.00.H77"


def _filler(n: int) -> dict[str, Agency]:
    return {f"{i:03d}.{j:02d}.00.H41": Agency(f"{i:03d}.{j:02d}.00.H41", f"Sở {i}.{j}", served_by=H41)
            for i in range(1, n // 50 + 1) for j in range(1, 51)}


@pytest.fixture
def ctx(pki):
    from hub.edxml.schema import SchemaValidator

    return CheckContext(registry=registry_for(pki, _filler(1000)), trust=pki.trust(), validator=SchemaValidator())


def _changed(ctx: CheckContext, pki, **changes) -> CheckContext:
    """``ctx`` with agencies replaced (None removes) and, optionally, ``trust``."""
    agencies = dict(ctx.registry.agencies)
    for code, a in changes.get("agencies", {}).items():
        if a is None:
            del agencies[code]
        else:
            agencies[code] = a
    return replace(ctx, registry=Registry(agencies, version=ctx.registry.version + 1),
                   trust=changes.get("trust", ctx.trust))


def _revoking(pki, code: str):
    when = datetime.now(timezone.utc) - timedelta(days=1)
    return pki.trust(crls=[devpki.make_crl(pki.ca_cert, pki.ca_key, [(pki.ids[code].cert.serial_number, when)])])


def test_a_delta_carries_only_what_changed_and_applies_to_the_same_registry(ctx, pki):
    g22, h44 = ctx.registry.get(G22), ctx.registry.get(H44)
    new_id = pki.issue(NEW)
    gone = next(c for c in ctx.registry.agencies if c.endswith(".H41") and c != H41)
    new = _changed(ctx, pki, trust=_revoking(pki, H41), agencies={
        NEW: Agency(NEW, "Tỉnh mới", connected=True, amqp_user="h77", fingerprints=frozenset({new_id.fp})),
        H41: replace(ctx.registry.get(H41), active=False),  # retired
        G22: replace(g22, amqp_user="g22-new", fingerprints=frozenset({pki.issue(G22).fp})),  # key rolled over
        H44: replace(h44, accepts=frozenset({"1"})),
        gone: None,
    })
    delta = snapshot.delta_between(ctx, new)
    assert {a.code for a in delta.upserts} == {NEW, H41, G22, H44} and delta.removed == (gone,)
    assert delta.trust is not None and delta.version == new.registry.version
    assert len(pickle.dumps(delta)) * 20 < len(snapshot.full(ctx))  # a few agencies, not the directory

    got = snapshot.apply_delta(ctx, pickle.loads(pickle.dumps(delta)))
    rebuilt = Registry(new.registry.agencies, version=new.registry.version)
    assert got.registry.agencies == new.registry.agencies and got.registry.version == new.registry.version
    assert got.registry._by_fp == rebuilt._by_fp and got.registry._by_user == rebuilt._by_user
    assert got.registry.agency_for_user("g22-new") == G22 and got.registry.agency_for_user(G22) is None
    assert got.registry.owner_of_fingerprint(next(iter(g22.fingerprints))) is None  # the rolled-over key
    assert got.registry.system_of(gone) is None and got.registry.system_of(NEW) == NEW
    assert snapshot.trust_der(got.trust) == snapshot.trust_der(new.trust)
    # the old context is left as it was (the parent's and a process's own copy are separate)
    assert ctx.registry.get(H41).active and ctx.registry.get(NEW) is None and ctx.trust.crls == ()
    assert ctx.registry.agency_for_user(G22) == G22

    nothing = snapshot.delta_between(new, new)
    assert nothing.size == 0 and nothing.trust is None


def test_changes_reach_the_same_check_processes(ctx, pki, signed):
    """A pool of 2: add and retire agencies, add a CRL; the next checks see each change and the
    processes are the ones that started (no new pool, no full snapshot shipped again)."""

    def many(data: bytes, n: int = 6) -> list:
        return [(data, G22)] * n

    async def run() -> None:
        runner = CheckRunner(processes=2)
        runner.set_context(ctx)
        try:
            to_new = signed(to=(NEW,))
            assert {v.reason for v in await runner.check_many(many(to_new))} == {"authority.recipient_unknown"}
            pids = runner.pids()
            assert len(pids) == 2

            added = _changed(ctx, pki, agencies={NEW: Agency(NEW, "Tỉnh mới", connected=True)})
            runner.set_context(added)
            assert all(v.accepted for v in await runner.check_many(many(to_new))), "the new agency is not seen"

            retired = _changed(added, pki, agencies={NEW: Agency(NEW, "Tỉnh mới", connected=True, active=False)})
            runner.set_context(retired)
            assert {v.reason for v in await runner.check_many(many(signed(to=(NEW,))))} == {
                "authority.recipient_inactive"}
            to_h41 = signed(to=(H41,))
            assert all(v.accepted for v in await runner.check_many(many(to_h41)))

            revoked = _changed(retired, pki, trust=_revoking(pki, G22))
            runner.set_context(revoked)
            for _ in range(3):  # whichever process takes a chunk has caught up
                assert {v.reason for v in await runner.check_many(many(signed(to=(H41,))))} == {"trust.revoked"}

            assert runner.pids() == pids and runner.starts == 1
            assert runner.context is revoked
        finally:
            runner.close()

    asyncio.run(run())


def test_a_broken_pool_or_a_directory_sized_change_starts_a_new_pool(ctx, pki, signed):
    async def run() -> None:
        runner = CheckRunner(processes=1)
        runner.set_context(ctx)
        try:
            await runner.check_many([(signed(), G22)])
            first = runner.pids()
            # most of the directory changed at once: a full snapshot is cheaper than the delta
            bulk = _changed(ctx, pki, agencies={c: replace(a, name=a.name + " (mới)")
                                                for c, a in ctx.registry.agencies.items()})
            runner.set_context(bulk)
            assert runner.starts == 2
            [v] = await runner.check_many([(signed(), G22)])
            assert v.accepted and runner.pids().isdisjoint(first)
            runner._broken = True  # what check_many records when a process died
            runner.set_context(runner.context)
            assert runner.starts == 3
        finally:
            runner.close()

    asyncio.run(run())


async def test_a_change_committed_elsewhere_reaches_the_workers_check_processes_from_the_log(
        db_url, tmp_path, pki, signed):
    """The worker's reload (its check stage, at each poll) takes a change another instance
    committed from the change log (one agency re-read, not the directory) and hands it to the
    same check processes as a delta; a package to the new agency is then accepted there."""
    from hub.backbone.embedded import EmbeddedBroker
    from hub.backbone.factory import connect
    from hub.pki.identity import Identity
    from hub.pipeline.worker import Worker
    from hub.registry.store import add_agency, add_trust_anchor, retire_agency
    from hub.settings import Settings
    from hub.store.engine import make_engine, migrate
    from tests.conftest import HUB

    a, b = make_engine(db_url), make_engine(db_url)  # A writes; B is the worker's instance
    await migrate(a)
    await add_trust_anchor(a, pki.ca_cert, actor="test")
    await add_agency(a, G22, name="VPCP", certs=[pki.ids[G22].cert], actor="test")
    bb = await connect(None, broker=EmbeddedBroker())
    await bb.declare_topology()
    worker = Worker(Settings.from_env({}, data_dir=tmp_path, database_url=db_url), b, bb,
                    Identity(HUB, pki.ids[HUB].key, pki.ids[HUB].cert), runner=CheckRunner(processes=2))
    try:
        await worker.reload(force=True)
        to_new = [(signed(to=(NEW,)), G22)] * 4
        assert {v.reason for v in await worker.runner.check_many(to_new)} == {"authority.recipient_unknown"}
        pids = worker.runner.pids()

        await add_agency(a, NEW, name="Tỉnh mới", actor="test")
        await worker.reload(force=True)
        assert all(v.accepted for v in await worker.runner.check_many(to_new))
        await retire_agency(a, NEW, actor="test")
        await worker.reload(force=True)
        assert {v.reason for v in await worker.runner.check_many(to_new)} == {"authority.recipient_inactive"}

        assert worker.feed.loads == {"full": 1, "delta": 2}
        assert worker.runner.starts == 1 and worker.runner.pids() == pids
    finally:
        worker.runner.close()
        await bb.close()
        await a.dispose()
        await b.dispose()


def test_check_processes_freeze_what_they_loaded(ctx):
    """``freeze``: each check process, once it has loaded the registry and the schema, moves its
    heap out of the garbage collector's sight (``hub.heap``: a full collection no longer walks
    it; what it inherited from its parent included); without it, nothing is frozen there."""
    import gc

    async def frozen_in_child(freeze: bool) -> int:
        runner = CheckRunner(processes=1, freeze=freeze)
        runner.set_context(ctx)
        try:
            return await asyncio.get_running_loop().run_in_executor(runner._pool, gc.get_freeze_count)
        finally:
            runner.close()

    assert gc.get_freeze_count() == 0  # this process: nothing frozen, so a child's count is its own
    assert asyncio.run(frozen_in_child(True)) > 10_000
    assert asyncio.run(frozen_in_child(False)) == 0
