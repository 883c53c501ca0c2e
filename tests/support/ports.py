"""Free loopback ports for servers the tests start.

Ports come from below the kernel's ephemeral range (``ip_local_port_range``, 32768-60999 on Debian): a port
the kernel handed out by ``bind(0)`` is a port it can hand out again a moment later as the source port of
some outgoing connection of the test itself, and a server started on it then fails with EADDRINUSE. That
race made CI fail once. Ports handed out in this process are never handed out twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from pathlib import Path

_LOW, _HIGH = 20000, 32000
_handed_out: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (a worker serves metrics on base + index)."""
    high = min(_HIGH, _ephemeral_floor()) - count
    for _ in range(2000):
        base = random.randint(_LOW, high)
        ports = range(base, base + count)
        if any(port in _handed_out for port in ports):
            continue
        if all(_bindable(port) for port in ports):
            _handed_out.update(ports)
            return base
    raise RuntimeError(f"no run of {count} free loopback ports in {_LOW}-{high + count}")


def free_port() -> int:
    return free_port_run(1)


async def wait_for_port(port: int, process: asyncio.subprocess.Process, log: Path, *, name: str,
                        timeout: float = 10.0) -> None:
    """Until a server the test started (``name``, logging to ``log``) accepts on ``port``; an AssertionError
    with its log when it exits first or does not listen within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise AssertionError(f"{name} did not listen on {port}:\n{log.read_text(errors='replace')}")
