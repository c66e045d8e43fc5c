"""`hub demo`: a development PKI, three agencies, the hub and their adapters, and a stream of
realistic traffic — letters, decisions, replies, status changes, a recall and refusals.

Runs on the embedded defaults (SQLite, in-process broker) unless HUB_DATABASE_URL /
HUB_AMQP_URL say otherwise. ``--once`` sends a fixed set, prints a summary and exits 0 only
if every accepted package reached every recipient.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from adapters.sdk import Adapter, Received, SeenStore
from hub import constants as C
from hub.backbone.nodes import describe
from hub.edxml.builder import AttachmentFile, build_edoc
from hub.edxml.model import Code, DocumentType, Edoc, Organization, ResponseFor, TraceHeader
from hub.pki.devpki import init_dev_pki
from hub.pki.identity import Identity
from hub.registry.store import add_agency, add_trust_anchor, import_csv
from hub.service import running_hub
from hub.settings import Settings
from hub.store.engine import make_engine, migrate
from hub.store.tables import deliveries, documents

G22, H41, H13 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H13"
NAMES = {G22: "Văn phòng Chính phủ", H41: "UBND tỉnh Nghệ An", H13: "UBND thành phố Đà Nẵng"}
HOA_VANG = "000.00.20.H13"  # a district served by Đà Nẵng's platform (imported directory entry)
HOA_TIEN = "002.00.20.H13"  # a commune below it: served through its registered ancestor
TYPES = {"1": "Công văn", "2": "Quyết định", "3": "Tờ trình", "7": "Báo cáo"}
SUBJECTS = [
    "V/v kết nối, liên thông phần mềm quản lý văn bản",
    "V/v triển khai Nghị định về văn thư điện tử",
    "V/v báo cáo tình hình thực hiện nhiệm vụ quý IV",
    "V/v tổ chức hội nghị trực tuyến toàn quốc",
    "V/v phòng, chống thiên tai năm 2026",
]


@dataclass
class Tally:
    sent: int = 0
    expected: set = field(default_factory=set)  # (sender, document_id, recipient) the hub should deliver
    received: dict = field(default_factory=lambda: defaultdict(set))  # adapter -> {(sender, docid, recipient)}
    refusals: Counter = field(default_factory=Counter)  # reason -> count, as received by senders
    statuses: Counter = field(default_factory=Counter)
    expected_refusals: Counter = field(default_factory=Counter)


class Ministry:
    """A demo ministry: its adapter plus a clerk who answers documents with statuses."""

    def __init__(self, code: str, adapter: Adapter, tally: Tally, *, auto_status: bool = True):
        self.code = code
        self.adapter = adapter
        self.tally = tally
        self.auto_status = auto_status
        self.numbers = iter(range(1000, 10**6))
        self.received_docs: list[tuple[str, str]] = []  # (sender, document_id)

    def edoc(self, to: tuple[str, ...], *, doc_type: str = "1", priority: int = 0,
             response_for: tuple[ResponseFor, ...] = ()) -> Edoc:
        n = next(self.numbers)
        today = date.today()
        notation = {G22: "VPCP-TTĐT", H41: "UBND-VX", H13: "UBND-KT"}.get(self.code, "VT")
        return Edoc(
            sender=Organization(self.code, NAMES.get(self.code, ""), NAMES.get(self.code, "")),
            recipients=tuple(Organization(t, organ_name=NAMES.get(t, "")) for t in to),
            document_id=f"{self.code},{today:%Y/%m/%d},{n}/{notation}",
            code=Code(str(n), notation), promulgation_place="Hà Nội" if self.code == G22 else "",
            promulgation_date=today, document_type=DocumentType(doc_type, "0", TYPES.get(doc_type, "Văn bản")),
            subject=random.choice(SUBJECTS), content="Đề nghị các cơ quan nghiên cứu, thực hiện.",
            due_date=today + timedelta(days=10), priority=priority, response_for=response_for,
            trace=(TraceHeader(self.code, datetime.now().replace(microsecond=0)),),
        )

    async def send(self, doc: Edoc, *, expect: bool = True, refusal: str | None = None, data: bytes | None = None) -> bytes:
        if data is None:
            att = AttachmentFile(f"{doc.code.number}.pdf", b"%PDF-1.4 demo " * 400, "application/pdf", doc.subject)
            data = self.adapter.sign(build_edoc(doc, [att]))
        await self.adapter.publish(data)
        self.tally.sent += 1
        if expect:
            for r in doc.recipients:
                self.tally.expected.add((doc.sender.organ_id, doc.document_id, r.organ_id))
        if refusal:
            self.tally.expected_refusals[refusal] += 1
        return data

    async def pump(self, stop: asyncio.Event) -> None:
        """Hand over everything arriving; answer new documents with 01 then 03."""
        while not stop.is_set():
            r = await self.adapter.receive(timeout=0.2)
            if r is None:
                continue
            await self.handle(r)
            await r.done()

    async def handle(self, r: Received) -> None:
        if r.kind == "edoc":
            self.tally.received[self.code].add((r.sender, r.document_id, r.headers.get(C.H_RECIPIENT)))
            self.received_docs.append((r.sender, r.document_id))
            if self.auto_status:
                await self.adapter.send_status(r.sender, r.document_id, "01", "Đã đến")
                await self.adapter.send_status(r.sender, r.document_id, "03", "Đã tiếp nhận, vào sổ")
                self.tally.sent += 2
        elif r.kind == "status":
            pkg = r.package()
            if r.headers.get(C.H_REASON):  # a refusal: status 02 signed by the hub
                self.tally.refusals[r.headers[C.H_REASON]] += 1
            else:
                self.tally.statuses[pkg.status_code] += 1


async def setup(settings: Settings) -> dict[str, Identity]:
    """Fresh demo state: PKI, trust, three agencies with their own systems, a directory."""
    if settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
    pki = init_dev_pki(settings.pki_dir, NAMES, settings.hub_organ_id)
    engine = make_engine(settings.database_url)
    await migrate(engine)
    from hub.pki.devpki import load_cert

    await add_trust_anchor(engine, load_cert(pki.ca_cert), actor="demo")
    ids = {}
    for code, (key, cert) in pki.agencies.items():
        accepts = "1,2,7" if code == H13 else None
        await add_agency(engine, code, name=NAMES[code], certs=[load_cert(cert)], accepts=accepts, actor="demo")
        ids[code] = Identity.load(code, key, cert)
    await add_agency(engine, settings.hub_organ_id, name="edXML interchange hub", connected=False,
                     certs=[load_cert(pki.hub[1])], accepts="0", actor="demo")
    await import_csv(engine, f"code,name,served_by\n{HOA_VANG},UBND huyện Hòa Vang,{H13}\n", actor="demo")
    await engine.dispose()
    return ids


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def run_demo(settings: Settings, *, once: bool, rate: float = 5.0, duration: float | None = None,
                   port: int = 8080, stop: asyncio.Event | None = None) -> int:
    import os

    settings = replace(settings, data_dir=settings.data_dir / "demo")
    if not os.environ.get("HUB_DATABASE_URL"):
        settings = replace(settings, database_url=f"sqlite+aiosqlite:///{settings.data_dir / 'hub.db'}")
    t0 = time.monotonic()
    print(f"hub demo: data in {settings.data_dir}", flush=True)
    print("  making a DEVELOPMENT PKI and registering 3 agencies…", flush=True)
    ids = await setup(settings)
    tally = Tally()
    from hub.api.users import add_user
    from hub.service import running_api

    async with running_hub(settings, check_processes=0 if once else None) as hub, \
            running_api(hub, "127.0.0.1", port if _port_free(port) else 0) as (_app, runner):
        where = describe(settings.amqp_url) if settings.amqp_url else "embedded in-process broker"
        print(f"  hub {settings.hub_organ_id} running on {where}; database {settings.database_url.split('@')[-1]}",
              flush=True)
        bound = runner.addresses[0][1] if runner.addresses else port
        # User names are unique among active users: each run (the database may outlive the data folder) its own.
        token = await add_user(hub.engine, f"demo-admin {datetime.now():%Y-%m-%d %H:%M:%S.%f}", "admin", actor="demo")
        print(f"  dashboard http://127.0.0.1:{bound}/admin  (sign in with the admin token {token})", flush=True)
        print(f"  API       http://127.0.0.1:{bound}/api/v1/openapi.json", flush=True)
        ministries = {}
        for code in NAMES:
            bb = await hub.connect_adapter(code)
            ad = Adapter(bb, code, ids[code], SeenStore())
            await ad.start()
            ministries[code] = Ministry(code, ad, tally)
        pumps_done = asyncio.Event()
        pumps = [asyncio.create_task(m.pump(pumps_done)) for m in ministries.values()]
        try:
            if once:
                await fixed_set(ministries, tally)
                await settle(hub, tally, timeout=60)
            else:
                print("  streaming realistic traffic; Ctrl-C for the summary", flush=True)
                await stream(ministries, tally, rate, duration, stop or asyncio.Event())
                await settle(hub, tally, timeout=15, recall=False)
        finally:
            pumps_done.set()
            await asyncio.gather(*pumps, return_exceptions=True)
            for m in ministries.values():
                await m.adapter.stop()
                await m.adapter.backbone.close()
        delivered_rows = await _delivered(hub)
        duplicates = sum(w.stats.duplicates for w in hub.workers)
        audit = await _audit(hub)
    return summary(tally, delivered_rows, time.monotonic() - t0, duplicates, audit)


async def _audit(hub) -> str:
    """Seal the log and verify it, as an auditor would."""
    from hub.audit.sealer import seal
    from hub.audit.verify import verify_log

    await seal(hub.engine, hub.identity)
    rep = await verify_log(hub.engine, hub.identity.cert)
    state = "verified" if rep.ok else "DAMAGED: " + rep.problems[0]
    return f"{rep.entries} entries, {rep.checkpoints} signed checkpoint(s), {state}"


async def fixed_set(ms: dict[str, Ministry], tally: Tally) -> None:
    g, h41, h13 = ms[G22], ms[H41], ms[H13]
    print("  sending letters, decisions and replies…", flush=True)
    letters = [g.edoc((H41, H13)) for _ in range(4)]
    first = [await g.send(d) for d in letters][0]
    await g.send(g.edoc((H41,), priority=2))  # thượng khẩn
    decision = g.edoc((H41, H13), doc_type="2")
    await g.send(decision)
    await g.send(g.edoc((HOA_TIEN,)))  # served through Đà Nẵng's platform
    await asyncio.sleep(1.0)
    reply = h41.edoc((G22,), response_for=(ResponseFor(G22, letters[0].document_id),))
    await h41.send(reply)
    print("  sending refusals on purpose…", flush=True)
    bad = g.edoc((H41,))
    signed = g.adapter.sign(build_edoc(bad, []))
    await g.send(bad, data=signed.replace(bad.subject.encode(), b"Noi dung bi sua"), expect=False,
                 refusal="signature.digest_mismatch")
    await g.send(g.edoc(("000.00.00.H99",)), expect=False, refusal="authority.recipient_unknown")
    await g.send(g.edoc((H13,), doc_type="3"), expect=False, refusal="authority.not_competent")
    forged = h41.adapter.identity  # H41 signs a package that claims to come from G22
    await h41.send(g.edoc((H13,)), data=forged.sign(build_edoc(g.edoc((H13,)), [])), expect=False,
                   refusal="trust.not_pinned")
    reused = replace(g.edoc((H41,)), document_id=letters[1].document_id, subject="Văn bản khác, cùng số")
    await g.send(reused, expect=False, refusal="state.duplicate_conflict")
    await g.adapter.publish(b"this is not an edXML package")
    tally.sent += 1
    tally.expected_refusals["parse.not_xml"] += 1
    await g.adapter.publish(first)  # the same bytes again: a duplicate, acknowledged, not re-delivered
    tally.sent += 1
    await asyncio.sleep(1.5)
    print("  status changes, an invalid transition and a recall…", flush=True)
    await h41.adapter.send_status(G22, decision.document_id, "04", "Chờ phân công")
    await h41.adapter.send_status(G22, decision.document_id, "05", "Đã phân công xử lý")
    await h41.adapter.send_status(G22, decision.document_id, "06", "Đã xử lý xong")
    await h13.adapter.send_status(G22, decision.document_id, "01", "Lùi bước")  # 03 → 01: backward, invalid
    tally.sent += 4
    tally.expected_refusals["state.invalid_transition"] += 1
    await g.adapter.send_status(G22, letters[3].document_id, "13", "Thu hồi do ban hành nhầm")
    tally.sent += 1
    await asyncio.sleep(1.0)
    await h13.adapter.send_status(G22, letters[3].document_id, "15", "Đồng ý thu hồi")
    tally.sent += 1


async def stream(ms: dict[str, Ministry], tally: Tally, rate: float, duration: float | None,
                 stop: asyncio.Event) -> None:
    """Continuous realistic traffic until Ctrl-C (or ``duration`` seconds)."""
    g, h41 = ms[G22], ms[H41]
    start = last = time.monotonic()
    while (duration is None or time.monotonic() - start < duration) and not stop.is_set():
        roll = random.random()
        if roll < 0.55:
            await g.send(g.edoc(random.choice([(H41,), (H13,), (H41, H13)]), priority=random.choice([0, 0, 0, 1, 3])))
        elif roll < 0.7:
            await g.send(g.edoc((H41, H13), doc_type="2"))
        elif roll < 0.85 and h41.received_docs:
            s, d = random.choice(h41.received_docs)
            await h41.send(h41.edoc((s,), response_for=(ResponseFor(s, d),)))
        elif roll < 0.93:
            await g.send(g.edoc(("000.00.00.H99",)), expect=False, refusal="authority.recipient_unknown")
        else:
            await g.send(g.edoc((H13,), doc_type="3"), expect=False, refusal="authority.not_competent")
        await asyncio.sleep(1.0 / rate)
        if time.monotonic() - last >= 2:
            last = time.monotonic()
            got = sum(len(v) for v in tally.received.values())
            print(f"  sent {tally.sent:5d} · delivered {got:5d}/{len(tally.expected)} · statuses "
                  f"{sum(tally.statuses.values()):5d} · refused {sum(tally.refusals.values()):3d} "
                  f"({', '.join(f'{k} {v}' for k, v in tally.refusals.most_common(3))})", flush=True)


async def settle(hub, tally: Tally, timeout: float, recall: bool = True) -> None:
    """Wait until every expected delivery and refusal has arrived (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = set().union(*tally.received.values()) if tally.received else set()
        refusals_done = all(tally.refusals[k] >= v for k, v in tally.expected_refusals.items())
        if tally.expected <= got and refusals_done and (tally.statuses["15"] >= 1 or not recall):
            await asyncio.sleep(0.5)
            return
        await asyncio.sleep(0.2)


async def _delivered(hub) -> set:
    async with hub.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(documents.c.sender, documents.c.document_id, deliveries.c.recipient)
            .join(deliveries, deliveries.c.document == documents.c.id)
        )).all()
    return {tuple(r) for r in rows}


def summary(tally: Tally, recorded: set, elapsed: float, duplicates: int = 0, audit: str = "") -> int:
    got = set().union(*tally.received.values()) if tally.received else set()
    missing = (tally.expected | recorded) - got
    print()
    print(f"summary ({elapsed:.1f} s)")
    print(f"  packages sent            {tally.sent}")
    print(f"  documents delivered      {len(got)} of {len(tally.expected | recorded)} (document × recipient)")
    print(f"  duplicates               {duplicates} acknowledged, not re-delivered")
    if audit:
        print(f"  audit log                {audit}")
    print(f"  status packages received {sum(tally.statuses.values())}  "
          f"({', '.join(f'{k}×{v}' for k, v in sorted(tally.statuses.items()))})")
    print("  refused, by reason (as the senders were told with a hub-signed status 02):")
    for reason, n in sorted(tally.refusals.items()):
        want = tally.expected_refusals.get(reason, 0)
        print(f"    {reason:<28} {n}" + ("" if n == want else f"   (expected {want})"))
    for reason, want in tally.expected_refusals.items():
        if reason not in tally.refusals:
            print(f"    {reason:<28} 0   (expected {want})")
    ok = not missing and all(tally.refusals.get(k, 0) >= v for k, v in tally.expected_refusals.items())
    if missing:
        print(f"  MISSING deliveries: {'; '.join(' '.join(str(x) for x in m if x) for m in sorted(missing)[:10])}")
    print("  result: " + ("every accepted package reached every recipient" if ok else "FAILED"))
    return 0 if ok else 1
