"""A registry change made elsewhere (another hub instance, the CLI) while a worker runs: the worker
never refuses a package on a snapshot older than the database, even when its poll
(HUB_REGISTRY_POLL_SECONDS) has not come round yet; a refusal first looks for a newer registry."""

from __future__ import annotations

from tests.conftest import G22, attachment, make_edoc
from tests.hubenv import drain

NEW = "000.00.00.H47"


async def test_a_recipient_registered_after_the_snapshot_is_not_refused(env):
    env.settings = env.settings.replace(registry_poll_seconds=3600)  # the poll alone would not see it
    async with env.running() as hub:
        g = await env.adapter(G22)
        first = make_edoc(G22, (NEW,))
        await g.send_document(first, [attachment()])
        [refusal] = await drain(g, 1)  # not registered yet: refused, status 02 to the sender
        assert refusal.kind == "status" and refusal.package().status_code == "02"
        await env.register(NEW, "UBND tỉnh H47")  # straight into the database, as another instance would,
        await hub.backbone.declare_inbox(NEW)  # declaring the inbox as the admin API and `hub agency add` do
        new = await env.adapter(NEW)
        doc = make_edoc(G22, (NEW,))
        await g.send_document(doc, [attachment()])
        [got] = await drain(new, 1)
        assert got.document_id == doc.document_id
