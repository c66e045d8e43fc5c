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
the cluster's HOME; nodes 2.. join node 1 with ``rabbitmqctl join_cluster``. The cluster has
its own EPMD (``ERL_EPMD_PORT``, started and stopped here), never the machine's 4369. Nodes run
with ``cluster_partition_handling = pause_minority`` and a 10 s ``net_ticktime``.

``RabbitCluster(root, splittable=i)`` can cut node i off from the others (a network partition,
:meth:`RabbitCluster.cut` / :meth:`RabbitCluster.heal`): node i has an EPMD of its own, and in
each EPMD a :class:`Splitter` registers the nodes of the other side at TCP proxies of its own,
so all Erlang distribution traffic between node i and the rest crosses those proxies. Cutting
blackholes them (bytes read and dropped, nothing answered, as when the network loses packets):
the nodes notice at their next ticks, and pause_minority pauses node i. Clients still reach
node i's AMQP port directly, as a client on node i's side of the split would.

PostgreSQL runs as the ``postgres`` user when we are root (it refuses to run as root);
:class:`PostgresPair` is a primary with a synchronous streaming standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import threading
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
    epmd_port: int = 0


def _epmd(port: int, log: Path) -> subprocess.Popen:
    """An EPMD of our own on ``port`` (foreground, its own session: we stop it by its pid)."""
    with open(log, "ab") as out:
        p = subprocess.Popen([shutil.which("epmd") or "epmd", "-port", str(port), "-address", "127.0.0.1"],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 15
    while not _port_open(port):
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"epmd did not listen on {port}: see {log}")
        time.sleep(0.05)
    return p


class Splitter:
    """TCP proxies for Erlang distribution traffic, registered in EPMDs under the names of the
    nodes they lead to, in a thread of their own (the test's event loops come and go)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hub-netsplit", daemon=True)
        self.thread.start()
        self.cut_now = False
        self.dropped = 0  # bytes blackholed while cut
        self._conns: set[tuple[asyncio.StreamWriter | None, ...]] = set()
        self._cut_conns: set[tuple[asyncio.StreamWriter | None, ...]] = set()
        self._keep: list = []  # servers and EPMD registrations, alive while we are

    def _call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def link(self, epmd_port: int, alive: str, target_port: int) -> int:
        """Register ``alive`` in the EPMD on ``epmd_port`` at a proxy to ``target_port``; the proxy's port."""
        return self._call(self._link(epmd_port, alive, target_port))

    async def _link(self, epmd_port: int, alive: str, target_port: int) -> int:
        server = await asyncio.start_server(lambda r, w: self._handle(r, w, target_port), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", epmd_port)
        name = alive.encode()
        # ALIVE2_REQ: port, normal node (77), TCP (0), distribution versions 6..5, name, no extra
        body = struct.pack(">BHBBHHH", 120, port, 77, 0, 6, 5, len(name)) + name + struct.pack(">H", 0)
        writer.write(struct.pack(">H", len(body)) + body)
        await writer.drain()
        resp = await asyncio.wait_for(reader.readexactly(2), 10)
        if resp[0] not in (118, 121) or resp[1] != 0:
            raise RuntimeError(f"epmd on {epmd_port} refused to register {alive}: {resp!r}")
        self._keep += [server, (reader, writer)]  # the registration lives as long as this connection
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: int) -> None:
        if self.cut_now:  # a connection attempt across the cut: nothing ever answers
            conn = (writer, None)
            self._cut_conns.add(conn)
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        conn = (writer, up_writer)
        self._conns.add(conn)
        await asyncio.gather(self._pipe(reader, up_writer, conn), self._pipe(up_reader, writer, conn))
        self._conns.discard(conn)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn) -> None:
        try:
            while data := await src.read(65536):
                if self.cut_now or conn in self._cut_conns:
                    self.dropped += len(data)  # lost on the way
                    continue
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    def cut(self) -> None:
        def _cut() -> None:
            self.cut_now = True
            self._cut_conns |= self._conns
        self.loop.call_soon_threadsafe(_cut)

    def heal(self) -> None:
        """Forward again; a connection that lost bytes in the cut is reset (its peers reconnect)."""
        async def _heal() -> None:
            self.cut_now = False
            for conn in list(self._cut_conns):
                for w in conn:
                    if w is not None:
                        with contextlib.suppress(Exception):
                            w.transport.abort()
            self._cut_conns.clear()
        self._call(_heal())

    def close(self) -> None:
        async def _close() -> None:
            for item in self._keep:
                with contextlib.suppress(Exception):
                    if isinstance(item, tuple):
                        item[1].transport.abort()
                    else:
                        item.close()
            for conn in self._conns | self._cut_conns:
                for w in conn:
                    if w is not None:
                        with contextlib.suppress(Exception):
                            w.transport.abort()
        with contextlib.suppress(Exception):
            self._call(_close(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class RabbitCluster:
    """``nodes`` RabbitMQ nodes clustered together under ``root``; guest/guest is the admin.
    ``splittable``: the index of a node that :meth:`cut` can partition from the others."""

    root: Path
    nodes: int = 3
    prefix: str = field(default_factory=lambda: f"hubf{secrets.token_hex(2)}")
    members: list[RabbitNode] = field(default_factory=list)
    splittable: int | None = None
    epmd_procs: list[subprocess.Popen] = field(default_factory=list)
    splitter: Splitter | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        cookie = self.root / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20))
            cookie.chmod(0o400)
        (self.root / "empty-env.conf").write_text("")
        (self.root / "enabled_plugins").write_text("[].\n")
        self.epmd_ports = [free_port(), free_port() if self.splittable is not None else 0]
        for i in range(self.nodes):
            port = free_port()
            dist = free_port()
            base = self.root / f"node{i}"
            (base / "log").mkdir(parents=True, exist_ok=True)
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.1 = 127.0.0.1:{port}\n"
                "loopback_users = none\n"
                "cluster_partition_handling = pause_minority\n"
                "vm_memory_high_watermark.relative = 0.2\n"
                "disk_free_limit.absolute = 50MB\n"
                "log.console = false\nlog.file.level = warning\n")
            # a lost peer is noticed within 10 s (default 60): a 30 s cut is a partition RabbitMQ sees
            (base / "advanced.config").write_text("[{kernel, [{net_ticktime, 10}]}].\n")
            epmd = self.epmd_ports[1 if i == self.splittable else 0]
            self.members.append(RabbitNode(i, f"{self.prefix}n{i}@localhost", port, dist, base, epmd_port=epmd))

    # --- environment ------------------------------------------------------------------------

    def _env(self, node: RabbitNode | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.root),  # the cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "empty-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str((node or self.members[0]).epmd_port),
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
        env = {**self._env(), "ERL_EPMD_PORT": str(node.epmd_port)}  # the EPMD that knows the node
        return _run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args], env=env,
                    timeout=timeout, check=check)

    def start_epmd(self) -> None:
        """Our EPMD(s) and, for a splittable cluster, the proxies registered in them (idempotent)."""
        if self.epmd_procs:
            return
        for k, port in enumerate(p for p in self.epmd_ports if p):
            self.epmd_procs.append(_epmd(port, self.root / f"epmd{k}.log"))
        if self.splittable is not None:
            self.splitter = Splitter()
            for n in self.members:  # each node's name in the other side's EPMD, at a proxy
                other = self.epmd_ports[0] if n.index == self.splittable else self.epmd_ports[1]
                self.splitter.link(other, n.name.split("@")[0], n.dist_port)

    def cut(self) -> None:
        """Partition the splittable node from the others (inter-node traffic blackholed)."""
        assert self.splitter is not None, "RabbitCluster(splittable=i) can be cut"
        self.splitter.cut()

    def heal(self) -> None:
        assert self.splitter is not None
        self.splitter.heal()

    # --- lifecycle ------------------------------------------------------------------------

    def start_node(self, index: int, timeout: float = 90) -> None:
        node = self.members[index]
        if node.process is not None and node.process.poll() is None:
            return
        self.start_epmd()
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
            try:
                self.kill(i)
            except Exception:  # noqa: BLE001 - kill the rest whatever happens
                pass
        if self.splitter is not None:
            self.splitter.close()
            self.splitter = None
        for p in self.epmd_procs:
            _kill_group(p)
        self.epmd_procs = []

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

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """``fast`` (clients disconnected, clean shutdown) or ``immediate`` (like a crash).

        By the postmaster's pid and a signal, as pg_ctl does, but from this process: pg_ctl runs
        as ``postgres``, which may no longer reach the data directory (pytest makes its temp
        root 0700 again at every session start, and other sessions start while a cluster runs)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return  # not running
        if b"postgres" not in cmdline or str(self.data).encode() not in cmdline:
            return  # a stale pid file: that pid is someone else now
        os.kill(pid, {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode])
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists():
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return _port_open(self.port)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._pg("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                 "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def sql(self, query: str, database: str = "postgres", timeout: float = 60) -> str:
        """One statement through psql; its unaligned output."""
        return self._pg("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-X",
                        "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query, timeout=timeout).stdout.strip()

    def close(self) -> None:
        if self.data.exists():
            self.stop("immediate")

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class PostgresPair:
    """A primary and a streaming-replication standby (``pg_basebackup -R``) under ``root``.

    Replication is synchronous (``synchronous_standby_names = '*'``, ``synchronous_commit = on``
    on the primary): a commit is acknowledged once the standby has it, so promoting the standby
    after the primary died loses no transaction a client saw committed. (Asynchronous
    replication can lose the last ones.) The standby itself names no synchronous standby, so
    once promoted it commits alone. :meth:`url` names both hosts with
    ``target_session_attrs=read-write``: clients find whichever accepts writes."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.primary = Postgres(self.root / "primary")
        self.standby = Postgres(self.root / "standby", bin_dir=self.primary.bin_dir)

    def start(self, timeout: float = 60) -> None:
        p, s = self.primary, self.standby
        p.start()
        s.root.mkdir(parents=True, exist_ok=True)
        if p.user is not None:
            shutil.chown(s.root, p.user, p.user)
        p._pg("pg_basebackup", "-h", "127.0.0.1", "-p", str(p.port), "-U", "postgres", "-D", str(s.data),
              "-R", "-X", "stream", "--no-sync")
        with open(s.data / "postgresql.conf", "a") as f:
            f.write(f"\nport = {s.port}\nunix_socket_directories = '{s.root}'\nsynchronous_standby_names = ''\n")
        s.start()
        p.sql("ALTER SYSTEM SET synchronous_commit = 'on'")
        p.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        p.sql("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while p.sql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != "1":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby on {s.port} is not a synchronous replica after {timeout:.0f} s")
            time.sleep(0.2)

    def promote(self) -> None:
        self.standby._pg("pg_ctl", "-D", str(self.standby.data), "-w", "-t", "60", "promote")

    @property
    def running(self) -> bool:
        return self.primary.running

    def url(self, database: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"target_session_attrs": "read-write", **params}.items())
        return (f"postgresql+asyncpg://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
                f"/{database}?{query}")

    def create_database(self, name: str) -> str:
        self.primary.create_database(name)
        return self.url(name)

    def close(self) -> None:
        for pg in (self.standby, self.primary):
            try:
                pg.close()
            except Exception:  # noqa: BLE001 - stop the other whatever happens
                pass

    def __enter__(self) -> PostgresPair:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_interruptible(main_async, *, quiet_amqp: bool = False) -> int:
    """Run a benchmark's ``main_async()`` on its own cluster: SIGTERM cleans up as Ctrl-C does (the
    coroutine's ``finally`` stops the cluster), and an interruption exits 130 with one line.
    ``quiet_amqp``: the adapters' client library logs each connection a fault closes, with a
    traceback; the counts say what matters."""
    import asyncio
    import logging
    import signal
    import sys

    if quiet_amqp:
        for name in ("aiormq", "aio_pika"):
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        return asyncio.run(main_async())
    except KeyboardInterrupt:
        print("interrupted; cluster stopped", file=sys.stderr)
        return 130
