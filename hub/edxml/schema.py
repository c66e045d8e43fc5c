"""Schema validation of edXML packages against the hub's XSDs (``schemas/v1``).

The hot path is :meth:`SchemaValidator.validate`: libxml2 (lxml) validation of an already
parsed tree against an XSD compiled once, then the structural rules XSD 1.0 cannot express
(:mod:`hub.edxml.structure`: which MessageHeader children an edoc or a status needs, a status
package has no body and no attachments, ...). An element the schemas do not declare anywhere
is refused as ``schema.unknown_element``, naming it. A failure raises on the *first* error
with a stable reason code and a message that names the failing element the way an
integrator reads it (``To/OrganId '28.22.H17' is not a valid agency code ...``), without
namespace clutter.

:func:`explain` is the slow, thorough path for ``hub check --explain``: it validates with the
``xmlschema`` package (imported and compiled lazily, once) and lists *all* errors.

Untrusted bytes are only ever parsed by :func:`hub.edxml.parser.parse_xml`.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from pathlib import Path
from typing import Any

from lxml import etree

from hub.constants import DSIG_NS, EDXML_NS
from hub.errors import HubError, SchemaError, SignatureError
from hub.edxml.parser import parse_xml
from hub.edxml.paths import local_name, readable_path, short_path
from hub.edxml.structure import problems

__all__ = ["SchemaValidator", "default_schema_dir", "default_validator", "explain", "readable_path"]

ROOT_XSD = "edxml.xsd"
_Q = "{" + EDXML_NS + "}"
_MAX_VALUE_CHARS = 80  # longer values are not quoted in messages (base64, long text)

# What each constrained element must look like, for messages ("<short path> '<value>' <rule>").
_RULES: dict[str, str] = {
    "OrganId": "is not a valid agency code (NNN.NN.NN.Xnn, e.g. 000.00.00.G22)",
    "DocumentId": (
        "is not a valid DocumentId (a non-empty identifier without surrounding whitespace, usually "
        "{sender OrganId},{yyyy/MM/dd},{number/notation}, e.g. 000.00.00.G22,2015/09/30,7816/VPCP-TTĐT)"
    ),
    "TraceHeader/OrganId": "is not a valid trace OrganId (a non-empty identifier without surrounding whitespace)",
    "PromulgationDate": "is not a date in yyyy/MM/dd form (e.g. 2015/09/30)",
    "DueDate": "is not a date in yyyy/MM/dd form (e.g. 2015/09/30)",
    "Timestamp": "is not a timestamp in yyyy/MM/dd HH:mm:ss form (e.g. 2015/09/30 14:05:00)",
    "Priority": "is not a valid priority (0 normal, 1 urgent, 2 very urgent, 3 express, 4 express at a set time)",
    "StatusCode": "is not a valid status code (01, 02, 03, 04, 05, 06, 13, 15 or 16)",
    "BussinessDocType": "is not a valid BussinessDocType (0 new, 1 revocation, 2 update, 3 replacement)",
    "ReceiverType": "is not a valid ReceiverType (0 removed, 1 added)",
    "SteeringType": "is not a valid SteeringType (0 to 3)",
    "Paper": "is not a valid Paper flag (0 or 1)",
    "Type": "is not a valid document type code (1 to 3 digits)",
    "PromulgationAmount": "is not a non-negative integer",
    "PageAmount": "is not a non-negative integer",
    "Direction": "is not a boolean (true, false, 1 or 0)",
    "ContentTransferEncoded": "is not valid base64",
    "ContentId": "must not be empty",
}

# libxml2 error types that mean "this element's text is not a valid value of its type".
_VALUE_ERROR_MARKERS = ("PATTERN", "ENUMERATION", "DATATYPE", "INCLUSIVE", "EXCLUSIVE", "LENGTH", "DIGITS", "FACET")

_MSG_ELEMENT = re.compile(r"^Element '(?:\{(?P<ns>[^}]*)\})?(?P<local>[^']+)'")
_MSG_PREFIX = re.compile(r"^Element '[^']*'(?:, attribute '[^']*')?: ")
_MSG_KEYSEQ = re.compile(r"key-sequence \['(?P<value>.*)'\]")
_MSG_CONSTRAINT = re.compile(r"(?:keyref|identity-constraint) '(?:\{[^}]*\})?(?P<name>[^']+)'")
_PATH_STEP = re.compile(r"^(?:(?P<prefix>[^:\[\]/]+):)?(?P<name>[^:\[\]/]+)(?:\[(?P<idx>[0-9]+)\])?$")

# The identity constraints of edxml.xsd, for messages.
_IDC_MESSAGES = {
    "ReferenceHasAttachment": (
        "ContentId {value} is listed in the edXMLManifest but no AttachmentEncoded/Attachment has that ContentId"
    ),
    "AttachmentHasReference": (
        "ContentId {value} is not listed in the edXMLManifest (an orphan attachment: "
        "every Attachment needs a manifest Reference with the same ContentId)"
    ),
    "ReferenceContentId": "ContentId {value} is used by more than one manifest Reference (ContentIds must be unique)",
    "AttachmentContentId": "ContentId {value} is used by more than one Attachment (ContentIds must be unique)",
}


def default_schema_dir() -> Path:
    """``$HUB_SCHEMA_DIR`` if set, else ``schemas/v1`` at the top of the repository."""
    env = os.environ.get("HUB_SCHEMA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "schemas" / "v1"


class SchemaValidator:
    """Validates parsed edXML trees against ``<schema_dir>/edxml.xsd``.

    The XSD is compiled once, in the constructor (with lxml); construct one per process and
    reuse it. ``validate`` is serialised by a lock because a compiled lxml schema keeps its
    error log on the object; the lock costs well under a microsecond uncontended.
    """

    def __init__(self, schema_dir: str | os.PathLike[str] | None = None) -> None:
        self.schema_dir = Path(schema_dir) if schema_dir is not None else default_schema_dir()
        self.schema_path = self.schema_dir / ROOT_XSD
        # Our own, trusted files: still no network and no entity expansion.
        xsd_parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
        try:
            xsd_doc = etree.parse(str(self.schema_path), parser=xsd_parser)
            self._schema = etree.XMLSchema(xsd_doc)
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as e:
            raise RuntimeError(f"cannot compile the edXML schema {self.schema_path}: {e}") from e
        self.known_names = _declared_names(self.schema_dir)
        self._lock = threading.Lock()
        self._xmlschema: Any = None  # the xmlschema.XMLSchema10 for explain(), built lazily
        self._xmlschema_lock = threading.Lock()

    # ---------------------------------------------------------------- hot path

    def validate(self, root: etree._Element) -> None:
        """Raise :class:`SchemaError` (or :class:`SignatureError`) on the first problem.

        ``root`` is the ``edXML`` element returned by :func:`hub.edxml.parser.parse_xml`.
        """
        with self._lock:
            if self._schema.validate(root):
                entry = None
            else:
                entry = next(iter(self._schema.error_log), None)
        if entry is not None:
            raise _error_from_entry(root, entry, self.known_names)
        found = problems(root)
        if found:
            first = found[0]
            raise SchemaError(first.message, code=first.code, element=first.path)

    def is_valid(self, root: etree._Element) -> bool:
        """True when :meth:`validate` would not raise."""
        try:
            self.validate(root)
        except HubError:
            return False
        return True

    # ---------------------------------------------------------------- explain (slow path)

    def _xmlschema_schema(self) -> Any:
        with self._xmlschema_lock:
            if self._xmlschema is None:
                import xmlschema  # lazy: only hub check --explain needs it

                # allow="sandbox": the schema may only include files under its own directory.
                self._xmlschema = xmlschema.XMLSchema10(str(self.schema_path.resolve()), allow="sandbox")
            return self._xmlschema

    def explain(self, data: bytes) -> list[str]:
        """Every problem in ``data``, one readable line each (empty list: the package is valid).

        Uses the ``xmlschema`` package, which reports all errors where libxml2 is only used
        for the first one, then adds the hub's rules outside the XSD (Signature namespace,
        status package without body/attachments). For ``hub check --explain``, not the hot path.
        """
        try:
            root = parse_xml(data)
        except HubError as e:
            return [f"[{e.code}] {e.message}"]
        schema = self._xmlschema_schema()
        import xmlschema

        # The tree is already parsed; allow="none" keeps xmlschema from loading anything
        # (it ignores xsi:schemaLocation hints by default, too).
        resource = xmlschema.XMLResource(root, allow="none")
        errors = list(schema.iter_errors(resource))
        lines = [_explain_line(err, self.known_names) for err in errors]
        for el in root.iter():
            if isinstance(el.tag, str) and _foreign_signature(el):
                lines.append(f"{readable_path(el)}: [signature.not_xmldsig] {_not_xmldsig_message(el)}")
        if not errors:  # the structural rules assume an XSD-valid tree
            lines += [f"{p.path}: [{p.code}] {p.message}" for p in problems(root)]
        return lines


@functools.lru_cache(maxsize=1)
def default_validator() -> SchemaValidator:
    """The process-wide validator over :func:`default_schema_dir` (compiled on first use)."""
    return SchemaValidator()


def explain(data: bytes, schema_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """All errors of the package ``data`` with their paths (see :meth:`SchemaValidator.explain`)."""
    validator = default_validator() if schema_dir is None else SchemaValidator(schema_dir)
    return validator.explain(data)


# ==================================================================== helpers


_local = local_name
_short = short_path


def _quoted_value(el: etree._Element) -> str:
    """``'value'`` when short (line breaks and tabs escaped), else a length note."""
    text = el.text or ""
    if len(el):  # mixed or element content: there is no single value to show
        return ""
    if len(text) <= _MAX_VALUE_CHARS:
        return "'" + text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t") + "'"
    return f"({len(text):,} characters)"


def _clean_libxml_message(message: str) -> str:
    """A libxml2 message without the ``Element '{ns}x':`` prefix and namespace clutter."""
    m = _MSG_PREFIX.sub("", message.strip(), count=1)
    m = m.replace("{" + DSIG_NS + "}*", "an XML-DSig element (ds:Signature)")
    m = m.replace("{" + EDXML_NS + "}", "").replace("{" + DSIG_NS + "}", "ds:")
    m = m.replace("This element is not expected.", "is not expected here.")
    m = m.replace("Missing child element(s).", "is missing a required child element.")
    m = re.sub(r"Expected is one of \( (.*?) \)\.", r"Expected one of: \1.", m)
    m = re.sub(r"Expected is \( (.*?) \)\.", r"Expected: \1.", m)
    return m


def _resolve_libxml_path(root: etree._Element, path: str | None) -> etree._Element | None:
    """The element a libxml2 ``xmlGetNodePath`` path points at, or None.

    libxml2 writes prefixed steps as ``prefix:name[i]`` (index among same-named siblings
    with the same prefix) and default-namespace steps as ``*[i]`` (index among all element
    siblings); the index is omitted when there is only one candidate.
    """
    if not path or not path.startswith("/"):
        return None
    steps = path[1:].split("/")
    cur = root
    for step in steps[1:]:  # steps[0] is the root element itself
        m = _PATH_STEP.match(step)
        if m is None:
            return None
        prefix, name, idx = m.group("prefix"), m.group("name"), int(m.group("idx") or 1)
        n = 0
        for child in cur:
            if not isinstance(child.tag, str):
                continue
            if name == "*" and prefix is None:
                match = True
            elif prefix is not None:
                match = child.prefix == prefix and _local(child) == name
            else:
                match = child.prefix is None and child.tag == name  # no namespace
            if match:
                n += 1
                if n == idx:
                    cur = child
                    break
        else:
            return None
    return cur


def _failing_element(root: etree._Element, entry: Any) -> etree._Element:
    """The element a libxml2 error entry is about (by path, else by name and line)."""
    m = _MSG_ELEMENT.match(entry.message or "")
    local = m.group("local") if m else None
    el = _resolve_libxml_path(root, entry.path)
    if el is not None and (local is None or _local(el) == local):
        return el
    if local is not None:
        candidates = [e for e in root.iter() if isinstance(e.tag, str) and _local(e) == local]
        # Identity-constraint errors come without a path: prefer the one holding the value.
        kv = _MSG_KEYSEQ.search(entry.message or "")
        if kv is not None:
            value = kv.group("value")
            for cand in candidates:
                cid = cand.find(_Q + "ContentId")
                if cid is not None and (cid.text or "") == value and cand.sourceline == entry.line:
                    return cand
            for cand in candidates:
                cid = cand.find(_Q + "ContentId")
                if cid is not None and (cid.text or "") == value:
                    return cand
        for cand in candidates:
            if cand.sourceline == entry.line:
                return cand
        if candidates:
            return candidates[0]
    return root


def _rule(el: etree._Element) -> str | None:
    """What ``el``'s value must look like: by ``Parent/Name`` first, then by name."""
    parent = el.getparent()
    if parent is not None:
        rule = _RULES.get(f"{_local(parent)}/{_local(el)}")
        if rule is not None:
            return rule
    return _RULES.get(_local(el))


def _declared_names(schema_dir: Path) -> frozenset[str]:
    """Every element name the XSDs declare: what the hub knows (the rest is unknown)."""
    names: set[str] = set()
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    for xsd in sorted(schema_dir.glob("*.xsd")):
        doc = etree.parse(str(xsd), parser=parser)
        names.update(el.get("name") for el in doc.iter("{http://www.w3.org/2001/XMLSchema}element") if el.get("name"))
    return frozenset(names)


def _is_unknown(el: etree._Element, known: frozenset[str]) -> bool:
    """An element in no namespace the hub reads, or with a name no XSD declares."""
    return etree.QName(el).namespace != EDXML_NS or _local(el) not in known


def _unknown_message(el: etree._Element) -> str:
    ns = etree.QName(el).namespace
    where = "" if ns == EDXML_NS else f" (namespace {ns})" if ns else " (no namespace)"
    parent = el.getparent()
    inside = _local(parent) if parent is not None else "the package"
    return (
        f"{_short(el)}{where} is not an element the hub knows: edXML (QCVN 102:2016 and the national SDK's "
        f"optional elements) has no {_local(el)} in {inside}; remove it or correct its name"
    )


def _foreign_signature(el: etree._Element) -> bool:
    """A Signature in neither the XML-DSig nor the edXML namespace (nor inside a ds:Signature)."""
    return (
        _local(el) == "Signature"
        and etree.QName(el).namespace not in (DSIG_NS, EDXML_NS)
        and not any(etree.QName(a).namespace == DSIG_NS or _local(a) == "Signature" for a in el.iterancestors())
    )


def _not_xmldsig_message(el: etree._Element) -> str:
    ns = etree.QName(el).namespace
    where = f"namespace {ns}" if ns else "no namespace"
    return (
        f"{_short(el)} is in {where}; the Signature must be an XML-DSig element in namespace "
        f"{DSIG_NS} (declare xmlns=\"{DSIG_NS}\" on Signature, or use a ds: prefix bound to it)"
    )


def _error_from_entry(root: etree._Element, entry: Any, known: frozenset[str] = frozenset()) -> HubError:
    """Turn the first libxml2 validation error into a hub refusal."""
    el = _failing_element(root, entry)
    local = _local(el)
    path = readable_path(el)
    short = _short(el)
    type_name = entry.type_name or ""

    # A Signature in no namespace or a foreign one (the SDK's, in the edXML namespace, is
    # declared in the XSD and judged by the signature step): say so precisely.
    if local == "Signature" and etree.QName(el).namespace not in (DSIG_NS, EDXML_NS):
        return SignatureError(_not_xmldsig_message(el), code="signature.not_xmldsig", element=path)

    # An element no schema declares: name it, never drop it silently.
    if "not expected" in (entry.message or "") and known and _is_unknown(el, known):
        return SchemaError(_unknown_message(el), code="schema.unknown_element", element=path)

    # Manifest <-> attachment correspondence (xs:key / xs:keyref on the root).
    if type_name == "SCHEMAV_CVC_IDC":
        cm = _MSG_CONSTRAINT.search(entry.message or "")
        kv = _MSG_KEYSEQ.search(entry.message or "")
        template = _IDC_MESSAGES.get(cm.group("name")) if cm else None
        if template is not None:
            value = f"'{kv.group('value')}'" if kv else ""
            message = f"{short}: " + template.format(value=value).replace("  ", " ")
        else:
            message = f"{short}: {_clean_libxml_message(entry.message)}"
        return SchemaError(message, code="schema.manifest_mismatch", element=path)

    # A value that does not fit its type (pattern, enumeration, base64, range...).
    if any(marker in type_name for marker in _VALUE_ERROR_MARKERS):
        value = _quoted_value(el)
        rule = _rule(el)
        if rule is None:
            rule = f"is not valid: {_clean_libxml_message(entry.message)}"
        message = f"{short} {value} {rule}" if value else f"{short} {rule}"
        code = "schema.agency_code" if rule == _RULES["OrganId"] else "schema.invalid"
        return SchemaError(message, code=code, element=path)

    # Structure: unexpected, missing or misplaced elements, attributes, element content...
    detail = _clean_libxml_message(entry.message)
    message = f"{short} {detail}" if detail.startswith("is ") else f"{short}: {detail}"
    return SchemaError(message, code="schema.invalid", element=path)


def _explain_line(err: Any, known: frozenset[str] = frozenset()) -> str:
    """One xmlschema validation error as ``path: [value rule] reason (line N)``."""
    path = (err.path or "/").replace("edXML:", "").lstrip("/")  # the edXML prefix is clutter
    reason = (err.reason or str(err)).replace("{" + EDXML_NS + "}", "").replace("{" + DSIG_NS + "}", "ds:")
    elem = getattr(err, "elem", None)
    line = getattr(elem, "sourceline", None) if elem is not None else None
    where = f" (line {line})" if line else ""
    # xmlschema reports an unexpected child on its parent; name an undeclared one as such.
    if elem is not None and known and isinstance(elem.tag, str):
        for child in elem:
            if isinstance(child.tag, str) and _is_unknown(child, known) and not _foreign_signature(child) \
                    and _local(child) in reason:
                at = f" (line {child.sourceline})" if child.sourceline else where
                return f"{readable_path(child)}: [schema.unknown_element] {_unknown_message(child)}{at}"
    if elem is not None and isinstance(elem.tag, str) and len(elem) == 0:
        local = _local(elem)
        rule = _rule(elem)
        if rule is not None and path.rpartition("/")[2].split("[")[0] == local:
            value = _quoted_value(elem)
            return f"{path}: {value} {rule} ({reason}){where}".replace(":  ", ": ")
    return f"{path}: {reason}{where}"
