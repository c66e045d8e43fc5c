"""An agency learns nothing about other agencies' DocumentIds (issue 8, item 12): a package that
refers to a document its sender never saw gets exactly the answer a made-up DocumentId gets."""

from __future__ import annotations

from hub import constants as C
from hub.edxml.builder import build_edoc
from hub.edxml.model import ResponseFor
from tests.conftest import G22, H41, H44, make_edoc
from tests.hubenv import drain


def _answer(r, document_id: str) -> tuple[str, str, str]:
    """(reason, description, message) with the DocumentId asked about blanked out."""
    st = r.package()
    assert r.kind == "status" and st.status_code == "02"
    return (r.headers[C.H_REASON], st.description.replace(document_id, "<id>"),
            r.headers[C.H_MESSAGE].replace(document_id, "<id>"))


async def test_response_for_a_document_never_seen_answers_like_a_made_up_one(env):
    async with env.running():
        g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
        secret = make_edoc(G22, (H41,))  # between G22 and H41 only
        await g.send_document(secret, [])
        await drain(h41, 1)
        made_up = f"{G22},2026/11/27,987654321/VPCP-TTĐT"
        answers = []
        for ref in (secret.document_id, made_up):
            probe = make_edoc(H44, (G22,), response_for=(ResponseFor(G22, ref),))
            await h44.publish(h44.sign(build_edoc(probe, [])))
            [r] = await drain(h44, 1)
            answers.append(_answer(r, ref))
        assert answers[0] == answers[1], answers
        assert answers[0][0] == "state.unknown_document"
        # the parties themselves may still refer to it
        reply = make_edoc(H41, (G22,), response_for=(ResponseFor(G22, secret.document_id),))
        await h41.publish(h41.sign(build_edoc(reply, [])))
        [r] = await drain(g, 1)
        assert r.kind == "edoc" and r.document_id == reply.document_id
        own = make_edoc(G22, (H41,), response_for=(ResponseFor(G22, secret.document_id),))
        await g.send_document(own, [])
        [r] = await drain(h41, 1)
        assert r.document_id == own.document_id


async def test_a_status_for_a_document_never_seen_answers_like_a_made_up_one(env):
    async with env.running():
        g, h41, h44 = await env.adapter(G22), await env.adapter(H41), await env.adapter(H44)
        secret = make_edoc(G22, (H41,))
        await g.send_document(secret, [])
        await drain(h41, 1)
        made_up = f"{G22},2026/11/27,987654321/VPCP-TTĐT"
        answers = []
        for ref in (secret.document_id, made_up):
            await h44.send_status(G22, ref, "01", "đã nhận")
            [r] = await drain(h44, 1)
            answers.append(_answer(r, ref))
        assert answers[0] == answers[1], answers
        assert answers[0][0] == "state.unknown_document"
