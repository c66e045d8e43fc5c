"""Large packages: build one, and measure the peak memory of checking it.

    .venv/bin/python -m benchmarks.large [--sizes 10,50,200] [--json]

:func:`make_large_package` builds a signed edoc with one big attachment (a synthetic PDF,
base64 in ``AttachmentEncoded``), about ``size_bytes`` long in total, with the project's own
builder and signer, and a development PKI made in-process. ``hub bench --large`` calls it.

The measurement runs ``check_package`` (what ``hub check`` and the hub's check processes run)
in a fresh child process per size and reads the child's peak RSS (``VmHWM``), so one size's
garbage never counts towards the next. Figures are noisy on a shared machine: compare A/B
in the same run.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,50,200", help="package sizes in MB, comma-separated")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child_check(*args.child)
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
