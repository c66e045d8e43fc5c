"""Message header values: what the backbone carries, the same way on both brokers.

Allowed values: ``str``, ``int`` (64-bit signed), ``float`` (carried as a 64-bit double),
``bool``, ``None``, ``bytes``, ``Decimal``, ``datetime``, lists (or tuples) and dicts with
``str`` keys of these. A consumer receives tuples as lists, ``bytearray`` as ``bytes``
and datetimes as aware UTC datetimes with whole seconds (AMQP timestamps).

Why this module exists: pamqp, under aio-pika, encodes a Python ``float`` as the AMQP
32-bit ``f`` type, so an epoch-seconds header (``x-hub-submitted-at``) comes back up to
minutes off, and it refuses ``bytes`` and tuples. The RabbitMQ backbone encodes header
tables with :func:`encode_table` instead; the embedded broker stores :func:`normalize`\\ d
copies, so both deliver the same values.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from pamqp import common, encode

_INT64 = (-(2**63), 2**63 - 1)


def normalize(headers: dict[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``headers`` as a consumer will receive it; TypeError on unsupported values."""
    if not headers:
        return {}
    if not isinstance(headers, dict):
        raise TypeError(f"headers must be a dict, not {type(headers).__name__}")
    return {_key(k): _normal(v) for k, v in headers.items()}


def _key(k: object) -> str:
    if not isinstance(k, str):
        raise TypeError(f"header names must be str, not {type(k).__name__}")
    return k


def _normal(v: Any) -> Any:
    if v is None or isinstance(v, (bool, str, float, Decimal)):
        return v
    if isinstance(v, int):
        if not _INT64[0] <= v <= _INT64[1]:
            raise TypeError(f"header integer out of the 64-bit range: {v}")
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return datetime.fromtimestamp(int(v.timestamp()), timezone.utc)
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {_key(k): _normal(x) for k, x in v.items()}
    raise TypeError(f"unsupported header value type: {type(v).__name__}")


def encode_table(headers: dict[str, Any]) -> bytes:
    """AMQP field-table encoding of ``headers`` with floats as doubles (``d``), bytes as ``x``."""
    data = b"".join(encode.short_string(_key(k)) + _encode_value(v) for k, v in headers.items())
    return common.Struct.integer.pack(len(data)) + data


def _encode_value(v: Any) -> bytes:
    if isinstance(v, bool):
        return b"t" + encode.boolean(v)
    if isinstance(v, float):
        return b"d" + encode.double(v)
    if isinstance(v, (bytes, bytearray)):
        return b"x" + encode.byte_array(bytearray(v))
    if isinstance(v, (list, tuple)):
        data = b"".join(_encode_value(x) for x in v)
        return b"A" + common.Struct.integer.pack(len(data)) + data
    if isinstance(v, dict):
        return b"F" + encode_table(v)
    if isinstance(v, datetime) and v.tzinfo is None:
        v = v.replace(tzinfo=timezone.utc)
    return encode.encode_table_value(v)  # int, str, Decimal, datetime, None; TypeError otherwise


def decoded(headers: dict[str, Any] | None) -> dict[str, Any]:
    """Headers as pamqp decoded them, with byte arrays as ``bytes`` (as :func:`normalize` gives)."""
    if not headers:
        return {}
    return {k: _decoded(v) for k, v in headers.items()}


def _decoded(v: Any) -> Any:
    if isinstance(v, bytearray):
        return bytes(v)
    if isinstance(v, list):
        return [_decoded(x) for x in v]
    if isinstance(v, dict):
        return {k: _decoded(x) for k, x in v.items()}
    return v
