"""The directory as the SDK reads it, and membership calls limited to codes below the system's
own agency (audited as the system)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from hub.store.tables import records
from tests.conftest import G22, H41, H44
from tests.vdxp.vdxpenv import vdxp_for

SUB = "000.00.01.H41"  # below H41 (system B's agency)


async def test_directory_and_membership(env):
    async with env.running(), vdxp_for(env) as v:
        b = v.client("vxp.saas.b")
        answer = await b.call("getAgenciesList", {})
        assert answer["status"] == "OK"
        by_code = {a["code"]: a for a in answer["data"]}
        assert {G22, H41, H44} <= set(by_code)
        assert set(by_code[H41]) == {"id", "pid", "code", "name", "mail", "oldCode"}
        assert all(isinstance(x, str) for a in answer["data"] for x in a.values())  # never null
        # registerAgency: the body is the agency; only below the system's own agency
        body = {"id": "", "pcode": "vxp.saas.b", "code": SUB, "name": "Sở Nội vụ Nghệ An", "mail": "snv@nghean.gov.vn",
                "mobile": "", "fax": ""}
        ok = await b.call("registerAgency", {}, body=json.dumps(body, ensure_ascii=False).encode())
        assert ok["status"] == "OK", ok
        for code in (H44, "000.00.01.H44"):
            refused = await b.call("registerAgency", {}, body=json.dumps({**body, "code": code}).encode())
            assert refused["status"] == "FAIL" and refused["ErrorCode"] == "vdxp.out_of_scope", refused
        bad = await b.call("registerAgency", {}, body=b"not json")
        assert bad["ErrorCode"] == "vdxp.bad_request"
        sub = {a["code"]: a for a in (await b.call("getAgenciesList", {}))["data"]}[SUB]
        assert sub["pid"] == H41 and sub["name"] == "Sở Nội vụ Nghệ An"
        # a package to the new code routes to B's inbox (served by H41)
        _, data = v.edoc(G22, (SUB,))
        assert (await v.client("vxp.saas.a").send_edoc(data, G22))["status"] == "OK"
        # QD20 by level; the synchronisation feed with versions, tombstones
        level1 = (await b.call("getAgenciesListQD20", {"level": "1"}))["data"]
        assert H41 in {a["code"] for a in level1} and SUB not in {a["code"] for a in level1}
        assert all(a["code102"] == a["code"] for a in level1)
        sync = {u["code"]: u for u in (await b.call("getSynchronizeUnit", {}))["data"]}
        unit = sync[SUB]
        assert isinstance(unit["version"], int) and unit["deleted"] is False and unit["isAgency"] is True
        assert unit["centerCode"] == H41 and unit["modifyDate"]
        # deleteAgency: only below; then it is a tombstone in the feed with a higher version
        refused = await b.call("deleteAgency", {"AgencyCode": G22})
        assert refused["ErrorCode"] == "vdxp.out_of_scope"
        assert (await b.call("deleteAgency", {"AgencyCode": SUB}))["status"] == "OK"
        newer = {u["code"]: u for u in (await b.call("getSynchronizeUnit", {"version": str(unit["version"])}))["data"]}
        assert newer[SUB]["deleted"] is True and newer[SUB]["version"] >= unit["version"]
        assert (await b.call("getSynchronizeUnit", {"version": str(newer[SUB]["version"] + 1)}))["data"] == []
        assert SUB not in {a["code"] for a in (await b.call("getAgenciesList", {}))["data"]}
        # audited as the system
        rows = await env.scalar(sa.select(records.c.event).where(records.c.actor == "vdxp:vxp.saas.b"))
        assert {"agency.added", "agency.retired"} <= {r[0] for r in rows}
