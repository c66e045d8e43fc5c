"""The ``hub`` command: a thin layer over the factories in :mod:`hub.context`.

Exit codes: 0 success (``check``: all accepted), 1 refused / failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509

from hub.errors import HubError, UsageError
from hub.settings import Settings


def _out(*a) -> None:
    print(*a, flush=True)


def _err(msg: str) -> None:
    print(f"hub: {msg}", file=sys.stderr, flush=True)


def _load_certs(paths: list[str]) -> list[x509.Certificate]:
    certs = []
    for p in paths or []:
        try:
            data = Path(p).read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read certificate {p}: {e.strerror}") from e
        try:
            certs.extend(x509.load_pem_x509_certificates(data))
        except ValueError as e:
            raise UsageError(f"{p} is not a PEM certificate: {e}") from e
    return certs


# --- pki ----------------------------------------------------------------------------------

async def cmd_pki_init(args, settings: Settings) -> int:
    from hub.pki.devpki import init_dev_pki
    from hub.registry import codes

    agencies: dict[str, str] = {}
    for item in args.agency or []:
        code, _, name = item.partition("=")
        agencies[codes.check(code.strip())] = name.strip()
    pki = init_dev_pki(args.dir, agencies, settings.hub_organ_id)
    _out(f"DEVELOPMENT PKI written to {pki.directory} (unencrypted keys: never use for real documents)")
    _out(f"  root CA      {pki.ca_cert}")
    for code, (key, cert) in pki.agencies.items():
        _out(f"  {code}  key {key}  cert {cert}")
    _out(f"  hub {settings.hub_organ_id}  key {pki.hub[0]}  cert {pki.hub[1]}")
    _out("next: hub trust add " + str(pki.ca_cert) + "; hub agency add CODE --name NAME --cert CODE.pem")
    return 0


# --- trust --------------------------------------------------------------------------------

async def cmd_trust_add(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import add_trust_anchor

    certs = _load_certs([args.pem])
    async with open_engine(settings) as engine:
        for cert in certs:
            fp = await add_trust_anchor(engine, cert)
            _out(f"trusted {cert.subject.rfc4514_string()}  sha256:{fp}")
    return 0


async def cmd_trust_crl_add(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import add_crl

    data = Path(args.pem).read_bytes()
    try:
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    except ValueError as e:
        raise UsageError(f"{args.pem} is not a CRL: {e}") from e
    async with open_engine(settings) as engine:
        fp = await add_crl(engine, crl)
    _out(f"CRL of {crl.issuer.rfc4514_string()} added ({len(crl)} revoked, next update {crl.next_update_utc})  sha256:{fp}")
    return 0


async def cmd_trust_list(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import list_trust

    async with open_engine(settings) as engine:
        anchors, crl_rows = await list_trust(engine)
    _out(f"{len(anchors)} trust anchor(s)")
    for a in anchors:
        _out(f"  {a['subject']}  expires {a['not_after']:%Y-%m-%d}  sha256:{a['fingerprint'][:16]}…")
    _out(f"{len(crl_rows)} CRL(s)")
    for c in crl_rows:
        _out(f"  {c['issuer']}  this update {c['this_update']:%Y-%m-%d %H:%M}")
    return 0


# --- agencies -----------------------------------------------------------------------------

async def cmd_agency_add(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import add_agency

    certs = _load_certs(args.cert)
    connected = False if args.no_system else None
    async with open_engine(settings) as engine:
        a = await add_agency(engine, args.code, name=args.name, certs=certs, accepts=args.accepts,
                             served_by=args.served_by, connected=connected, amqp_user=args.amqp_user,
                             profile=args.profile)
    if a.connected and settings.amqp_url:
        # The inbox exists from registration on, so the adapter can subscribe at once.
        from hub.backbone.base import connect

        bb = await connect(settings.amqp_url)
        try:
            await bb.declare_topology()
            await bb.declare_inbox(a.code)
        finally:
            await bb.close()
    accepts = "all types" if a.accepts is None else ",".join(sorted(a.accepts, key=int))
    role = "own system" if a.connected else f"served by {a.served_by or 'nearest registered ancestor'}"
    _out(f"registered {a.code} {a.name!r}: {role}; accepts {accepts}; {len(a.fingerprints)} pinned certificate(s); "
         f"signature profile {a.profile}")
    return 0


async def cmd_agency_list(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import list_agencies

    async with open_engine(settings) as engine:
        total, rows = await list_agencies(engine, args.search, args.limit, args.offset, args.connected)
    if args.json:
        _out(json.dumps({"total": total, "agencies": rows}, default=str, ensure_ascii=False, indent=1))
        return 0
    _out(f"{'CODE':<14} {'STATE':<8} {'SYSTEM':<16} {'ACCEPTS':<10} NAME")
    for r in rows:
        system = "own" if r["connected"] else (f"via {r['served_by']}" if r["served_by"] else "via ancestor")
        _out(f"{r['code']:<14} {'active' if r['active'] else 'retired':<8} {system:<16} {(r['accepts'] or 'all'):<10} {r['name']}")
    _out(f"({len(rows)} of {total} shown)")
    return 0


async def cmd_agency_show(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import agency_details, load_registry

    async with open_engine(settings) as engine:
        d = await agency_details(engine, args.code)
        reg = await load_registry(engine)
    if args.json:
        _out(json.dumps(d, default=str, ensure_ascii=False, indent=1))
        return 0
    now = datetime.now(timezone.utc)
    _out(f"{d['code']}  {d['name']}")
    _out(f"  state     {'active' if d['active'] else 'retired'}")
    system = reg.system_of(d["code"])
    _out(f"  system    {'own (inbox.' + d['code'] + ')' if d['connected'] else 'served by ' + str(system)}")
    _out(f"  accepts   {d['accepts'] or 'all document types'}")
    _out(f"  profile   {d['profile']}" + (" (unsigned SDK packages only over its own connection)"
                                          if d["profile"] == "sdk" else ""))
    _out(f"  amqp user {d['amqp_user'] or d['code'] if d['connected'] else '-'}")
    _out(f"  serves    {d['serves_explicitly']} agencies explicitly")
    for c in d["certificates"]:
        na = c["not_after"] if c["not_after"].tzinfo else c["not_after"].replace(tzinfo=timezone.utc)
        state = "retired" if c["retired_at"] else f"{(na - now).days} days to expiry"
        _out(f"  cert      sha256:{c['fingerprint']}  {c['subject']}  ({state})")
    return 0


async def cmd_agency_auth_report(args, settings: Settings) -> int:
    from hub.audit.auth_report import auth_report
    from hub.audit.query import parse_time
    from hub.context import open_engine
    from hub.registry import codes

    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    agency = codes.check(args.agency, "--agency") if args.agency else None
    async with open_engine(settings) as engine:
        rep = await auth_report(engine, since=since, until=until, agency=agency)
    if args.json:
        _out(json.dumps(rep, ensure_ascii=False, indent=1))
        return 0
    _out(f"packages accepted {rep['since'] or 'since the beginning'} .. {rep['until'] or 'now'}, by how they were "
         "authenticated")
    _out(f"{'CODE':<14} {'PROFILE':<7} {'SIGNATURE':>10} {'SHA-1':>8} {'CONNECTION':>11} {'TOTAL':>8}  NAME")
    for r in rep["agencies"] + [{"code": "total", "name": "", "profile": "", **rep["totals"]}]:
        _out(f"{r['code']:<14} {r['profile'] or '-':<7} {r['signature']:>10} {r['signature-sha1']:>8} "
             f"{r['connection']:>11} {r['total']:>8}  {r['name']}")
    return 0


async def cmd_agency_import(args, settings: Settings) -> int:
    import time

    from hub.context import open_engine
    from hub.registry.store import import_csv

    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"\r  imported {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

    async with open_engine(settings) as engine:
        res = await import_csv(engine, Path(args.file), progress=progress)
    print(file=sys.stderr)
    for line, msg in res.errors[:50]:
        _out(f"  line {line}: {msg}" if line else f"  {msg}")
    if len(res.errors) > 50:
        _out(f"  … {len(res.errors) - 50} more errors")
    _out(f"imported {res.added:,} new and {res.updated:,} updated agencies in {time.perf_counter() - t0:.1f} s; "
         f"{len(res.errors)} line(s) with errors")
    return 1 if res.errors else 0


async def cmd_agency_retire(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import retire_agency, unpin_certificate

    async with open_engine(settings) as engine:
        if args.cert:
            await unpin_certificate(engine, args.code, args.cert)
            _out(f"certificate {args.cert} of {args.code} retired")
        else:
            await retire_agency(engine, args.code)
            _out(f"{args.code} retired: it no longer sends or receives")
    return 0


# --- sign / check -------------------------------------------------------------------------

async def cmd_sign(args, settings: Settings) -> int:
    from hub.edxml.signature import sign_package
    from hub.pki.devpki import load_key

    key = load_key(args.key)
    certs = _load_certs([args.cert])
    signed = sign_package(Path(args.input).read_bytes(), key, certs[0], certs[1:])
    Path(args.output).write_bytes(signed)
    _out(f"signed {args.input} -> {args.output} ({len(signed):,} bytes)")
    return 0


async def cmd_check(args, settings: Settings) -> int:
    from hub.context import load_check_context, open_engine
    from hub.pipeline.checks import check_package
    from hub.pipeline.explain import explain_stages

    at = datetime.fromisoformat(args.at) if args.at else None
    async with open_engine(settings) as engine:
        ctx = await load_check_context(engine, settings)
    refused = 0
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read {name}: {e.strerror}") from e
        verdict = check_package(data, ctx, at=at)
        refused += not verdict.accepted
        stages = explain_stages(data, verdict, ctx.validator) if args.explain else []
        if args.json:
            d = verdict.as_dict(name)
            if stages:
                d["stages"] = [st.as_dict() for st in stages]
            _out(json.dumps(d, ensure_ascii=False))
        else:
            _out(verdict.line(name))
            for st in stages:
                for line in st.lines():
                    _out(line)
    return 1 if refused else 0


# --- users --------------------------------------------------------------------------------

async def cmd_user_add(args, settings: Settings) -> int:
    from hub.api.users import add_user
    from hub.context import open_engine

    async with open_engine(settings) as engine:
        token = await add_user(engine, args.name, args.role, args.agency, actor="cli")
    _out(f"user {args.name!r} ({args.role}{' of ' + args.agency if args.agency else ''}) created.")
    _out("token (shown once, stored hashed; give it to the user over a safe channel):")
    _out(token)
    return 0


async def cmd_user_revoke(args, settings: Settings) -> int:
    from hub.api.users import revoke_user
    from hub.context import open_engine

    async with open_engine(settings) as engine:
        await revoke_user(engine, args.user, actor="cli")
    _out(f"revoked {args.user}: its token no longer works")
    return 0


async def cmd_user_list(args, settings: Settings) -> int:
    from hub.api.users import list_users
    from hub.context import open_engine

    async with open_engine(settings) as engine:
        rows = await list_users(engine)
    _out(f"{'ID':<14} {'NAME':<24} {'ROLE':<8} {'AGENCY':<14} {'STATE':<8} LAST USED")
    for r in rows:
        state = "revoked" if r["revoked_at"] else "active"
        _out(f"{r['id']:<14} {r['name']:<24} {r['role']:<8} {r['agency'] or '-':<14} {state:<8} {r['last_used_at'] or '-'}")
    return 0


# --- parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hub", description="edXML (QCVN 102:2016) inter-agency document interchange hub")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    pki = sub.add_parser("pki", help="development PKI").add_subparsers(dest="sub", required=True)
    x = pki.add_parser("init", help="make a DEVELOPMENT root CA, one key+cert per agency and one for the hub")
    x.add_argument("dir")
    x.add_argument("--agency", action="append", metavar="CODE[=NAME]", help="repeat for each agency")
    x.set_defaults(func=cmd_pki_init)

    trust = sub.add_parser("trust", help="trust anchors and CRLs").add_subparsers(dest="sub", required=True)
    x = trust.add_parser("add", help="trust a CA certificate (PEM)")
    x.add_argument("pem")
    x.set_defaults(func=cmd_trust_add)
    crl = trust.add_parser("crl", help="certificate revocation lists").add_subparsers(dest="sub2", required=True)
    x = crl.add_parser("add", help="add a CRL (PEM or DER) signed by a trusted CA")
    x.add_argument("pem")
    x.set_defaults(func=cmd_trust_crl_add)
    x = trust.add_parser("list", help="list anchors and CRLs")
    x.set_defaults(func=cmd_trust_list)

    ag = sub.add_parser("agency", help="the agency registry").add_subparsers(dest="sub", required=True)
    x = ag.add_parser("add", help="register an agency, or update it and pin more certificates")
    x.add_argument("code")
    x.add_argument("--name")
    x.add_argument("--cert", action="append", metavar="PEM", help="pin a signing certificate (repeatable)")
    x.add_argument("--accepts", metavar="TYPES", help="comma-separated DocumentType/Type codes it receives (default: all)")
    x.add_argument("--served-by", metavar="CODE", help="the connected system that serves this agency")
    x.add_argument("--no-system", action="store_true", help="no own system: served by its nearest registered ancestor")
    x.add_argument("--amqp-user", help="RabbitMQ user of its adapter (default: the code)")
    x.add_argument("--profile", choices=["strict", "sdk"], type=str.lower,
                   help="signatures: strict (XML-DSig, SHA-256; the default) or sdk (the national SDK's "
                        "skeleton accepted only over the agency's own connection)")
    x.set_defaults(func=cmd_agency_add)
    x = ag.add_parser("list", help="list agencies")
    x.add_argument("--search")
    x.add_argument("--connected", action="store_true", help="only agencies with their own system")
    x.add_argument("--limit", type=int, default=100)
    x.add_argument("--offset", type=int, default=0)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_agency_list)
    x = ag.add_parser("show", help="one agency with its certificates")
    x.add_argument("code")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_agency_show)
    x = ag.add_parser("import", help="load a directory CSV (code,name,served_by,accepts,connected)")
    x.add_argument("file")
    x.set_defaults(func=cmd_agency_import)
    x = ag.add_parser("auth-report", help="per agency, packages authenticated by signature, SHA-1 or connection")
    x.add_argument("--since", help="ISO 8601 date or time (UTC if no offset); default: the beginning")
    x.add_argument("--until", help="ISO 8601 date or time, exclusive; default: now")
    x.add_argument("--agency", metavar="CODE", help="only this sender")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_agency_auth_report)
    x = ag.add_parser("retire", help="retire an agency, or with --cert one of its certificates")
    x.add_argument("code")
    x.add_argument("--cert", metavar="SHA256", help="fingerprint of the certificate to retire")
    x.set_defaults(func=cmd_agency_retire)

    x = sub.add_parser("sign", help="sign a package (enveloped XML-DSig, RSA/ECDSA-SHA256)")
    x.add_argument("input")
    x.add_argument("--key", required=True)
    x.add_argument("--cert", required=True, help="PEM: the signing certificate, then any intermediates")
    x.add_argument("-o", "--output", required=True)
    x.set_defaults(func=cmd_sign)

    x = sub.add_parser("check", help="run every stateless check offline: exit 0 all accepted, 1 any refused")
    x.add_argument("files", nargs="+")
    x.add_argument("--json", action="store_true", help="one JSON object per file")
    x.add_argument("--at", help="validate certificates at this ISO time instead of now")
    x.add_argument("--explain", action="store_true",
                   help="show each stage's outcome (parse, schema, signature, trust, authority) and every schema error (slower)")
    x.set_defaults(func=cmd_check)

    us = sub.add_parser("user", help="API users and their bearer tokens").add_subparsers(dest="sub", required=True)
    x = us.add_parser("add", help="create a user; prints its token once")
    x.add_argument("name")
    x.add_argument("--role", required=True, choices=["agency", "admin", "auditor"])
    x.add_argument("--agency", metavar="CODE", help="for role agency: the agency it acts for")
    x.set_defaults(func=cmd_user_add)
    x = us.add_parser("revoke", help="revoke a user's token (by id or name)")
    x.add_argument("user")
    x.set_defaults(func=cmd_user_revoke)
    x = us.add_parser("list", help="list users (never their tokens)")
    x.set_defaults(func=cmd_user_list)

    _add_later_commands(sub)
    return p


def _add_later_commands(sub) -> None:
    """Commands of the backbone (serve, demo, send, inbox, status, bench) register here."""
    try:
        from hub import cli_backbone
    except ImportError:
        return
    cli_backbone.register(sub)
    from hub import cli_audit
    cli_audit.register(sub)
    from hub import cli_vdxp
    cli_vdxp.register(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    settings = Settings.from_env()
    try:
        return asyncio.run(args.func(args, settings))
    except UsageError as e:
        _err(e.message)
        return 2
    except HubError as e:
        _err(f"{e.code}: {e.message}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
