"""Evidence bundles: one document's audit trail as a zip an auditor verifies offline.

``export_bundle`` (database) writes, all at the top of the zip:

    package.edxml     the exact bytes the sender signed and the hub received (``hub.store.packages``,
                      a blob when large; the document's SHA-256; never the copy with the hub's hop record)
    entries.jsonl     every entry of the document (``hub.audit.query.document_entries``), one JSON
                      object a line: the full row (seq, at, event, actor, document_id, sender,
                      sha256, reason, message, details, leaf_hash) and ``canonical``, the exact
                      text the leaf hash covers (``hub.audit.entry.canonical_entry``)
    proofs.json       per entry: index = seq - 1, the tree size and RFC 9162 audit path (hex)
                      against the checkpoint below, from O(log n) stored subtree hashes
                      (``hub.audit.nodes``); entries newer than it, ``not_yet_sealed``
    checkpoint.txt    the latest signed checkpoint (C2SP note text, ``hub.audit.checkpoint``)
    hub.pem           the hub certificate that signed the checkpoint (and the manifest)
    trust/            the CA certificate(s) the package's signing chain ends in, and their CRLs
    received_at       when the hub received the package (UTC): certificates are checked then
    manifest.json     what the bundle is, and the SHA-256 of every other file
    manifest.sig      base64(key id (4 bytes) || signature of manifest.json) by the hub's key,
                      when the exporter holds it (the API and `hub audit export` do)
    README.txt        how to check all of it by hand

Reading is the only part on the event loop; hashing, the package's signature check and the
zip run in a thread.

``verify_bundle`` (no database, no network) checks every file against the others and names
what does not match: each entry's canonical bytes and leaf hash, each inclusion proof against
the checkpoint root, the checkpoint signature (key id too) with hub.pem, the package's
XML-DSig against the bundled CAs *at received_at* (a recipient's check: the stored bytes are
what the sender signed), that the package's SHA-256 is the one the proven entries name, that
received_at is the proven entries' time, and the signed manifest. Trust comes from outside:
compare hub.pem's and the CAs' fingerprints (printed) with the ones the hub and the CA publish,
or pass them to pin.

The exporters (CLI, API, console) pass ``seal=True``: the latest checkpoint is reused when it
already covers every entry of the document (and is signed by the hub's current key); only
otherwise is one signed first (``latest_covering``, waiting on the sealer's lock when another
sealer is at it), so exporting is not one signature and one write per request. The entries
read before sealing are the ones proven against the new checkpoint (entries never change):
sealing costs the signature and its transaction, not a second read of the document.
``log_export`` records the export itself as an ``audit.exported`` entry.

What a bundle cannot show is completeness: it proves each entry it holds is in the log the
hub signed, not that no entry about the document was left out. ``hub audit search
--document-id`` on the hub answers that, and ``hub audit verify`` checks the whole log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit import checkpoint as cp
from hub.audit import merkle, nodes
from hub.audit.entry import canonical_entry, utc_timestamp
from hub.audit.query import NotFound, document_entries, get_checkpoint, utc
from hub.errors import ConflictError, HubError, UsageError
from hub.pki.certs import describe, fingerprint
from hub.pki.chain import TrustStore
from hub.audit.records import append_rows, record_row
from hub.store import packages as stored_packages

FORMAT = 1
FIELDS = ("seq", "at", "event", "actor", "document_id", "sender", "sha256", "reason", "message", "details")
REQUIRED = ("package.edxml", "entries.jsonl", "proofs.json", "hub.pem", "received_at", "manifest.json", "README.txt")
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
MAX_UNPACKED = 512 * 1024 * 1024  # a 50 MB package, its entries and proofs fit many times over
# Larger files are stored, not deflated: in practice only package.edxml, whose bulk is base64 of
# already compressed attachments (PDF, DOCX); deflate saves ~23% of it at ~35 ms of CPU per MB.
STORE_ABOVE = 256 * 1024


# --- export -----------------------------------------------------------------------------------

def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _sign(key, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise UsageError(f"the hub key must be RSA or EC, not {type(key).__name__}")


def _verify_signature(cert: x509.Certificate, data: bytes, signature: bytes) -> bool:
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def entry_line(row) -> dict[str, Any]:
    """One entries.jsonl object: the full row, ``at`` canonical, plus the canonical text."""
    at = utc(row["at"])
    canonical = canonical_entry(row["seq"], at, row["event"], row["actor"], row["document_id"], row["sender"],
                                row["sha256"], row["reason"], row["message"], row["details"])
    return {"seq": row["seq"], "at": utc_timestamp(at), "event": row["event"], "actor": row["actor"],
            "document_id": row["document_id"], "sender": row["sender"], "sha256": row["sha256"],
            "reason": row["reason"], "message": row["message"], "details": row["details"],
            "leaf_hash": row["leaf_hash"], "canonical": canonical.decode("utf-8")}


def _verify_either(root, trust: TrustStore, at: datetime):
    """XML-DSig, or the national SDK's Signature when it carries real values (sdk profile)."""
    from hub.edxml.sdk_signature import KIND_SDK, inspect_signature
    from hub.edxml.sdk_verify import sdk_signature_element, verify_sdk_signature
    from hub.edxml.signature import verify_package

    if inspect_signature(root).kind == KIND_SDK:
        return verify_sdk_signature(root, sdk_signature_element(root), trust, at=at)
    return verify_package(root, trust, at=at)


def _signing_trust(data: bytes, trust: TrustStore, at: datetime) -> tuple[list, list, str | None]:
    """The anchors and CRLs the package's chain needs at ``at``; all of them when it does not verify."""
    from hub.edxml.parser import parse_xml

    try:
        chain = _verify_either(parse_xml(data, max_bytes=max(len(data), 1)), trust, at).chain  # checked at intake
    except HubError as e:
        return list(trust.anchors), list(trust.crls), f"{e.code}: {e.message}"
    anchors = [c for c in trust.anchors if c in chain]
    subjects = {c.subject.public_bytes() for c in chain}
    crls = [crl for crl in trust.crls if crl.issuer.public_bytes() in subjects]
    return anchors or list(trust.anchors), crls, None


async def export_bundle(engine: AsyncEngine, document_id: str, hub_cert: x509.Certificate,
                        trust_anchors: TrustStore | Sequence[x509.Certificate], sender: str | None = None, *,
                        identity=None, exported_by: str | None = None, now: datetime | None = None,
                        seal: bool = False) -> bytes:
    """The evidence bundle of one document (a zip, see the module docstring).

    With ``seal`` (and ``identity``, the hub's key and certificate), every entry of the document
    is covered by a checkpoint: the latest signed one is reused when it already covers them
    and is signed by ``identity``; only otherwise is one signed now (:func:`latest_covering`).
    Without ``seal``, the entries written after the latest checkpoint are listed as
    ``not_yet_sealed``. ``identity`` signs the manifest. Raises :class:`NotFound` when nothing
    is known about the document, and :class:`ConflictError` when the stored log no longer
    matches its checkpoint.
    """
    trust = trust_anchors if isinstance(trust_anchors, TrustStore) else TrustStore(anchors=tuple(trust_anchors))
    if identity is not None and fingerprint(identity.cert) != fingerprint(hub_cert):
        raise UsageError("the identity signing the manifest is not the hub certificate given")
    if seal and identity is None:
        raise UsageError("sealing before an export needs the hub's key (identity)")
    async with engine.connect() as conn:
        doc, rows, _statuses = await document_entries(conn, document_id, sender)
        if doc is None and not rows:
            raise NotFound(f"the audit log knows no document {document_id}" + (f" from {sender}" if sender else ""))
        latest = await get_checkpoint(conn)
        newest = max(r["seq"] for r in rows) if rows else 0
        must_seal = seal and not covers(latest, newest, identity.cert)
        own = [r for r in rows if r["document_id"] == document_id and r["sha256"] and r["event"]
               in ("package.received", "package.accepted", "package.refused", "package.duplicate")]
        sha = doc["sha256"] if doc is not None else (own[0]["sha256"] if own else None)
        stored = await stored_packages.locate(conn, sha)
        if stored is None:
            raise NotFound(f"the package of {document_id} is not stored (refused before it was kept, "
                           "e.g. too large)")
        received_at = utc(doc["received_at"]) if doc is not None else utc(
            next(r["at"] for r in own if r["sha256"] == sha))
        if not must_seal:
            paths, sealed, size = await _proofs(conn, rows, latest)
    if must_seal:
        # Sign one covering the entries read (its own transaction, outside the read), then prove
        # those same entries against it: entries are never changed, so they need not be read again.
        # Should sealing not get that far (the timeout), the rest are listed as not yet sealed.
        latest = await latest_covering(engine, identity, through=newest)
        async with engine.connect() as conn:
            paths, sealed, size = await _proofs(conn, rows, latest)
    # A large package is a blob (hub.store.packages): read once into one buffer of its size.
    data = await stored_packages.read(engine, stored)
    # hashing, the package's signature check and the zip are CPU work: off the event loop
    return await asyncio.to_thread(_build, data, doc, own, rows, sealed, paths, latest, size, received_at, trust,
                                   hub_cert, identity, exported_by, now, document_id, sender, sha)


async def _proofs(conn, rows: list[dict], latest: dict | None) -> tuple[list, list[dict], int]:
    """The audit paths of the ``rows`` the checkpoint ``latest`` covers, those rows, and its size."""
    size = latest["size"] if latest else 0
    sealed = [r for r in rows if r["seq"] <= size]
    # O(log n) stored subtree hashes per entry (hub.audit.nodes), not every leaf of the log
    # (the size is a signed checkpoint's: each path is checked against its root in _build)
    paths = await nodes.inclusion_proofs(conn, [r["seq"] - 1 for r in sealed], size,
                                         check_size=False) if sealed else []
    return paths, sealed, size


def covers(checkpoint: dict | None, seq: int, hub_cert: x509.Certificate) -> bool:
    """Whether a stored checkpoint row proves entries 1..``seq`` and is signed by ``hub_cert``'s key
    (a checkpoint of an earlier hub key would not verify with the bundle's hub.pem)."""
    if checkpoint is None:
        return seq == 0
    return checkpoint["size"] >= seq and checkpoint["key_id"] == cp.key_id_for(hub_cert)


def _build(data, doc, own, rows, sealed, paths, latest, size, received_at, trust, hub_cert, identity, exported_by,
           now, document_id, sender, sha) -> bytes:
    """The zip of :func:`export_bundle` from what it read (pure CPU: runs in a thread)."""
    lines = [entry_line(r) for r in rows]
    for line in lines:
        if merkle.leaf_hash(line["canonical"].encode("utf-8")).hex() != line["leaf_hash"]:
            raise ConflictError(f"audit entry {line['seq']} does not match its stored leaf hash (changed after it "
                                "was written); run `hub audit verify`", code="audit.log_damaged")
    checkpoint = cp.Checkpoint.from_text(latest["text"]) if latest else None
    proofs = []
    for r, path in zip(sealed, paths):
        if not merkle.verify_inclusion(bytes.fromhex(r["leaf_hash"]), r["seq"] - 1, size, path, checkpoint.root):
            raise ConflictError(f"the stored log no longer hashes to checkpoint {size} (entry {r['seq']}); "
                                "run `hub audit verify`", code="audit.log_damaged")
        proofs.append({"seq": r["seq"], "index": r["seq"] - 1, "tree_size": size, "leaf_hash": r["leaf_hash"],
                       "path": [p.hex() for p in path]})
    anchors, crls, problem = _signing_trust(data, trust, received_at)
    decision = "accepted" if doc is not None else "refused"

    files: dict[str, bytes] = {}
    files["package.edxml"] = data
    files["entries.jsonl"] = "".join(
        json.dumps(line, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n" for line in lines
    ).encode("utf-8")
    files["proofs.json"] = json.dumps({
        "format": FORMAT, "hash": "sha256", "rfc": "RFC 9162 section 2.1.3",
        "checkpoint_size": size, "root": checkpoint.root.hex() if checkpoint else None,
        "proofs": proofs, "not_yet_sealed": [r["seq"] for r in rows if r["seq"] > size],
    }, indent=1).encode("utf-8")
    if latest:
        files["checkpoint.txt"] = latest["text"].encode("utf-8")
    files["hub.pem"] = _pem(hub_cert)
    for c in anchors:
        files[f"trust/{fingerprint(c)[:16]}.pem"] = _pem(c)
    for crl in crls:
        files[f"trust/{hashlib.sha256(crl.public_bytes(serialization.Encoding.DER)).hexdigest()[:16]}.crl.pem"] = \
            crl.public_bytes(serialization.Encoding.PEM)
    files["received_at"] = (utc_timestamp(received_at) + "\n").encode("ascii")
    files["README.txt"] = readme(document_id, size, [n for n in files if n.startswith("trust/")]).encode("utf-8")
    manifest = {
        "format": FORMAT, "kind": "edxml-hub audit bundle",
        "document_id": document_id, "sender": doc["sender"] if doc else (own[0]["sender"] if own else sender),
        "decision": decision, "package_sha256": sha, "received_at": utc_timestamp(received_at),
        "entries": len(lines), "checkpoint_size": size, "not_yet_sealed": len(rows) - len(sealed),
        "hub_certificate_sha256": fingerprint(hub_cert),
        "trust_anchors_sha256": [fingerprint(c) for c in anchors],
        "signing_chain_problem_at_export": problem,
        "exported_at": utc_timestamp(now or datetime.now(timezone.utc)), "exported_by": exported_by,
        "files": {name: hashlib.sha256(body).hexdigest() for name, body in sorted(files.items())},
    }
    files["manifest.json"] = json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8")
    if identity is not None:
        sig = bytes.fromhex(cp.key_id_for(identity.cert)) + _sign(identity.key, files["manifest.json"])
        files["manifest.sig"] = base64.b64encode(sig) + b"\n"
    return zip_files(files, received_at)


def zip_files(files: dict[str, bytes], when: datetime) -> bytes:
    """The bundle's zip: its files in reading order, stamped ``when``; a file larger than
    :data:`STORE_ABOVE` stored, the others deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("README.txt", "manifest.json", "manifest.sig", "package.edxml", "entries.jsonl", "proofs.json",
                     "checkpoint.txt", "hub.pem", "received_at", *sorted(n for n in files if n.startswith("trust/"))):
            if name in files:
                info = zipfile.ZipInfo(name, date_time=(when.year, when.month, when.day, when.hour, when.minute,
                                                        when.second))
                info.compress_type = zipfile.ZIP_STORED if len(files[name]) > STORE_ABOVE else zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, files[name])
    return buf.getvalue()


async def seal_through(engine: AsyncEngine, identity, timeout: float = 10.0, *, through: int | None = None) -> int:
    """Sign a checkpoint covering every entry written so far (waiting for a running sealer,
    which holds the lock, to finish) or, with ``through``, at least entries 1..``through``;
    returns the latest checkpoint's size."""
    latest = await latest_covering(engine, identity, through, timeout)
    return latest["size"] if latest else 0


async def latest_covering(engine: AsyncEngine, identity, through: int | None = None, timeout: float = 10.0
                          ) -> dict | None:
    """The latest checkpoint row once one covers entries 1..``through`` (None: every entry
    written so far), signing it if needed; after ``timeout`` seconds, whatever is latest then.

    A sealer running meanwhile (the :class:`~hub.audit.sealer.Sealer`, or another export) holds
    the lock: this waits for its commit on the lock itself, then signs only what it left."""
    from hub.audit.sealer import seal
    from hub.store.tables import records

    if through is None:
        async with engine.connect() as conn:
            through = (await conn.execute(sa.select(sa.func.max(records.c.seq)))).scalar() or 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        signed = None
        try:
            signed = await seal(engine, identity, wait=max(0.0, deadline - loop.time()))
        except IntegrityError:  # another sealer signed the same size first: fine
            pass
        if signed is not None and signed.size >= through:  # the row it wrote: no need to read it back
            return {"size": signed.size, "root": signed.root.hex(), "at": signed.at, "key_id": signed.key_id,
                    "text": signed.to_text()}
        async with engine.connect() as conn:
            latest = await get_checkpoint(conn)
        if (latest["size"] if latest else 0) >= through or loop.time() > deadline:
            return latest
        await asyncio.sleep(0.05)  # SQLite's sealer, or entries not committed yet: try again


async def log_export(engine: AsyncEngine, actor: str, what: str, **details) -> None:
    """Record an auditor's export in the log itself (event ``audit.exported``)."""
    async with engine.begin() as conn:
        await append_rows(conn, [record_row("audit.exported", actor=actor, document_id=details.get("document_id"),
                                            sender=details.get("sender"), details={"what": what, **details})])


def readme(document_id: str, size: int, trust_files: list[str]) -> str:
    trust = " ".join(trust_files) or "trust/<ca>.pem"
    first = trust_files[0] if trust_files else "trust/<ca>.pem"
    return f"""EVIDENCE BUNDLE of the edXML hub's audit log for document
    {document_id}

Check it with the hub's tool, offline (no database, no network):

    hub audit verify-bundle THIS.zip [--hub-cert the-hub's-published.pem]

or by hand, step by step, as below. Nothing in here is to be trusted because of where it came
from; every file is checked against the others, and the two roots of trust come from outside:
the hub's certificate (hub.pem) and the certificate authorities (trust/).

0. Roots of trust
   openssl x509 -in hub.pem -noout -fingerprint -sha256
   openssl x509 -in {first} -noout -fingerprint -sha256
   Compare with the fingerprints the hub operator and the CA publish. If they differ, stop.

1. The checkpoint (checkpoint.txt) is a C2SP signed note: four body lines (origin, tree size,
   base64 Merkle root, "time <UTC>"), each ending in a newline, an empty line, and
   "<U+2014 EM DASH> <origin> <base64(key id (4 bytes) || signature)>". The signature is RSA
   PKCS#1 v1.5 / SHA-256 (or ECDSA / SHA-256) by hub.pem over exactly the four body lines;
   the key id is the first 4 bytes of SHA-256(DER of hub.pem).
     head -n 4 checkpoint.txt > body.bin
     tail -n 1 checkpoint.txt | awk '{{print $3}}' | base64 -d | tail -c +5 > sig.bin
     openssl x509 -in hub.pem -pubkey -noout > hub.pub
     openssl dgst -sha256 -verify hub.pub -signature sig.bin body.bin
     openssl x509 -in hub.pem -outform DER | sha256sum | cut -c1-8        # = the key id:
     tail -n 1 checkpoint.txt | awk '{{print $3}}' | base64 -d | head -c 4 | xxd -p
   This bundle's checkpoint covers entries 1..{size} of the log.

2. Each line of entries.jsonl is one audit entry: its fields, its leaf_hash and "canonical",
   the exact UTF-8 text the hash covers. Check that
     leaf_hash == SHA-256(0x00 || canonical)          (RFC 9162 leaf hash)
   and that "canonical" is the entry's fields written as RFC 8785 JSON (JCS: keys sorted,
   no whitespace, exact integers) with "v":1 — the eleven members actor, at, details,
   document_id, event, message, reason, sender, seq, sha256, v; "at" is
   YYYY-MM-DDTHH:MM:SS.ffffffZ in UTC. (The full rules: hub/audit/entry.py.)
   e.g. python3 -c 'import sys,json,hashlib
   for l in open("entries.jsonl", encoding="utf-8"):
       e = json.loads(l); print(e["seq"], hashlib.sha256(b"\\0" + e["canonical"].encode()).hexdigest() == e["leaf_hash"])'

3. proofs.json holds, for each entry, index = seq - 1, tree_size (= the checkpoint's size) and
   the audit path (hex, leaf end first). Run RFC 9162 section 2.1.3.2 with
   node = SHA-256(0x01 || left || right): the result must be the checkpoint's root (line 3
   of checkpoint.txt, base64; "root" in proofs.json is the same in hex). Entries listed in
   "not_yet_sealed" were written after that checkpoint and are NOT proven by this bundle:
   export again after the hub signs its next checkpoint. For example:
     python3 - <<'PY'
     import base64, hashlib, json
     H = lambda b: hashlib.sha256(b).digest()
     root = base64.b64decode(open("checkpoint.txt").read().split("\\n")[2])
     for p in json.load(open("proofs.json"))["proofs"]:
         fn, sn, r = p["index"], p["tree_size"] - 1, bytes.fromhex(p["leaf_hash"])
         for h in map(bytes.fromhex, p["path"]):
             if fn & 1 or fn == sn:
                 r = H(b"\\x01" + h + r)
                 while not fn & 1 and fn:
                     fn, sn = fn >> 1, sn >> 1
             else:
                 r = H(b"\\x01" + r + h)
             fn, sn = fn >> 1, sn >> 1
         print(p["seq"], sn == 0 and r == root)
     PY
   (p["leaf_hash"] is the leaf you recomputed in step 2.)

4. package.edxml is the package exactly as the sender signed it and the hub received it.
     sha256sum package.edxml      # = the "sha256" of its package.received / package.accepted
                                  #   (or package.refused) entries above
   Its XML-DSig signature, with the certificates valid at the time of receipt (received_at,
   which must equal the "at" of those entries), not today:
     xmlsec1 --verify --enabled-key-data x509 --enabled-reference-uris empty \\
        --trusted-pem {first} --verification-gmt-time "<received_at as YYYY-MM-DD HH:MM:SS>" package.edxml
   (trust/ holds: {trust}; *.crl.pem are the CAs' revocation lists, for --crl-pem.)

5. manifest.json lists the SHA-256 of every other file; manifest.sig, when present, is
   base64(key id (4 bytes) || signature of manifest.json) by hub.pem:
     base64 -d manifest.sig | tail -c +5 > manifest.bin
     openssl dgst -sha256 -verify hub.pub -signature manifest.bin manifest.json

What the bundle does not prove: that no other entry about the document exists. Each entry
here is proven to be in the log the hub signed; completeness is checked on the hub
(`hub audit search --document-id ...`, `hub audit verify`). To show that a later checkpoint
extends this one, ask the hub for `hub audit consistency {size} <later size>`.
"""


# --- verify -----------------------------------------------------------------------------------

class _Findings:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed = False

    def ok(self, text: str) -> None:
        self.lines.append(f"OK    {text}")

    def note(self, text: str) -> None:
        self.lines.append(f"NOTE  {text}")

    def fail(self, text: str) -> None:
        self.failed = True
        self.lines.append(f"FAIL  {text}")


def _load_entries(text: bytes, f: _Findings) -> list[dict]:
    entries: list[dict] = []
    try:
        body = text.decode("utf-8")
    except UnicodeDecodeError:
        f.fail("entries.jsonl: not UTF-8")
        return entries
    for n, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
            if not isinstance(e, dict) or set(e) != {*FIELDS, "leaf_hash", "canonical"}:
                raise ValueError("unexpected members")
            if type(e["seq"]) is not int or not isinstance(e["at"], str):
                raise ValueError("seq must be an integer and at a string")
            e["_at"] = datetime.strptime(e["at"], _TIME).replace(tzinfo=timezone.utc)
        except (ValueError, TypeError) as err:
            f.fail(f"entries.jsonl line {n}: not an audit entry ({err})")
            continue
        entries.append(e)
    return entries


def verify_bundle(data: bytes, *, hub_cert: x509.Certificate | None = None,
                  trust_anchors: Sequence[x509.Certificate] | None = None,
                  allow_unsealed: bool = False) -> tuple[bool, list[str]]:
    """Check an evidence bundle offline; ``(ok, lines)``, every line naming a check and a file.

    ``hub_cert`` / ``trust_anchors`` pin the roots of trust (otherwise the bundle's own
    hub.pem and trust/ are used and their fingerprints printed for comparison). Entries not yet
    covered by the checkpoint fail the check unless ``allow_unsealed``. Fails closed: a
    bundle malformed in a way no check foresaw is reported as such, never accepted.
    """
    f = _Findings()
    try:
        _check(data, f, hub_cert, trust_anchors, allow_unsealed)
    except Exception as e:  # noqa: BLE001 - a bundle comes from outside; anything unexpected is a finding
        f.fail(f"the bundle is malformed ({type(e).__name__}: {e})")
    return not f.failed, f.lines


def _check(data: bytes, f: _Findings, hub_cert, trust_anchors, allow_unsealed: bool) -> None:
    from hub.edxml.model import read_package
    from hub.edxml.parser import parse_xml

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
        if sum(i.file_size for i in infos) > MAX_UNPACKED:
            f.fail(f"the bundle unpacks to more than {MAX_UNPACKED:,} bytes (not a hub bundle)")
            return
        names = [i.filename for i in infos]
        files = {i.filename: z.read(i) for i in infos if not i.is_dir()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        f.fail(f"the bundle is not a readable zip ({e})")
        return
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        f.fail(f"the zip holds several files named {', '.join(dupes)} (which one is evidence?)")
    for name in REQUIRED:
        if name not in files:
            f.fail(f"{name} is missing from the bundle")
    known = set(REQUIRED) | {"checkpoint.txt", "manifest.sig"}
    for name in sorted(files):
        if name not in known and not (name.startswith("trust/") and name.count("/") == 1 and name.endswith(".pem")):
            f.fail(f"{name}: not a file of an audit bundle (added?)")
    if f.failed and any(n not in files for n in ("entries.jsonl", "package.edxml", "hub.pem")):
        return

    # 0. roots of trust
    try:
        bundled_hub = x509.load_pem_x509_certificate(files["hub.pem"])
    except ValueError as e:
        f.fail(f"hub.pem: not a PEM certificate ({e})")
        return
    if hub_cert is not None and fingerprint(hub_cert) != fingerprint(bundled_hub):
        f.fail(f"hub.pem: sha256:{fingerprint(bundled_hub)} is not the pinned hub certificate "
               f"sha256:{fingerprint(hub_cert)}")
    hub = hub_cert or bundled_hub
    f.note(f"hub.pem: {describe(bundled_hub)} sha256:{fingerprint(bundled_hub)}"
           + (" (pinned)" if hub_cert is not None else " — compare with the hub's published fingerprint"))
    anchors: list[x509.Certificate] = []
    crls: list[x509.CertificateRevocationList] = []
    for name in sorted(n for n in files if n.startswith("trust/")):
        try:
            if name.endswith(".crl.pem"):
                crls.append(x509.load_pem_x509_crl(files[name]))
            else:
                anchors.extend(x509.load_pem_x509_certificates(files[name]))
        except ValueError as e:
            f.fail(f"{name}: not a PEM certificate or CRL ({e})")
    if trust_anchors is not None:
        pinned = {fingerprint(c) for c in trust_anchors}
        for c in anchors:
            if fingerprint(c) not in pinned:
                f.fail(f"trust/: {describe(c)} sha256:{fingerprint(c)} is not one of the pinned CAs")
        anchors = list(trust_anchors)
    else:
        for c in anchors:
            f.note(f"trust/: CA {describe(c)} sha256:{fingerprint(c)} — compare with the CA's published fingerprint")

    # 1. manifest
    manifest: dict = {}
    try:
        manifest = json.loads(files.get("manifest.json", b"{}"))
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
    except ValueError as e:
        f.fail(f"manifest.json: not JSON ({e})")
        manifest = {}
    listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    for name, body in sorted(files.items()):
        if name in ("manifest.json", "manifest.sig"):
            continue
        want = listed.get(name)
        if want is None:
            f.fail(f"{name}: not listed in manifest.json")
        elif hashlib.sha256(body).hexdigest() != want:
            f.fail(f"{name}: its SHA-256 is not the one manifest.json lists (the file was changed)")
    for name in listed:
        if name not in files:
            f.fail(f"{name}: listed in manifest.json but missing")
    if "manifest.sig" in files:
        try:
            raw = base64.b64decode(files["manifest.sig"].strip(), validate=True)
            good = len(raw) > 4 and raw[:4].hex() == cp.key_id_for(hub) and _verify_signature(hub, files.get("manifest.json", b""), raw[4:])
        except (binascii.Error, ValueError):
            good = False
        if good:
            f.ok("manifest.sig: manifest.json is signed by hub.pem, so every file listed is as the hub exported it")
        else:
            f.fail("manifest.sig: the signature of manifest.json does not verify with hub.pem "
                   "(manifest.json, manifest.sig or hub.pem was changed)")
    else:
        f.note("manifest.sig: absent — README.txt and manifest.json are informational only; "
               "the evidence below does not depend on them")

    # 2. checkpoint
    checkpoint = None
    if "checkpoint.txt" in files:
        try:
            checkpoint = cp.Checkpoint.from_text(files["checkpoint.txt"])
        except UsageError as e:
            f.fail(f"checkpoint.txt: {e.message}")
        else:
            if checkpoint.key_id != cp.key_id_for(hub):
                f.fail(f"checkpoint.txt: signed by key id {checkpoint.key_id}, but hub.pem has key id "
                       f"{cp.key_id_for(hub)} (another certificate)")
            elif not checkpoint.verify(hub):
                f.fail("checkpoint.txt: the signature does not verify with hub.pem (the checkpoint was changed or forged)")
            else:
                f.ok(f"checkpoint.txt: signed by hub.pem (key id {checkpoint.key_id}); {checkpoint.origin} "
                     f"size {checkpoint.size} root {checkpoint.root.hex()} at {utc_timestamp(checkpoint.at)}")
    else:
        f.note("checkpoint.txt: absent — the hub had signed no checkpoint when this bundle was exported")

    # 3. entries: canonical bytes and leaf hashes
    entries = _load_entries(files.get("entries.jsonl", b""), f)
    seqs = [e["seq"] for e in entries]
    if seqs != sorted(set(seqs)):
        f.fail("entries.jsonl: sequence numbers are repeated or out of order")
    leaves: dict[int, bytes] = {}
    bad_entries = 0
    for e in entries:
        try:
            canonical = canonical_entry(e["seq"], e["_at"], e["event"], e["actor"], e["document_id"], e["sender"],
                                        e["sha256"], e["reason"], e["message"], e["details"])
        except UsageError as err:
            f.fail(f"entries.jsonl: entry {e['seq']}: {err.message}")
            bad_entries += 1
            continue
        leaf = merkle.leaf_hash(canonical)
        leaves[e["seq"]] = leaf
        if canonical.decode("utf-8") != e["canonical"]:
            f.fail(f"entries.jsonl: entry {e['seq']} ({e['event']}): its fields do not give its \"canonical\" text "
                   "(a field was changed)")
            bad_entries += 1
        elif leaf.hex() != e["leaf_hash"]:
            f.fail(f"entries.jsonl: entry {e['seq']} ({e['event']}): SHA-256(0x00 || canonical) is not its leaf_hash")
            bad_entries += 1
    if entries and not bad_entries:
        f.ok(f"entries.jsonl: {len(entries)} entries, each canonical text and leaf hash recomputed and equal")

    # 4. inclusion proofs
    proven: set[int] = set()
    try:
        proofs = json.loads(files.get("proofs.json", b"{}"))
        if not isinstance(proofs, dict) or not isinstance(proofs.get("proofs"), list):
            raise ValueError("no proofs list")
    except ValueError as e:
        f.fail(f"proofs.json: not a proofs file ({e})")
        proofs = {"proofs": [], "not_yet_sealed": []}
    size = checkpoint.size if checkpoint is not None else 0
    if checkpoint is not None and (proofs.get("checkpoint_size") != size or proofs.get("root") != checkpoint.root.hex()):
        f.fail(f"proofs.json: made for tree size {proofs.get('checkpoint_size')} / root {proofs.get('root')}, "
               f"not the checkpoint's {size} / {checkpoint.root.hex()}")
    by_seq: dict[int, dict] = {}
    for p in proofs["proofs"]:
        if not isinstance(p, dict) or type(p.get("seq")) is not int or p["seq"] in by_seq:
            f.fail(f"proofs.json: a malformed or repeated proof ({str(p)[:80]})")
            continue
        by_seq[p["seq"]] = p
    listed_unsealed = proofs.get("not_yet_sealed") or []
    if not isinstance(listed_unsealed, list) or not all(type(x) is int for x in listed_unsealed):
        f.fail("proofs.json: not_yet_sealed must be a list of sequence numbers")
        listed_unsealed = []
    unsealed_listed = set(listed_unsealed)
    bad_proofs = 0
    for e in entries:
        seq = e["seq"]
        if checkpoint is not None and seq <= size:
            p = by_seq.get(seq)
            if p is None:
                f.fail(f"proofs.json: no inclusion proof for entry {seq}, which checkpoint {size} covers")
                bad_proofs += 1
                continue
            try:
                path = [bytes.fromhex(h) for h in p.get("path", [])]
                shape_ok = p.get("index") == seq - 1 and p.get("tree_size") == size
            except (ValueError, TypeError):
                path, shape_ok = [], False
            leaf = leaves.get(seq)
            if leaf is not None and shape_ok and merkle.verify_inclusion(leaf, seq - 1, size, path, checkpoint.root):
                proven.add(seq)
            elif leaf is not None:
                f.fail(f"proofs.json: the inclusion proof of entry {seq} ({e['event']}) does not lead to the checkpoint "
                       "root (the proof or the entry was changed)")
                bad_proofs += 1
        elif seq not in unsealed_listed:
            f.fail(f"proofs.json: entry {seq} is neither proven nor listed as not yet sealed")
            bad_proofs += 1
    for seq in sorted(set(by_seq) - set(seqs)):
        f.fail(f"proofs.json: a proof for entry {seq}, which is not in entries.jsonl")
    for seq in sorted(unsealed_listed):
        if checkpoint is not None and isinstance(seq, int) and seq <= size:
            f.fail(f"proofs.json: entry {seq} is listed as not yet sealed but checkpoint {size} covers it")
    unsealed = [e["seq"] for e in entries if e["seq"] not in proven and (checkpoint is None or e["seq"] > size)]
    if proven and not bad_proofs:
        f.ok(f"proofs.json: {len(proven)} inclusion proofs (RFC 9162) lead to the root of checkpoint {size}")
    if unsealed:
        text = (f"entries {', '.join(map(str, unsealed))} are NOT YET SEALED: written after "
                f"{'checkpoint ' + str(size) if checkpoint else 'any checkpoint'}, so this bundle does not prove them; "
                "export again after the next checkpoint")
        (f.note if allow_unsealed else f.fail)(text)

    # 5. the package
    package = files.get("package.edxml", b"")
    sha = hashlib.sha256(package).hexdigest()
    by_event = {ev: [e for e in entries if e["sha256"] == sha and e["event"] == ev]
                for ev in ("package.received", "package.accepted", "package.refused")}
    naming = by_event["package.received"] + by_event["package.accepted"] + by_event["package.refused"]
    accepted = bool(by_event["package.accepted"])
    if not naming:
        f.fail(f"package.edxml: its SHA-256 {sha} is not the package of any received/accepted/refused entry "
               "(the package was replaced or changed)")
    else:
        where = "proven" if all(e["seq"] in proven for e in naming) else "listed"
        f.ok(f"package.edxml: SHA-256 {sha} is the package the {where} entries "
             f"{', '.join(str(e['seq']) for e in naming)} name")
    received_at = None
    try:
        received_at = datetime.strptime(files.get("received_at", b"").decode("ascii").strip(), _TIME).replace(
            tzinfo=timezone.utc)
    except (ValueError, UnicodeDecodeError):
        f.fail("received_at: not a UTC timestamp YYYY-MM-DDTHH:MM:SS.ffffffZ")
    if received_at is not None and naming:
        # the time the hub recorded the decision on these bytes (accepted: that one, even if
        # the same bytes were refused before, e.g. until a recipient was registered)
        decided = by_event["package.accepted"] or naming
        if all(e["_at"] != received_at for e in decided):
            f.fail(f"received_at: {utc_timestamp(received_at)} is not the time of entry "
                   f"{', '.join(str(e['seq']) for e in decided)} ({decided[0]['at']}), when the hub received the package")
    by_connection = [e for e in by_event["package.received"]
                     if (e.get("details") or {}).get("authenticated_by") == "connection"]
    if received_at is not None and naming and accepted and by_connection:
        # Accepted unsigned (or with the SDK's placeholder signature) under the sdk profile: the
        # entry, not a signature, is the evidence of who handed it over.
        try:
            pkg = read_package(parse_xml(package, max_bytes=max(len(package), 1)))  # bounded by MAX_UNPACKED
        except HubError as e:
            f.fail(f"package.edxml: cannot be read: {e.code}: {e.message}")
        else:
            f.ok(f"package.edxml: not signed; accepted as authenticated by its sender's own connection "
                 f"(entry {by_connection[0]['seq']}, via {by_connection[0]['actor'] or '?'})")
            doc = naming[0]
            if pkg.document_id != doc["document_id"] or pkg.sender.organ_id != doc["sender"]:
                f.fail(f"package.edxml: it is {pkg.document_id} from {pkg.sender.organ_id}, not "
                       f"{doc['document_id']} from {doc['sender']} as its entries say")
    elif received_at is not None and naming:
        try:
            v = _verify_either(parse_xml(package, max_bytes=max(len(package), 1)),
                               TrustStore(anchors=tuple(anchors), crls=tuple(crls)), received_at)
            pkg = read_package(v.signed_root)
        except HubError as e:
            if accepted:
                f.fail(f"package.edxml: its signature does not verify at {utc_timestamp(received_at)} with the bundled "
                       f"CAs: {e.code}: {e.message}")
            else:
                f.note(f"package.edxml: the signature does not verify ({e.code}); the hub refused this package "
                       f"({', '.join(sorted({x['reason'] or '?' for x in by_event['package.refused']}))})")
        else:
            f.ok(f"package.edxml: XML-DSig ({v.signature_method.rsplit('#', 1)[-1]}) by {describe(v.certificate)}, "
                 f"chain valid at {utc_timestamp(received_at)} to {describe(v.chain[-1])}")
            doc = naming[0]
            if pkg.document_id != doc["document_id"] or pkg.sender.organ_id != doc["sender"]:
                f.fail(f"package.edxml: it is {pkg.document_id} from {pkg.sender.organ_id}, not "
                       f"{doc['document_id']} from {doc['sender']} as its entries say")
