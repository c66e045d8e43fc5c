"""CLI verbs of the running hub: serve, demo, send, inbox, status, bench."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from hub.cli_io import read
from hub.errors import UsageError
from hub.settings import Settings


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    return stop


def _check_port_free(host: str, port: int) -> None:
    """Raise the OSError binding would raise (EADDRINUSE...), as aiohttp binds (SO_REUSEADDR)."""
    import socket

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}; check --host / HUB_HTTP_HOST") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)


async def cmd_serve(args, settings: Settings) -> int:
    from hub import logs
    from hub.service import serve

    host = args.host or settings.http_host
    port = settings.http_port if args.port is None else args.port
    _check_port_free(host, port)  # before any worker starts: a busy port is one line, not a start and a stop
    logs.configure()
    if settings.amqp_url is None:
        print("note: HUB_AMQP_URL is unset, so the hub runs an embedded in-process broker that only "
              "adapters inside this process can reach (use `hub demo`, or set HUB_AMQP_URL to RabbitMQ)",
              file=sys.stderr)
    ssl_context = None
    if args.tls_key and not args.tls_cert or args.tls_client_ca and not args.tls_cert:
        raise UsageError("--tls-key and --tls-client-ca need --tls-cert")
    if args.tls_cert:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:
                ssl_context.load_verify_locations(args.tls_client_ca)
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"cannot use the TLS files ({getattr(e, 'strerror', None) or e}): check --tls-cert, "
                             "--tls-key (PEM, the key of that certificate) and --tls-client-ca") from None
            ssl_context.verify_mode = ssl.CERT_OPTIONAL  # agencies may use a client certificate or a token
    await serve(settings, _stop_event(), workers=args.workers, host=host, port=port, ssl_context=ssl_context,
                hard_exit=True)
    return 0


async def cmd_demo(args, settings: Settings) -> int:
    from hub.demo import run_demo

    port = settings.http_port if args.port is None else args.port
    return await run_demo(settings, once=args.once, rate=args.rate, duration=args.duration, port=port,
                          stop=_stop_event())


ADAPTER_URL_HELP = ("the adapter's own RabbitMQ URL, amqp://USER:PASSWORD@HOST/VHOST as `hub agency broker-user` "
                    "prints it (default: HUB_ADAPTER_AMQP_URL; never the hub's HUB_AMQP_URL)")


def _adapter_url(args, settings: Settings) -> str:
    """The adapter's own broker URL; never the hub's (its user may read every inbox)."""
    from urllib.parse import unquote, urlsplit

    url = getattr(args, "amqp_url", None) or settings.adapter_amqp_url
    if not url:
        raise UsageError(
            "an adapter connects as its agency's own RabbitMQ user: pass --amqp-url amqp://USER:PASSWORD@host/vhost "
            "or set HUB_ADAPTER_AMQP_URL (`hub agency broker-user CODE` makes the user and prints the URL)"
        )
    try:
        user = unquote(urlsplit(url).username or "guest")
        hub_user = unquote(urlsplit(settings.amqp_url).username or "guest") if settings.amqp_url else None
    except ValueError:
        raise UsageError("the adapter URL is not an amqp:// URL") from None
    if user == hub_user:
        raise UsageError(f"the adapter URL uses the hub's own RabbitMQ user {user} (HUB_AMQP_URL); an adapter "
                         "connects as its agency's user (`hub agency broker-user CODE`)")
    return url


async def _adapter_backbone(args, settings: Settings):
    from hub.backbone.factory import connect
    from hub.cli_errors import broker_hint
    from hub.errors import HubError

    url = _adapter_url(args, settings)
    try:
        return await connect(url)
    except HubError as e:
        if e.code != "backbone.unavailable":
            raise
        raise UsageError(broker_hint(e, url, "--amqp-url / HUB_ADAPTER_AMQP_URL")) from None


def _identity(code: str, args, settings: Settings):
    from hub.pki.identity import Identity

    key = getattr(args, "key", None) or settings.pki_dir / f"{code}.key"
    cert = getattr(args, "cert", None) or settings.pki_dir / f"{code}.pem"
    return Identity.load(code, key, cert)


async def cmd_send(args, settings: Settings) -> int:
    from adapters.sdk import Adapter, http_submit

    files = {name: read(name, "package") for name in args.files}
    ident = _identity(args.as_code, args, settings) if args.as_code else None
    api, token = args.api or settings.api_url, settings.api_token
    submit = http_submit(api, token) if api and token else None  # packages over the broker's limit
    bb = await _adapter_backbone(args, settings)
    try:
        ad = Adapter(bb, args.as_code or bb.user, ident, submit=submit)
        for name, data in files.items():
            if ident is not None:
                data = ad.sign(data)
            answer = await ad.publish(data)
            if answer is None:
                print(f"sent {name} ({len(data):,} bytes) as {bb.user}: confirmed by the broker", flush=True)
            else:
                print(f"sent {name} ({len(data):,} bytes, over the broker's message limit) through the HTTP "
                      f"gateway {api}: {answer.get('status')} {answer.get('document_id') or ''}".rstrip(), flush=True)
    finally:
        await bb.close()
    return 0


async def cmd_inbox(args, settings: Settings) -> int:
    import os

    from adapters.sdk import Adapter, SeenStore, http_fetch
    from hub.registry import codes

    code = codes.check(args.code)
    bb = await _adapter_backbone(args, settings)
    out = Path(args.out or settings.data_dir / "inbox" / code)
    out.mkdir(parents=True, exist_ok=True)
    api, token = args.api or settings.api_url, settings.api_token
    fetch = http_fetch(api, token) if api and token else None  # packages delivered by reference
    ad = Adapter(bb, code, None, SeenStore(settings.data_dir / "adapters" / f"{code}.seen"), fetch=fetch)
    n = 0
    try:
        await ad.start()
        stop = _stop_event()
        while not stop.is_set():
            r = await ad.receive(timeout=1.0 if args.follow else 2.0)
            if r is None:
                if args.follow:
                    continue
                break
            if r.blob is not None and not r.body:
                await r._incoming.reject(requeue=True)  # left in the inbox for a run that can fetch it
                raise UsageError(f"{r.kind} {r.document_id} from {r.sender} came by reference ({r.blob.size:,} bytes, "
                                 "over the hub's HUB_BY_REFERENCE_BYTES): give --api URL (or HUB_API_URL) and "
                                 "HUB_API_TOKEN, the agency's API token, to fetch it")
            safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in r.key)[:150]
            path = out / f"{safe}.edxml"
            path.write_bytes(r.body)
            await r.done()
            n += 1
            tag = "URGENT " if r.urgent else ""
            reason = f" refused {r.headers.get('x-hub-reason')}: {r.headers.get('x-hub-message')}" if r.headers.get("x-hub-reason") else ""
            print(f"{tag}{r.kind} {r.document_id} from {r.sender}{reason} -> {path}", flush=True)
    finally:
        await ad.stop()
        await bb.close()
    print(f"{n} package(s) handed over to {out}", file=sys.stderr)
    return 0


def _status_target(docid: str, to: str | None) -> tuple[str, str]:
    """(DocumentId, original sender): the sender comes from a standard-form DocumentId or --to."""
    from hub.edxml.document_id import parse_document_id
    from hub.registry import codes

    text = (docid or "").strip()
    if not text or text != docid:
        raise UsageError(f"DocumentId {docid!r} is empty or has surrounding whitespace; give it as the package has it")
    ref = parse_document_id(text)
    if to:
        sender = codes.check(to, "--to code")
    elif ref is not None:
        sender = ref.sender
    elif text.count(",") >= 2:
        raise UsageError(f"DocumentId {text!r} is malformed: expected SENDER,yyyy/MM/dd,NUMBER/NOTATION, e.g. "
                         "000.00.00.G22,2026/11/27,7816/VPCP-TTĐT (another token, such as a UUID, needs --to SENDER)")
    else:
        raise UsageError(f"DocumentId {text!r} does not name its sender (not SENDER,yyyy/MM/dd,NUMBER/NOTATION): "
                         "give the original sender with --to CODE")
    if ref is not None and ref.promulgation_date is None and not to:
        raise UsageError(f"DocumentId {text!r} has no valid date (yyyy/MM/dd); check it, or give --to CODE to send "
                         "the status anyway")
    return text, sender


async def cmd_status(args, settings: Settings) -> int:
    from adapters.sdk import Adapter
    from hub.registry import codes

    docid, original_sender = _status_target(args.docid, args.to)
    as_code = codes.check(args.as_code, "--as code")
    if args.code == "02" and not (args.reason or "").strip():
        raise UsageError("status 02 (refused) needs --reason TEXT: the sender must learn why")
    ident = _identity(as_code, args, settings)
    bb = await _adapter_backbone(args, settings)
    try:
        ad = Adapter(bb, as_code, ident)
        await ad.send_status(original_sender, docid, args.code, args.reason or "")
    finally:
        await bb.close()
    print(f"status {args.code} for {docid} sent to {original_sender}: confirmed by the broker")
    return 0


async def cmd_bench(args, settings: Settings) -> int:
    from benchmarks.pipeline import run_bench

    large = [float(x) for x in args.large.split(",") if x.strip()] if args.large else []
    if any(x <= 0 for x in large):
        raise UsageError("--large: sizes in MB, e.g. 50,200")
    skip = frozenset(x.strip() for x in (args.skip or "").split(",") if x.strip())
    unknown = skip - {"relay", "hub", "off", "paced", "checks", "large"}
    if unknown:
        raise UsageError(f"--skip: unknown section(s) {', '.join(sorted(unknown))}; "
                         "choose from relay, hub, off, paced, checks, large")
    if not large:
        skip |= {"large"}
    return await run_bench(settings, n=args.n, size=args.size, workers=args.workers, processes=args.processes,
                           repeat=args.repeat, large=large, check_n=args.check_n, paced_n=args.paced_n,
                           paced_rate=args.paced_rate, skip=skip,
                           hub_env=args.hub_env or [], ab=args.ab or [], json_out=args.json)


def register(sub) -> None:
    x = sub.add_parser("serve", help="run the hub workers, the HTTP API and the console until SIGTERM/Ctrl-C")
    x.add_argument("--workers", type=int, default=1, help="worker connections consuming hub.intake (default: 1)")
    x.add_argument("--port", type=int, help="port of the HTTP API and console (default: 8080, or HUB_HTTP_PORT)")
    x.add_argument("--host", help="address to listen on (default: 127.0.0.1, or HUB_HTTP_HOST)")
    x.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (default: plain HTTP)")
    x.add_argument("--tls-key", metavar="PEM", help="its private key (default: in the --tls-cert file)")
    x.add_argument("--tls-client-ca", metavar="PEM",
                   help="accept agency TLS client certificates issued by this CA, pinned in the registry (default: "
                        "bearer tokens only)")
    x.set_defaults(func=cmd_serve)

    x = sub.add_parser("demo", help="PKI, 3 agencies, the hub and their adapters, and realistic traffic")
    x.add_argument("--once", action="store_true", help="send a fixed set, print a summary, exit 0 if all delivered")
    x.add_argument("--rate", type=float, default=5.0, help="packages per second in streaming mode (default: 5.0)")
    x.add_argument("--duration", type=float, default=None,
                   help="stop streaming after this many seconds (default: until Ctrl-C)")
    x.add_argument("--port", type=int, help="port of the API and dashboard; another if busy (default: 8080, or "
                                            "HUB_HTTP_PORT)")
    x.set_defaults(func=cmd_demo)

    x = sub.add_parser("send", help="sign (with --as) and publish packages as an agency's adapter")
    x.add_argument("files", nargs="+", help="packages to send")
    x.add_argument("--as", dest="as_code", metavar="CODE",
                   help="sign as this agency (default: send as signed, from the URL's user)")
    x.add_argument("--key", metavar="PEM", help="its signing key (default: $HUB_DATA_DIR/pki/CODE.key)")
    x.add_argument("--cert", metavar="PEM", help="its certificate (default: $HUB_DATA_DIR/pki/CODE.pem)")
    x.add_argument("--amqp-url", metavar="URL", help=ADAPTER_URL_HELP)
    x.add_argument("--api", metavar="URL", help="the hub's HTTP API, for a package over the broker's message limit "
                                                "(sent to POST /api/v1/documents with HUB_API_TOKEN; "
                                                "default: $HUB_API_URL)")
    x.set_defaults(func=cmd_send)

    x = sub.add_parser("inbox", help="hand over an agency's inbox (urgent first), each package once")
    x.add_argument("code", help="the agency whose inbox to read (its adapter's user)")
    x.add_argument("--follow", action="store_true", help="keep waiting for packages (default: stop when idle)")
    x.add_argument("--out", metavar="DIR", help="folder to write packages to (default: $HUB_DATA_DIR/inbox/CODE)")
    x.add_argument("--api", metavar="URL", help="the hub's HTTP API (default $HUB_API_URL), with $HUB_API_TOKEN: "
                                                "fetch packages delivered by reference (over HUB_BY_REFERENCE_BYTES)")
    x.add_argument("--amqp-url", metavar="URL", help=ADAPTER_URL_HELP)
    x.set_defaults(func=cmd_inbox)

    x = sub.add_parser("status", help="send a status package (01-06, 13, 15, 16) about a document")
    x.add_argument("docid", help="the DocumentId: SENDER,yyyy/MM/dd,NUMBER/NOTATION")
    x.add_argument("--code", required=True, choices=["01", "02", "03", "04", "05", "06", "13", "15", "16"],
                   help="the status code")
    x.add_argument("--reason", metavar="TEXT", help="its Description (required for 02; default: none)")
    x.add_argument("--as", dest="as_code", required=True, metavar="CODE", help="the agency sending the status")
    x.add_argument("--to", metavar="CODE", help="the document's original sender (default: from the DocumentId); "
                   "for 13: the recipient whose copy is recalled (default: every copy)")
    x.add_argument("--key", metavar="PEM", help="its signing key (default: $HUB_DATA_DIR/pki/CODE.key)")
    x.add_argument("--cert", metavar="PEM", help="its certificate (default: $HUB_DATA_DIR/pki/CODE.pem)")
    x.add_argument("--amqp-url", metavar="URL", help=ADAPTER_URL_HELP)
    x.set_defaults(func=cmd_status)

    x = sub.add_parser("bench", help="packages through the full pipeline vs a bare relay on the same broker")
    x.add_argument("--n", type=int, default=5000, help="packages per run (default: 5000)")
    x.add_argument("--size", type=int, default=10_000, help="package size in bytes (default: 10000)")
    x.add_argument("--workers", type=int, default=1, help="worker connections per hub process (default: 1)")
    x.add_argument("--processes", type=int, default=1,
                   help="`hub serve` processes sharing hub.intake (default: 1)")
    x.add_argument("--repeat", type=int, default=3,
                   help="rounds of relay, hub with audit log on and off, alternating (default: 3); medians and "
                        "the min–max spread are printed")
    x.add_argument("--large", default="50,200", metavar="MB,MB",
                   help="sizes of the single large packages to send, in MB, '' for none (default: 50,200)")
    x.add_argument("--check-n", type=int, default=2000, help="checks timed for check/s on one core (default: 2000)")
    x.add_argument("--paced-n", type=int, default=None,
                   help="packages of the half-load latency run (default: n/10, at least 200)")
    x.add_argument("--paced-rate", type=float, default=None, metavar="PER_S",
                   help="packages/s of the latency run (default: half the saturated rate of the same run, at "
                        "least 20; 100 with --skip hub)")
    x.add_argument("--skip", metavar="SECTIONS", help="leave out sections, comma-separated: relay, hub, off (the audit-off arm), paced, "
                        "checks, large (default: none)")
    x.add_argument("--hub-env", action="append", metavar="HUB_X=V", help="a setting for every `hub serve` run (repeatable; default: none)")
    x.add_argument("--ab", action="append", metavar="HUB_X=V",
                   help="add an arm B each round: the hub, audit log on, with this setting (a lever's A/B; "
                        "HUB_BENCH_PROCESSES=N runs B as N hub processes; "
                        "repeatable; default: no arm B)")
    x.add_argument("--json", action="store_true", help="all figures as one JSON document (the last line)")
    x.set_defaults(func=cmd_bench)
