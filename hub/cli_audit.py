"""`hub audit …`: search, trail, verify, export, verify-bundle, checkpoint, consistency.

Exit codes: 0 success / verified, 1 a problem was found (or nothing matched a search), 2 usage
error or something named that does not exist (a document, a checkpoint). Everything but ``verify-bundle`` reads the hub's database (HUB_DATABASE_URL);
``verify-bundle`` needs nothing but the zip: no database, no network.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from hub.errors import UsageError
from hub.settings import Settings


def _out(*a) -> None:
    print(*a, flush=True)


def _err(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}"


def _hub_cert(settings: Settings, path: str | None = None):
    from cryptography import x509

    p = Path(path) if path else settings.cert_file
    try:
        return x509.load_pem_x509_certificate(p.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"the hub certificate {p} is not there; set HUB_CERT_FILE or pass --cert") from None
    except ValueError as e:
        raise UsageError(f"{p} is not a PEM certificate: {e}") from None


def _hub_identity(settings: Settings):
    from hub.pki.identity import Identity

    return Identity.load(settings.hub_organ_id, settings.key_file, settings.cert_file)


def _short(text: str | None, width: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


# --- search -------------------------------------------------------------------------------

async def cmd_search(args, settings: Settings) -> int:
    from hub.audit import query
    from hub.audit.bundle import log_export
    from hub.context import open_engine

    filters = dict(document_id=args.document_id, sender=args.sender, recipient=args.recipient, doc_type=args.type,
                   event=args.event, reason=args.reason, since=query.parse_time(args.since, "--since"),
                   until=query.parse_time(args.until, "--until"))
    async with open_engine(settings) as engine:
        total, rows = await query.search(engine, **filters, limit=args.limit, offset=args.offset)
        if args.csv:
            await log_export(engine, _actor(), "entries.csv", rows=len(rows), total=total, offset=args.offset,
                             filters={k: (query.iso(v) if k in ("since", "until") else v)
                                      for k, v in filters.items() if v is not None})
    shown = {k: (query.iso(v) if k in ("since", "until") else v) for k, v in filters.items()}
    if args.csv:
        text = query.render_csv(rows)
    elif args.json:
        text = query.render_json(total, rows, limit=args.limit, offset=args.offset, filters=shown) + "\n"
    else:
        lines = [f"{'SEQ':>8}  {'AT (UTC)':<23}  {'EVENT':<17}  {'SENDER':<13}  {'DOCUMENT':<38}  WHAT"]
        for r in rows:
            lines.append(f"{r['seq']:>8}  {r['at'][:23]:<23}  {r['event']:<17}  {r['sender'] or '-':<13}  "
                         f"{_short(r['document_id'] or '-', 38):<38}  {_short(query.describe(r), 90)}")
        lines.append(f"({len(rows)} of {total} shown, newest first"
                     + (f"; next: --offset {args.offset + len(rows)}" if args.offset + len(rows) < total else "") + ")")
        text = "\n".join(lines) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8", newline="")
        _err(f"wrote {len(rows)} of {total} entries to {args.output}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0 if total or not any(v is not None for v in filters.values()) else 1


# --- trail --------------------------------------------------------------------------------

def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"+{s:.3f}s"
    m, sec = divmod(s, 60)
    if m < 60:
        return f"+{int(m)}m{sec:04.1f}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"+{int(h)}h{int(m):02d}m"
    return f"+{h / 24:.1f}d"


async def cmd_trail(args, settings: Settings) -> int:
    from hub.audit import query
    from hub.context import open_engine

    async with open_engine(settings) as engine:
        try:
            t = await query.trail(engine, args.docid, args.sender)
        except query.NotFound as e:
            _err(f"hub: {e.message}")
            return 2
    if args.json:
        _out(json.dumps(t, ensure_ascii=False, indent=1))
        return 0
    d = t["document"]
    _out(f"document {t['document_id']}")
    _out(f"  sender    {t['sender'] or '?'}")
    _out(f"  decision  {t['decision']}" + (f" — {t['reason']}: {t['message']}" if t["reason"] else ""))
    if d:
        _out(f"  type      {d['type']}  priority {d['priority']}  subject {_short(d['subject'], 70)!r}")
        _out(f"  package   sha256:{d['sha256']}  {d['package_size'] or '?'} bytes  received {d['received_at']}"
             f"  via {d['adapter_user'] or '?'}" + ("  (legacy SHA-1)" if d["legacy_sha1"] else ""))
        _out(f"  authenticated by {d.get('authenticated_by') or 'signature'}")
    _out("")
    _out(f"{'SEQ':>8}  {'AT (UTC)':<27}  {'STEP':>10}  {'EVENT':<17}  WHAT")
    for e in t["entries"]:
        _out(f"{e['seq']:>8}  {e['at']:<27}  {_dur(e['seconds_since_previous']):>10}  {e['event']:<17}  {e['summary']}")
    if t["recipients"]:
        _out("")
        _out("recipients")
        for r in t["recipients"]:
            where = r["code"] if r["system"] == r["code"] else f"{r['code']} (via {r['system']})"
            _out(f"  {where}: delivered {r['delivered_at'] or 'not yet'} ({_dur(r['seconds_to_delivery'])} after receipt);"
                 f" status {r['status'] or '-'} {r['status_name'] or ''}".rstrip())
            for h in r["history"]:
                desc = f" — {h['description']}" if h["description"] else ""
                _out(f"    {h['code']} {h['name']:<24} {h['at']}  {_dur(h['seconds_since_previous']):>10}  by {h['by']}{desc}")
    if t["entries"]:
        _out("")
        _out(f"{len(t['entries'])} entries from {t['first_at']} to {t['last_at']} ({_dur(t['seconds_total'])[1:]})")
    return 0


# --- verify -------------------------------------------------------------------------------


async def cmd_verify(args, settings: Settings) -> int:
    from hub.audit.verify import verify_log
    from hub.context import open_engine

    if args.processes is not None and args.processes < 1:
        raise UsageError(f"--processes {args.processes}: give 1 or more")
    cert = _hub_cert(settings, args.cert)
    started = time.monotonic()
    shown, stages = [0.0], {}

    def progress(done: int, total: int, stage: str = "entries") -> None:
        now = time.monotonic()
        since = stages.setdefault(stage, (now, done) if stages else (started, 0))  # each stage's own rate
        if now - started >= 2.0 and now - shown[0] >= 1.0:  # only long runs, at most once a second
            shown[0] = now
            pct = 100.0 * done / total if total else 100.0
            rate = (done - since[1]) / (now - since[0]) if now > since[0] else 0.0
            left = f", {rate:,.0f}/s, about {(total - done) / rate:,.0f} s left" if rate and done < total else ""
            _err(f"  verified {done:,} of {total:,} {stage} ({pct:.0f}%{left})")

    async with open_engine(settings) as engine:
        rep = await verify_log(engine, cert, progress=None if args.quiet else progress, processes=args.processes)
    if args.json:
        _out(json.dumps({"ok": rep.ok, "entries": rep.entries, "checkpoints": rep.checkpoints,
                         "packages": rep.packages,
                         "seconds": round(rep.seconds, 3), "first_problem": rep.problems[0] if rep.problems else None,
                         "problems": rep.problems, "first_bad_entry": rep.first_bad_entry,
                         "first_bad_checkpoint": rep.first_bad_checkpoint,
                         "first_bad_package": rep.first_bad_package,
                         "first_bad_node": list(rep.first_bad_node) if rep.first_bad_node else None}, indent=1))
        return 0 if rep.ok else 1
    _out(f"checked {rep.entries:,} entries, {rep.checkpoints:,} checkpoint(s) and {rep.packages:,} stored "
         f"package(s) in {rep.seconds:.1f} s ({rep.entries / rep.seconds if rep.seconds else 0:,.0f} entries/s)")
    if rep.ok:
        _out("OK: every entry matches its leaf hash; every checkpoint is signed by the hub and is the root of "
             "the entries it covers; every stored subtree hash matches its entries; every stored package still "
             "hashes to the SHA-256 its entries name")
        return 0
    _out(f"FIRST PROBLEM: {rep.problems[0]}")
    more = len(rep.problems) - 1
    where = [f"first bad entry {rep.first_bad_entry}" if rep.first_bad_entry else "",
             f"first bad checkpoint {rep.first_bad_checkpoint}" if rep.first_bad_checkpoint else "",
             f"first bad package {rep.first_bad_package[:16]}…" if rep.first_bad_package else "",
             "first bad subtree node (level {}, index {})".format(*rep.first_bad_node) if rep.first_bad_node else ""]
    _out(f"({more} more problem(s){'; ' if any(where) else ''}{', '.join(w for w in where if w)}; "
         "see --json for all of them)")
    return 1


# --- export / verify-bundle ----------------------------------------------------------------

async def cmd_export(args, settings: Settings) -> int:
    from hub.audit.bundle import export_bundle, log_export
    from hub.context import open_engine
    from hub.registry.store import load_trust

    cert = _hub_cert(settings)
    identity = None
    try:
        identity = _hub_identity(settings)
    except UsageError as e:
        _err(f"hub: warning: {e.message} — the bundle is not sealed first nor its manifest signed")
    async with open_engine(settings) as engine:
        data = await export_bundle(engine, args.docid, cert, await load_trust(engine), args.sender,
                                   identity=identity, exported_by=_actor(),
                                   seal=identity is not None and not args.no_seal)
        digest = hashlib.sha256(data).hexdigest()
        await log_export(engine, _actor(), "bundle", document_id=args.docid, sender=args.sender,
                         bundle_sha256=digest, bytes=len(data), file=str(args.output))
    Path(args.output).write_bytes(data)
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        manifest = json.loads(z.read("manifest.json"))
    _out(f"wrote {args.output}: {manifest['entries']} entries of {manifest['document_id']} from "
         f"{manifest['sender']} ({manifest['decision']}), checkpoint {manifest['checkpoint_size']}"
         + (f", {manifest['not_yet_sealed']} NOT YET SEALED" if manifest["not_yet_sealed"] else "")
         + f"; package sha256:{manifest['package_sha256']}; bundle sha256:{digest}")
    _out(f"check it anywhere: hub audit verify-bundle {args.output}")
    return 0


async def cmd_verify_bundle(args, settings: Settings) -> int:
    from hub.audit.bundle import verify_bundle

    try:
        data = Path(args.bundle).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {args.bundle}: {e.strerror}") from None
    pin = _hub_cert(settings, args.hub_cert) if args.hub_cert else None
    anchors = None
    if args.trust:
        from cryptography import x509

        anchors = []
        for p in args.trust:
            try:
                anchors.extend(x509.load_pem_x509_certificates(Path(p).read_bytes()))
            except (OSError, ValueError) as e:
                raise UsageError(f"cannot read CA certificate {p}: {e}") from None
    ok, lines = verify_bundle(data, hub_cert=pin, trust_anchors=anchors, allow_unsealed=args.allow_unsealed)
    if args.json:
        _out(json.dumps({"ok": ok, "lines": lines}, ensure_ascii=False, indent=1))
    else:
        for line in lines:
            _out(line)
        first = next((line for line in lines if line.startswith("FAIL")), None)
        _out(f"RESULT: {'OK — the bundle verifies' if ok else 'FAILED — ' + first[6:]}")
    return 0 if ok else 1


# --- checkpoint / consistency --------------------------------------------------------------

async def cmd_checkpoint(args, settings: Settings) -> int:
    from hub.audit import query
    from hub.context import open_engine

    async with open_engine(settings) as engine:
        if args.seal:
            from hub.audit.bundle import seal_through

            identity = _hub_identity(settings)
            await seal_through(engine, identity)
        total, rows = await query.list_checkpoints(engine, max(args.list, 1), 0)
    if not rows:
        _err("hub: no checkpoint has been signed yet (the sealer signs one every HUB_SEAL_ENTRIES entries or "
             "HUB_SEAL_SECONDS; `hub audit checkpoint --seal` signs one now)")
        return 2
    if args.json:
        _out(json.dumps({"total": total, "checkpoints": rows}, indent=1))
        return 0
    if args.list > 1:
        _out(f"{'SIZE':>12}  {'SIGNED AT (UTC)':<27}  KEY ID    ROOT")
        for r in rows:
            _out(f"{r['size']:>12,}  {r['at']:<27}  {r['key_id']}  {r['root']}")
        _out(f"({len(rows)} of {total} checkpoints, latest first)")
        return 0
    sys.stdout.write(rows[0]["text"])
    sys.stdout.flush()
    return 0


def _size(text: str) -> int | None:
    if text == "latest":
        return None
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a checkpoint size (a whole number, or 'latest')") from None
    if n < 1:
        raise UsageError("checkpoint sizes start at 1")
    return n


async def cmd_consistency(args, settings: Settings) -> int:
    from hub.audit import query
    from hub.context import open_engine

    cert = _hub_cert(settings, args.cert)
    old, new = _size(args.old), _size(args.new)
    async with open_engine(settings) as engine:
        if old is None or new is None:
            async with engine.connect() as conn:
                latest = await query.get_checkpoint(conn)
            if latest is None:
                raise UsageError("no checkpoint has been signed yet")
            old = latest["size"] if old is None else old
            new = latest["size"] if new is None else new
        try:
            rep = await query.consistency_report(engine, old, new, cert)
        except query.NotFound as e:
            _err(f"hub: {e.message}")
            return 2
    if args.json:
        _out(json.dumps(rep, indent=1))
        return 0 if rep["verified"] else 1
    for label in ("old", "new"):
        c = rep[label]
        sig = {True: "signature OK", False: "SIGNATURE DOES NOT VERIFY", None: "signature not checked"}[c["signature_ok"]]
        _out(f"{label} checkpoint: size {c['size']}, root {c['signed_root'] or c['root']}, signed {c['at']} "
             f"(key id {c['key_id']}; {sig})" + (f" — {c['problem']}" if c["problem"] else ""))
    _out(f"consistency proof, RFC 9162 section 2.1.4 ({len(rep['proof'])} hashes, old tree upwards):")
    for h in rep["proof"]:
        _out(f"  {h}")
    if rep["verified"]:
        _out(f"verified: checkpoint {new} extends checkpoint {old} (the first {old} entries are unchanged)")
        return 0
    why = "the proof does not lead from the old root to the new one" if not rep["proof_ok"] else \
        "a checkpoint's signature or stored root is wrong"
    _out(f"NOT VERIFIED: {why}")
    return 1


# --- parser --------------------------------------------------------------------------------

def register(sub) -> None:
    au = sub.add_parser("audit", help="the audit log: search, trails, proofs, evidence bundles").add_subparsers(
        dest="sub", required=True, metavar="VERB")

    x = au.add_parser("search", help="entries by document, sender, recipient, type, event, reason, time; newest first")
    x.add_argument("--document-id", metavar="DOCID", help="entries of this DocumentId (default: any)")
    x.add_argument("--sender", metavar="CODE", help="entries of documents from this agency (default: any)")
    x.add_argument("--recipient", metavar="CODE", help="entries of documents addressed to this agency (default: any)")
    x.add_argument("--type", metavar="TYPE", help="DocumentType/Type code of the document (default: any)")
    x.add_argument("--event", help="e.g. package.refused, or a prefix ending in '.' or '*' (status.) (default: any)")
    x.add_argument("--reason", help="reason code, or a prefix (signature.) (default: any)")
    x.add_argument("--since", metavar="TIME", help="ISO 8601, inclusive (no zone = UTC) (default: the first entry)")
    x.add_argument("--until", metavar="TIME", help="ISO 8601, exclusive (default: now)")
    x.add_argument("--limit", type=int, default=50, help="at most this many entries (default: 50)")
    x.add_argument("--offset", type=int, default=0, help="skip this many, newest first (default: 0)")
    fmt = x.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON page with total and next offset")
    fmt.add_argument("--csv", action="store_true", help="CSV export (logged as audit.exported)")
    x.add_argument("-o", "--output", metavar="FILE", help="write to this file (default: stdout)")
    x.set_defaults(func=cmd_search)

    x = au.add_parser("trail", help="every event of one document in order, time between steps, status histories")
    x.add_argument("docid", help="the DocumentId")
    x.add_argument("--sender", metavar="CODE", help="when several senders used the DocumentId (default: the only one)")
    x.add_argument("--json", action="store_true", help="JSON, times in ISO 8601")
    x.set_defaults(func=cmd_trail)

    x = au.add_parser("verify", help="recompute every entry and checkpoint; exit 1 on any problem")
    x.add_argument("--cert", metavar="PEM", help="the hub certificate (default: HUB_CERT_FILE)")
    x.add_argument("--json", action="store_true", help="the report as JSON")
    x.add_argument("--quiet", action="store_true", help="no progress on stderr")
    x.add_argument("--processes", type=int, metavar="N",
                   help="verify the entries in N processes on PostgreSQL (default: the CPUs, at most 4, "
                        "from 200,000 entries)")
    x.set_defaults(func=cmd_verify)

    x = au.add_parser("export", help="evidence bundle (zip) of one document, for offline verification")
    x.add_argument("docid", help="the DocumentId")
    x.add_argument("-o", "--output", required=True, metavar="BUNDLE.zip", help="where to write the bundle")
    x.add_argument("--sender", metavar="CODE", help="when several senders used the DocumentId (default: the only one)")
    x.add_argument("--no-seal", action="store_true", help="do not sign a checkpoint first (newer entries stay unproven)")
    x.set_defaults(func=cmd_export)

    x = au.add_parser("verify-bundle", help="check an evidence bundle offline (no database, no network)")
    x.add_argument("bundle", help="the zip made by `hub audit export`")
    x.add_argument("--hub-cert", metavar="PEM", help="pin the hub certificate (default: the bundle's hub.pem, printed)")
    x.add_argument("--trust", action="append", metavar="PEM", help="pin the CA certificate(s) (repeatable)")
    x.add_argument("--allow-unsealed", action="store_true", help="entries newer than the checkpoint are a note, not a failure")
    x.add_argument("--json", action="store_true", help="the checks as JSON")
    x.set_defaults(func=cmd_verify_bundle)

    x = au.add_parser("checkpoint", help="the latest signed checkpoint (--seal signs one now)")
    x.add_argument("--seal", action="store_true", help="sign a checkpoint over every entry written so far (hub key)")
    x.add_argument("--list", type=int, default=1, metavar="N", help="list the N latest checkpoints instead (default: 1)")
    x.add_argument("--json", action="store_true", help="JSON, times in ISO 8601")
    x.set_defaults(func=cmd_checkpoint)

    x = au.add_parser("consistency", help="prove that checkpoint NEW extends checkpoint OLD, and verify it")
    x.add_argument("old", help="tree size of the older checkpoint")
    x.add_argument("new", help="tree size of the newer checkpoint, or 'latest'")
    x.add_argument("--cert", metavar="PEM", help="the hub certificate (default: HUB_CERT_FILE)")
    x.add_argument("--json", action="store_true", help="the proof and checks as JSON")
    x.set_defaults(func=cmd_consistency)
