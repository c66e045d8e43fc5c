"""The canonical bytes of an audit entry: stable, total, unambiguous."""

from __future__ import annotations

import hashlib
import struct
from datetime import date, datetime, timedelta, timezone

import pytest

from hub.audit import entry
from hub.audit.entry import canonical_entry, entry_leaf, es_number
from hub.errors import UsageError

ICT = timezone(timedelta(hours=7))  # Vietnam


def _fields(**changes):
    fields = dict(
        seq=42,
        at=datetime(2024, 5, 1, 19, 30, 15, 123456, tzinfo=ICT),
        event="accepted",
        actor="adapter:000.00.00.H41",
        document_id="5a3f/2024/CV-UBND",
        sender="000.00.00.H41",
        sha256="ab" * 32,
        reason=None,
        message='Công văn số 12 "khẩn"\n\ttab\x01',
        details={
            "recipients": ["000.00.00.G22", "000.00.00.H44"], "legacy_sha1": False, "size": 10240,
            "ratio": 0.5, "big": 2**64, "z": None, "nested": {"b": 1.0, "a": [1e21, 1e-7, -0.0]}, "Ä": "ü",
        },
    )
    fields.update(changes)
    return fields


# Written out by hand from the rules in the module docstring; must never change for v=1.
GOLDEN = (
    '{"actor":"adapter:000.00.00.H41","at":"2024-05-01T12:30:15.123456Z","details":{"big":18446744073709551616,'
    '"legacy_sha1":false,"nested":{"a":[1e+21,1e-7,0],"b":1},"ratio":0.5,'
    '"recipients":["000.00.00.G22","000.00.00.H44"],"size":10240,"z":null,"Ä":"ü"},'
    '"document_id":"5a3f/2024/CV-UBND","event":"accepted",'
    '"message":"Công văn số 12 \\"khẩn\\"\\n\\ttab\\u0001","reason":null,"sender":"000.00.00.H41","seq":42,'
    '"sha256":"abababababababababababababababababababababababababababababababab","v":1}'
).encode("utf-8")
GOLDEN_LEAF = "8e03be2f84ab26399117a2a0da9c316c2bf16f2eb7f4f2bf14afa8a6c4530713"


def test_golden_bytes_and_leaf():
    assert canonical_entry(**_fields()) == GOLDEN
    assert entry_leaf(**_fields()).hex() == GOLDEN_LEAF
    assert hashlib.sha256(b"\x00" + GOLDEN).hexdigest() == GOLDEN_LEAF


def test_the_docstring_example_is_what_the_code_produces():
    example = canonical_entry(1, datetime(2024, 5, 1, 12, tzinfo=timezone.utc), "accepted",
                              None, None, None, None, None, None, None)
    doc = "".join(line.strip() for line in entry.__doc__.split("Example")[1].split("::")[1].split("(on one line)")[0].splitlines())
    assert example.decode() == doc


def test_positional_and_keyword_calls_agree():
    f = _fields()
    assert canonical_entry(*f.values()) == canonical_entry(**f)


@pytest.mark.parametrize(("name", "other"), [
    ("seq", 43),
    ("at", datetime(2024, 5, 1, 19, 30, 15, 123457, tzinfo=ICT)),
    ("event", "refused"),
    ("actor", None),
    ("actor", ""),
    ("document_id", "5a3f/2024/CV-UBND "),
    ("sender", "000.00.00.H44"),
    ("sha256", "AB" * 32),
    ("reason", "schema.invalid"),
    ("reason", "null"),
    ("message", None),
    ("details", None),
    ("details", {}),
    ("details", {"recipients": ["000.00.00.G22"]}),
])
def test_every_field_changes_the_bytes(name, other):
    assert canonical_entry(**_fields(**{name: other})) != GOLDEN
    assert entry_leaf(**_fields(**{name: other})).hex() != GOLDEN_LEAF


def test_fields_cannot_bleed_into_each_other():
    # the same text in two different fields gives two different entries
    a = canonical_entry(**_fields(actor="x", reason=None))
    b = canonical_entry(**_fields(actor=None, reason="x"))
    assert a != b
    assert canonical_entry(**_fields(message=None)) != canonical_entry(**_fields(message="null"))
    assert canonical_entry(**_fields(details=None)) != canonical_entry(**_fields(details={}))


def test_independent_of_key_order():
    d1 = {"a": 1, "b": {"x": [1, {"p": 1, "q": 2}], "y": None}, "c": "3"}
    d2 = {"c": "3", "b": {"y": None, "x": [1, {"q": 2, "p": 1}]}, "a": 1}
    assert canonical_entry(**_fields(details=d1)) == canonical_entry(**_fields(details=d2))
    assert b'"details":{"a":1,"b":{"x":[1,{"p":1,"q":2}],"y":null},"c":"3"}' in canonical_entry(**_fields(details=d2))


def test_keys_sort_by_utf16_code_units_like_jcs():
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+E000 in UTF-16 (but not by code point)
    got = canonical_entry(**_fields(details={"\ue000": 1, "😀": 2, "a": 3, "B": 4}))
    assert '"details":{"B":4,"a":3,"😀":2,"\ue000":1}'.encode() in got


def test_time_is_utc_with_microseconds():
    at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    base = canonical_entry(**_fields(at=at))
    assert b'"at":"2024-05-01T12:00:00.000000Z"' in base
    assert canonical_entry(**_fields(at=at.replace(tzinfo=None))) == base  # naive = UTC
    assert canonical_entry(**_fields(at=at.astimezone(ICT))) == base  # same instant
    assert b'"at":"0999-01-02T03:04:05.000006Z"' in canonical_entry(**_fields(at=datetime(999, 1, 2, 3, 4, 5, 6)))


def test_numbers():
    got = canonical_entry(**_fields(details={"n": [0, -1, 2**70, -(2**70), 2.0, 2, 0.1, -1.5, 1e300, True, None]}))
    assert b'"n":[0,-1,1180591620717411303424,-1180591620717411303424,2,2,0.1,-1.5,1e+300,true,null]' in got
    assert canonical_entry(**_fields(details={"a": 1})) == canonical_entry(**_fields(details={"a": 1.0}))
    assert canonical_entry(**_fields(details={"a": (1, 2)})) == canonical_entry(**_fields(details={"a": [1, 2]}))


# RFC 8785 appendix B: IEEE 754 bit patterns and their JCS text.
JCS_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), JCS_NUMBERS)
def test_floats_are_written_as_jcs_writes_them(bits, text):
    assert es_number(struct.unpack(">d", bytes.fromhex(bits))[0]) == text


def test_strings_escape_exactly_the_json_minimum():
    s = 'q" b\\ \b\t\n\f\r \x00\x1f \x7f é \u2028 𝄞 /'
    got = canonical_entry(**_fields(message=s))
    expected = '"message":"q\\" b\\\\ \\b\\t\\n\\f\\r \\u0000\\u001f \x7f é \u2028 𝄞 /"'
    assert expected.encode("utf-8") in got


@pytest.mark.parametrize("details", [
    {"x": float("nan")},
    {"x": [1, {"y": float("inf")}]},
    {"x": -float("inf")},
    {1: "int key"},
    {"x": b"bytes"},
    {"x": datetime(2024, 1, 1)},
    {"x": {1, 2}},
    {"x": "\ud800"},
    {"\udfff": 1},
])
def test_refuses_what_json_cannot_carry_faithfully(details):
    with pytest.raises(UsageError):
        canonical_entry(**_fields(details=details))


@pytest.mark.parametrize("changes", [
    {"seq": True},
    {"seq": "42"},
    {"seq": 42.0},
    {"at": "2024-05-01T12:00:00Z"},
    {"at": date(2024, 5, 1)},
    {"event": None},
    {"actor": 5},
    {"sha256": b"ab" * 32},
    {"details": [1, 2]},
    {"message": "lone \udc80 surrogate"},
])
def test_refuses_ill_typed_fields(changes):
    with pytest.raises(UsageError):
        canonical_entry(**_fields(**changes))


@pytest.mark.parametrize("details", [
    None,
    {},
    {"recipients": [["000.00.00.H41", "000.00.00.H41"]], "type": "1", "priority": 2, "vi": "Văn bản"},
    {"z": {"b": [1, -0, 10**30, True, False, None, ""], "a": "\x00\x1f\x7f\"\\/\u2028"}, "A": []},
    {"size": 1.0}, {"deep": [[{"x": 1e21}]]}, {"n": 1e-7}, {"n": -0.0},  # numbers JCS writes its own way
    {"\U0001f600": 1, "\ufb01": 2}, {"k": "\U0001f600 emoji"},  # UTF-16 order differs from code points
    {"é": 1, "e": 2, "ê": [3]},
])
@pytest.mark.parametrize("at", [datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc), datetime(9, 1, 2, 3, 4, 5, 6),
                                datetime(2024, 5, 1, 19, 30, 15, 123456, tzinfo=ICT)])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_the_leaf_of_a_stored_row_is_entry_leaf(details, at, ascii_only):
    """What verify computes from a PostgreSQL row (details as stored JSON text, as
    SQLAlchemy writes it or not) is entry_leaf of the same values, on every path."""
    import json

    text = None if details is None else json.dumps(details, ensure_ascii=ascii_only)
    fields = _fields(details=details, at=at)
    assert entry.stored_entry_leaf(*[fields[k] for k in list(fields)[:-1]], text) == entry_leaf(**fields)


@pytest.mark.parametrize("text", ['{"n": NaN}', '{"n": Infinity}', '[1, 2]', '"text"', '{"k": "\\udc00"}',
                                  '{"\\ud800": 1}'])
def test_the_leaf_of_a_stored_row_refuses_what_entry_leaf_refuses(text):
    fields = _fields()
    with pytest.raises(UsageError):
        entry.stored_entry_leaf(*[fields[k] for k in list(fields)[:-1]], text)


def test_a_plain_stored_row_takes_the_c_encoder(monkeypatch):
    """The equality above is not won by always falling back: plain details never reach entry_leaf."""
    fields = _fields(at=datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc))
    text = '{"size": 10240, "recipients": ["000.00.00.G22"], "vi": "V\\u0103n b\\u1ea3n", "ok": true}'
    fields["details"] = {"size": 10240, "recipients": ["000.00.00.G22"], "vi": "Văn bản", "ok": True}
    want = entry_leaf(**fields)
    monkeypatch.setattr(entry, "entry_leaf", lambda *a: pytest.fail("fell back"))
    assert entry.stored_entry_leaf(*[fields[k] for k in list(fields)[:-1]], text) == want


@pytest.mark.parametrize("details", [
    None,
    {},
    {"recipients": [["000.00.00.H41", "000.00.00.H41"]], "type": "1", "priority": 2, "vi": "Văn bản"},
    {"z": {"b": [1, -0, 10**30, True, False, None, ""], "a": "\x00\x1f\x7f\"\\/\u2028"}, "A": []},
    {"size": 1.0}, {"deep": [[{"x": 1e21}]]}, {"n": 1e-7}, {"n": -0.0},
    {"\U0001f600": 1, "\ufb01": 2}, {"k": "\U0001f600 emoji"},
    {"é": 1, "e": 2, "ê": [3]},
])
@pytest.mark.parametrize("at", [datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc), datetime(9, 1, 2, 3, 4, 5, 6),
                                datetime(2024, 5, 1, 19, 30, 15, 123456, tzinfo=ICT)])
def test_the_stored_canonical_details_text_spliced_in_gives_the_leaf(details, at):
    """hub.audit.log stores details as canonical_details; hashing that text as it is
    (what verify does first on PostgreSQL) is the entry's leaf."""
    fields = _fields(details=details, at=at)
    values = [fields[k] for k in list(fields)[:-1]]
    assert entry.spliced_entry_leaf(*values, entry.canonical_details(details)) == entry_leaf(**fields)


@pytest.mark.parametrize("text", ['{"vi": "Văn bản", "n": 2}', '{"vi":"Văn bản","n":2}', '{"n":2.0,"vi":"Văn bản"}',
                                  '{"n":2,"vi":"V\\u0103n b\\u1ea3n"}', '{"n":3,"vi":"Văn bản"}',
                                  '{"n":2,"vi":"Văn bản"},"document_id":null'])
def test_any_other_details_text_spliced_in_is_not_the_leaf(text):
    """Equivalent but non-canonical texts, other values, or text reaching into the next member
    never give the leaf spliced in as they are (verify then recomputes the full way)."""
    fields = _fields(details={"n": 2, "vi": "Văn bản"})
    values = [fields[k] for k in list(fields)[:-1]]
    assert entry.spliced_entry_leaf(*values, '{"n":2,"vi":"Văn bản"}') == entry_leaf(**fields)
    assert entry.spliced_entry_leaf(*values, text) != entry_leaf(**fields)
