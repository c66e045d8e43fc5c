"""The structural rules of an edXML package that XSD 1.0 cannot express. Pure.

The XSDs check every element's type and, where children occur at most once, their
cardinality (xs:all). Real implementations disagree on child order, so the containers whose
children repeat or whose content depends on the package kind are an unbounded xs:choice in
the XSD, and this module checks them:

- ``MessageHeader`` holds an edoc, or a status (the national SDK's form: it has a
  ``StatusCode``); each kind has its own required and allowed children;
- an edoc has a ``TraceHeaderList`` with at most one ``Bussiness`` and one ``Paper``;
- a status package (either container) has no ``TraceHeaderList``, ``edXMLBody`` or
  ``AttachmentEncoded``;
- a ``ResponseFor`` is either empty (= absent, allowed in an edoc) or has ``OrganId`` and
  ``DocumentId``; a status's is never empty.

:func:`problems` lists every violation in document order; the schema stage refuses on the
first (``schema.invalid``), ``hub check --explain`` shows them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from hub.edxml.model import is_empty, q
from hub.edxml.paths import find_first, local_name, readable_path, short_path

__all__ = ["EDOC_HEADER", "STATUS_HEADER", "Problem", "problems"]

UNBOUNDED = None

# child -> (min, max) occurrences
EDOC_HEADER: dict[str, tuple[int, int | None]] = {
    "From": (1, 1), "To": (1, UNBOUNDED), "DocumentId": (1, 1), "Code": (1, 1), "PromulgationInfo": (1, 1),
    "DocumentType": (1, 1), "Subject": (1, 1), "Content": (0, 1), "SignerInfo": (0, 1), "DueDate": (0, 1),
    "OtherInfo": (0, 1), "ResponseFor": (0, UNBOUNDED), "SteeringType": (0, 1), "ToPlaces": (0, 1),
    "ApplicationType": (0, 1), "ResponseForTask": (0, 1),
}
STATUS_HEADER: dict[str, tuple[int, int | None]] = {
    "From": (1, 1), "ResponseFor": (1, 1), "StaffInfo": (0, 1), "StatusCode": (1, 1), "Description": (0, 1),
    "Timestamp": (1, 1), "ApplicationType": (0, 1),
}
TRACE_LIST: dict[str, tuple[int, int | None]] = {"TraceHeader": (0, UNBOUNDED), "Bussiness": (0, 1), "Paper": (0, 1)}

_QNAMES = {name: q(name) for name in (*EDOC_HEADER, *STATUS_HEADER, *TRACE_LIST)}
_ENVELOPE, _HEADER, _STATUS, _MESSAGE_HEADER, _TRACE_LIST, _RESPONSE_FOR, _STATUS_CODE = (
    q(n) for n in ("edXMLEnvelope", "edXMLHeader", "Status", "MessageHeader", "TraceHeaderList", "ResponseFor",
                   "StatusCode"))
_EDOC_ONLY = sorted(set(EDOC_HEADER) - set(STATUS_HEADER))
_STATUS_ONLY = sorted(set(STATUS_HEADER) - set(EDOC_HEADER))


@dataclass(frozen=True)
class Problem:
    element: etree._Element
    message: str
    code: str = "schema.invalid"

    @property
    def path(self) -> str:
        return readable_path(self.element)


def _children(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _required(rules: dict[str, tuple[int, int | None]]) -> str:
    parts = []
    for name, (lo, hi) in rules.items():
        if lo == 1 and hi == 1:
            parts.append(name)
        elif lo >= 1:
            parts.append(f"at least one {name}")
    return ", ".join(parts)


def _counts(container: etree._Element) -> dict[str, int]:
    counts: dict[str, int] = {}
    for child in container:
        tag = child.tag
        if isinstance(tag, str):
            counts[tag] = counts.get(tag, 0) + 1
    return counts


def _cardinality(container: etree._Element, rules: dict[str, tuple[int, int | None]], what: str,
                 counts: dict[str, int] | None = None) -> list[Problem]:
    """Too many or too few of each child ``rules`` names (the hot path: counts, no paths)."""
    counts = _counts(container) if counts is None else counts
    out: list[Problem] = []
    for name, (lo, hi) in rules.items():
        n = counts.get(_QNAMES.get(name) or q(name), 0)
        if hi is not None and n > hi:
            extra = container.findall(q(name))[hi]
            out.append(Problem(extra, f"{short_path(extra)}: {name} may appear at most once in "
                                      f"{local_name(container)} (found {n})"))
        if n < lo:
            out.append(Problem(container, f"{short_path(container)} is missing {name} "
                                          f"({what} needs {_required(rules)})"))
    return out


def _response_for(rf: etree._Element, in_status: bool) -> list[Problem]:
    if is_empty(rf):
        if in_status:
            return [Problem(rf, f"{short_path(rf)} is empty; a status names the document it is about "
                                "(ResponseFor with OrganId and DocumentId)")]
        return []  # <ResponseFor/> in an edoc: absent
    missing = [n for n in ("OrganId", "DocumentId") if rf.find(q(n)) is None]
    if missing:
        return [Problem(rf, f"{short_path(rf)} is missing {' and '.join(missing)} "
                            "(a ResponseFor needs OrganId and DocumentId, or is empty)")]
    return []


def _status_extras(root: etree._Element, envelope: etree._Element, header: etree._Element) -> list[Problem]:
    out = []
    for el in (header.find(q("TraceHeaderList")), envelope.find(q("edXMLBody")), root.find(q("AttachmentEncoded"))):
        if el is not None:
            out.append(Problem(el, f"{short_path(el)} is not allowed in a status package "
                                   "(a status package has no TraceHeaderList, edXMLBody or AttachmentEncoded)"))
    return out


def problems(root: etree._Element) -> list[Problem]:
    """Every structural rule ``root`` (an XSD-valid ``edXML`` tree) breaks, in document order."""
    envelope = find_first(root, _ENVELOPE)
    header = find_first(envelope, _HEADER)
    if header is None:
        return []  # the XSD says so
    out: list[Problem] = []
    status = mh = thl = None
    for child in header:  # one pass: the first Status, MessageHeader and TraceHeaderList
        tag = child.tag
        if tag == _MESSAGE_HEADER:
            mh = child if mh is None else mh
        elif tag == _TRACE_LIST:
            thl = child if thl is None else thl
        elif tag == _STATUS:
            status = child if status is None else status
    counts = _counts(mh) if mh is not None else {}
    if status is not None:
        out += _response_for_all(status, in_status=True)
        out += _status_extras(root, envelope, header)
    elif mh is not None and _STATUS_CODE in counts:  # is_status_header(mh)
        for child in _children(mh):
            if local_name(child) not in STATUS_HEADER:
                out.append(Problem(child, f"{short_path(child)} is not allowed in a status package (a MessageHeader "
                                          f"with a StatusCode is a status: {', '.join(STATUS_HEADER)})"))
        out += _cardinality(mh, STATUS_HEADER, "a status", counts)
        out += _response_for_all(mh, in_status=True)
        out += _status_extras(root, envelope, header)
    elif mh is not None:
        for child in (_children(mh) if any(_QNAMES[n] in counts for n in _STATUS_ONLY) else ()):
            if local_name(child) in _STATUS_ONLY:
                out.append(Problem(child, f"{short_path(child)} belongs to a status package, and this MessageHeader has "
                                          f"no StatusCode (an edoc's MessageHeader has no {', '.join(_STATUS_ONLY)})"))
        out += _cardinality(mh, EDOC_HEADER, "an edoc's MessageHeader", counts)
        if _RESPONSE_FOR in counts:
            out += _response_for_all(mh, in_status=False)
        if thl is None:
            out.append(Problem(header, f"{short_path(header)} is missing TraceHeaderList "
                                       "(an edoc needs one after MessageHeader; it may be empty)"))
        else:
            out += _cardinality(thl, TRACE_LIST, "a TraceHeaderList")
    if len(out) > 1:
        order = {el: i for i, el in enumerate(root.iter())}
        out.sort(key=lambda p: order.get(p.element, -1))
    return out


def _response_for_all(container: etree._Element, in_status: bool) -> list[Problem]:
    out = []
    for rf in container:
        if rf.tag == _RESPONSE_FOR:
            out += _response_for(rf, in_status)
    return out
