"""The one way in for HTTP entry points: what the worker reads from a handed-over message and
the decision it writes for it (pure parts of hub.pipeline.submit; end to end: tests/api/test_gateway.py)."""

from __future__ import annotations

from dataclasses import dataclass

from hub import constants as C
from hub.audit.records import record_row
from hub.backbone.base import Message
from hub.pipeline.checks import Verdict
from hub.pipeline.submit import H_SUBMIT_ID, H_VIA, H_VIA_USER, Decision, connection_of, decisions
from hub.registry.model import Agency, Registry
from tests.conftest import G22, H41

HUB_USER = "hub"
REGISTRY = Registry({G22: Agency(G22, connected=True, amqp_user="g22-user"), H41: Agency(H41, served_by=G22)})


@dataclass
class _In:
    message: Message


def _msg(headers: dict, user: str | None = HUB_USER) -> _In:
    return _In(Message(b"x", headers, "", C.EXCHANGE_SUBMIT, user, None, 0, False, None))


def _handed(sid: str, agency: str = G22) -> _In:
    return _msg({C.H_GATEWAY_AGENCY: agency, H_VIA: "gateway", H_VIA_USER: "7", H_SUBMIT_ID: sid})


def test_the_connection_is_read_only_from_the_hubs_own_messages():
    conn = connection_of(_handed("a").message, HUB_USER, REGISTRY)
    assert (conn.via, conn.system, conn.user) == ("gateway", G22, "7")
    assert connection_of(_handed("a", H41).message, HUB_USER, REGISTRY).system is None  # no own system
    assert connection_of(_msg(_handed("a").message.headers, user="g22-user").message, HUB_USER, REGISTRY) is None
    assert connection_of(_msg({}).message, HUB_USER, REGISTRY) is None  # the hub's other messages


def test_each_handed_over_package_gets_its_own_deciding_record():
    sha = "ab" * 32
    v = Verdict(accepted=False, sha256=sha, size=1, reason="schema.invalid", stage="schema",
                claimed_sender=G22, claimed_document_id="D1")
    batch = [_handed("first"), _msg({}, user="g22-user"), _handed("second")]  # same bytes, same publisher
    records = [
        record_row("package.refused", actor="g22-user", sha256=sha, reason="schema.invalid", message="m1",
                   details={"stage": "schema", "element": "E"}),
        record_row("package.dead", actor="g22-user", sha256=sha, reason="schema.invalid"),
        record_row("package.refused", actor="g22-user", sha256=sha, reason="schema.invalid", message="m2",
                   details={"stage": "schema", "element": "E"}),
        record_row("package.refused", actor="g22-user", sha256=sha, reason="schema.invalid", message="m3",
                   details={"stage": "schema", "element": "E"}),
    ]
    got = decisions(batch, [v, v, v], records, lambda m: "g22-user")
    assert set(got) == {"first", "second"}
    assert got["first"] == Decision("refused", sha, "D1", G22, reason="schema.invalid", message="m1", element="E",
                                    stage="schema")
    assert got["second"].message == "m3" and not got["second"].accepted  # m2 was the adapter's package's
    assert Decision.from_json(got["first"].as_json()) == got["first"]
    # the deciding records name the entry point and the credential that handed the package over
    assert records[0]["details"]["via"] == "gateway" and records[0]["details"]["via_user"] == "7"
    assert "via" not in records[2]["details"] and records[3]["details"]["via"] == "gateway"
    assert decisions([_msg({}, user="g22-user")], [v], records, lambda m: "g22-user") == {}


def test_a_redelivered_copy_recorded_before_takes_no_decision_of_the_new_one():
    sha = "cd" * 32
    v = Verdict(accepted=False, sha256=sha, size=1, reason="schema.invalid", stage="schema")
    again = _handed("again")
    again = _In(Message(b"x", again.message.headers, "", C.EXCHANGE_SUBMIT, HUB_USER, None, 0, True, None))
    records = [record_row("package.refused", actor="g22-user", sha256=sha, reason="schema.invalid", message="new",
                          details={"stage": "schema"})]
    got = decisions([again, _handed("new")], [v, v], records, lambda m: "g22-user")
    assert set(got) == {"new"} and got["new"].message == "new"
