"""The README's "Running a cluster" block, read from README.md itself, runs as written:
`deploy/local-cluster up` starts 3 RabbitMQ nodes, a PostgreSQL primary with a streaming
standby and 2 hubs on free ports (never the shared 5672/15672/5432), `status` shows them,
the hub CLI reaches the cluster through a hub's environment file, and `down` stops it all."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_PORTS = {5672, 15672, 5432}


def cluster_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Running a cluster\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section has one shell block"
    return blocks[0]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def short_tmp():
    """A folder with a short path: PostgreSQL's socket lives under it, and a socket's path is
    limited to 107 bytes (pytest-xdist's per-worker basetemp makes tmp_path too long for it)."""
    path = Path(tempfile.mkdtemp(prefix="hub-lc-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_running_a_cluster_runs_verbatim(short_tmp):
    tmp_path = short_tmp
    (tmp_path / "deploy").symlink_to(REPO / "deploy")  # the block runs "from the repository's folder"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "RABBITMQ_", "ERL_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `.venv` active
    try:
        p = subprocess.run(["bash", "-ex", "-c", cluster_block()], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=400)
    finally:
        subprocess.run([str(REPO / "deploy/local-cluster"), "down"], cwd=tmp_path, env=env, capture_output=True,
                       timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    status = [line for line in p.stdout.splitlines() if line.startswith(("up ", "DOWN"))]
    status = status[len(status) // 2:]  # `up` prints the status once, then `status` again
    assert [line.split()[0] for line in status] == ["up"] * 7, status
    assert sum("rabbitmq" in line for line in status) == 3
    assert any("postgres primary" in line for line in status) and any("standby" in line for line in status)
    hubs = [int(m) for m in re.findall(r"hub \d \(pid (\d+)\)", "\n".join(status))]
    assert len(hubs) == 2
    ports = {int(m) for m in re.findall(r"127\.0\.0\.1:(\d+)", "\n".join(status))}
    assert len(ports) == 7 and not ports & SHARED_PORTS
    assert "000.00.99.G22" in p.stdout  # `hub agency list` through hub-0.env
    assert "OK: every entry matches" in p.stdout  # `hub audit verify` on the cluster's database
    assert "stopped; logs and data stay in" in p.stdout
    assert not [pid for pid in hubs if _alive(pid)], "a hub outlived `down`"
    assert not [port for port in ports if _listening(port)], "something still listens after `down`"
    env_file = (tmp_path / ".local-cluster/hub-0.env").read_text()
    assert "target_session_attrs=read-write" in env_file  # both PostgreSQL hosts and all 3 RabbitMQ nodes:
    assert len(re.findall(r"127\.0\.0\.1:\d+", env_file)) == 5
