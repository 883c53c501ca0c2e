"""A real HAProxy (Debian package ``haproxy``, /usr/sbin/haproxy) in HTTP mode with ``option forwardfor`` on a
free loopback port, in front of one backend; run in the foreground and stopped afterwards.

``option forwardfor`` adds an X-Forwarded-For line of its own (the client's address) after any the client
sent, which is what the gateway must read as one list (issue 15, item 3)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_for_port

HAPROXY = Path("/usr/sbin/haproxy")
START_TIMEOUT = 10.0

CONFIG = """\
global
    maxconn 256

defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s

frontend public
    bind 127.0.0.1:{port}
    option forwardfor
    default_backend gateway

backend gateway
    server gw {backend}
"""


def haproxy_binary() -> Path:
    if not HAPROXY.is_file():
        raise AssertionError(
            f"{HAPROXY} is missing: install Debian's haproxy (scripts/test.sh installs it with the other "
            "packages the tests drive for real)"
        )
    return HAPROXY


@dataclass
class HAProxy:
    url: str
    port: int
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


@asynccontextmanager
async def running_haproxy(backend: str) -> AsyncIterator[HAProxy]:
    """HAProxy on a free loopback port forwarding to ``backend`` (``host:port``)."""
    binary = haproxy_binary()
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="haproxy-"))
    config = home / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, backend=backend), encoding="utf-8")
    log_file = home / "haproxy.log"
    with log_file.open("wb") as log:
        check = await asyncio.create_subprocess_exec(str(binary), "-c", "-f", str(config), stdout=log, stderr=log)
        if await check.wait() != 0:
            raise AssertionError(f"haproxy refused its config:\n{log_file.read_text(errors='replace')}")
        # -db: stay in the foreground, no daemon; the test owns the process and stops it.
        process = await asyncio.create_subprocess_exec(
            str(binary), "-db", "-f", str(config), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        await wait_for_port(port, process, log_file, name="haproxy", timeout=START_TIMEOUT)
        yield HAProxy(url=f"http://127.0.0.1:{port}", port=port, log_file=log_file)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(home, ignore_errors=True)
