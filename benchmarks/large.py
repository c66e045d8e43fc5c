"""Large packages: build one, and measure the peak memory of checking it.

    .venv/bin/python -m benchmarks.large [--sizes 10,50,200] [--json]
    .venv/bin/python -m benchmarks.large --pipeline [--sizes 50,200] [--hub-src /work/main]

:func:`make_large_package` builds a signed edoc with one big attachment (a synthetic PDF,
base64 in ``AttachmentEncoded``), about ``size_bytes`` long in total, with the project's own
builder and signer, and a development PKI made in-process. ``hub bench --large`` calls it.

The measurement runs ``check_package`` (what ``hub check`` and the hub's check processes run)
in a fresh child process per size and reads the child's peak RSS (``VmHWM``), so one size's
garbage never counts towards the next. Figures are noisy on a shared machine: compare A/B
in the same run.

``--pipeline`` (:func:`measure_pipeline`): ``hub serve`` in a child process, each package POSTed
to the gateway and fetched by its recipient (by reference over ``HUB_BY_REFERENCE_BYTES``), the
child's peak RSS and the time submit -> fetched; then the sender reads the package back
(``GET /api/v1/packages/{sha256}``, streamed from its blob) and the peak RSS of that read alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from hub.edxml.builder import AttachmentFile, build_edoc
from hub.edxml.model import Code, DocumentType, Edoc, Organization, TraceHeader
from hub.pki import devpki

SENDER = "000.00.00.G22"
RECIPIENT = "000.00.00.H41"
MB = 1024 * 1024
_PDF_LINE = b"%PDF-1.4 edxml large-package bench line\n"


def large_edoc(sender: str = SENDER, recipient: str = RECIPIENT, n: int = 1) -> Edoc:
    today = date(2026, 11, 27)
    return Edoc(
        sender=Organization(sender, "Văn phòng Chính phủ"),
        recipients=(Organization(recipient, organ_name="UBND tỉnh Nghệ An"),),
        document_id=f"{sender},{today:%Y/%m/%d},{n}/VPCP-LARGE",
        code=Code(str(n), "VPCP-LARGE"),
        promulgation_place="Hà Nội",
        promulgation_date=today,
        document_type=DocumentType("1", "0", "Công văn"),
        subject=f"Hồ sơ quét số {n}",
        content="Hồ sơ quét kèm theo.",
        due_date=today + timedelta(days=14),
        priority=0,
        trace=(TraceHeader(sender, datetime(2026, 11, 27, 9, 0, 0)),),
    )


def large_attachment(size: int) -> AttachmentFile:
    """``size`` bytes of a synthetic scanned dossier (a repeated line: cheap to make)."""
    data = (_PDF_LINE * (size // len(_PDF_LINE) + 1))[:size]
    return AttachmentFile("ho-so-quet.pdf", data, "application/pdf", "Hồ sơ quét")


def make_large_package(size_bytes: int, key=None, cert=None, *, edoc: Edoc | None = None) -> bytes:
    """A signed edoc of about ``size_bytes`` (one attachment of 3/4 of that, base64-encoded).

    Signed with ``key``/``cert`` (a throwaway development pair when omitted: fine for measuring
    size and memory, but only a registry pinning that certificate accepts it)."""
    from hub.edxml.parser import parse_xml
    from hub.edxml.signature import sign_package

    if key is None or cert is None:
        ca_cert, ca_key = devpki.make_ca("large-package bench root (DEVELOPMENT ONLY)")
        cert, key = devpki.issue(ca_cert, ca_key, f"{SENDER} bench")
    attachment = large_attachment(max(0, (size_bytes - 6 * 1024) * 3 // 4))
    unsigned = build_edoc(edoc or large_edoc(), [attachment])
    del attachment
    return sign_package(parse_xml(unsigned, max_bytes=len(unsigned)), key, cert)


@dataclass
class Fixture:
    """A package file and the PEM files a child process needs to check it."""

    package: Path
    ca: Path
    sender_cert: Path
    recipient_cert: Path


def make_fixture(size_bytes: int, workdir: Path) -> Fixture:
    ca_cert, ca_key = devpki.make_ca("large-package bench root (DEVELOPMENT ONLY)")
    s_cert, s_key = devpki.issue(ca_cert, ca_key, f"{SENDER} bench")
    r_cert, _ = devpki.issue(ca_cert, ca_key, f"{RECIPIENT} bench")
    f = Fixture(workdir / f"large-{size_bytes}.edxml", workdir / "ca.pem", workdir / "sender.pem",
                workdir / "recipient.pem")
    f.package.write_bytes(make_large_package(size_bytes, s_key, s_cert))
    f.ca.write_bytes(devpki.cert_pem(ca_cert))
    f.sender_cert.write_bytes(devpki.cert_pem(s_cert))
    f.recipient_cert.write_bytes(devpki.cert_pem(r_cert))
    return f


def peak_rss_mb(pid: str | int = "self") -> float:
    """Peak resident set size (``VmHWM``) of a process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (the hub's check processes), from /proc."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(x) for x in task.read_text().split()]
        except OSError:
            pass
    return out


def _child_check(package: str, ca: str, sender: str, recipient: str) -> None:
    """In a fresh process: check one package file as ``hub check`` does; print JSON figures."""
    from cryptography import x509

    from hub.context import schema_validator
    from hub.pipeline.checks import CheckContext, check_package
    from hub.pki.certs import fingerprint
    from hub.pki.chain import TrustStore
    from hub.registry.model import Agency, Registry

    def pem(p: str):
        return x509.load_pem_x509_certificate(Path(p).read_bytes())

    registry = Registry({
        SENDER: Agency(SENDER, "Văn phòng Chính phủ", connected=True, fingerprints=frozenset({fingerprint(pem(sender))})),
        RECIPIENT: Agency(RECIPIENT, "UBND tỉnh Nghệ An", connected=True,
                          fingerprints=frozenset({fingerprint(pem(recipient))})),
    })
    ctx = CheckContext(registry, TrustStore(anchors=(pem(ca),)), schema_validator(), max_bytes=1 << 40)
    base = peak_rss_mb()
    t0 = time.perf_counter()
    data = Path(package).read_bytes()
    verdict = check_package(data, ctx)
    seconds = time.perf_counter() - t0
    print(json.dumps({"size": verdict.size, "accepted": verdict.accepted, "reason": verdict.reason,
                      "seconds": round(seconds, 2), "baseline_mb": round(base, 1),
                      "peak_rss_mb": round(peak_rss_mb(), 1)}))


def measure_check(f: Fixture) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.large", "--child", str(f.package), str(f.ca),
                          str(f.sender_cert), str(f.recipient_cert)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the pipeline: hub serve in a child process, a package through the gateway and back ------------

HUB = "000.00.99.G22"
PG_ADMIN = os.environ.get("HUB_TEST_PG_ADMIN", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
AMQP = os.environ.get("HUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MGMT = os.environ.get("HUB_TEST_AMQP_MANAGEMENT", "http://127.0.0.1:15672")


async def _pg(sql: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    eng = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with eng.connect() as c:
            await c.execute(sa.text(sql))
    finally:
        await eng.dispose()


async def measure_pipeline(sizes_mb: list[int], workdir: Path, by_reference: int,
                            hub_src: str | None = None) -> list[dict]:
    """The hub (workers + HTTP API, HUB_CHECK_PROCESSES=1) in a child process on the shared RabbitMQ
    and PostgreSQL (its own vhost and database, removed after); each package POSTed to the gateway
    (streamed from a file), fetched by its recipient from the inbox and GET /api/v1/blobs (hashed as it
    streams); the child's peak RSS (VmHWM, reset before each size) and the time submit -> fetched."""
    import hashlib
    import signal
    import uuid
    from urllib.parse import quote

    import aiohttp

    from hub.api.users import add_user
    from hub.backbone.management import Management
    from hub.pki.identity import Identity
    from hub.registry.store import add_agency, add_trust_anchor
    from hub.store.engine import make_engine, migrate

    name = f"hub_large_{uuid.uuid4().hex[:10]}"
    vhost = f"hub-large-{uuid.uuid4().hex[:10]}"
    db_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    ca_cert, ca_key = devpki.make_ca("large-package bench root (DEVELOPMENT ONLY)")
    ids = {c: Identity(c, *reversed(devpki.issue(ca_cert, ca_key, f"{c} bench"))) for c in (SENDER, RECIPIENT, HUB)}
    (workdir / "hub.key").write_bytes(devpki.key_pem(ids[HUB].key))
    (workdir / "hub.pem").write_bytes(devpki.cert_pem(ids[HUB].cert))
    await _pg(f'CREATE DATABASE "{name}"')
    async with Management(MGMT, "guest", "guest") as m:
        await m.put_vhost(vhost)
        await m.set_permissions(vhost, "guest", configure=".*", write=".*", read=".*")
    proc = None
    results = []
    try:
        engine = make_engine(db_url)
        if hub_src:  # that checkout's schema (it refuses a database migrated past its own head)
            subprocess.run([str(Path(hub_src) / ".venv" / "bin" / "python"), "-c",
                            "import asyncio, sys; from hub.store.engine import make_engine, migrate\n"
                            "async def m():\n e = make_engine(sys.argv[1]); await migrate(e); await e.dispose()\n"
                            "asyncio.run(m())", db_url],
                           cwd=hub_src, check=True)
        else:
            await migrate(engine)
        await add_trust_anchor(engine, ca_cert)
        await add_agency(engine, HUB, name="hub", certs=[ids[HUB].cert], connected=False, accepts="0")
        for code in (SENDER, RECIPIENT):
            await add_agency(engine, code, name=code, certs=[ids[code].cert], connected=True, amqp_user=code)
        tokens = {c: await add_user(engine, f"bench {c}", "agency", c, actor="bench") for c in (SENDER, RECIPIENT)}
        await engine.dispose()
        port = _free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
               "HUB_DATA_DIR": str(workdir / "data"), "HUB_DATABASE_URL": db_url,
               "HUB_AMQP_URL": AMQP.rstrip("/") + "/" + quote(vhost, safe=""), "HUB_ORGAN_ID": HUB,
               "HUB_KEY_FILE": str(workdir / "hub.key"), "HUB_CERT_FILE": str(workdir / "hub.pem"),
               "HUB_HTTP_PORT": str(port), "HUB_MAX_PACKAGE_BYTES": str(max(sizes_mb) * MB + 16 * MB),
               "HUB_BY_REFERENCE_BYTES": str(by_reference), "HUB_CHECK_PROCESSES": "1"}
        python = str(Path(hub_src) / ".venv" / "bin" / "python") if hub_src else sys.executable
        proc = subprocess.Popen([python, "-m", "hub.cli", "serve"], env=env, cwd=hub_src, stdout=subprocess.DEVNULL,
                                stderr=open(workdir / "serve.log", "wb"))
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
            for _ in range(300):
                try:
                    async with http.get(base + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("hub serve did not become ready: " + (workdir / "serve.log").read_text()[-2000:])
            idle = peak_rss_mb(proc.pid)
            for n, mb in enumerate(sizes_mb, start=1):
                f = workdir / f"p{mb}.edxml"
                f.write_bytes(make_large_package(mb * MB, ids[SENDER].key, ids[SENDER].cert,
                                                 edoc=large_edoc(SENDER, RECIPIENT, 100 + n)))
                for pid in (proc.pid, *child_pids(proc.pid)):  # reset VmHWM to the current RSS
                    Path(f"/proc/{pid}/clear_refs").write_text("5")
                before = peak_rss_mb(proc.pid)
                t0 = time.perf_counter()
                with f.open("rb") as body:
                    async with http.post(base + "/api/v1/documents", data=body, headers={
                            "Authorization": f"Bearer {tokens[SENDER]}", "Content-Type": "application/xml"}) as r:
                        reply = await r.json()
                        assert r.status == 202, reply
                entry = await _poll_inbox(http, base, tokens[RECIPIENT])
                h = hashlib.sha256()
                got = 0
                href = entry["blob"]["href"] if entry.get("blob") else None
                if href:
                    async with http.get(base + href, headers={"Authorization": f"Bearer {tokens[RECIPIENT]}"}) as r:
                        async for chunk in r.content.iter_chunked(1 << 20):
                            h.update(chunk)
                            got += len(chunk)
                else:  # under HUB_BY_REFERENCE_BYTES: in the inbox entry itself
                    import base64

                    h.update(base64.b64decode(entry["package"]))
                seconds = time.perf_counter() - t0
                async with http.post(base + "/api/v1/inbox/ack", json={"ids": [entry["id"]]},
                                     headers={"Authorization": f"Bearer {tokens[RECIPIENT]}"}) as r:
                    assert r.status == 200
                size = f.stat().st_size
                f.unlink()
                peak = peak_rss_mb(proc.pid)
                # not in hub_peak_rss_mb: its check processes (HUB_CHECK_PROCESSES=1; a package over
                # hub.pipeline.runner.LARGE_INLINE is checked in a thread of the hub, never in them)
                kids = [peak_rss_mb(k) for k in child_pids(proc.pid)]
                results.append({"package_mb": round(size / MB, 1), "by_reference": bool(href),
                                "delivered_ok": h.hexdigest() == entry["sha256"],
                                "seconds": round(seconds, 2), "hub_idle_mb": round(idle, 1),
                                "hub_rss_before_mb": round(before, 1), "hub_peak_rss_mb": round(peak, 1),
                                "check_processes_peak_rss_mb": round(max(kids), 1) if kids else None,
                                "budget_mb": round(100 + 1.5 * size / MB, 1),
                                **await _download(http, base, tokens[SENDER], reply["sha256"], proc.pid)})
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        async with Management(MGMT, "guest", "guest") as m:
            await m.delete_vhost(vhost)
        await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


async def _download(http, base: str, token: str, sha256: str, pid: int) -> dict:
    """The sender reads its package back (GET /api/v1/packages/{sha256}, streamed from the blob):
    the hub's peak RSS during that read alone (VmHWM reset first). Empty where the hub has no such
    endpoint (an older checkout)."""
    import hashlib

    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = peak_rss_mb(pid)
    h = hashlib.sha256()
    async with http.get(f"{base}/api/v1/packages/{sha256}", headers={"Authorization": f"Bearer {token}"}) as r:
        if r.status != 200:
            return {}
        async for chunk in r.content.iter_chunked(1 << 20):
            h.update(chunk)
    return {"download_ok": h.hexdigest() == sha256, "download_rss_before_mb": round(before, 1),
            "download_peak_rss_mb": round(peak_rss_mb(pid), 1)}


async def _poll_inbox(http, base: str, token: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with http.get(base + "/api/v1/inbox", headers={"Authorization": f"Bearer {token}"}) as r:
            body = await r.json()
        if body.get("packages"):
            return body["packages"][0]
        await asyncio.sleep(0.2)
    raise RuntimeError("the package did not reach the recipient's inbox")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,50,200", help="package sizes in MB, comma-separated")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--pipeline", action="store_true",
                    help="instead: run the hub (hub serve on real RabbitMQ + PostgreSQL) and send each size through it")
    ap.add_argument("--by-reference", type=int, default=16 * MB, help="HUB_BY_REFERENCE_BYTES for --pipeline")
    ap.add_argument("--hub-src", help="run the hub of this checkout (with its .venv) instead, e.g. /work/main for before/after")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child_check(*args.child)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.pipeline:
        with tempfile.TemporaryDirectory(prefix="hub-large-") as tmp:
            pipe = asyncio.run(measure_pipeline(sizes, Path(tmp), args.by_reference, args.hub_src))
        for r in pipe:
            if not args.json:
                print(f"hub  {r['package_mb']:>7.1f} MB: hub peak RSS {r['hub_peak_rss_mb']:>7.1f} MB "
                      f"(idle {r['hub_idle_mb']} MB; budget 100 + 1.5x = {r['budget_mb']} MB; its check process, "
                      f"not counted: {r['check_processes_peak_rss_mb']} MB), submit -> fetched "
                      f"{r['seconds']} s, by reference={r['by_reference']}, bytes ok={r['delivered_ok']}", flush=True)
                if "download_ok" in r:
                    print(f"     read back by its sender (GET /api/v1/packages/{{sha256}}): hub peak RSS "
                          f"{r['download_peak_rss_mb']:>7.1f} MB (before {r['download_rss_before_mb']} MB), "
                          f"bytes ok={r['download_ok']}", flush=True)
        if args.json:
            print(json.dumps({"pipeline": pipe}, indent=2))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="hub-large-") as tmp:
        for mb in (int(s) for s in args.sizes.split(",")):
            f = make_fixture(mb * MB, Path(tmp))
            r = measure_check(f)
            r["package_mb"] = round(r["size"] / MB, 1)
            r["budget_mb"] = round(100 + 1.5 * r["size"] / MB, 1)
            r["ratio"] = round(r["peak_rss_mb"] / (r["size"] / MB), 2)
            results.append(r)
            f.package.unlink()
            if not args.json:
                print(f"check {r['package_mb']:>7.1f} MB: peak RSS {r['peak_rss_mb']:>7.1f} MB "
                      f"({r['ratio']}x the package; budget 100 + 1.5x = {r['budget_mb']} MB), "
                      f"{r['seconds']} s, accepted={r['accepted']} {r['reason'] or ''}", flush=True)
    if args.json:
        print(json.dumps({"check": results, "machine": os.uname().nodename}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
