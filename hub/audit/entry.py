"""The canonical bytes of one audit entry: what the Merkle leaf hash covers.

``canonical_entry(...)`` turns a row of the ``records`` table into bytes that any two
implementations produce identically; ``entry_leaf(...)`` is ``SHA-256(0x00 || those bytes)``,
the leaf of the transparency log (``hub.audit.merkle``). An auditor re-implementing this in
another language needs only the rules below.

Value
    A JSON object with exactly these eleven members (no others, none omitted)::

        "v"            1 (the version of this encoding)
        "seq"          integer, the record's sequence number
        "at"           string "YYYY-MM-DDTHH:MM:SS.ffffffZ": the time in UTC, always six
                       fractional digits, a literal "Z"; the year has four digits.
                       A datetime without a time zone is taken as UTC.
        "event"        string
        "actor", "document_id", "sender", "sha256", "reason", "message"
                       string, or null when absent
        "details"      object, or null when absent; its values are objects, arrays,
                       strings, numbers, true, false or null, nested to any depth

    Strings are carried as they are (no trimming, case folding or Unicode normalisation).

Serialisation (RFC 8785 "JCS", except that integers are exact)
    * No whitespace at all outside strings.
    * Object members are sorted by key, comparing keys as sequences of UTF-16 code units
      (RFC 8785 section 3.2.3). Keys are unique. The top-level order is therefore
      actor, at, details, document_id, event, message, reason, sender, seq, sha256, v.
    * Strings: ``"`` and ``\\`` are written ``\\"`` and ``\\\\``; U+0008, U+0009, U+000A,
      U+000C, U+000D are written ``\\b \\t \\n \\f \\r``; the other characters below U+0020 are
      written ``\\u00XX`` with lowercase hex; every other character, including U+007F and all
      non-ASCII, is written literally. Lone surrogates are refused.
    * Integers: decimal, a leading ``-`` when negative, no leading zeros, no exponent, exact
      at any magnitude (JCS would round beyond 2^53; within +-2^53 the two agree).
    * Non-integer numbers (Python floats): finite only, written as ECMAScript's
      ``Number.prototype.toString`` does (RFC 8785 section 3.2.2.3): the shortest digits
      that round-trip, ``-0`` as ``0``, integral values without a fraction (``2``, not
      ``2.0``), exponent form ``1e+21`` / ``1e-7`` only when the decimal exponent is >= 21
      or < -6. So 2 and 2.0 encode alike, as JSON means them to.
    * ``true``, ``false``, ``null``.
    * The whole text is encoded as UTF-8, without a byte order mark.

Example (``seq=1, at=2024-05-01 12:00 UTC, event="accepted"``, everything else null)::

    {"actor":null,"at":"2024-05-01T12:00:00.000000Z","details":null,"document_id":null,
    "event":"accepted","message":null,"reason":null,"sender":null,"seq":1,"sha256":null,"v":1}

(on one line). Values that JSON cannot carry faithfully (NaN, infinities, non-string keys,
bytes, datetimes inside ``details``, lone surrogates) raise ``hub.errors.UsageError``
rather than being coerced, so whatever was hashed is what the database holds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from json.encoder import encode_basestring as _string  # the C escaper json.dumps uses: the JCS rules above

from hub.audit.merkle import _sha256, leaf_hash
from hub.errors import UsageError

VERSION = 1
_OPTIONAL = ("actor", "document_id", "sender", "sha256", "reason", "message")


def canonical_entry(
    seq: int,
    at: datetime,
    event: str,
    actor: str | None,
    document_id: str | None,
    sender: str | None,
    sha256: str | None,
    reason: str | None,
    message: str | None,
    details: dict | None,
) -> bytes:
    """The canonical UTF-8 bytes of one audit entry (see the module docstring)."""
    return _canonical(seq, at, event, actor, document_id, sender, sha256, reason, message, canonical_details(details))


def _canonical(seq: int, at: datetime, event: str, actor, document_id, sender, sha256, reason, message,
               details: str) -> bytes:
    """``canonical_entry`` with the details already written as their canonical text."""
    if type(seq) is bool or not isinstance(seq, int):
        raise UsageError(f"audit entry seq must be an integer, not {type(seq).__name__}")
    if not isinstance(event, str):
        raise UsageError(f"audit entry event must be a string, not {type(event).__name__}")
    optional = (actor, document_id, sender, sha256, reason, message)
    if not all(value is None or isinstance(value, str) for value in optional):
        name, value = next((n, v) for n, v in zip(_OPTIONAL, optional) if v is not None and not isinstance(v, str))
        raise UsageError(f"audit entry {name} must be a string or None, not {type(value).__name__}")
    body = _text(seq, utc_timestamp(at), event, actor, document_id, sender, sha256, reason, message, details)
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UsageError("audit entry holds a lone surrogate, which UTF-8 cannot carry") from e


def canonical_details(details: Mapping | None) -> str:
    """The canonical text of ``details`` inside the entry (``null`` when absent): what
    ``hub.audit.log`` stores in ``records.details``, so that ``spliced_entry_leaf`` can hash
    the stored text as it is."""
    if details is None:
        return "null"
    if not isinstance(details, Mapping):
        raise UsageError(f"audit entry details must be a mapping or None, not {type(details).__name__}")
    return _object(details)


def _text(seq: int, stamp: str, event: str, actor, document_id, sender, sha256, reason, message,
          details: str) -> str:
    """The canonical text of a checked entry, its time and details already written."""
    null = "null"
    return (
        f'{{"actor":{null if actor is None else _string(actor)}'
        f',"at":"{stamp}"'
        f',"details":{details}'
        f',"document_id":{null if document_id is None else _string(document_id)}'
        f',"event":{_string(event)}'
        f',"message":{null if message is None else _string(message)}'
        f',"reason":{null if reason is None else _string(reason)}'
        f',"sender":{null if sender is None else _string(sender)}'
        f',"seq":{int.__repr__(seq)}'
        f',"sha256":{null if sha256 is None else _string(sha256)}'
        f',"v":{VERSION}}}'
    )


def entry_leaf(
    seq: int,
    at: datetime,
    event: str,
    actor: str | None,
    document_id: str | None,
    sender: str | None,
    sha256: str | None,
    reason: str | None,
    message: str | None,
    details: dict | None,
) -> bytes:
    """The Merkle leaf hash of one entry: ``leaf_hash(canonical_entry(...))``."""
    return leaf_hash(canonical_entry(seq, at, event, actor, document_id, sender, sha256, reason, message, details))


def leaf_and_details(
    seq: int,
    at: datetime,
    event: str,
    actor: str | None,
    document_id: str | None,
    sender: str | None,
    sha256: str | None,
    reason: str | None,
    message: str | None,
    details: dict | None,
) -> tuple[bytes, str]:
    """``entry_leaf(...)`` and ``canonical_details(details)``: what an append hashes and what it
    stores, the details written once for both."""
    text = canonical_details(details)
    return leaf_hash(_canonical(seq, at, event, actor, document_id, sender, sha256, reason, message, text)), text


class _NotPlain(Exception):
    """Details text holding a number with a fraction or exponent, NaN or an infinity."""


def _not_plain(_text: str):
    raise _NotPlain


# json.loads that refuses every non-integer number (their JCS text is not Python's repr) ...
_PLAIN_JSON = json.JSONDecoder(parse_float=_not_plain, parse_constant=_not_plain).decode
# ... and the C encoder, which then writes exactly the JCS text above: the same string escaper
# (encode_basestring), int.__repr__, members sorted by code point (= UTF-16 order without
# characters beyond U+FFFF), no whitespace.
_C_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False,
                           check_circular=False).encode
try:  # the same C encoder made once rather than per entry (JSONEncoder.encode builds it per call)
    _iterencode = json.encoder.c_make_encoder(None, None, _string, None, ":", ",", True, False, False)
    if "".join(_iterencode({"b": [1, None, True], "a": "é\n"}, 0)) == _C_JSON({"b": [1, None, True], "a": "é\n"}):
        def _C_JSON(value) -> str:  # noqa: F811 - the faster one where this Python has it
            return "".join(_iterencode(value, 0))
except (AttributeError, TypeError):
    pass
_ASTRAL_OR_ESCAPED_SURROGATE = re.compile(r"[\U00010000-\U0010FFFF]|\\u[dD][89abAB]")
_UTC = timezone.utc
_AT = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def stored_entry_leaf(
    seq: int,
    at: datetime,
    event: str,
    actor: str | None,
    document_id: str | None,
    sender: str | None,
    sha256: str | None,
    reason: str | None,
    message: str | None,
    details_json: str | None,
) -> bytes:
    """``entry_leaf`` of a row as PostgreSQL returns it (its columns' types, details as the
    stored JSON text), the same bytes about twice as fast: when the details hold no
    non-integer number, no character beyond U+FFFF and no escaped surrogate, and are an
    object, they are written by the C JSON encoder instead of ``_object``, without the type
    checks the columns' types make needless; anything else goes through ``entry_leaf``
    (which refuses what it refuses)."""
    if details_json is not None:
        try:
            details = _PLAIN_JSON(details_json)
        except _NotPlain:
            return entry_leaf(seq, at, event, actor, document_id, sender, sha256, reason, message,
                              json.loads(details_json))
        if type(details) is not dict or ((not details_json.isascii() or "\\u" in details_json)
                                         and _ASTRAL_OR_ESCAPED_SURROGATE.search(details_json)):
            return entry_leaf(seq, at, event, actor, document_id, sender, sha256, reason, message, details)
    else:
        details = None
    leaf = _row_leaf(seq, at, event, actor, document_id, sender, sha256, reason, message,
                     "null" if details is None else _C_JSON(details))
    if leaf is None:  # a lone surrogate: entry_leaf says so
        return entry_leaf(seq, at, event, actor, document_id, sender, sha256, reason, message, details)
    return leaf


def spliced_entry_leaf(
    seq: int,
    at: datetime,
    event: str,
    actor: str | None,
    document_id: str | None,
    sender: str | None,
    sha256: str | None,
    reason: str | None,
    message: str | None,
    details_json: str | None,
) -> bytes:
    """The leaf of a row as PostgreSQL returns it, hashing its stored details text as it is,
    in place of their canonical text: about twice as fast as ``stored_entry_leaf`` (no JSON
    parsed or written), and the entry's leaf exactly when that text *is* the canonical one
    (as ``hub.audit.log`` writes it). A caller may take a row as verified when this equals
    the stored leaf hash, and must recompute with ``stored_entry_leaf`` when it does not
    (other writers, older rows, or tampering).

    Why a match proves the row: every other member is written by ``_text`` (a JSON string
    token from the C escaper, ``null``, an integer or the fixed-width time), so the entry's
    text read forwards fixes actor and time, read backwards from ``,"v":1}`` fixes sha256 ..
    document_id (a quote inside a string token is always escaped; the members' own quotes
    never are), and the stored details text is whatever lies between: when the hash equals
    the leaf, that text is byte for byte the canonical details the leaf was made of, which
    parse back to the same value."""
    leaf = _row_leaf(seq, at, event, actor, document_id, sender, sha256, reason, message,
                     "null" if details_json is None else details_json)
    return b"" if leaf is None else leaf  # a lone surrogate: not a leaf hub.audit.log could have made


def _row_leaf(seq: int, at: datetime, event: str, actor, document_id, sender, sha256, reason, message,
              details: str) -> bytes | None:
    """The leaf of a row's columns with its details already written as text (the two fast paths
    above); None when the text holds a lone surrogate, which UTF-8 cannot carry."""
    if at.tzinfo is _UTC or at.tzinfo is None:
        stamp = _AT % (at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond)
    else:
        stamp = utc_timestamp(at)
    text = _text(seq, stamp, event, actor, document_id, sender, sha256, reason, message, details)
    try:
        return _sha256(b"\x00" + text.encode("utf-8")).digest()
    except UnicodeEncodeError:
        return None


def utc_timestamp(at: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; a naive datetime is taken as UTC already."""
    if not isinstance(at, datetime):
        raise UsageError(f"audit entry time must be a datetime, not {type(at).__name__}")
    if at.utcoffset() is not None:
        at = at.astimezone(timezone.utc).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds") + "Z"


def _value(value: object) -> str:
    """JCS text of one JSON value from ``details`` (recursive)."""
    kind = type(value)  # exact-type fast paths first: this runs for every entry of the log
    if kind is str:
        return _string(value)
    if kind is dict:
        return _object(value)
    if kind is int:
        return int.__repr__(value)
    if kind is list:
        return "[" + ",".join([_value(item) for item in value]) + "]"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return es_number(value)
    if isinstance(value, Mapping):
        return _object(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([_value(item) for item in value]) + "]"
    raise UsageError(f"audit entry details cannot hold a {type(value).__name__} (JSON values only)")


def _object(mapping: Mapping) -> str:
    keys = list(mapping)
    if all(type(key) is str and key.isascii() for key in keys):
        keys.sort()  # ASCII: code point order is UTF-16 order
    else:
        for key in keys:
            if not isinstance(key, str):
                raise UsageError(f"audit entry details keys must be strings, not {type(key).__name__}")
        keys.sort(key=_utf16_key)
    return "{" + ",".join([_string(key) + ":" + _value(mapping[key]) for key in keys]) + "}"


def _utf16_key(key: str) -> bytes:
    try:
        return key.encode("utf-16-be")  # bytewise order of UTF-16BE = code unit order
    except UnicodeEncodeError as e:
        raise UsageError("audit entry details key holds a lone surrogate") from e


def es_number(x: float) -> str:
    """A finite float as ECMAScript ``Number.prototype.toString`` writes it (RFC 8785 3.2.2.3)."""
    if not math.isfinite(x):
        raise UsageError(f"audit entry details cannot hold {x!r} (not a finite number)")
    if x == 0:
        return "0"  # also -0
    # Python's repr gives the shortest round-trip digits, as ECMAScript requires; only the
    # layout differs. Normalise to value = 0.DIGITS x 10^point with no leading/trailing zeros.
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    digits = significant.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return "-" + text if x < 0 else text
