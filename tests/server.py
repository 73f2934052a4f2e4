"""The real server (`python -m service run`) in a subprocess, for multi-worker tests."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, database_url: str, valkey_url: str, *, workers: int = 2, **env: str):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "VALKEY_URL": valkey_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WORKERS": str(workers),
            "RATE_LIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = ROOT / ".data" / f"server-{self.port}.log"

    def launch(self) -> ServerProcess:
        """Start the process without waiting for anything (its own process group)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "run"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # kill() takes the workers down with the main process
        )
        return self

    def wait_log(self, text: str, timeout_s: float = 60.0) -> None:
        """Block until `text` appears in the server's log."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{text!r} not logged:\n{self.log()}")
            time.sleep(0.01)

    def signal_group(self, sig: int) -> None:
        """What systemd (KillMode=control-group), `kill -- -PGID` and Ctrl-C do."""
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def start(self, timeout_s: float = 30.0, ready_path: str = "/health/ready") -> ServerProcess:
        self.launch()
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}{ready_path}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server not ready in {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def worker_pids(self) -> list[int]:
        """Pids of the live Sanic worker processes (children of the main process).

        The main process also has a multiprocessing resource tracker and Sanic's state
        manager as children; workers are the ones Sanic started with SANIC_WORKER_NAME
        Sanic-Server-*.
        """
        assert self.process is not None
        out = subprocess.run(
            ["ps", "--ppid", str(self.process.pid), "-o", "pid=,stat="],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        pids = []
        for line in out.splitlines():
            pid, stat = line.split()
            if stat.startswith("Z"):
                continue
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if b"SANIC_WORKER_NAME=Sanic-Server-" in environ:
                pids.append(int(pid))
        return sorted(pids)

    def _listen_inode(self) -> str | None:
        """Inode of the server's listening socket (from /proc/net/tcp)."""
        port = f"{self.port:04X}"
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port}") and fields[3] == "0A":  # 0A = LISTEN
                return fields[9]
        return None

    def _accepting(self, pid: int, inode: str) -> bool:
        """True once the worker's event loop polls the listening socket (it serves)."""
        try:
            fds = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            listen_fds = {fd for fd, target in fds.items() if target == f"socket:[{inode}]"}
            for fd, target in fds.items():
                if target == "anon_inode:[eventpoll]":
                    info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                    if any(re.search(rf"^tfd:\s+{lfd}\s", info, re.M) for lfd in listen_fds):
                        return True
        except OSError:
            pass
        return False

    def wait_workers_ready(self, workers: int, timeout_s: float = 30.0) -> list[int]:
        """Block until `workers` workers accept connections; returns their pids (Linux only).

        `start()` returns once one worker answers; a signal sent while another worker is
        still starting can leave that worker (and the server) hanging.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            inode = self._listen_inode()
            ready = [p for p in self.worker_pids() if inode and self._accepting(p, inode)]
            if len(ready) >= workers:
                return ready
            time.sleep(0.05)
        raise RuntimeError(f"{workers} workers not accepting in {timeout_s}s:\n{self.log()}")
