"""Throwaway RabbitMQ clusters and PostgreSQL servers of our own, on free ports in a temp dir.

The fault suite stops, restarts and kills these freely; the shared services (5672, 15672,
5432) are never touched. Nothing here imports pytest: ``deploy/local-cluster`` (and anyone)
can build on it::

    with RabbitCluster(Path("/tmp/c"), nodes=3) as rmq, Postgres(Path("/tmp/pg")) as pg:
        rmq.add_vhost("v"); rmq.add_user("u", "pw", vhost="v")
        urls = rmq.urls("u", "pw", "v")           # one URL per node
        HUB_AMQP_URL = ",".join(urls)           # the hub rotates among them
        rmq.kill(1); rmq.start_node(1)          # kill -9 one node, bring it back
        pg.stop(); pg.start()

Each RabbitMQ node is its own ``rabbitmq-server`` (own node name, AMQP and distribution
ports, mnesia and log dirs, config and an empty plugin list) sharing an Erlang cookie in
the cluster's HOME; nodes 2.. join node 1 with ``rabbitmqctl join_cluster``. PostgreSQL
runs as the ``postgres`` user when we are root (it refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

RABBIT_BIN = Path(os.environ.get("HUB_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run(cmd: list[str], *, env: dict | None = None, timeout: float = 60, check: bool = True,
         user: str | None = None) -> subprocess.CompletedProcess:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stdout[-2000:]} {p.stderr[-2000:]}")
    return p


def _kill_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGKILL a process group (a server started with ``start_new_session``) and wait until it is gone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"process group {process.pid} survived SIGKILL")


@dataclass
class RabbitNode:
    index: int
    name: str  # Erlang node name, e.g. hubf1-ab12@localhost
    port: int  # AMQP
    dist_port: int
    base: Path
    process: subprocess.Popen | None = None


@dataclass
class RabbitCluster:
    """``nodes`` RabbitMQ nodes clustered together under ``root``; guest/guest is the admin."""

    root: Path
    nodes: int = 3
    prefix: str = field(default_factory=lambda: f"hubf{secrets.token_hex(2)}")
    members: list[RabbitNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        cookie = self.root / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20))
            cookie.chmod(0o400)
        (self.root / "empty-env.conf").write_text("")
        (self.root / "enabled_plugins").write_text("[].\n")
        for i in range(self.nodes):
            port = free_port()
            dist = free_port()
            base = self.root / f"node{i}"
            (base / "log").mkdir(parents=True, exist_ok=True)
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.1 = 127.0.0.1:{port}\n"
                "loopback_users = none\n"
                "vm_memory_high_watermark.relative = 0.2\n"
                "disk_free_limit.absolute = 50MB\n"
                "log.console = false\nlog.file.level = warning\n")
            self.members.append(RabbitNode(i, f"{self.prefix}n{i}@localhost", port, dist, base))

    # --- environment ------------------------------------------------------------------------

    def _env(self, node: RabbitNode | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.root),  # the cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "empty-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "LC_ALL": "C.UTF-8",
        })
        if node is not None:
            env.update({
                "RABBITMQ_NODENAME": node.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(node.port),
                "RABBITMQ_DIST_PORT": str(node.dist_port),
                "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(node.base / "log"),
                "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.base / "advanced.config"),
                "RABBITMQ_PID_FILE": str(node.base / "pid"),
                "RABBITMQ_ENABLED_PLUGINS": "",
                "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            })
        return env

    def ctl(self, index: int, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """``rabbitmqctl -n <node i> args...``."""
        node = self.members[index]
        return _run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args], env=self._env(),
                    timeout=timeout, check=check)

    # --- lifecycle ------------------------------------------------------------------------

    def start_node(self, index: int, timeout: float = 90) -> None:
        node = self.members[index]
        if node.process is not None and node.process.poll() is None:
            return
        log = open(node.base / "log" / "stdout.log", "ab")
        node.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self._env(node), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True, cwd=node.base)
        log.close()

    def wait_node(self, index: int, timeout: float = 90) -> None:
        node = self.members[index]
        deadline = time.monotonic() + timeout
        while not _port_open(node.port):
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"{node.name} exited: see {node.base / 'log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not listen on {node.port} in {timeout:.0f} s")
            time.sleep(0.3)
        self.ctl(index, "await_startup", "--timeout", str(int(timeout)), timeout=timeout + 10)

    def start(self, timeout: float = 120) -> None:
        """Start every node (in parallel), then cluster nodes 1.. with node 0 (first start only)."""
        fresh = not (self.members[0].base / "mnesia").exists()
        for i in range(self.nodes):
            self.start_node(i)
        for i in range(self.nodes):
            self.wait_node(i, timeout)
        if fresh:
            first = self.members[0].name
            for i in range(1, self.nodes):
                self.ctl(i, "stop_app")
                self.ctl(i, "join_cluster", first)
                self.ctl(i, "start_app")

    def kill(self, index: int) -> None:
        """kill -9 one node (its Erlang VM and helpers)."""
        node = self.members[index]
        if node.process is not None:
            _kill_group(node.process)
            node.process = None

    def stop_node(self, index: int, timeout: float = 60) -> None:
        node = self.members[index]
        if node.process is None:
            return
        self.ctl(index, "stop", timeout=timeout, check=False)
        try:
            node.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(index)
        node.process = None

    def restart(self, timeout: float = 120) -> None:
        """Stop every node (gracefully, in reverse order), then start them all again."""
        for i in reversed(range(self.nodes)):
            self.stop_node(i)
        for i in range(self.nodes):
            self.start_node(i)
        for i in range(self.nodes):
            self.wait_node(i, timeout)

    def close(self) -> None:
        for i in range(self.nodes):
            self.kill(i)

    def __enter__(self) -> RabbitCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- users and vhosts -------------------------------------------------------------------

    def running(self) -> list[int]:
        return [n.index for n in self.members if n.process is not None and n.process.poll() is None]

    def add_vhost(self, vhost: str) -> None:
        i = self.running()[0]
        self.ctl(i, "add_vhost", vhost)
        self.ctl(i, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def add_user(self, user: str, password: str, *, vhost: str, configure: str = ".*", write: str = ".*",
                 read: str = ".*") -> None:
        i = self.running()[0]
        self.ctl(i, "add_user", user, password)
        self.ctl(i, "set_permissions", "-p", vhost, user, configure, write, read)

    def urls(self, user: str = "guest", password: str = "guest", vhost: str = "/") -> list[str]:
        u, p, v = quote(user, safe=""), quote(password, safe=""), quote(vhost, safe="")
        return [f"amqp://{u}:{p}@127.0.0.1:{n.port}/{v}" for n in self.members]

    def url(self, user: str = "guest", password: str = "guest", vhost: str = "/") -> str:
        """All nodes in one comma-separated URL (what ``HUB_AMQP_URL`` takes)."""
        return ",".join(self.urls(user, password, vhost))


@dataclass
class Postgres:
    """A PostgreSQL server of our own under ``root`` (trust auth for ``postgres`` on 127.0.0.1)."""

    root: Path
    port: int = field(default_factory=free_port)
    bin_dir: Path | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.bin_dir is None:
            found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
            if not found:
                raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
            self.bin_dir = found[-1].parent
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else None

    def _pg(self, tool: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return _run([str(self.bin_dir / tool), *args], user=self.user, timeout=timeout, check=check)

    def init(self) -> None:
        if self.data.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            for p in (self.root, *self.root.parents):
                if p == Path("/"):
                    break
                p.chmod(p.stat().st_mode | 0o711)  # let postgres reach its data dir
            shutil.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")

    def start(self) -> None:
        self.init()
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clients disconnected, clean shutdown) or ``immediate`` (like a crash)."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    @property
    def running(self) -> bool:
        return _port_open(self.port)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._pg("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                 "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        if self.data.exists():
            self.stop("immediate")

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
