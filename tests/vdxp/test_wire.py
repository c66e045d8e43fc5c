"""The wire format, pure: the capture's HMAC, the unpadded hash-file, the SDK's CRLF, the signed
JSON rules. Oracles are the capture in PROTOCOL.md section 10 and hand-written values."""

from __future__ import annotations

import json

import pytest

from hub.vdxp.wire import VdxpError, dumps, failure, file_from_body, hash_file, read_signed, sign, verify
from tests.vdxp.client import JavaHashMap, unpadded_hex

CAPTURE_SIGN_HEADER = ('{"XroadVnpt-systemid":"000.00.00.T99","XroadVnpt-timestamp":"30112026T065447+0413",'
                       '"XroadVnpt-Content-Type":"application/json"}')
CAPTURE_HASH = "2fb63d3b6a3132d51e42063487ab1b942218fcc4207940dcc847695230a0c5d5"


def raw(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in headers]


def capture_headers(**replace) -> list[tuple[str, str]]:
    h = [("XroadVnpt-systemid", "000.00.00.T99"), ("XroadVnpt-timestamp", "30112026T065447+0413"),
         ("Content-Type", "application/json"), ("XroadVnpt-Content-Type", "application/json"),
         ("XroadVnpt-sign-header-key", "systemid;timestamp;Content-Type"),
         ("XroadVnpt-sign-header", CAPTURE_SIGN_HEADER), ("XroadVnpt-hash-header", CAPTURE_HASH),
         ("User-Agent", "JAVASDKAgent/1.0.0 XRoad/VPCP"), ("XroadVnpt-version", "3.0.201608")]
    return [(k, replace.get(k, v)) for k, v in h]


def test_capture_hmac_and_verification():
    assert sign("local-test-secret", CAPTURE_SIGN_HEADER) == CAPTURE_HASH
    r = raw(capture_headers())
    signed = verify(read_signed(r), r, "local-test-secret")
    assert signed.system_id == "000.00.00.T99"
    assert signed.params == {"systemid": "000.00.00.T99", "timestamp": "30112026T065447+0413",
                             "Content-Type": "application/json"}
    with pytest.raises(VdxpError) as e:
        verify(read_signed(r), r, "another-secret")
    assert e.value.code == "vdxp.bad_signature"


def test_java_hashmap_order_matches_the_capture():
    m = JavaHashMap()
    for k in ("timestamp", "systemid", "Content-Type", "servicetype", "messagetype", "from", "hash-file"):
        m.put(k, "x")
    assert ";".join(k for k, _ in m.items()) == "systemid;servicetype;messagetype;hash-file;from;timestamp;Content-Type"
    for k in ("docId", "filePath", "status"):  # a reused service object (VDXP_REUSE=1)
        m.put(k, "x")
    assert ";".join(k for k, _ in m.items()) == \
        "systemid;servicetype;messagetype;hash-file;docId;filePath;from;timestamp;Content-Type;status"


def test_hash_file_is_unpadded_hex():
    # SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
    assert hash_file(b"abc") == "ba7816bf8f1cfea414140de5dae2223b0361a396177a9cb410ff61f2015ad"
    assert unpadded_hex(b"abc") == hash_file(b"abc")


def test_sdk_crlf_stripped_once_by_the_hash():
    file = b"<edXML/>\r\n"  # a file that itself ends in CRLF, as in the capture
    assert file_from_body(file + b"\r\n", hash_file(file)) == file
    assert file_from_body(file, hash_file(file)) == file  # a client that adds nothing
    plain = b"<edXML/>"
    assert file_from_body(plain + b"\r\n", hash_file(plain)) == plain
    with pytest.raises(VdxpError) as e:
        file_from_body(b"<edXML>changed</edXML>\r\n", hash_file(plain))
    assert e.value.code == "vdxp.hash_file"


def _signed_request(members: dict[str, str], secret: str = "s" * 20, extra=(), keys: str | None = None):
    sign_header = json.dumps(members, separators=(",", ":"))
    h = [(k, v) for k, v in members.items()] + list(extra) + [
        ("XroadVnpt-sign-header-key", keys if keys is not None else ";".join(k[10:] for k in members)),
        ("XroadVnpt-sign-header", sign_header), ("XroadVnpt-hash-header", sign(secret, sign_header))]
    return raw(h)


BASE = {"XroadVnpt-systemid": "vxp.a", "XroadVnpt-timestamp": "30112026T065447+0413"}


@pytest.mark.parametrize("case", ["member_differs", "keys_differ", "duplicate", "not_string", "no_systemid",
                                  "not_prefixed"])
def test_signed_json_rules(case):
    secret = "s" * 20
    if case == "member_differs":
        members = {**BASE, "XroadVnpt-docId": "1"}
        sign_header = json.dumps(members, separators=(",", ":"))
        r = raw([("XroadVnpt-systemid", "vxp.a"), ("XroadVnpt-timestamp", BASE["XroadVnpt-timestamp"]),
                 ("XroadVnpt-docId", "2"), ("XroadVnpt-sign-header-key", "systemid;timestamp;docId"),
                 ("XroadVnpt-sign-header", sign_header), ("XroadVnpt-hash-header", sign(secret, sign_header))])
    elif case == "keys_differ":
        r = _signed_request(BASE, keys="timestamp;systemid")
    elif case == "duplicate":
        sign_header = '{"XroadVnpt-systemid":"vxp.a","XroadVnpt-systemid":"vxp.b"}'
        r = raw([("XroadVnpt-systemid", "vxp.a"), ("XroadVnpt-sign-header-key", "systemid;systemid"),
                 ("XroadVnpt-sign-header", sign_header), ("XroadVnpt-hash-header", sign(secret, sign_header))])
    elif case == "not_string":
        sign_header = '{"XroadVnpt-systemid":"vxp.a","XroadVnpt-pageSize":5}'
        r = raw([("XroadVnpt-systemid", "vxp.a"), ("XroadVnpt-pageSize", "5"),
                 ("XroadVnpt-sign-header-key", "systemid;pageSize"),
                 ("XroadVnpt-sign-header", sign_header), ("XroadVnpt-hash-header", sign(secret, sign_header))])
    elif case == "no_systemid":
        members = {"XroadVnpt-timestamp": "1"}
        r = _signed_request(members) + [(b"XroadVnpt-systemid", b"vxp.a")]
    else:
        members = {**BASE, "docId": "1"}
        r = _signed_request(members, extra=[("docId", "1")])
    with pytest.raises(VdxpError) as e:
        verify(read_signed(r), r, secret)
    assert e.value.code == "vdxp.header_mismatch"


def test_parameters_come_only_from_the_signed_json_and_docid_spellings():
    members = {**BASE, "XroadVnpt-docid": "old", "XroadVnpt-docId": "new"}
    r = _signed_request(members, extra=[("XroadVnpt-status", "done")])  # unsigned: ignored
    signed = verify(read_signed(r), r, "s" * 20)
    assert signed.get("status") is None
    assert signed.get("docId") == "new"  # the exact spelling wins
    only_lower = _signed_request({**BASE, "XroadVnpt-docid": "bkav"})
    assert verify(read_signed(only_lower), only_lower, "s" * 20).get("docId") == "bkav"


def test_missing_headers():
    for name in ("XroadVnpt-systemid", "XroadVnpt-sign-header", "XroadVnpt-hash-header"):
        r = raw([(k, v) for k, v in capture_headers() if k != name])
        with pytest.raises(VdxpError) as e:
            read_signed(r)
        assert e.value.code == "vdxp.auth_missing"


def test_answers_are_ascii_envelopes():
    body = dumps(failure("vdxp.bad_request", "thiếu docId", DocId=""))
    assert body.isascii()
    assert json.loads(body) == {"status": "FAIL", "ErrorCode": "vdxp.bad_request", "ErrorDesc": "thiếu docId",
                                "DocId": ""}
