"""Throughput of the full stateless check on ONE core, with a per-stage breakdown.

    .venv/bin/python benchmarks/check_throughput.py [--n 2000] [--size BYTES] [--cpu K]

Builds a ~10 KB edoc package with one attachment (hub.edxml.builder), signs it with a
development PKI made in-process (hub.edxml.signature.sign_package), and times:

* the full ``check_package`` (what ``hub check`` and the intake workers run), N times;
* each stage function on its own, over the same N: parse, schema, signature inspection and
  the claimed sender, signature+trust (``verify_package``, with its parts: strict profile,
  leaf_first, chain, ``dsig_fast.verify_fast``), read model, authorize (fingerprint +
  ``authorize``); and the same stages "in context", one clock between stages inside the
  accepting path, which sums to the whole check;
* for comparison, signxml's "naive route": ``XMLVerifier().verify(raw bytes, ca_pem_file=...,
  expect_config=SignatureConfiguration(location=...))`` with no hub checks at all.

The process is pinned to one CPU (``--cpu``, default: the first one allowed) and everything
runs in this one process, single-threaded.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path

from signxml import XMLVerifier
from signxml.verifier import SignatureConfiguration

from hub.constants import EDXML_NS
from hub.edxml.builder import AttachmentFile, build_edoc
from hub.edxml.model import Code, DocumentType, Edoc, Organization, TraceHeader, read_package
from hub.edxml.parser import parse_xml
from hub.edxml.schema import SchemaValidator
from hub.edxml.signature import _leaf_first, _strict_profile, sign_package, verify_package
from hub.pipeline.authentication import Authenticated
from hub.edxml.dsig_fast import verify_fast
from hub.edxml.sdk_signature import inspect_signature
from hub.pipeline.checks import CheckContext, Verdict, _claimed, authorize, check_package
from hub.pki import devpki
from hub.pki.certs import fingerprint
from hub.pki.chain import TrustStore
from hub.registry.model import Agency, Registry

SENDER = "000.00.00.G22"
RECIPIENT = "000.00.00.H41"
LOCATION = f"./{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader/"
TARGET_BYTES = 10 * 1024


# --- the package and the context ------------------------------------------------------------------

@dataclass
class Bench:
    data: bytes
    ctx: CheckContext
    ca_pem: Path
    sender_key: object
    sender_cert: object
    ca_cert: object
    ca_key: object
    attachment_size: int


def make_edoc(sender: str = SENDER, recipient: str = RECIPIENT, n: int = 7816) -> Edoc:
    today = date(2026, 11, 27)
    return Edoc(
        sender=Organization(sender, "Văn phòng Chính phủ", "Văn phòng Chính phủ", "Số 1 Hoàng Hoa Thám, Hà Nội",
                            "vpcp@chinhphu.vn", "080 43100"),
        recipients=(Organization(recipient, organ_name="UBND tỉnh Nghệ An"),),
        document_id=f"{sender},{today:%Y/%m/%d},{n}/VPCP-TTĐT",
        code=Code(str(n), "VPCP-TTĐT"),
        promulgation_place="Hà Nội",
        promulgation_date=today,
        document_type=DocumentType("1", "0", "Công văn"),
        subject=f"V/v kết nối, liên thông phần mềm quản lý văn bản số {n}",
        content="Văn phòng Chính phủ đề nghị các cơ quan phối hợp thực hiện.",
        due_date=today + timedelta(days=14),
        priority=0,
        trace=(TraceHeader(sender, datetime(2026, 11, 27, 9, 0, 0)),),
    )


def attachment(size: int) -> AttachmentFile:
    return AttachmentFile("cong-van.pdf", (b"%PDF-1.4 edxml bench " * (size // 21 + 1))[:size], "application/pdf", "Công văn")


def make_bench(size: int | None, workdir: Path, key_kind: str = "rsa") -> Bench:
    ca_cert, ca_key = devpki.make_ca("benchmark root (DEVELOPMENT ONLY)")
    s_cert, s_key = devpki.issue(ca_cert, ca_key, f"{SENDER} bench", key=devpki.new_key(key_kind))
    r_cert, _ = devpki.issue(ca_cert, ca_key, f"{RECIPIENT} bench")

    def build(n: int) -> bytes:
        return sign_package(build_edoc(make_edoc(), [attachment(n)]), s_key, s_cert)

    if size is None:  # calibrate: base64 grows the attachment by 4/3, the rest is fixed
        fixed = len(build(3000)) - 4000
        size = max(0, (TARGET_BYTES - fixed) * 3 // 4)
    data = build(size)
    registry = Registry({
        SENDER: Agency(SENDER, "Văn phòng Chính phủ", connected=True, fingerprints=frozenset({fingerprint(s_cert)})),
        RECIPIENT: Agency(RECIPIENT, "UBND tỉnh Nghệ An", connected=True, fingerprints=frozenset({fingerprint(r_cert)})),
    })
    ctx = CheckContext(registry=registry, trust=TrustStore(anchors=(ca_cert,)), validator=SchemaValidator())
    ca_pem = workdir / "ca.pem"
    ca_pem.write_bytes(devpki.cert_pem(ca_cert))
    return Bench(data, ctx, ca_pem, s_key, s_cert, ca_cert, ca_key, size)


# --- timing ---------------------------------------------------------------------------------------

@dataclass
class Stats:
    """Per-call wall clock samples, and over the whole timed loop: this process's CPU time, its
    wall time and the time it waited in a run queue for a CPU (other processes on its core)."""

    name: str
    samples_ns: list[int]
    cpu_ns: int = 0
    loop_ns: int = 0
    runqueue_ns: int | None = None

    @property
    def mean_us(self) -> float:
        return statistics.fmean(self.samples_ns) / 1000

    def pct_us(self, p: float) -> float:
        s = sorted(self.samples_ns)
        return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] / 1000

    @property
    def per_s(self) -> float:
        """Calls per second of wall clock: what the process got, on a shared machine less than it costs."""
        return 1e9 / statistics.fmean(self.samples_ns)

    @property
    def cpu_us(self) -> float:
        return self.cpu_ns / len(self.samples_ns) / 1000

    @property
    def per_cpu_s(self) -> float:
        """Calls per second of this process's own CPU time: what a call costs, whatever else runs."""
        return len(self.samples_ns) * 1e9 / self.cpu_ns if self.cpu_ns else float("nan")

    @property
    def cpu_share(self) -> float:
        """The share of one CPU the process got while timed (1.0 = it never waited)."""
        return self.cpu_ns / self.loop_ns if self.loop_ns else float("nan")


def runqueue_wait_ns() -> int | None:
    """Nanoseconds this thread has waited in a run queue (Linux /proc/thread-self/schedstat), else None."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def timed(name: str, fn, n: int, warmup: int) -> Stats:
    for _ in range(warmup):
        fn()
    gc.collect()
    samples = [0] * n
    clock = time.perf_counter_ns
    wait0, cpu0, loop0 = runqueue_wait_ns(), time.process_time_ns(), clock()
    for i in range(n):
        t0 = clock()
        fn()
        samples[i] = clock() - t0
    loop, cpu, wait1 = clock() - loop0, time.process_time_ns() - cpu0, runqueue_wait_ns()
    return Stats(name, samples, cpu, loop, None if wait0 is None or wait1 is None else wait1 - wait0)


def pin_one_cpu(cpu: int | None) -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    allowed = sorted(os.sched_getaffinity(0))
    target = allowed[0] if cpu is None else cpu
    os.sched_setaffinity(0, {target})
    return f"pinned to CPU {target} (of {len(allowed)} allowed)"


def row(s: Stats, indent: str = "  ") -> str:
    return f"{indent}{s.name:<30} {s.per_s:>9,.0f}/s {s.mean_us:>9.1f} {s.pct_us(50):>9.1f} {s.pct_us(99):>9.1f}"


HEAD = f"  {'':<30} {'rate':>11} {'mean µs':>9} {'p50 µs':>9} {'p99 µs':>9}"


# --- the benchmark --------------------------------------------------------------------------------

STAGES = ["parse", "schema", "inspect + claimed sender", "signature+trust", "  strict profile", "  leaf_first",
          "  chain (TrustStore, cached)", "  dsig_fast verify_fast", "read model", "authorize (+fingerprint)"]


def stage_functions(b: Bench):
    """Each stage of check_package on inputs prepared once (not timed); the signature stage
    also split into verify_package's own parts."""
    ctx = b.ctx
    root = parse_xml(b.data, max_bytes=ctx.max_bytes)
    ctx.validator.validate(root)
    verified = verify_package(root, ctx.trust)
    package = read_package(verified.signed_root)
    routes = authorize(package, Authenticated("signature", verified.signed_root, verified.certificate), ctx.registry, None)
    assert [r.recipient for r in routes] == [RECIPIENT]
    _sig, certs, _sa, _da = _strict_profile(root, False)
    ordered = _leaf_first(certs)
    chain = ctx.trust.verify(ordered[0], ordered[1:])

    def leaf_first():  # on freshly loaded certificates, as in verify_package (cryptography caches names)
        return _leaf_first(_strict_profile(root, False)[1])

    return {
        "parse": lambda: parse_xml(b.data, max_bytes=ctx.max_bytes),
        "schema": lambda: ctx.validator.validate(root),
        "inspect + claimed sender": lambda: (inspect_signature(root), _claimed(root)),
        "signature+trust": lambda: verify_package(root, ctx.trust),
        "  strict profile": lambda: _strict_profile(root, False),
        "  leaf_first": leaf_first,  # minus strict profile, below
        "  chain (TrustStore, cached)": lambda: ctx.trust.verify(ordered[0], ordered[1:]),
        "  dsig_fast verify_fast": lambda: verify_fast(root, _sig, chain[0]),
        "read model": lambda: read_package(verified.signed_root),
        "authorize (+fingerprint)": lambda: authorize(
            package, Authenticated("signature", verified.signed_root, verified.certificate), ctx.registry, None),
    }


def in_context(b: Bench, n: int, warmup: int) -> dict[str, float]:
    """check_package's accepting path with a clock between stages: mean µs per stage, summing
    to the whole. Same calls as check_package/verify_package, in the same order."""
    ctx = b.ctx
    acc = dict.fromkeys([*STAGES, "sha256 + Verdict"], 0)
    clock = time.perf_counter_ns
    for i in range(warmup + n):
        if i == warmup:
            acc = dict.fromkeys(acc, 0)
        t0 = clock()
        digest = hashlib.sha256(b.data).hexdigest()
        root = parse_xml(b.data, max_bytes=ctx.max_bytes)
        t1 = clock()
        ctx.validator.validate(root)
        t2a = clock()
        inspect_signature(root)
        _claimed(root)
        t2 = clock()
        when = datetime.now(timezone.utc)
        _sig, certs, _sa, _da = _strict_profile(root, False)
        t3 = clock()
        ordered = _leaf_first(certs)
        t4 = clock()
        chain = ctx.trust.verify(ordered[0], ordered[1:], when)
        t5 = clock()
        _signed_bytes, signed_root, _sm, _dm = verify_fast(root, _sig, chain[0])
        t6 = clock()
        package = read_package(signed_root)
        t7 = clock()
        routes = authorize(package, Authenticated("signature", signed_root, chain[0]), ctx.registry, None)
        t8 = clock()
        Verdict(accepted=True, sha256=digest, size=len(b.data), package=package, routes=routes)
        t9 = clock()
        for name, dt in (("parse", t1 - t0), ("schema", t2a - t1), ("inspect + claimed sender", t2 - t2a),
                         ("  strict profile", t3 - t2),
                         ("  leaf_first", t4 - t3), ("  chain (TrustStore, cached)", t5 - t4),
                         ("  dsig_fast verify_fast", t6 - t5), ("signature+trust", t6 - t2),
                         ("read model", t7 - t6), ("authorize (+fingerprint)", t8 - t7), ("sha256 + Verdict", t9 - t8)):
            acc[name] += dt
    return {k: v / n / 1000 for k, v in acc.items()}


def naive_signxml(b: Bench):
    config = SignatureConfiguration(location=LOCATION)
    ca = str(b.ca_pem)

    def run():
        return XMLVerifier().verify(b.data, ca_pem_file=ca, expect_config=config)

    r = run()
    assert r.signed_xml is not None
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="timed iterations per measurement (default 2000)")
    p.add_argument("--size", type=int, default=None, help="attachment bytes (default: so the package is ≈10 KB)")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: first allowed)")
    p.add_argument("--key", choices=["rsa", "ec"], default="rsa", help="signing key (RSA-2048 or ECDSA P-256)")
    args = p.parse_args(argv)

    pinned = pin_one_cpu(args.cpu)
    with tempfile.TemporaryDirectory() as tmp:
        b = make_bench(args.size, Path(tmp), args.key)
        v = check_package(b.data, b.ctx)
        assert v.accepted, f"the benchmark package is refused: {v.reason}: {v.message}"

        print(f"python {platform.python_version()} · lxml {version('lxml')} · signxml {version('signxml')}"
              f" · cryptography {version('cryptography')} · {platform.machine()}")
        print(f"{pinned}; single process, single thread; N={args.n}, warm-up {args.warmup}")
        sig_alg = "ECDSA P-256/SHA-256" if args.key == "ec" else "RSA-2048/SHA-256"
        print(f"package: {len(b.data):,} bytes ({b.attachment_size:,}-byte attachment, 1 recipient, {sig_alg}, exc-c14n)")
        print()

        full = timed("full check_package", lambda: check_package(b.data, b.ctx), args.n, args.warmup)
        stages = {name: timed(name, fn, args.n, args.warmup) for name, fn in stage_functions(b).items()}
        # leaf_first was timed together with the strict profile that loads the certificates
        lf = stages["  leaf_first"]
        lf.samples_ns = [max(0, x - round(stages["  strict profile"].mean_us * 1000)) for x in lf.samples_ns]
        ctx_means = in_context(b, args.n, args.warmup)
        naive = timed("signxml naive route", naive_signxml(b), args.n, args.warmup)

        print(HEAD)
        print(row(full))
        print(f"  → {full.per_s:,.0f} full checks/s on one core "
              f"({full.per_s * len(b.data) / 1e6:,.1f} MB/s of packages); {full.per_cpu_s:,.0f} per second of its "
              f"own CPU time ({full.cpu_us:.0f} µs each): the process got {100 * full.cpu_share:.0f} % of its core, "
              f"load average {os.getloadavg()[0]:.1f}")
        print()
        print("  per stage: each stage function timed alone over the same N  |  in context: one clock between")
        print("  stages inside the accepting path (sums to the whole; fresh trees and certificates each time)")
        print(f"{HEAD}  {'in ctx µs':>10} {'share':>6}")
        total_ctx = sum(v for k, v in ctx_means.items() if not k.startswith("  ") and k != "signature+trust") \
            + ctx_means["signature+trust"]
        for name in STAGES:
            s = stages[name]
            indent = "    " if name.startswith("  ") else "  "
            print(f"{row(s, indent)}  {ctx_means[name]:>10.1f} {100 * ctx_means[name] / total_ctx:>5.0f}%")
        print(f"  {'sha256 + Verdict':<30} {'':>11} {'':>9} {'':>9} {'':>9}  {ctx_means['sha256 + Verdict']:>10.1f} "
              f"{100 * ctx_means['sha256 + Verdict'] / total_ctx:>5.0f}%")
        top = [stages[n] for n in STAGES if not n.startswith("  ")]
        print(f"  {'sum':<30} {'':>11} {sum(s.mean_us for s in top):>9.1f} {'':>9} {'':>9}  {total_ctx:>10.1f}"
              f"   (full check_package mean {full.mean_us:.1f})")
        sig = ctx_means["signature+trust"]
        print(f"  signature+trust is {100 * sig / total_ctx:.0f}% of the check in context; "
              f"dsig_fast alone {100 * ctx_means['  dsig_fast verify_fast'] / total_ctx:.0f}%")
        print()
        print("  comparison: signxml alone on the raw bytes, no hub checks (ca_pem_file chain, location):")
        print(row(naive))
        print(f"  → the full hub check costs {full.mean_us / naive.mean_us:.2f}× the naive signxml verify")
    return 0


if __name__ == "__main__":
    sys.exit(main())
