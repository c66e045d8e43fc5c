"""Instructions per stateless check, counted by callgrind (repeatable on a loaded machine).

    .venv/bin/python -m benchmarks.check_instructions [--n 200] [--stage full] [--key rsa]

Runs ``valgrind --tool=callgrind`` twice on this module's ``--inner`` mode, once with N
checks and once with none, and prints (Ir with N − Ir with 0) / N: the instructions one
check costs, start-up and set-up cancelled out. The package, keys and certificates are made
once, before either run, and loaded by both (key generation is random, so it must not be
inside a counted run); PYTHONHASHSEED=0 in both.

``--stage`` counts one stage of ``check_package`` alone on inputs prepared once (as
``benchmarks/check_throughput.py`` times them): full, parse, schema, inspect, claimed,
signature, read, authorize, sha256. ``--crl`` puts a CRL of the CA in the trust store
(revoking another serial), as a deployment with revocation has. ``--calibrate N_PER_S`` converts with a rate measured
elsewhere for a known count (``instructions/s = rate × count``). Measure that rate as CPU time, not wall clock:
``per_cpu_s`` of ``benchmarks.check_rate`` on the same tree times this count (2026-11-30: 2,192/s × 3.05M ≈ 6.7e9
on this machine; the older 3.78M ↔ 4,600/s, 17.39e9, was not reproducible).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

STAGES = ("full", "parse", "schema", "inspect", "claimed", "signature", "read", "authorize", "sha256")


def _fixture(workdir: Path, key_kind: str) -> Path:
    """Build the benchmark package and context once; save what the inner runs load."""
    from benchmarks.check_throughput import RECIPIENT, SENDER, make_bench
    from hub.pki import devpki
    from hub.pki.certs import fingerprint

    from cryptography.hazmat.primitives.serialization import Encoding

    b = make_bench(None, workdir, key_kind)
    r_fp = next(iter(b.ctx.registry.get(RECIPIENT).fingerprints))
    crl = devpki.make_crl(b.ca_cert, b.ca_key, [(12345, datetime.now(timezone.utc))])  # revokes another serial
    path = workdir / "fixture.pickle"
    path.write_bytes(pickle.dumps({
        "data": b.data, "ca_pem": devpki.cert_pem(b.ca_cert), "crl_der": crl.public_bytes(Encoding.DER),
        "sender_fp": fingerprint(b.sender_cert), "recipient_fp": r_fp, "sender": SENDER, "recipient": RECIPIENT,
    }))
    return path


def _inner(fixture: Path, stage: str, n: int) -> None:
    from cryptography import x509

    from hub.edxml.model import read_package
    from hub.edxml.parser import parse_xml
    from hub.edxml.schema import SchemaValidator
    from hub.edxml.sdk_signature import inspect_signature
    from hub.pipeline.authentication import Authenticated
    from hub.pipeline.checks import CheckContext, _claimed, authorize, check_package
    from hub.edxml.signature import verify_package
    from hub.pki.chain import TrustStore
    from hub.registry.model import Agency, Registry

    f = pickle.loads(fixture.read_bytes())
    data = f["data"]
    registry = Registry({
        f["sender"]: Agency(f["sender"], "Văn phòng Chính phủ", connected=True, fingerprints=frozenset({f["sender_fp"]})),
        f["recipient"]: Agency(f["recipient"], "UBND tỉnh Nghệ An", connected=True,
                               fingerprints=frozenset({f["recipient_fp"]})),
    })
    crls = (x509.load_der_x509_crl(f["crl_der"]),) if os.environ.get("CHECK_CRL") == "1" else ()
    ctx = CheckContext(registry=registry, trust=TrustStore(anchors=(x509.load_pem_x509_certificate(f["ca_pem"]),),
                                                           crls=crls), validator=SchemaValidator())
    v = check_package(data, ctx)  # warm every cache the hot path keeps
    assert v.accepted, (v.reason, v.message)
    root = parse_xml(data)
    verified = verify_package(root, ctx.trust)
    auth = Authenticated("signature", verified.signed_root, verified.certificate)
    package = read_package(verified.signed_root)
    fns = {
        "full": lambda: check_package(data, ctx),
        "parse": lambda: parse_xml(data),
        "schema": lambda: ctx.validator.validate(root),
        "inspect": lambda: inspect_signature(root),
        "claimed": lambda: _claimed(root),
        "signature": lambda: verify_package(root, ctx.trust),
        "read": lambda: read_package(verified.signed_root),
        "authorize": lambda: authorize(package, auth, registry, None),
        "sha256": lambda: hashlib.sha256(data).hexdigest(),
    }
    fn = fns[stage]
    for _ in range(n):
        fn()


def _count(fixture: Path, stage: str, n: int, workdir: Path, crl: bool = False) -> int:
    out = workdir / f"callgrind.{stage}.{n}.out"
    env = dict(os.environ, PYTHONHASHSEED="0", CHECK_CRL="1" if crl else "0")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
         "benchmarks.check_instructions", "--inner", str(fixture), "--stage", stage, "--n", str(n)],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for line in out.read_text().splitlines():
        m = re.match(r"(?:summary|totals): (\d+)", line)
        if m:
            return int(m.group(1))
    raise RuntimeError(f"no totals in {out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--stage", default="full", help=", ".join(STAGES) + " or all")
    p.add_argument("--key", choices=["rsa", "ec"], default="rsa")
    p.add_argument("--crl", action="store_true", help="the trust store holds a CRL of the CA (revoking another serial)")
    p.add_argument("--calibrate", type=float, default=None,
                   help="instructions per second (e.g. 3.78e6*4600) to turn counts into checks/s")
    p.add_argument("--inner", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inner is not None:
        _inner(args.inner, args.stage, args.n)
        return 0
    stages = STAGES if args.stage == "all" else (args.stage,)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fixture = _fixture(work, args.key)
        for stage in stages:
            base = _count(fixture, stage, 0, work, args.crl)
            total = _count(fixture, stage, args.n, work, args.crl)
            per = (total - base) / args.n
            rate = f"  ≈ {args.calibrate / per:,.0f}/s" if args.calibrate else ""
            print(f"{stage:<10} {per:>12,.0f} instructions per call (N={args.n}, {args.key}){rate}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
