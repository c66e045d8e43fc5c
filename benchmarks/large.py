"""`hub bench --large`: one package of a given size end to end, as an agency's adapter sends and
receives it: the time to the recipient's inbox and the peak RSS (VmHWM) of `hub serve` and of its
check process; 'refused: <reason>' when it does not get through (a size cap, RabbitMQ's own message
size limit, a refusal by the hub, bytes that no longer verify)."""

from __future__ import annotations

import asyncio
import time

from benchmarks.pipeline import G22, H41, MB, Bench, child_pids, bench_edoc, peak_mb, say, status_mb
from hub import constants as C
from hub.backbone.base import inbox_queue
from hub.backbone.factory import connect
from hub.edxml.builder import AttachmentFile, build_edoc
from hub.pki.devpki import load_cert
from hub.pki.identity import Identity


def make_large_package(ident: Identity, size: int) -> bytes:
    """One signed package of about ``size`` bytes, nearly all of it one attachment."""
    from hub.edxml.parser import parse_xml
    from hub.edxml.signature import sign_package

    att = max(0, (size - 6000) * 3 // 4)
    blob = (b"%PDF-1.4 large benchmark attachment " * (att // 36 + 1))[:att]
    raw = build_edoc(bench_edoc(0, "LARGE"), [AttachmentFile("ho-so.pdf", blob, "application/pdf")])
    del blob
    return sign_package(parse_xml(raw, max_bytes=len(raw) + MB), ident.key, ident.cert)


async def large_package(bench: Bench, size: int, ident: Identity) -> dict:
    """One package of ``size`` bytes end to end: time to the inbox and the hub's peak RSS."""
    from adapters.sdk import Adapter

    out: dict = {"mb": size / MB, "bytes": None, "status": "refused", "reason": None, "seconds": None,
                 "hub_peak_rss_mb": None, "hub_idle_rss_mb": None, "check_process_peak_rss_mb": None}
    say(f"  large package: building and signing {size / MB:.0f} MB…")
    data = await asyncio.to_thread(make_large_package, ident, size)
    out["bytes"] = len(data)
    db_url = await bench.fresh_database("large")
    await bench.purge(C.QUEUE_INTAKE, inbox_queue(H41), inbox_queue(H41, True), inbox_queue(G22),
                     inbox_queue(G22, True))
    procs, log_path = bench.start_hub(f"large-{size // MB}mb", db_url, True,
                                      {"HUB_MAX_PACKAGE_BYTES": str(len(data) + MB)})
    sender = receiver = None
    from hub.pki.chain import TrustStore

    trust = TrustStore(anchors=(load_cert(bench.pki.ca_cert),))
    try:
        await bench.wait_consumers(procs, log_path)
        out["hub_idle_rss_mb"] = status_mb(procs[0].pid, "VmRSS")
        sender = await connect(bench.agency_url(G22))
        receiver = await connect(bench.agency_url(H41))
        g, h = Adapter(sender, G22), Adapter(receiver, H41)
        await g.start(prefetch=1)
        await h.start(prefetch=1)
        say(f"  large package: sending {len(data) / MB:.0f} MB…")
        t0 = time.monotonic()
        try:
            await g.publish(data)
        except Exception as e:  # noqa: BLE001 - whatever stops it is the figure: one line
            out["reason"] = f"publishing failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            return out
        deadline = t0 + max(120.0, size / MB * 3)
        while time.monotonic() < deadline:
            for who, ad in (("H41", h), ("G22", g)):
                r = await ad.receive(timeout=0.2)
                if r is None:
                    continue
                await r.done()
                if who == "H41" and r.kind != "status":
                    out["seconds"] = time.monotonic() - t0
                    out["status"] = "delivered"
                    try:  # the sender's signature covers the attachment: it verifies only if intact
                        await asyncio.to_thread(r.verify, trust, {bench.settings.hub_organ_id})
                    except Exception as e:  # noqa: BLE001 - reported, not raised
                        out["status"] = "refused"
                        out["reason"] = f"delivered ({len(r.body):,} bytes) but its signature does not " \
                                        f"verify: {type(e).__name__}: {str(e)[:200]}"
                    return out
                if who == "G22" and r.headers.get(C.H_REASON):
                    out["seconds"] = time.monotonic() - t0
                    out["reason"] = f"the hub refused it: {r.headers.get(C.H_REASON)}: " \
                                    f"{str(r.headers.get(C.H_MESSAGE, ''))[:300]}"
                    return out
            if any(p.poll() is not None for p in procs):
                out["reason"] = f"`hub serve` exited with status {procs[0].poll()} (log {log_path})"
                return out
        out["reason"] = f"not delivered within {deadline - t0:.0f} s (log {log_path})"
        return out
    finally:
        if procs[0].poll() is None:
            out["hub_peak_rss_mb"] = max(peak_mb(p.pid) for p in procs)
            out["check_process_peak_rss_mb"] = max(
                (peak_mb(c) for p in procs for c in child_pids(p.pid)), default=None)
        for bb in (sender, receiver):
            if bb is not None:
                await bb.close()
        bench.stop_hub(procs)
        await bench.drop_database(db_url)
