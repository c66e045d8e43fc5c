"""Issue 11's `sdk` profile through VDXP: an agency on the national SDK sends its unsigned
SDK-form packages over its VDXP system (the HMAC-authenticated connection vouches for them);
the same bytes from another system are impersonation, refused at once in the envelope."""

from __future__ import annotations

import base64

from hub.edxml.model import read_package
from hub.edxml.parser import parse_xml
from tests.conftest import G22, H41, H44
from tests.pipeline.test_e2e_sdk import REAL, SDK_DOC_ID, sdk_edoc, set_profile
from tests.vdxp.vdxpenv import A, B, listed, vdxp_for


async def test_unsigned_sdk_form_packages_over_vdxp(env):
    for code in (G22, H41):
        await set_profile(env, code, "sdk")
    async with env.running(), vdxp_for(env) as v:
        a, b = v.client(A), v.client(B)
        edoc = sdk_edoc()
        assert b"SignatureValue" in edoc  # the SDK's skeleton, not a signature
        sent = await a.send_edoc(edoc + b"\r\n", G22)  # the file ends in CRLF, the SDK adds one more
        assert sent["status"] == "OK", sent
        [item] = await listed(b, 1)
        got = read_package(parse_xml(base64.b64decode((await b.get_edoc(item["docId"]))["data"])))
        assert got.document_id == SDK_DOC_ID and got.sender.organ_id == G22
        assert (await b.update_status(item["docId"], "done"))["status"] == "OK"
        # the SDK's own unsigned status files, answered back over B's system
        for name in ("sdk_status_inbox_01.edxml", "sdk_status_acceptance_03.edxml"):
            data = (REAL / name).read_bytes()
            assert b"Signature" not in data
            answer = await b.send_edoc(data, H41, messagetype="status")
            assert answer["status"] == "OK", (name, answer)
        statuses = await listed(a, 2, "status")
        codes = [read_package(parse_xml(base64.b64decode((await a.get_edoc(s["docId"]))["data"]))).status_code
                 for s in statuses]
        assert sorted(codes) == ["01", "03"]
        # another system sending G22's unsigned package: nothing vouches for it
        await v.add("vxp.h44", H44)
        refused = await v.client("vxp.h44").send_edoc(sdk_edoc(to=(H41,)), H44)
        assert refused["status"] == "FAIL" and refused["ErrorCode"] == "authority.impersonation", refused
        report = await a.call("getSentEdocList", {"servicetype": "eDoc", "messagetype": "edoc"})
        assert [(r["toCode"], r["receiveStatus"]) for r in report["data"]] == [(H41, "03")]
