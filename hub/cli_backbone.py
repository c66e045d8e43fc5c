"""CLI verbs of the running hub: serve, demo, send, inbox, status, bench."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

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


async def cmd_serve(args, settings: Settings) -> int:
    from hub import logs
    from hub.service import serve

    logs.configure()
    if settings.amqp_url is None:
        print("note: HUB_AMQP_URL is unset, so the hub runs an embedded in-process broker that only "
              "adapters inside this process can reach (use `hub demo`, or set HUB_AMQP_URL to RabbitMQ)",
              file=sys.stderr)
    ssl_context = None
    if args.tls_cert:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            ssl_context.load_verify_locations(args.tls_client_ca)
            ssl_context.verify_mode = ssl.CERT_OPTIONAL  # agencies may use a client certificate or a token
    await serve(settings, _stop_event(), workers=args.workers, host=args.host, port=args.port, ssl_context=ssl_context)
    return 0


async def cmd_demo(args, settings: Settings) -> int:
    from hub.demo import run_demo

    return await run_demo(settings, once=args.once, rate=args.rate, duration=args.duration, port=args.port,
                          stop=_stop_event())


def _adapter_url(args, settings: Settings) -> str:
    url = getattr(args, "amqp_url", None) or os.environ.get("HUB_ADAPTER_AMQP_URL") or settings.amqp_url
    if not url:
        raise UsageError(
            "an adapter needs RabbitMQ: pass --amqp-url amqp://CODE:PASSWORD@host/ or set HUB_ADAPTER_AMQP_URL "
            "(the embedded broker only lives inside `hub demo`)"
        )
    return url


def _identity(code: str, args, settings: Settings):
    from hub.pki.identity import Identity

    key = getattr(args, "key", None) or settings.pki_dir / f"{code}.key"
    cert = getattr(args, "cert", None) or settings.pki_dir / f"{code}.pem"
    return Identity.load(code, key, cert)


async def cmd_send(args, settings: Settings) -> int:
    from adapters.sdk import Adapter
    from hub.backbone.base import connect

    bb = await connect(_adapter_url(args, settings))
    try:
        ident = _identity(args.as_code, args, settings) if args.as_code else None
        ad = Adapter(bb, args.as_code or bb.user, ident)
        for name in args.files:
            data = Path(name).read_bytes()
            if ident is not None:
                data = ad.sign(data)
            await ad.publish(data)
            print(f"sent {name} ({len(data):,} bytes) as {bb.user}: confirmed by the broker", flush=True)
    finally:
        await bb.close()
    return 0


async def cmd_inbox(args, settings: Settings) -> int:
    from adapters.sdk import Adapter, SeenStore
    from hub.backbone.base import connect

    bb = await connect(_adapter_url(args, settings))
    out = Path(args.out or settings.data_dir / "inbox" / args.code)
    out.mkdir(parents=True, exist_ok=True)
    ad = Adapter(bb, args.code, None, SeenStore(settings.data_dir / "adapters" / f"{args.code}.seen"))
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


async def cmd_status(args, settings: Settings) -> int:
    from adapters.sdk import Adapter
    from hub.backbone.base import connect

    original_sender = args.to or args.docid.split(",", 1)[0]
    bb = await connect(_adapter_url(args, settings))
    try:
        ad = Adapter(bb, args.as_code, _identity(args.as_code, args, settings))
        await ad.send_status(original_sender, args.docid, args.code, args.reason or "")
    finally:
        await bb.close()
    print(f"status {args.code} for {args.docid} sent to {original_sender}")
    return 0


async def cmd_bench(args, settings: Settings) -> int:
    from benchmarks.pipeline import run_bench

    return await run_bench(settings, n=args.n, size=args.size, workers=args.workers, json_out=args.json)


def register(sub) -> None:
    x = sub.add_parser("serve", help="run the hub workers until SIGTERM/Ctrl-C")
    x.add_argument("--workers", type=int, default=1)
    x.add_argument("--port", type=int, default=8080, help="HTTP port of the API")
    x.add_argument("--host", default="127.0.0.1", help="address to listen on")
    x.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    x.add_argument("--tls-key", help="its private key (PEM)")
    x.add_argument("--tls-client-ca", help="accept agency TLS client certificates issued by this CA (pinned in the registry)")
    x.set_defaults(func=cmd_serve)

    x = sub.add_parser("demo", help="PKI, 3 agencies, the hub and their adapters, and realistic traffic")
    x.add_argument("--once", action="store_true", help="send a fixed set, print a summary, exit 0 if all delivered")
    x.add_argument("--rate", type=float, default=5.0, help="packages per second in streaming mode")
    x.add_argument("--duration", type=float, default=None, help="stop streaming after this many seconds")
    x.add_argument("--port", type=int, default=8080, help="HTTP port of the API and dashboard (another if busy)")
    x.set_defaults(func=cmd_demo)

    for name, helptext in (("send", "sign (with --as) and publish packages"),):
        x = sub.add_parser(name, help=helptext)
        x.add_argument("files", nargs="+")
        x.add_argument("--as", dest="as_code", metavar="CODE", help="sign as this agency (key from the data dir or --key)")
        x.add_argument("--key")
        x.add_argument("--cert")
        x.add_argument("--amqp-url", help="the adapter's own RabbitMQ URL (default HUB_ADAPTER_AMQP_URL)")
        x.set_defaults(func=cmd_send)

    x = sub.add_parser("inbox", help="hand over an agency's inbox (urgent first), each package once")
    x.add_argument("code")
    x.add_argument("--follow", action="store_true")
    x.add_argument("--out", help="folder to write packages to (default: data dir inbox/CODE)")
    x.add_argument("--amqp-url")
    x.set_defaults(func=cmd_inbox)

    x = sub.add_parser("status", help="send a status package (01-06, 13, 15, 16) about a document")
    x.add_argument("docid")
    x.add_argument("--code", required=True, choices=["01", "02", "03", "04", "05", "06", "13", "15", "16"])
    x.add_argument("--reason", help="Description (required for 02)")
    x.add_argument("--as", dest="as_code", required=True, metavar="CODE")
    x.add_argument("--to", help="the document's original sender (default: from the DocumentId); for 13: the "
                   "recipient whose copy is recalled (default: every copy)")
    x.add_argument("--key")
    x.add_argument("--cert")
    x.add_argument("--amqp-url")
    x.set_defaults(func=cmd_status)

    x = sub.add_parser("bench", help="packages through the full pipeline vs a bare relay on the same broker")
    x.add_argument("--n", type=int, default=5000)
    x.add_argument("--size", type=int, default=10_000, help="package size in bytes")
    x.add_argument("--workers", type=int, default=1)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_bench)
