"""Readable element paths for messages: ``edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To[2]/OrganId``.

No namespaces, local names only, ``Name[i]`` when same-named siblings exist: the way an
integrator reads a package, whichever prefix spelling it used.
"""

from __future__ import annotations

from lxml import etree

__all__ = ["children_by_tag", "find_all", "find_first", "local_name", "readable_path", "short_path"]


def find_first(el: etree._Element | None, *tags: str) -> etree._Element | None:
    """``el.find("T1/T2/…")`` for Clark-notation tags: the first match in document order.

    A plain loop over the children: ElementPath's ``find`` (and ``iterchildren(tag)``, which
    sets up a tag matcher per call) cost about twice as many instructions per step, which adds
    up on the checks' hot path (callgrind)."""
    if el is None:
        return None
    tag, rest = tags[0], tags[1:]
    for child in el:
        if child.tag == tag:
            if not rest:
                return child
            found = find_first(child, *rest)
            if found is not None:
                return found
    return None


def children_by_tag(el: etree._Element | None) -> dict:
    """``el``'s children by tag, each list in document order, in one pass (empty for None): where
    several fields of one element are read, each child's proxy and tag are made once, not once
    per ``find_first`` that walks the children again."""
    out: dict = {}
    if el is not None:
        for child in el:
            out.setdefault(child.tag, []).append(child)
    return out


def find_all(el: etree._Element | None, *tags: str) -> list[etree._Element]:
    """``el.findall("T1/T2/…")`` for Clark-notation tags, in document order."""
    if el is None:
        return []
    found = [el]
    for tag in tags:
        found = [c for parent in found for c in parent if c.tag == tag]
    return found


def local_name(el: etree._Element) -> str:
    tag = el.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else str(tag)


def _path_segments(el: etree._Element) -> list[str]:
    """Local names from the root down to ``el``; ``Name[i]`` when same-named siblings exist."""
    segments: list[str] = []
    cur: etree._Element | None = el
    while cur is not None:
        parent = cur.getparent()
        name = local_name(cur)
        if parent is not None:
            same = [c for c in parent if c.tag == cur.tag]
            if len(same) > 1:
                name = f"{name}[{same.index(cur) + 1}]"
        segments.append(name)
        cur = parent
    segments.reverse()
    return segments


def readable_path(el: etree._Element) -> str:
    """``edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To/OrganId`` (no namespaces)."""
    return "/".join(_path_segments(el))


def short_path(el: etree._Element) -> str:
    """The last two steps of the readable path (``To/OrganId``), as messages start."""
    return "/".join(_path_segments(el)[-2:])
