"""The queues page does not sound the no-consumer alarm for an inbox a VDXP system drains by polling."""

from hub.web.queues import judge


def test_no_consumer_alarm_only_without_a_vdxp_system():
    q = {"name": "inbox.000.00.00.H41", "exists": True, "consumers": 0, "depth": 0,
         "oldest_message_age_seconds": None}
    assert judge(q)[0] == "alarm"
    assert judge(q, polled=frozenset({"000.00.00.H41"})) == ("ok", [])
    assert judge(q, polled=frozenset({"000.00.00.G22"}))[0] == "alarm"
