"""`hub send`, `hub inbox`, `hub status` as a ministry would run them, against a running hub on
real RabbitMQ + PostgreSQL; and `hub demo --once` on the embedded defaults."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from hub.edxml.builder import build_edoc
from tests.conftest import G22, H41, make_edoc
from tests.hubenv import drain

HUB = [sys.executable, "-m", "hub.cli"]


async def _run(env: dict, *args, rc: int = 0, timeout: float = 60) -> str:
    p = await asyncio.create_subprocess_exec(*HUB, *map(str, args), env=env, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), timeout)
    assert p.returncode == rc, f"rc={p.returncode}\n{out.decode()}\n{err.decode()}"
    return out.decode() + err.decode()


@pytest.mark.rabbitmq
@pytest.mark.postgres
async def test_send_inbox_status_cli(real_env, tmp_path):
    env = real_env
    keys = tmp_path / "keys"
    keys.mkdir()
    for code in (G22, H41):
        env.pki.write(env.pki.ids[code], keys)
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    base["HUB_DATA_DIR"] = str(tmp_path / "cli")

    def as_agency(code: str) -> dict:
        user = env.user_of(code)
        return {**base, "HUB_ADAPTER_AMQP_URL": env.amqp_url(user, env.passwords[user])}

    doc = make_edoc(G22, (H41,))
    unsigned = tmp_path / "letter.edxml"
    unsigned.write_bytes(build_edoc(doc, []))
    async with env.running():
        out = await _run(as_agency(G22), "send", unsigned, "--as", G22, "--key", keys / f"{G22}.key",
                         "--cert", keys / f"{G22}.pem")
        assert "confirmed by the broker" in out
        inbox_dir = tmp_path / "h41-inbox"
        out = ""
        for _ in range(20):  # the hub needs a moment; `hub inbox` without --follow returns when idle
            out += await _run(as_agency(H41), "inbox", H41, "--out", inbox_dir)
            if doc.document_id in out:
                break
        assert f"edoc {doc.document_id} from {G22}" in out
        files = list(inbox_dir.glob("*.edxml"))
        assert len(files) == 1 and b"TraceHeader" in files[0].read_bytes()
        again = await _run(as_agency(H41), "inbox", H41, "--out", inbox_dir)
        assert doc.document_id not in again.split("handed over")[0]  # handed over once
        await _run(as_agency(H41), "status", doc.document_id, "--code", "01", "--as", H41,
                   "--key", keys / f"{H41}.key", "--cert", keys / f"{H41}.pem")
        g = await env.adapter(G22)
        [st] = await drain(g, 1)
        assert st.package().status_code == "01" and st.package().sender.organ_id == H41


async def test_demo_once_on_embedded_defaults(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(tmp_path)
    out = await _run(env, "demo", "--once", timeout=120)
    assert "result: every accepted package reached every recipient" in out
    for reason in ("signature.digest_mismatch", "authority.recipient_unknown", "authority.not_competent",
                   "trust.not_pinned", "state.duplicate_conflict", "parse.not_xml", "state.invalid_transition"):
        assert reason in out
    assert "(expected" not in out
