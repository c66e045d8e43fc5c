"""The one hardened entry point for untrusted XML.

Nothing else in the hub calls ``etree.fromstring`` on bytes from outside. The parser refuses
any DOCTYPE (so no DTD, no entity declarations, no billion laughs), never resolves entities,
never touches the network, and does not process XInclude.
"""

from __future__ import annotations

from lxml import etree

from hub.constants import EDXML_NS
from hub.errors import ParseError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_XINCLUDE_ANY = "{" + XINCLUDE_NS + "}*"


def _make_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,  # the size cap below bounds input; large base64 text nodes are normal
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


# lxml parsers are not thread-safe but are cheap to reuse within a thread; the hub's
# workers are single-threaded (processes), so one module-level parser is fine.
_PARSER = _make_parser()


def _refuse_leading_bytes(data: bytes) -> None:
    """A package must start with its XML declaration or root element (after an optional UTF-8 BOM;
    whitespace before a root without declaration is XML). Some senders prepend bytes (the SDK's
    own sample starts with ``1212``), which libxml2 reports only as "Start tag expected"."""
    body = bytes(data[:4096])
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    at = body.find(b"<")
    if at <= 0:
        return  # starts with markup, or has none at all (libxml2's message says so)
    declaration = body[at:].startswith(b"<?xml")
    if not body[:at].strip() and not declaration:
        return
    what = "the XML declaration" if declaration else "the root element"
    preview = body[:min(at, 16)].decode("utf-8", "replace")
    raise ParseError(
        f"{at} byte(s) before {what} ({preview!r}); the package must start with <?xml or its root element: "
        "remove what the sending software put in front of it",
        code="parse.not_xml", element="XML declaration" if declaration else "edXML",
    )


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise :class:`ParseError`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ParseError("package must be bytes", code="parse.not_xml")
    if len(data) > max_bytes:
        raise ParseError(
            f"package is {len(data):,} bytes, over the {max_bytes:,}-byte cap; "
            "send large attachments as separate packages or ask the operator to raise HUB_MAX_PACKAGE_BYTES",
            code="parse.too_large",
        )
    # A DOCTYPE is refused before parsing: libxml2 would otherwise read the internal subset.
    head = bytes(data[:4096]).lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"<!" in head and (b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper()):
        raise ParseError("a DOCTYPE is present; edXML packages must not declare a DTD or entities", code="parse.doctype")
    _refuse_leading_bytes(data)
    try:
        root = etree.fromstring(bytes(data), parser=_PARSER)
    except etree.XMLSyntaxError as e:
        raise ParseError(f"not well-formed XML: {e.msg} (line {e.lineno})", code="parse.not_xml") from e
    except ValueError as e:
        raise ParseError(f"not well-formed XML: {e}", code="parse.not_xml") from e
    if root is None:
        raise ParseError("empty document", code="parse.not_xml")
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ParseError("a DOCTYPE is present; edXML packages must not declare a DTD or entities", code="parse.doctype")
    # The first XInclude element or entity reference in document order; lxml matches the tags
    # in C (a Python loop over every node cost as much as the parse).
    for el in root.iter(_XINCLUDE_ANY, etree.Entity):
        if el.tag is etree.Entity:
            raise ParseError("entity references are not allowed", code="parse.doctype")
        raise ParseError("XInclude elements are not allowed", code="parse.xinclude", element=el.tag)
    if root.tag != f"{{{EDXML_NS}}}edXML":
        raise ParseError(
            f"root element is {root.tag!r}; expected edXML in namespace {EDXML_NS}",
            code="parse.not_edxml",
            element=str(root.tag),
        )
    return root
