"""A redis-server of the test's own on a free loopback port (never the machine's 6379), stopped afterwards."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.ports import free_port

REDIS_SERVER = "/usr/bin/redis-server"
READY_TIMEOUT = 30.0


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """``redis-server --port P --bind 127.0.0.1 --save "" --appendonly no --dir DIRECTORY``. No background
    snapshots; ``dbfilename`` names the file an explicit SHUTDOWN SAVE writes and a restart (same port,
    directory and file) loads again."""

    directory: Path
    port: int = field(default_factory=free_port)
    dbfilename: str = "dump.rdb"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    @property
    def log_file(self) -> Path:
        return self.directory / f"redis-{self.port}.log"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def _launch(self) -> None:
        if not Path(REDIS_SERVER).is_file():
            raise AssertionError(f"{REDIS_SERVER} is missing; the Redis session store tests need redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--dbfilename", self.dbfilename,
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def _ready_or_raise(self, deadline: float) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited with code {self.process.returncode}:\n{self.log()}")
        if redis_answers(self.port):
            return True
        if time.monotonic() > deadline:
            raise AssertionError(f"redis-server did not answer PING in time:\n{self.log()}")
        return False

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        self._launch()
        deadline = time.monotonic() + timeout
        while not self._ready_or_raise(deadline):
            time.sleep(0.05)

    async def start_async(self, timeout: float = READY_TIMEOUT) -> None:
        """The same, without blocking the event loop (in-process servers keep answering meanwhile)."""
        self._launch()
        deadline = time.monotonic() + timeout
        while not self._ready_or_raise(deadline):
            await asyncio.sleep(0.05)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Start one; yields its URL (database 0)."""
    server = RedisServer(directory)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
