"""The VDXP wire format, pure: the signed ``XroadVnpt-*`` headers, the SDK's ``hash-file``,
the body of ``sendEdoc`` and the JSON envelope of every answer.

Written from the SDK's bytecode and a wire capture (``tests/vdxp/test_wire.py`` replays the
capture's headers and HMAC). No I/O: the server hands in the
raw header lines and the system's secret, and gets back the signed parameters or a
:class:`VdxpError` with a stable reason code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from hub.errors import HubError

PREFIX = "XroadVnpt-"
SIGN_HEADER = "XroadVnpt-sign-header"
SIGN_KEYS = "XroadVnpt-sign-header-key"
HASH_HEADER = "XroadVnpt-hash-header"
SYSTEM_ID = "XroadVnpt-systemid"
MAX_SIGN_HEADER = 16 * 1024  # the SDK's header is a few hundred bytes; refuse absurd ones early


class VdxpError(HubError):
    """A refusal answered in the protocol's envelope (``status`` FAIL, ``ErrorCode``, ``ErrorDesc``)."""

    code = "vdxp.bad_request"


def hash_file(data: bytes) -> str:
    """The SDK's ``hash-file``: SHA-256 with each byte as ``Integer.toHexString(b & 0xFF)``,
    i.e. hex WITHOUT zero-padding (0x0a → ``a``). 57–64 characters, lossy but still binding."""
    return "".join(format(b, "x") for b in hashlib.sha256(data).digest())


def file_from_body(body: bytes, signed_hash: str) -> bytes:
    """The file inside a ``sendEdoc`` body: the SDK appends one CRLF that its hash does not cover.
    Whether it was added is decided by the hash; a body matching neither form is refused."""
    want = signed_hash.strip().lower()
    candidates = [body[:-2], body] if body.endswith(b"\r\n") else [body]
    for candidate in candidates:
        if hmac.compare_digest(hash_file(candidate), want) or \
                hmac.compare_digest(hashlib.sha256(candidate).hexdigest(), want):
            return candidate
    raise VdxpError("the body does not match the signed XroadVnpt-hash-file (SHA-256 of the file, "
                    "unpadded hex as the SDK writes it): the file was changed or cut on the way",
                    code="vdxp.hash_file", element="XroadVnpt-hash-file")


def sign(secret: str, sign_header: str) -> str:
    """``XroadVnpt-hash-header``: lowercase hex HMAC-SHA256(secret, sign-header), both UTF-8."""
    return hmac.new(secret.encode("utf-8"), sign_header.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Signed:
    """What a request says, as far as its signature covers it."""

    system_id: str
    sign_header: str  # the exact string the HMAC is over
    hash_header: str
    params: dict[str, str]  # signed members without the XroadVnpt- prefix, in the sender's spelling

    def get(self, name: str, default: str | None = None) -> str | None:
        """A parameter by its exact name, else by any case variant (``docId``/``docid``, PROTOCOL 3.4)."""
        if name in self.params:
            return self.params[name]
        low = name.lower()
        for key, value in self.params.items():
            if key.lower() == low:
                return value
        return default


def _decode(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise VdxpError(f"the {name} header is not UTF-8", code="vdxp.bad_signature", element=name) from None


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate member {key}")
        out[key] = value
    return out


def read_signed(raw_headers: list[tuple[bytes, bytes]]) -> Signed:
    """Step 1 and 3 of PROTOCOL 3.2 before the HMAC: the three headers are there, the signed JSON
    is an object of strings, each member equals the header of the same name, and the key list
    matches ``XroadVnpt-sign-header-key``. Parameters come only from the signed JSON."""
    headers: dict[str, list[str]] = {}
    for name, value in raw_headers:
        key = _decode(name, "header name").lower()
        headers.setdefault(key, []).append(_decode(value, key))

    def one(name: str) -> str:
        values = headers.get(name.lower())
        if not values or not values[0].strip():
            raise VdxpError(f"the {name} header is missing: every VDXP request carries XroadVnpt-systemid, "
                            "XroadVnpt-sign-header and XroadVnpt-hash-header", code="vdxp.auth_missing",
                            element=name)
        if len(values) > 1:
            raise VdxpError(f"the {name} header is sent more than once", code="vdxp.header_mismatch", element=name)
        return values[0]

    system_id = one(SYSTEM_ID).strip()
    sign_header = one(SIGN_HEADER)
    hash_header = one(HASH_HEADER).strip().lower()
    if len(sign_header) > MAX_SIGN_HEADER:
        raise VdxpError("XroadVnpt-sign-header is too long", code="vdxp.header_mismatch", element=SIGN_HEADER)
    return Signed(system_id, sign_header, hash_header, {})


def verify(signed: Signed, raw_headers: list[tuple[bytes, bytes]], secret: str) -> Signed:
    """The HMAC over the sign-header string as received (constant time), then the signed JSON.
    Returns ``signed`` with its parameters; raises :class:`VdxpError` otherwise."""
    if not hmac.compare_digest(sign(secret, signed.sign_header), signed.hash_header):
        raise VdxpError(f"XroadVnpt-hash-header does not verify for system {signed.system_id}: it must be "
                        "hex(HMAC-SHA256(secret, XroadVnpt-sign-header)); check the secret configured in the client",
                        code="vdxp.bad_signature", element=HASH_HEADER)
    try:
        members = json.loads(signed.sign_header, object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise VdxpError(f"XroadVnpt-sign-header is not a JSON object: {e}", code="vdxp.header_mismatch",
                        element=SIGN_HEADER) from None
    if not isinstance(members, dict) or not all(isinstance(v, str) for v in members.values()):
        raise VdxpError("XroadVnpt-sign-header must be a JSON object of strings", code="vdxp.header_mismatch",
                        element=SIGN_HEADER)
    received: dict[str, list[str]] = {}
    for name, value in raw_headers:
        received.setdefault(name.decode("utf-8").lower(), []).append(value.decode("utf-8"))
    params = {}
    for key, value in members.items():
        if not key.startswith(PREFIX) or len(key) == len(PREFIX):
            raise VdxpError(f"signed member {key!r} is not an XroadVnpt- header", code="vdxp.header_mismatch",
                            element=SIGN_HEADER)
        if value not in received.get(key.lower(), []):
            raise VdxpError(f"the signed {key} differs from the {key} header received", code="vdxp.header_mismatch",
                            element=key)
        params[key[len(PREFIX):]] = value
    keys = received.get(SIGN_KEYS.lower(), [])
    if keys != [";".join(params)]:
        raise VdxpError("XroadVnpt-sign-header-key does not list the signed members in their order",
                        code="vdxp.header_mismatch", element=SIGN_KEYS)
    if params.get("systemid", signed.system_id) != signed.system_id or "systemid" not in params:
        raise VdxpError("the signed XroadVnpt-systemid is missing or differs from the XroadVnpt-systemid header",
                        code="vdxp.header_mismatch", element=SYSTEM_ID)
    return Signed(signed.system_id, signed.sign_header, signed.hash_header, params)


# --- answers --------------------------------------------------------------------------------

def envelope(**payload) -> dict:
    return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", **payload}


def failure(code: str, message: str, **payload) -> dict:
    """Every failure: the three members present and non-null (the SDK reads them with getAsString)."""
    return {"status": "FAIL", "ErrorCode": code, "ErrorDesc": message or code, **payload}


def dumps(body: dict) -> bytes:
    """ASCII-only JSON (``sendEdoc`` answers are decoded as US-ASCII by the SDK; all are, to be safe)."""
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
