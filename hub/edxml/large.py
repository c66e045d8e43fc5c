"""Large packages checked without a tree of their attachments: base64 runs lifted out of the bytes.

A scanned dossier is one huge ``ContentTransferEncoded`` text node. Parsing it costs a copy of
the package in libxml2's tree, canonicalising it another, re-parsing the canonical bytes a
third: about 4x the package in memory (measured: 884 MB peak for 200 MB). Yet nothing reads
that text but the digest, and base64 text is canonical as written: C14N escapes only ``&``,
``<``, ``>`` and CR in text, none of which base64 has.

So :func:`lift` finds each run of base64 text between ``>`` and ``<`` longer than
:data:`MIN_RUN` in the raw bytes, and replaces all of it but its final quantum (the last four
base64 characters, which carry the padding) with a unique token. The small document is parsed,
validated (the token is base64 too, so ``xs:base64Binary`` judges the same quantum) and
verified as usual; only the Reference digest is computed over the canonical bytes with each
token replaced by its run, streamed into the hash from the original bytes (:meth:`Lifted.digest`),
never joined.

Safety: a run is lifted only when it is plain base64 (alphabet, space, tab, LF: no ``&``, no
CR, no ``=`` before the final quantum), the token occurs nowhere in the package, and the
parsed small tree has the token as the whole text of an
``AttachmentEncoded/Attachment/ContentTransferEncoded`` element, and nowhere else. Anything
else (a run in a comment, a PI, another element, another encoding) makes :func:`lift` return
None and the package takes the ordinary path. The caller accepts a lifted check only when the
fast XML-DSig path used the lifted digest (:attr:`Lifted.used`), and re-checks every refusal
on the ordinary path, so the lean path can only ever accept what the ordinary path accepts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from lxml import etree

from hub.constants import EDXML_NS

MIN_RUN = 1024 * 1024  # shorter runs are cheap to keep in the tree
LEAN_FROM = 4 * 1024 * 1024  # packages below this size take the ordinary path (nothing to win)
_B64_BODY = re.compile(rb"[A-Za-z0-9+/ \t\n]*")  # base64 without padding, with XML whitespace but CR
_QUANTUM_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_WS = b" \t\n"
_E = "{" + EDXML_NS + "}"
_CTE_PATH = (_E + "ContentTransferEncoded", _E + "Attachment", _E + "AttachmentEncoded", _E + "edXML")


@dataclass
class Run:
    token: bytes  # what stands in the small document for data[start:end]
    start: int
    end: int
    stripped: int  # length of the whole text node without leading/trailing whitespace

    @property
    def decoded_size(self) -> int:
        return self.stripped * 3 // 4


@dataclass
class Lifted:
    """The small document and where its tokens' bytes are in the original."""

    data: bytes | bytearray | memoryview  # the original package
    small: bytes
    runs: list[Run]
    used: bool = field(default=False)  # set when the fast verifier matched the digest computed through us

    def pieces(self, small: bytes) -> Iterator[memoryview]:
        """``small`` (bytes derived from the small document: its C14N, a relayed copy) with every
        token replaced by its run, as consecutive views: nothing is copied."""
        view = memoryview(small)
        orig = memoryview(self.data)
        at = 0
        for run in self.runs:
            i = small.find(run.token, at)
            if i < 0 or small.find(run.token, i + 1) >= 0:
                raise LookupError("a lifted token is not exactly once in the derived bytes")
            yield view[at:i]
            yield orig[run.start:run.end]
            at = i + len(run.token)
        yield view[at:]

    def digest(self, hash_factory, small_c14n: bytes) -> bytes:
        h = hash_factory()
        for piece in self.pieces(small_c14n):
            h.update(piece)
        return h.digest()

    def derived(self, small: bytes) -> Relayed:
        """``small`` (derived from the small document) as a :class:`Relayed` of this package."""
        return Relayed(small, tuple((r.token, r.start, r.end) for r in self.runs))

    def expand(self, small: bytes) -> bytes:
        """The full bytes of a document derived from the small one (one copy of the package)."""
        return b"".join(self.pieces(small))


@dataclass(frozen=True)
class Relayed:
    """A derived copy of a lifted package (the relayed copy with the hub's TraceHeader) kept small:
    ``small`` with its tokens standing for ``data[start:end]`` of the original package. Small to
    pickle between processes; :meth:`pieces` gives the full bytes against the original, uncopied."""

    small: bytes
    runs: tuple[tuple[bytes, int, int], ...]

    def pieces(self, data: bytes | bytearray) -> Iterator[memoryview]:
        lifted = Lifted(data, b"", [Run(t, s, e, 0) for t, s, e in self.runs])
        return lifted.pieces(self.small)

    def size(self) -> int:
        return len(self.small) + sum(e - s - len(t) for t, s, e in self.runs)

    def expand(self, data: bytes | bytearray) -> bytes:
        return b"".join(self.pieces(data))


_CURRENT: ContextVar[Lifted | None] = ContextVar("hub_lifted", default=None)


def current() -> Lifted | None:
    """The lifted package being checked in this context (read by :mod:`hub.edxml.dsig_fast`)."""
    return _CURRENT.get()


@contextmanager
def checking(lifted: Lifted) -> Iterator[Lifted]:
    token = _CURRENT.set(lifted)
    try:
        yield lifted
    finally:
        _CURRENT.reset(token)


def _stripped_length(data, start: int, end: int) -> int:
    i, j = start, end
    while i < j and data[i] in _WS:
        i += 1
    while j > i and data[j - 1] in _WS:
        j -= 1
    return j - i


def _split_final_quantum(data, start: int, end: int) -> int | None:
    """Index where the last four non-whitespace characters of data[start:end] begin (they stay in
    the small document), or None when the run has no full quantum there."""
    j = end
    seen = 0
    while j > start and seen < 4:
        j -= 1
        c = data[j]
        if c in _WS:
            continue
        if c not in _QUANTUM_CHARS:
            return None
        seen += 1
    return j if seen == 4 else None


def _count_ws(data, start: int, end: int) -> int:
    return sum(data.count(c, start, end) for c in (b" ", b"\t", b"\n"))


def lift(data: bytes | bytearray, *, min_run: int | None = None) -> Lifted | None:
    """The package with its long base64 runs lifted out, or None (take the ordinary path)."""
    min_run = MIN_RUN if min_run is None else min_run
    if not isinstance(data, (bytes, bytearray)):
        return None
    runs: list[tuple[int, int, int]] = []  # (start, split, end): data[start:split] lifted
    pos = 0
    n = len(data)
    while True:
        gt = data.find(b">", pos)
        if gt < 0:
            break
        lt = data.find(b"<", gt + 1)
        if lt < 0:
            break
        start, end = gt + 1, lt
        pos = lt
        if end - start < min_run:
            continue
        split = _split_final_quantum(data, start, end)
        if split is None or split - start < min_run // 2:
            return None
        if _B64_BODY.fullmatch(data, start, split) is None:
            return None  # not plain base64 (an '=', a CR, an entity...): let libxml2 judge it all
        if (split - start - _count_ws(data, start, split)) % 4:
            return None
        runs.append((start, split, end))
        if pos >= n:
            break
    if not runs:
        return None
    parts: list[bytes | memoryview] = []
    lifted: list[Run] = []
    view = memoryview(data)
    at = 0
    for start, split, end in runs:
        while True:  # 40 base64 characters: a multiple of 4, never in the package
            token = b"HUBLIFT" + secrets.token_hex(16).encode().upper() + b"X"
            if data.find(token) < 0:
                break
        parts += [view[at:start], token]
        lifted.append(Run(token, start, split, _stripped_length(data, start, end)))
        at = split
    parts.append(view[at:])
    return Lifted(data, b"".join(parts), lifted)


def confirm(lifted: Lifted, root: etree._Element) -> bool:
    """True when each token is, in the parsed small document, the whole text (before its final
    quantum) of an ``AttachmentEncoded/Attachment/ContentTransferEncoded`` and appears nowhere else."""
    tokens = {r.token.decode("ascii"): r for r in lifted.runs}
    found = 0
    for el in root.iter():
        for text in (el.text, el.tail):
            if text and "HUBLIFT" in text and any(t in text for t in tokens):
                if text is el.tail or not isinstance(el.tag, str):
                    return False
                path = [el.tag, *(a.tag for a in el.iterancestors())]
                if tuple(path) != _CTE_PATH:
                    return False
                t = next(t for t in tokens if t in text)
                if not text.lstrip(" \t\n").startswith(t) or text.count(t) != 1 or sum(x in text for x in tokens) != 1:
                    return False
                found += 1
        if not isinstance(el.tag, str):  # comments, PIs: their text holds no token either
            if el.text and "HUBLIFT" in el.text:
                return False
    return found == len(tokens)


def with_attachment_sizes(package, signed_root: etree._Element, lifted: Lifted):
    """``package`` (read from the small signed document) with its attachments' sizes those of the
    lifted runs, as :func:`hub.edxml.model.read_package` would have read them from the full text."""
    from dataclasses import replace

    attachments = getattr(package, "attachments", ())
    if not attachments:
        return package
    by_cid = {}
    for att in signed_root.findall(f"{_E}AttachmentEncoded/{_E}Attachment"):
        text = att.findtext(f"{_E}ContentTransferEncoded") or ""
        run = next((r for r in lifted.runs if r.token.decode("ascii") in text), None)
        if run is not None:
            by_cid.setdefault((att.findtext(f"{_E}ContentId") or "").strip(), run)
    fixed = tuple(replace(a, size=by_cid[a.content_id].decoded_size) if a.content_id in by_cid else a
                  for a in attachments)
    return replace(package, attachments=fixed)


_HEADER_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?edXMLHeader[\s>/]")
_HEADER_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?edXMLHeader\s*>")
_TAG = re.compile(rb"<(/?)([A-Za-z_][\w.:-]*)(?:\s[^<>]*?)?(/?)>")


def header_only(prefix: bytes) -> bytes | None:
    """The first bytes of a package up to the end of its ``edXMLHeader``, with the elements
    around it (``edXML``, ``edXMLEnvelope``) closed after it: a small document the ordinary
    parser reads the header from, without the (large) body. None when ``prefix`` does not hold
    the whole header. For display only (dead letters): no check ever runs on it."""
    start = _HEADER_START.search(prefix)
    end = _HEADER_END.search(prefix)
    if start is None or end is None or start.start() > end.start():
        return None
    open_: list[bytes] = []
    for m in _TAG.finditer(prefix, 0, start.start()):
        closing, name, empty = m.groups()
        if closing:
            if not open_ or open_.pop() != name:
                return None
        elif not empty:
            open_.append(name)
    return prefix[:end.end()] + b"".join(b"</" + name + b">" for name in reversed(open_))
