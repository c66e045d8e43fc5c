"""``hub pki``, ``hub trust`` and ``hub agency``: the development PKI, trust anchors and the
agency registry (with the hub's own identity and the adapters' broker users)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509

from hub.cli_io import load_certs, out, read, to_json, warn
from hub.errors import UsageError
from hub.settings import Settings


# --- pki ----------------------------------------------------------------------------------

async def cmd_pki_init(args, settings: Settings) -> int:
    from hub.pki.devpki import init_dev_pki
    from hub.registry import codes

    agencies: dict[str, str] = {}
    for item in args.agency or []:
        code, _, name = item.partition("=")
        agencies[codes.check(code.strip())] = name.strip()
    directory = Path(args.dir) if args.dir else settings.pki_dir
    pki = init_dev_pki(directory, agencies, settings.hub_organ_id, force=args.force)

    def state(what: str) -> str:
        return "kept (already there)" if what in pki.kept else "new"

    out(f"DEVELOPMENT PKI in {pki.directory} (unencrypted keys: never use for real documents)")
    out(f"  root CA      {pki.ca_cert}  {state('ca')}")
    out(f"  CRL          {pki.crl}")
    for code, (key, cert) in pki.agencies.items():
        out(f"  {code}  key {key}  cert {cert}  {state(code)}")
    out(f"  hub {settings.hub_organ_id}  key {pki.hub[0]}  cert {pki.hub[1]}  {state(settings.hub_organ_id)}")
    if pki.kept and not args.force:
        out("existing keys and CA were kept; --force replaces them (bundles sealed under the old CA then fail)")
    hub_files = (settings.key_file, settings.cert_file)
    if (pki.hub[0].resolve(), pki.hub[1].resolve()) != (hub_files[0].resolve(), hub_files[1].resolve()):
        warn(f"the hub signs with {hub_files[0]} (HUB_KEY_FILE, HUB_DATA_DIR); set HUB_KEY_FILE={pki.hub[0]} "
             f"HUB_CERT_FILE={pki.hub[1]} to use the key made here")
    out(f"next: hub trust add {pki.ca_cert}; hub trust crl add {pki.crl}; hub agency add-hub; "
        "hub agency add CODE --name NAME --cert CODE.pem")
    return 0


# --- trust --------------------------------------------------------------------------------

async def cmd_trust_add(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import add_trust_anchor

    certs = load_certs([args.pem])
    async with open_engine(settings) as engine:
        for cert in certs:
            fp = await add_trust_anchor(engine, cert)
            out(f"trusted {cert.subject.rfc4514_string()}  sha256:{fp}")
    return 0


async def cmd_trust_crl_add(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import add_crl

    data = read(args.pem, "CRL")
    try:
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    except ValueError as e:
        raise UsageError(f"{args.pem} is not a CRL: {e}") from e
    async with open_engine(settings) as engine:
        fp = await add_crl(engine, crl)
    out(f"CRL of {crl.issuer.rfc4514_string()} added ({len(crl)} revoked, next update {crl.next_update_utc})  sha256:{fp}")
    return 0


async def cmd_trust_list(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import list_trust

    async with open_engine(settings) as engine:
        anchors, crl_rows = await list_trust(engine)
    out(f"{len(anchors)} trust anchor(s)")
    for a in anchors:
        out(f"  {a['subject']}  expires {a['not_after']:%Y-%m-%d}  sha256:{a['fingerprint'][:16]}…")
    out(f"{len(crl_rows)} CRL(s)")
    for c in crl_rows:
        out(f"  {c['issuer']}  this update {c['this_update']:%Y-%m-%d %H:%M}")
    return 0


# --- agencies -----------------------------------------------------------------------------

async def cmd_agency_add(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import add_agency

    certs = load_certs(args.cert)
    connected = False if args.no_system else None
    async with open_engine(settings) as engine:
        a = await add_agency(engine, args.code, name=args.name, certs=certs, accepts=args.accepts,
                             served_by=args.served_by, connected=connected, amqp_user=args.amqp_user,
                             profile=args.profile)
    accepts = "all types" if a.accepts is None else ",".join(sorted(a.accepts, key=int))
    role = "own system" if a.connected else f"served by {a.served_by or 'its nearest registered ancestor'}"
    out(f'registered {a.code} "{a.name}": {role}; accepts {accepts}; {len(a.fingerprints)} pinned certificate(s); '
        f"signature profile {a.profile}")
    if a.connected and settings.amqp_url:
        await _declare_inbox(settings, a.code)
        out(f"inbox.{a.code} and inbox.{a.code}.urgent are declared")
    if not a.name:
        warn(f"{a.code} has no name; give it one with --name (operators and recipients see it)")
    if not a.fingerprints:
        warn(f"{a.code} has no pinned certificate, so every package signed as {a.code} is refused "
             "(trust.not_pinned); pin one with --cert PEM")
    if a.connected and not settings.amqp_url:
        out(f"its adapter connects as RabbitMQ user {a.amqp_user or a.code}: `hub agency broker-user {a.code}` "
            "creates it (needs HUB_AMQP_URL)")
    return 0


async def _declare_inbox(settings: Settings, code: str) -> None:
    """The inbox exists from registration on, so the adapter can subscribe at once."""
    from hub.backbone.base import connect

    bb = await connect(settings.amqp_url)
    try:
        await bb.declare_topology()
        await bb.declare_inbox(code)
    finally:
        await bb.close()


async def cmd_agency_add_hub(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.pki.identity import load_signing_pair
    from hub.registry.store import add_agency

    if args.cert:
        certs = load_certs([args.cert])
    else:
        _, certs = load_signing_pair(settings.key_file, settings.cert_file, f"the hub {settings.hub_organ_id}")
    async with open_engine(settings) as engine:
        # No system and no document type: the hub sends status 02 refusals; nobody addresses it.
        a = await add_agency(engine, settings.hub_organ_id, name=args.name, certs=certs[:1], connected=False,
                             accepts="0", actor="cli")
    out(f"registered the hub's identity {a.code} \"{a.name}\" with its certificate "
        f"{certs[0].subject.rfc4514_string()}: recipients pin its status 02 refusals to it")
    return 0


async def cmd_agency_broker_user(args, settings: Settings) -> int:
    import secrets
    from urllib.parse import quote, urlsplit

    from hub.backbone.management import management_target
    from hub.backbone.nodes import split_nodes
    from hub.backbone.users import provision_agency_user
    from hub.context import open_engine
    from hub.registry import codes
    from hub.registry.store import load_registry

    code = codes.check(args.code)
    if not settings.amqp_url:
        raise UsageError("set HUB_AMQP_URL to the RabbitMQ the hub uses: the agency's user is made in its virtual "
                         "host (the embedded broker of `hub demo` needs no users)")
    async with open_engine(settings) as engine:
        reg = await load_registry(engine, only=[code])
    a = reg.agencies.get(code)
    if a is None:
        raise UsageError(f"agency {code} is not registered; register it first (hub agency add {code} ...)",
                         code="usage.not_found")
    if not a.connected:
        raise UsageError(f"{code} has no own system (it is served by {a.served_by or 'its nearest registered ancestor'}),"
                         " so no adapter connects for it; run this for the serving agency")
    base, admin_user, admin_password, vhost = management_target(settings)
    user = a.amqp_user or code
    password = secrets.token_urlsafe(24)
    perms = await provision_agency_user(base, admin_user, admin_password, user, password, code, vhost=vhost)
    await _declare_inbox(settings, code)
    u = urlsplit(split_nodes(settings.amqp_url)[0])  # the first node of a comma-separated list
    host = u.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}{':' + str(u.port) if u.port else ''}"
    out(f"RabbitMQ user {user} of {code} in virtual host {vhost}: configure {perms.configure}  "
        f"write {perms.write}  read {perms.read}")
    out("password (shown once, not stored by the hub; running this again sets a new one):")
    out(password)
    out(f"the adapter's URL: HUB_ADAPTER_AMQP_URL={u.scheme}://{netloc}{u.path or '/'}")
    return 0


async def cmd_agency_list(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import list_agencies

    async with open_engine(settings) as engine:
        total, rows = await list_agencies(engine, args.search, args.limit, args.offset, args.connected)
    if args.json:
        out(to_json({"total": total, "agencies": rows}))
        return 0
    out(f"{'CODE':<14} {'STATE':<8} {'SYSTEM':<16} {'ACCEPTS':<10} NAME")
    for r in rows:
        system = "own" if r["connected"] else (f"via {r['served_by']}" if r["served_by"] else "via ancestor")
        out(f"{r['code']:<14} {'active' if r['active'] else 'retired':<8} {system:<16} {(r['accepts'] or 'all'):<10} {r['name']}")
    out(f"({len(rows)} of {total} shown)")
    return 0


async def cmd_agency_show(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import agency_details, load_registry

    async with open_engine(settings) as engine:
        d = await agency_details(engine, args.code)
        reg = await load_registry(engine)
    if args.json:
        out(to_json(d))
        return 0
    now = datetime.now(timezone.utc)
    out(f"{d['code']}  {d['name']}")
    out(f"  state     {'active' if d['active'] else 'retired'}")
    system = reg.system_of(d["code"])
    out(f"  system    {'own (inbox.' + d['code'] + ')' if d['connected'] else 'served by ' + (system or 'nobody')}")
    out(f"  accepts   {d['accepts'] or 'all document types'}")
    out(f"  profile   {d['profile']}" + (" (unsigned SDK packages only over its own connection)"
                                         if d["profile"] == "sdk" else ""))
    out(f"  amqp user {(d['amqp_user'] or d['code']) if d['connected'] else '-'}")
    out(f"  serves    {d['serves_explicitly']} agencies explicitly")
    for c in d["certificates"]:
        na = c["not_after"] if c["not_after"].tzinfo else c["not_after"].replace(tzinfo=timezone.utc)
        state = "retired" if c["retired_at"] else f"{(na - now).days} days to expiry"
        out(f"  cert      sha256:{c['fingerprint']}  {c['subject']}  ({state})")
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
        out(to_json(rep))
        return 0
    out(f"packages accepted {rep['since'] or 'since the beginning'} .. {rep['until'] or 'now'}, by how they were "
        "authenticated")
    out(f"{'CODE':<14} {'PROFILE':<7} {'SIGNATURE':>10} {'SHA-1':>8} {'CONNECTION':>11} {'TOTAL':>8}  NAME")
    for r in rep["agencies"] + [{"code": "total", "name": "", "profile": "", **rep["totals"]}]:
        out(f"{r['code']:<14} {r['profile'] or '-':<7} {r['signature']:>10} {r['signature-sha1']:>8} "
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
        res = await import_csv(engine, read(args.file, "directory CSV"), progress=progress)
    print(file=sys.stderr)
    for line, msg in res.errors[:50]:
        out(f"  line {line}: {msg}" if line else f"  {msg}")
    if len(res.errors) > 50:
        out(f"  … {len(res.errors) - 50} more errors")
    out(f"imported {res.added:,} new and {res.updated:,} updated agencies in {time.perf_counter() - t0:.1f} s; "
        f"{len(res.errors)} line(s) with errors")
    return 1 if res.errors else 0


async def cmd_agency_retire(args, settings: Settings) -> int:
    from hub.context import open_engine
    from hub.registry.store import retire_agency, unpin_certificate

    async with open_engine(settings) as engine:
        if args.cert:
            await unpin_certificate(engine, args.code, args.cert)
            out(f"certificate {args.cert} of {args.code} retired")
        else:
            await retire_agency(engine, args.code)
            out(f"{args.code} retired: it no longer sends or receives")
    return 0


def register(sub) -> None:
    pki = sub.add_parser("pki", help="development PKI").add_subparsers(dest="sub", required=True, metavar="VERB")
    x = pki.add_parser("init", help="make a DEVELOPMENT root CA and CRL, one key+cert per agency and one for the hub; "
                                    "keeps what is already there")
    x.add_argument("dir", nargs="?", help="folder to write to (default: $HUB_DATA_DIR/pki, where the hub looks for "
                                          "its key: HUB_KEY_FILE, HUB_CERT_FILE)")
    x.add_argument("--agency", action="extend", nargs="+", metavar="CODE[=NAME]",
                   help="the agencies, all at once (--agency A=NAME B=NAME ...; repeatable)")
    x.add_argument("--force", action="store_true", help="replace an existing CA and keys (default: keep them)")
    x.set_defaults(func=cmd_pki_init)

    trust = sub.add_parser("trust", help="trust anchors and CRLs").add_subparsers(dest="sub", required=True,
                                                                                 metavar="VERB")
    x = trust.add_parser("add", help="trust a CA certificate (PEM)")
    x.add_argument("pem", help="the CA certificate(s), PEM")
    x.set_defaults(func=cmd_trust_add)
    crl = trust.add_parser("crl", help="certificate revocation lists").add_subparsers(dest="sub2", required=True,
                                                                                     metavar="VERB")
    x = crl.add_parser("add", help="add a CRL (PEM or DER) signed by a trusted CA")
    x.add_argument("pem", help="the CRL file, PEM or DER")
    x.set_defaults(func=cmd_trust_crl_add)
    x = trust.add_parser("list", help="list anchors and CRLs")
    x.set_defaults(func=cmd_trust_list)

    ag = sub.add_parser("agency", help="the agency registry").add_subparsers(dest="sub", required=True, metavar="VERB")
    x = ag.add_parser("add", help="register an agency, or update it and pin more certificates")
    x.add_argument("code", help="the agency code NNN.NN.NN.Xnn")
    x.add_argument("--name", help="the agency's name (default: none on a new agency, unchanged on an update)")
    x.add_argument("--cert", action="append", metavar="PEM", help="pin a signing certificate (repeatable; default: none)")
    x.add_argument("--accepts", metavar="TYPES",
                   help="comma-separated DocumentType/Type codes it receives (default: all)")
    x.add_argument("--served-by", metavar="CODE",
                   help="the connected system that serves this agency (default: its own system, or with --no-system "
                        "its nearest registered ancestor)")
    x.add_argument("--no-system", action="store_true", help="no own system: served by its nearest registered ancestor")
    x.add_argument("--amqp-user", metavar="USER", help="RabbitMQ user of its adapter (default: the code)")
    x.add_argument("--profile", choices=["strict", "sdk"], type=str.lower,
                   help="signatures: strict (XML-DSig, SHA-256; the default for a new agency) or sdk (the national "
                        "SDK's skeleton or no signature, accepted only over the agency's own connection)")
    x.set_defaults(func=cmd_agency_add)
    x = ag.add_parser("add-hub", help="register the hub's own identity (agency HUB_ORGAN_ID with its certificate) so "
                                      "recipients can pin its refusals")
    x.add_argument("--cert", metavar="PEM", help="the hub's certificate (default: HUB_CERT_FILE, "
                                                 "$HUB_DATA_DIR/pki/<HUB_ORGAN_ID>.pem)")
    x.add_argument("--name", default="edXML interchange hub", help="its name (default: edXML interchange hub)")
    x.set_defaults(func=cmd_agency_add_hub)
    x = ag.add_parser("broker-user", help="create (or reset) the RabbitMQ user of an agency's adapter with its "
                                          "permissions; prints the password once")
    x.add_argument("code", help="a registered agency with its own system")
    x.set_defaults(func=cmd_agency_broker_user)
    x = ag.add_parser("list", help="list agencies")
    x.add_argument("--search", help="part of a code or name (default: all)")
    x.add_argument("--connected", action="store_true", help="only agencies with their own system")
    x.add_argument("--limit", type=int, default=100, help="at most this many (default: 100)")
    x.add_argument("--offset", type=int, default=0, help="skip this many (default: 0)")
    x.add_argument("--json", action="store_true", help="JSON, times in ISO 8601")
    x.set_defaults(func=cmd_agency_list)
    x = ag.add_parser("show", help="one agency with its certificates")
    x.add_argument("code", help="the agency code")
    x.add_argument("--json", action="store_true", help="JSON, times in ISO 8601")
    x.set_defaults(func=cmd_agency_show)
    x = ag.add_parser("import", help="load a directory CSV (code,name,served_by,accepts,connected[,profile])")
    x.add_argument("file", help="UTF-8 CSV with a header row; connected is true or false")
    x.set_defaults(func=cmd_agency_import)
    x = ag.add_parser("auth-report", help="per agency, packages authenticated by signature, SHA-1 or connection")
    x.add_argument("--since", help="ISO 8601 date or time (UTC if no offset; default: the beginning)")
    x.add_argument("--until", help="ISO 8601 date or time, exclusive (default: now)")
    x.add_argument("--agency", metavar="CODE", help="only this sender (default: all)")
    x.add_argument("--json", action="store_true", help="JSON")
    x.set_defaults(func=cmd_agency_auth_report)
    x = ag.add_parser("retire", help="retire an agency, or with --cert one of its certificates")
    x.add_argument("code", help="the agency code")
    x.add_argument("--cert", metavar="SHA256", help="fingerprint of the certificate to retire (default: the agency)")
    x.set_defaults(func=cmd_agency_retire)
