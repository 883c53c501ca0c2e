"""A redis-server of the test's own on a free loopback port (never the machine's 6379), stopped afterwards."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Start one without persistence; yields its URL (database 0)."""
    if not Path(REDIS_SERVER).is_file():
        raise AssertionError(f"{REDIS_SERVER} is missing; the Redis session store tests need redis-server")
    port = free_port()
    log_file = directory / f"redis-{port}.log"
    with log_file.open("wb") as log:
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)]
        process = subprocess.Popen(
            [REDIS_SERVER, *args], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not redis_answers(port):
            if process.poll() is not None:
                raise AssertionError(f"redis-server exited with code {process.returncode}:\n{log_file.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not answer PING within {READY_TIMEOUT:.0f}s")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
