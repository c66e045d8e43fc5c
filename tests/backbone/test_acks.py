"""Which tags one ``basic.ack(multiple=True)`` may cover (``hub.backbone.acks``), without a broker."""

from __future__ import annotations

from hub.backbone.acks import ChannelTags, plan


def test_a_run_from_the_low_water_mark_is_one_frame():
    assert plan(ChannelTags(), [1, 2, 3]) == (3, [])


def test_an_unsettled_tag_before_the_batch_stops_the_run():
    t = ChannelTags()
    assert plan(t, [2, 3]) == (0, [2, 3])  # tag 1 is someone else's, unsettled


def test_settled_tags_extend_the_run_and_the_gap_ends_it():
    t = ChannelTags()
    t.settled([1, 3])
    assert t.low == 1 and t.above == {3}
    assert plan(t, [2, 4, 6]) == (4, [6])  # 5 unsettled: 6 alone
    t.settled([2, 4])
    assert t.low == 4 and t.above == set()


def test_the_run_ends_on_a_tag_of_the_batch():
    t = ChannelTags()
    t.settled([3, 4])
    assert plan(t, [1, 2]) == (2, [])  # not 4: ending there would be harmless, but 2 is enough
    assert plan(t, [7]) == (0, [7])
