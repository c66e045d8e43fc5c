"""Registry and trust persistence: agencies, pinned certificates, trust anchors and CRLs.

Every change of agencies or trust bumps ``registry_version``, logs what it touched
(``hub.registry.changes``: instances re-read only that) and appends an audit record, in the
same transaction. Re-exports the readers of :mod:`hub.registry.read` (``load_registry``,
``load_trust``, ``registry_version``), lists and searches agencies, imports the national directory CSV, and keeps the small ``settings_kv``
values (``read_meta`` / ``write_meta``, e.g. maintenance mode; their callers record them).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.errors import UsageError
from hub.pki.certs import describe, fingerprint, to_pem
from hub.registry import changes, codes
from hub.registry.fold import fold
from hub.registry.model import PROFILES, Agency
from hub.registry.read import load_registry, load_trust, parse_accepts, registry_version  # noqa: F401 - re-exported
from hub.audit import records as rec
from hub.store.engine import dialect_insert
from hub.store.tables import agencies, agency_certs, crls, settings_kv, trust_anchors

VERSION_KEY = changes.VERSION_KEY


async def read_meta(conn: AsyncConnection, key: str) -> str | None:
    return (await conn.execute(sa.select(settings_kv.c.value).where(settings_kv.c.key == key))).scalar()


async def maintenance_mode(conn: AsyncConnection) -> str:
    """``running``, ``stopped`` or ``draining`` (admin switch; workers and the gateway follow it)."""
    from hub.constants import META_MAINTENANCE

    return await read_meta(conn, META_MAINTENANCE) or "running"


async def write_meta(conn: AsyncConnection, key: str, value: str) -> None:
    stmt = dialect_insert(conn, settings_kv).values(key=key, value=value)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def parse_profile(value: str | None) -> str | None:
    """``strict`` or ``sdk`` (case-insensitive); ``None``/empty = unchanged (new agencies: strict)."""
    if value is None or not value.strip():
        return None
    v = value.strip().lower()
    if v not in PROFILES:
        raise UsageError(f"profile {value!r} is not one of {', '.join(PROFILES)}")
    return v


def _fmt_accepts(a: frozenset[str] | None) -> str | None:
    return None if a is None else ",".join(sorted(a, key=int))


async def add_agency(
    engine: AsyncEngine,
    code: str,
    *,
    name: str | None = None,
    certs: list[x509.Certificate] = (),
    accepts: str | None = None,
    served_by: str | None = None,
    connected: bool | None = None,
    amqp_user: str | None = None,
    profile: str | None = None,
    actor: str = "admin",
) -> Agency:
    """Register ``code`` or update it: pins ``certs`` in addition to those already pinned."""
    code = codes.check(code)
    if served_by:
        served_by = codes.check(served_by, "--served-by code")
        if served_by == code:
            raise UsageError("an agency cannot be served by itself")
    acc = parse_accepts(accepts) if accepts is not None else None
    profile = parse_profile(profile)
    now = rec.utcnow()
    async with engine.begin() as conn:
        if amqp_user:
            # One broker user, one system: a shared user would let one adapter pass as another.
            taken = (await conn.execute(sa.select(agencies.c.code).where(
                agencies.c.code != code,
                sa.or_(agencies.c.amqp_user == amqp_user, sa.and_(agencies.c.code == amqp_user,
                                                                 agencies.c.amqp_user.is_(None)))))).scalar()
            if taken:
                raise UsageError(f"broker user {amqp_user!r} already belongs to {taken}; each system has its own")
        existing = (await conn.execute(sa.select(agencies).where(agencies.c.code == code))).mappings().first()
        if served_by:
            server = (await conn.execute(sa.select(agencies.c.connected).where(agencies.c.code == served_by))).first()
            if server is None:
                raise UsageError(f"--served-by {served_by} is not registered; register the serving system first")
            if not server.connected:
                raise UsageError(f"--served-by {served_by} has no own system, so it cannot serve {code}; name the "
                                 "agency whose system receives for it")
        if existing is None:
            if connected is None:
                connected = served_by is None
            await conn.execute(agencies.insert().values(
                code=code, name=name or "", name_folded=fold(name), active=True, connected=connected,
                served_by=served_by, accepts=_fmt_accepts(acc), amqp_user=amqp_user, profile=profile or "strict",
                created_at=now, updated_at=now,
            ))
            event = "agency.added"
        else:
            values: dict = {"updated_at": now, "active": True}
            if name is not None:
                values["name"] = name
                values["name_folded"] = fold(name)
            if accepts is not None:
                values["accepts"] = _fmt_accepts(acc)
            if served_by is not None:
                values["served_by"] = served_by
            if connected is not None:
                values["connected"] = connected
            if amqp_user is not None:
                values["amqp_user"] = amqp_user
            if profile is not None:
                values["profile"] = profile
            await conn.execute(agencies.update().where(agencies.c.code == code).values(**values))
            event = "agency.updated"
        pinned = []
        for cert in certs:
            fp = fingerprint(cert)
            owner = (await conn.execute(sa.select(agency_certs.c.code).where(agency_certs.c.fingerprint == fp))).scalar()
            if owner and owner != code:
                raise UsageError(f"certificate {describe(cert)} is already pinned to {owner}; one certificate, one agency")
            if owner:
                await conn.execute(agency_certs.update().where(agency_certs.c.fingerprint == fp).values(retired_at=None))
            else:
                await conn.execute(agency_certs.insert().values(
                    fingerprint=fp, code=code, pem=to_pem(cert), subject=cert.subject.rfc4514_string(),
                    not_after=cert.not_valid_after_utc, added_at=now,
                ))
            pinned.append(fp)
        await changes.record(conn, [(changes.AGENCY, code, "add" if existing is None else "update")])
        await rec.append(conn, event, actor=actor, details={
            "code": code, "name": name, "pinned": pinned, "accepts": accepts, "served_by": served_by,
            "connected": connected, "amqp_user": amqp_user, "profile": profile,
        })
    reg = await load_registry(engine, only=[code])
    return reg.agencies[code]


async def retire_agency(engine: AsyncEngine, code: str, actor: str = "admin") -> None:
    code = codes.check(code)
    async with engine.begin() as conn:
        res = await conn.execute(agencies.update().where(agencies.c.code == code).values(active=False, updated_at=rec.utcnow()))
        if res.rowcount == 0:
            raise UsageError(f"agency {code} is not registered")
        await changes.record(conn, [(changes.AGENCY, code, "retire")])
        await rec.append(conn, "agency.retired", actor=actor, details={"code": code})


async def unpin_certificate(engine: AsyncEngine, code: str, fp: str, actor: str = "admin") -> None:
    async with engine.begin() as conn:
        res = await conn.execute(
            agency_certs.update()
            .where(agency_certs.c.code == code, agency_certs.c.fingerprint == fp.lower())
            .values(retired_at=rec.utcnow())
        )
        if res.rowcount == 0:
            raise UsageError(f"no certificate {fp} is pinned to {code}")
        await changes.record(conn, [(changes.AGENCY, code, "unpin")])
        await rec.append(conn, "agency.cert_retired", actor=actor, details={"code": code, "fingerprint": fp})


async def agency_details(engine: AsyncEngine, code: str) -> dict:
    code = codes.check(code)
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(agencies).where(agencies.c.code == code))).mappings().first()
        if row is None:
            raise UsageError(f"agency {code} is not registered")
        certs = (await conn.execute(
            sa.select(agency_certs).where(agency_certs.c.code == code).order_by(agency_certs.c.added_at)
        )).mappings().all()
        served = (await conn.execute(
            sa.select(sa.func.count()).select_from(agencies).where(agencies.c.served_by == code)
        )).scalar()
    return {**dict(row), "certificates": [dict(c) for c in certs], "serves_explicitly": served}


def search_filter(search: str):
    """Agencies whose code or name contains ``search``: names accent- and case-insensitively (the
    folded column), codes as typed; ``%`` and ``_`` are characters to find, not LIKE wildcards
    (escaped, on SQLite and PostgreSQL alike). The store, the admin API and the console share it."""
    return sa.or_(agencies.c.code.icontains(search, autoescape=True),
                  agencies.c.name.icontains(search, autoescape=True),
                  agencies.c.name_folded.contains(fold(search), autoescape=True))


async def list_agencies(engine: AsyncEngine, search: str | None = None, limit: int = 100, offset: int = 0,
                        connected_only: bool = False) -> tuple[int, list[dict]]:
    q = sa.select(agencies)
    if search:
        q = q.where(search_filter(search))
    if connected_only:
        q = q.where(agencies.c.connected.is_(True))
    async with engine.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.count()).select_from(q.subquery()))).scalar()
        rows = (await conn.execute(q.order_by(agencies.c.code).limit(limit).offset(offset))).mappings().all()
    return total, [dict(r) for r in rows]


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


async def import_csv(engine: AsyncEngine, data: bytes | str | Path, actor: str = "admin",
                     progress=None) -> ImportResult:
    """Load a directory CSV: ``code,name[,served_by][,accepts][,connected][,profile]`` with a header row.

    Bad lines are reported by line number and skipped; good lines are upserted in bulk.
    """
    if isinstance(data, Path):
        data = data.read_bytes()
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as e:
        raise UsageError(f"the CSV is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "code" not in [f.strip().lower() for f in reader.fieldnames]:
        raise UsageError("the CSV needs a header row with at least a 'code' column "
                         "(code,name,served_by,accepts,connected,profile)")
    # Without a profile column a re-import keeps each agency's profile; with one, the CSV sets it
    # (an empty cell = strict).
    has_profile = "profile" in [f.strip().lower() for f in reader.fieldnames]
    result = ImportResult()
    rows: dict[str, dict] = {}
    now = rec.utcnow()
    for raw in reader:
        lineno = reader.line_num
        if None in raw:  # DictReader puts surplus fields under the key None
            result.errors.append((lineno, f"{len(raw[None])} more field(s) than the header has"))
            continue
        r = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        code = r.get("code", "")
        if not codes.is_valid(code):
            result.errors.append((lineno, f"malformed agency code {code!r} (expected NNN.NN.NN.Xnn)"))
            continue
        sb = r.get("served_by") or None
        if sb and not codes.is_valid(sb):
            result.errors.append((lineno, f"malformed served_by code {sb!r}"))
            continue
        try:
            acc = _fmt_accepts(parse_accepts(r.get("accepts")))
        except UsageError as e:
            result.errors.append((lineno, str(e)))
            continue
        flag = r.get("connected", "").lower()
        if flag not in ("", "true", "false"):
            result.errors.append((lineno, f"connected is {r.get('connected')!r}; write true or false"))
            continue
        try:
            prof = parse_profile(r.get("profile"))
        except UsageError as e:
            result.errors.append((lineno, str(e)))
            continue
        if code in rows:
            result.errors.append((lineno, f"{code} appears twice; the later line wins"))
        rows[code] = {
            "code": code, "name": r.get("name", ""), "name_folded": fold(r.get("name", "")), "active": True,
            "connected": flag == "true",
            "served_by": sb, "accepts": acc, "amqp_user": None, "profile": prof or "strict",
            "created_at": now, "updated_at": now,
        }
    async with engine.begin() as conn:
        stored = dict((await conn.execute(sa.select(agencies.c.code, agencies.c.connected))).all())
        existing = set(stored)
        systems = {c for c, connected in stored.items() if connected} - set(rows)
        systems |= {c for c, row in rows.items() if row["connected"]}
        known = existing | set(rows)  # once: per row it made an import with served_by quadratic
        for code, row in list(rows.items()):
            sb = row["served_by"]
            if sb and sb not in known:
                result.errors.append((0, f"{code}: served_by {sb} is not registered; imported without it"))
                row["served_by"] = None
            elif sb and sb not in systems:
                result.errors.append((0, f"{code}: served_by {sb} has no own system; imported without it"))
                row["served_by"] = None
        items = list(rows.values())
        batch = 5000
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            stmt = dialect_insert(conn, agencies)
            stmt = stmt.on_conflict_do_update(
                index_elements=["code"],
                set_={k: getattr(stmt.excluded, k) for k in ("name", "name_folded", "served_by", "accepts", "connected",
                                                           "updated_at") + (("profile",) if has_profile else ())},
            )
            await conn.execute(stmt, chunk)
            if progress:
                progress(min(i + batch, len(items)), len(items))
        result.updated = sum(1 for c in rows if c in existing)
        result.added = len(rows) - result.updated
        await changes.record(conn, [(changes.AGENCY, c, "import") for c in rows]
                             if len(rows) <= changes.IMPORT_LOGGED_MAX else [(changes.RELOAD, "", "import")])
        await rec.append(conn, "agency.imported", actor=actor, details={
            "added": result.added, "updated": result.updated, "errors": len(result.errors),
        })
    return result


# --- trust --------------------------------------------------------------------------------

async def add_trust_anchor(engine: AsyncEngine, cert: x509.Certificate, actor: str = "admin") -> str:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise UsageError(f"{describe(cert)} is not a CA certificate (BasicConstraints CA:TRUE); add the issuing CA instead")
    fp = fingerprint(cert)
    async with engine.begin() as conn:
        if not (await conn.execute(sa.select(trust_anchors.c.fingerprint).where(trust_anchors.c.fingerprint == fp))).first():
            await conn.execute(trust_anchors.insert().values(
                fingerprint=fp, pem=to_pem(cert), subject=cert.subject.rfc4514_string(),
                not_after=cert.not_valid_after_utc, added_at=rec.utcnow(),
            ))
        await changes.record(conn, [(changes.ANCHOR, fp, "add")])
        await rec.append(conn, "trust.anchor_added", actor=actor, details={"fingerprint": fp, "subject": describe(cert)})
    return fp


async def add_crl(engine: AsyncEngine, crl: x509.CertificateRevocationList, actor: str = "admin") -> str:
    async with engine.connect() as conn:
        anchors = [x509.load_pem_x509_certificate(p.encode()) for (p,) in (await conn.execute(sa.select(trust_anchors.c.pem))).all()]
        pinned = [x509.load_pem_x509_certificate(p.encode()) for (p,) in (await conn.execute(sa.select(agency_certs.c.pem))).all()]
    issuers = [c for c in anchors + pinned if c.subject == crl.issuer]
    if not any(crl.is_signature_valid(c.public_key()) for c in issuers):
        raise UsageError(f"the CRL issued by {crl.issuer.rfc4514_string()} is not signed by any trusted CA; add its CA first")
    der = crl.public_bytes(serialization.Encoding.DER)
    fp = hashlib.sha256(der).hexdigest()
    pem = crl.public_bytes(serialization.Encoding.PEM).decode()
    async with engine.begin() as conn:
        if not (await conn.execute(sa.select(crls.c.fingerprint).where(crls.c.fingerprint == fp))).first():
            await conn.execute(crls.insert().values(
                fingerprint=fp, issuer=crl.issuer.rfc4514_string(), pem=pem, this_update=crl.last_update_utc,
                next_update=crl.next_update_utc, added_at=rec.utcnow(),
            ))
        await changes.record(conn, [(changes.CRL, fp, "add")])
        await rec.append(conn, "trust.crl_added", actor=actor, details={
            "fingerprint": fp, "issuer": crl.issuer.rfc4514_string(), "revoked": len(crl),
        })
    return fp


async def list_trust(engine: AsyncEngine) -> tuple[list[dict], list[dict]]:
    async with engine.connect() as conn:
        a = (await conn.execute(sa.select(trust_anchors).order_by(trust_anchors.c.added_at))).mappings().all()
        c = (await conn.execute(sa.select(crls.c.fingerprint, crls.c.issuer, crls.c.this_update, crls.c.next_update, crls.c.added_at))).mappings().all()
    return [dict(x) for x in a], [dict(x) for x in c]
