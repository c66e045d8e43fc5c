"""Relay trace: the hub's ``TraceHeader`` appended after the sender signed.

Like an e-mail ``Received:`` line under DKIM, the hub's hop record is not covered by the
sender's signature. It is inserted without touching any other node (no whitespace added),
so a recipient removes trailing TraceHeaders of known relays and verifies the sender's
signature on exactly the bytes the sender signed (:func:`strip_relay_trace`).

``Bussiness`` may come before the TraceHeaders (the national SDK, the axis) or after them;
the hub's TraceHeader goes right after the last TraceHeader (first in the list if there is
none), and readers find both by name (tests/edxml/test_roundtrip.py).
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from hub.edxml.model import NS, format_timestamp, q


def append_trace(root: etree._Element, organ_id: str, when: datetime) -> bool:
    """Append a TraceHeader for ``organ_id`` to an edoc tree in place; False for status packages."""
    thl = root.find("e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList", NS)
    if thl is None:
        return False
    th = etree.Element(q("TraceHeader"))
    etree.SubElement(th, q("OrganId")).text = organ_id
    etree.SubElement(th, q("Timestamp")).text = format_timestamp(when)
    existing = thl.findall("e:TraceHeader", NS)
    if existing:
        existing[-1].addnext(th)  # the previous sibling keeps its tail; th gets none
    else:
        thl.insert(0, th)
    return True


def strip_relay_trace(root: etree._Element, relay_ids: set[str] | frozenset[str]) -> int:
    """Remove trailing TraceHeaders written by relays in ``relay_ids``; returns how many."""
    thl = root.find("e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList", NS)
    if thl is None:
        return 0
    removed = 0
    while True:
        headers = thl.findall("e:TraceHeader", NS)
        if not headers:
            return removed
        last = headers[-1]
        if (last.findtext("e:OrganId", "", NS) or "").strip() not in relay_ids:
            return removed
        prev = last.getprevious()
        if last.tail:
            if prev is not None:
                prev.tail = (prev.tail or "") + last.tail
            else:
                thl.text = (thl.text or "") + last.tail
        thl.remove(last)
        removed += 1
