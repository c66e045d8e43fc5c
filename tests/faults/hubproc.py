"""`hub serve` as a subprocess of a test: start, kill -9 (the parent alone, as a real crash does),
SIGTERM, and a look for processes it left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats():
    """(pid, the fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, …) of every process."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield int(d.name), fields


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    return [p for p, fields in _stats() if int(fields[1]) == pid]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (a hub started in its own session, so its session
    id, the field compared here, is its group's id)."""
    return [p for p, fields in _stats() if int(fields[3]) == pgid and fields[0] != "Z"]


class HubProcess:
    """One `hub serve` after another (restarts), all logging to ``log_path``; remembers every
    process group it started so that the test can look for orphans."""

    def __init__(self, env: dict[str, str], log_path: Path, *, check_processes: int = 1):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        self.env.update(env)
        self.env.setdefault("HUB_CHECK_PROCESSES", str(check_processes))
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.groups: list[int] = []

    def start(self) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--port", str(free_port())], env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append(self.proc.pid)
        return self.proc

    def wait_children(self, n: int = 1, timeout: float = 60) -> list[int]:
        """The check processes, once the hub has started ``n`` of them."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            kids = [k for k in children(self.proc.pid) if alive(k)]
            if len(kids) >= n:
                return kids
            assert self.proc.poll() is None, f"the hub exited: {self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"no check process after {timeout:.0f} s: {self.log()[-3000:]}"
            time.sleep(0.2)

    def kill9(self) -> None:
        """kill -9 the hub process alone (not its group): what a crash or the OOM killer does."""
        assert self.proc is not None
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int | None:
        """SIGTERM; the exit code, or None when it did not exit within ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def orphans(self, settle: float = 10.0) -> list[int]:
        """Processes still alive in the groups of hubs that are gone (waits up to ``settle`` s)."""
        deadline = time.monotonic() + settle
        while True:
            left = [p for g in self.groups if g != (self.proc.pid if self.proc and self.proc.poll() is None else -1)
                    for p in group_members(g)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def cleanup(self) -> None:
        """Whatever happened: no process of ours survives the test."""
        if self.proc is not None and self.proc.poll() is None:
            if self.terminate(30) is None:
                self.kill9()
        for g in self.groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
