"""A VDXP client of our own, written from PROTOCOL.md (not from any SDK code), that signs and
shapes requests exactly as the national SDK puts them on the wire:

- logical headers in a ``java.util.HashMap`` (iteration order reproduced below: it decides the
  order of the signed JSON and of ``XroadVnpt-sign-header-key``); ``timestamp`` and
  ``systemid`` set once when the client is built; with ``reuse`` the map is never cleared,
  so keys of earlier calls are carried over and signed again (PROTOCOL 3.4);
- each logical header sent as ``XroadVnpt-<name>``, plus ``Content-Type`` under its own name;
  ``XroadVnpt-sign-header`` = Gson-compact JSON of them, ``XroadVnpt-hash-header`` =
  hex HMAC-SHA256(secret, sign-header), ``XroadVnpt-sign-header-key`` = names joined by ``;``;
- the five request shapes (3.5): A empty POST, B ``{}`` with ``Expect: 100-continue``,
  C ``sendEdoc`` = file + CRLF as octet-stream with the unpadded ``hash-file``, D JSON body,
  E ``downloadEdoc`` as a GET without body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

import aiohttp
from multidict import CIMultiDict

SHAPE = {
    "getAgenciesList": "A", "getAgenciesListQD20": "A", "getSynchronizeUnit": "A", "getReceivedEdocList": "A",
    "getSentEdocList": "A", "getEdoc": "B", "updateStatus": "B", "deleteAgency": "B", "countReceiveEdoc": "B",
    "countReceiveStatus": "B", "sendEdoc": "C", "registerAgency": "D", "downloadEdoc": "E",
}


def java_string_hash(s: str) -> int:
    h = 0
    for unit in [int.from_bytes(s.encode("utf-16-be")[i:i + 2], "big") for i in range(0, len(s.encode("utf-16-be")), 2)]:
        h = (31 * h + unit) & 0xFFFFFFFF
    return h


class JavaHashMap:
    """Insertion + the iteration order of java.util.HashMap<String,String> (no treeified bins)."""

    def __init__(self):
        self._items: dict[str, str] = {}  # insertion order; a replaced value keeps its place

    def put(self, key: str, value: str) -> None:
        self._items[key] = value

    def items(self) -> list[tuple[str, str]]:
        capacity = 16
        while len(self._items) > capacity * 0.75:
            capacity *= 2

        def bucket(key: str) -> int:
            h = java_string_hash(key)
            return (h ^ (h >> 16)) & (capacity - 1)

        order = sorted(enumerate(self._items.items()), key=lambda e: (bucket(e[1][0]), e[0]))
        return [kv for _, kv in order]


def sdk_timestamp(now: datetime | None = None) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS``: ``+SSSS`` is milliseconds padded to 4 digits, not an offset."""
    now = now or datetime.now()
    return now.strftime("%d%m%YT%H%M%S") + f"+{now.microsecond // 1000:04d}"


def unpadded_hex(data: bytes) -> str:
    return "".join(format(b, "x") for b in hashlib.sha256(data).digest())


class VdxpClient:
    def __init__(self, session: aiohttp.ClientSession, endpoint: str, system_id: str, secret: str, *,
                 reuse: bool = False):
        self.session, self.endpoint, self.system_id, self.secret = session, endpoint.rstrip("/"), system_id, secret
        self.reuse = reuse
        self.timestamp = sdk_timestamp()
        self._map = self._fresh()

    def _fresh(self) -> JavaHashMap:
        m = JavaHashMap()
        m.put("timestamp", self.timestamp)
        m.put("systemid", self.system_id)
        return m

    def signed_headers(self, op: str, params: dict, file: bytes | None = None) -> list[tuple[str, str]]:
        m = self._map if self.reuse else self._fresh()
        m.put("Content-Type", "application/octet-stream" if op == "sendEdoc" else "application/json")
        for key, value in params.items():
            m.put(key, json.dumps(value, ensure_ascii=False) if op == "sendEdoc" and key == "to" else str(value))
        if op == "sendEdoc":
            m.put("hash-file", unpadded_hex(file))
        items = m.items()
        headers = [(f"XroadVnpt-{k}", v) for k, v in items]
        headers.append(("Content-Type", dict(items)["Content-Type"]))
        sign_header = json.dumps({f"XroadVnpt-{k}": v for k, v in items}, ensure_ascii=False, separators=(",", ":"))
        headers += [
            ("XroadVnpt-sign-header-key", ";".join(k for k, _ in items)),
            ("XroadVnpt-sign-header", sign_header),
            ("XroadVnpt-hash-header", hmac.new(self.secret.encode(), sign_header.encode(), hashlib.sha256).hexdigest()),
            ("User-Agent", "JAVASDKAgent/1.0.0 XRoad/VPCP"),
            ("XroadVnpt-version", "3.0.201608"),
        ]
        return headers

    async def raw(self, op: str, params: dict | None = None, *, file: bytes | None = None, body: bytes | None = None,
                  headers: list[tuple[str, str]] | None = None) -> tuple[int, bytes]:
        """One call as the SDK shapes it; returns (HTTP status, body bytes)."""
        params = params or {}
        hdrs = headers if headers is not None else self.signed_headers(op, params, file)
        shape = SHAPE.get(op, "A")
        method, kw = "POST", {}
        if shape == "A":
            data = b""
        elif shape == "B":
            data, kw = b"{}", {"expect100": True}
        elif shape == "C":
            data = (file or b"") + b"\r\n"
        elif shape == "D":
            data, kw = body or b"{}", {"expect100": True}
        else:
            method, data = "GET", None
        if body is not None and shape != "D":
            data = body
        async with self.session.request(method, f"{self.endpoint}/{op}", headers=CIMultiDict(hdrs),
                                        data=data, **kw) as r:
            return r.status, await r.read()

    async def call(self, op: str, params: dict | None = None, **kw) -> dict:
        status, body = await self.raw(op, params, **kw)
        answer = json.loads(body)
        assert body.isascii(), body[:200]
        for key in ("status", "ErrorCode", "ErrorDesc"):
            assert isinstance(answer.get(key), str), (op, answer)
        return answer

    # the SDK's methods, by name
    async def send_edoc(self, file: bytes, frm: str, messagetype: str = "edoc") -> dict:
        return await self.call("sendEdoc", {"from": frm, "servicetype": "eDoc", "messagetype": messagetype}, file=file)

    async def received(self, messagetype: str = "edoc") -> dict:
        return await self.call("getReceivedEdocList", {"servicetype": "eDoc", "messagetype": messagetype})

    async def get_edoc(self, doc_id: str) -> dict:
        return await self.call("getEdoc", {"filePath": "/var/lib/client/store", "docId": doc_id})

    async def update_status(self, doc_id: str, status: str, key: str = "docId") -> dict:
        return await self.call("updateStatus", {"status": status, key: doc_id})
