"""The README's "Running it for real" block, read from README.md itself, runs as written.

Only the values of its ``export`` lines are replaced (a temporary data folder, a fresh
PostgreSQL database, a fresh virtual host on the real RabbitMQ and its management API);
``HUB_HTTP_PORT`` in the environment picks a free port. The block runs in ``bash -e`` from the
repository's folder with no ``hub`` on the PATH: its own install step must put it there. Any
failing command fails the test. While the last command (``hub serve``) runs, the adapters'
broker users it made are used with the passwords it printed: G22 sends a letter, H41 receives it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from hub.backbone.management import Management
from hub.backbone.users import agency_permissions
from hub.edxml.builder import build_edoc
from tests.apienv import free_port
from tests.conftest import G22, H41, make_edoc

REPO = Path(__file__).resolve().parents[1]
MGMT = "http://127.0.0.1:15672"
AGENCY_USERS = (G22, H41)  # the broker users the block creates (named as the registry has them)


def readme_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Running it for real\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section has one shell block"
    return blocks[0]


def with_exports(block: str, values: dict[str, str]) -> str:
    """Replace the value of each ``export NAME=value`` line; everything else stays verbatim."""
    for name, value in values.items():
        block, n = re.subn(rf"^export {name}=\S+", lambda _m: f"export {name}={shlex.quote(value)}", block,
                           flags=re.M)
        assert n == 1, f"the block exports {name} once"
    assert not re.search(r"^export (?!(" + "|".join(values) + r")=)", block, re.M), "an export the test does not set"
    return block


def _path_without_hub() -> str:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "hub").exists()]
    return os.pathsep.join(dirs)


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


async def _broker_users_are_ours() -> None:
    """Broker users are global: refuse to touch agency users this test did not make."""
    async with Management(MGMT, "guest", "guest") as m:
        for user in AGENCY_USERS:
            perms = await m.request("GET", f"/users/{user}/permissions", missing_ok=True)
            others = [p["vhost"] for p in perms or [] if not p["vhost"].startswith("readme-")]
            assert not others, f"RabbitMQ user {user} exists with permissions in {others}: not this test's to reset"


@pytest.fixture
async def vhost():
    name = f"readme-{uuid.uuid4().hex[:10]}"
    await _broker_users_are_ours()
    async with Management(MGMT, "guest", "guest") as m:
        await m.put_vhost(name)
        await m.set_permissions(name, "guest", configure=".*", write=".*", read=".*")
    yield name
    async with Management(MGMT, "guest", "guest") as m:
        await m.delete_vhost(name)
        for user in AGENCY_USERS:
            await m.delete_user(user)


class Output:
    """Collects a process's output in a thread; ``wait_for`` a line."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._proc = proc
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.lines.append("")  # EOF marker
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = re.search(pattern, line)
                    if m:
                        return m
                if (self.lines and self.lines[-1] == "") or time.monotonic() > deadline:
                    return None
                self._cond.wait(1.0)

    def close(self) -> None:
        self._thread.join(timeout=30)
        self._proc.stdout.close()

    def text(self) -> str:
        with self._cond:
            return "".join(self.lines)


@pytest.mark.rabbitmq
@pytest.mark.postgres
@pytest.mark.timeout(600)
async def test_running_it_for_real_runs_verbatim(tmp_path, pg_url_empty, vhost):  # "an empty PostgreSQL database"
    data = tmp_path / "data"
    block = with_exports(readme_block(), {
        "HUB_DATA_DIR": str(data),
        "HUB_DATABASE_URL": "postgresql://" + pg_url_empty.split("://", 1)[1],
        "HUB_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "HUB_AMQP_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:15672/",
    })
    assert block.rstrip().splitlines()[-1].startswith("hub serve"), "the block ends by running the hub"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "VIRTUAL_ENV"}
    env.update(PATH=_path_without_hub(), HUB_HTTP_PORT=str(port))
    proc = subprocess.Popen(["bash", "-e", "-c", block], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = Output(proc)
    try:
        listening = out.wait_for(r"listening on \S+:(\d+)", timeout=420)
        assert listening, f"`hub serve` never said where it listens; rc={proc.poll()}\n{out.text()}"
        assert int(listening.group(1)) == port
        text = out.text()
        assert f"http://127.0.0.1:{port}/api/v1/" in text and f"http://127.0.0.1:{port}/admin" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200

        # The adapters' users work with the passwords printed once.
        urls = {unquote(urlsplit(u).username): u for u in re.findall(r"HUB_ADAPTER_AMQP_URL=(\S+)", text)}
        assert set(urls) == {G22, H41}, text
        letter = tmp_path / "letter.edxml"
        doc = make_edoc(G22, (H41,))
        letter.write_bytes(build_edoc(doc, []))
        shell = {**env, "HUB_DATA_DIR": str(data),
                 "HUB_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}"}
        sent = _hub(["send", letter, "--as", G22], {**shell, "HUB_ADAPTER_AMQP_URL": urls[G22]})
        assert "confirmed by the broker" in sent
        received = ""
        for _ in range(30):
            received += _hub(["inbox", H41, "--out", tmp_path / "inbox"], {**shell, "HUB_ADAPTER_AMQP_URL": urls[H41]})
            if doc.document_id in received:
                break
        assert f"edoc {doc.document_id} from {G22}" in received, received

        # The users have exactly the permissions of deploy/rabbitmq/permissions.md, in the hub's vhost.
        async with Management(MGMT, "guest", "guest") as m:
            for code in (G22, H41):
                perms = await m.permissions(vhost, code)
                expected = agency_permissions(code)
                assert (perms["configure"], perms["write"], perms["read"]) == \
                    (expected.configure, expected.write, expected.read)
                assert perms["read"] == "^inbox\\." + code.replace(".", "\\.") + "(\\.urgent)?$"

        # Ctrl-C/SIGTERM to `hub serve`: it stops gracefully and the block ends with exit 0.
        serve = _children(proc.pid)
        assert serve, "hub serve runs as the shell's child"
        for pid in serve:
            os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, out.text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
    text = out.text()
    assert "stopped: accepted=" in text
    assert "Traceback" not in text, text


def _hub(args: list, env: dict) -> str:
    p = subprocess.run([str(REPO / ".venv" / "bin" / "hub"), *map(str, args)], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"hub {' '.join(map(str, args))}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stdout + p.stderr
    return p.stdout + p.stderr
