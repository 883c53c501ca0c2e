"""The real gateway as a subprocess (`eid-gateway run --config FILE --workers N`), for tests that need real
worker processes and real signals. It runs in its own process group, so a test can always kill every
process it started (the parent and its forked workers) and nothing else."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

GATEWAY_BIN = Path(sys.executable).with_name("eid-gateway")
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format; AssertionError if it is absent."""
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match or match["name"] != name:
            continue
        found = dict(_LABEL.findall(match["labels"] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match["value"])
    raise AssertionError(f"no sample {name}{labels} in the metrics")


def fresh_session(**kwargs: Any) -> aiohttp.ClientSession:
    """A client session that opens a new TCP connection for every request, and never silently resends a
    GET whose connection was dropped (aiohttp does by default, which would hide a lost request; its own
    test client turns that off the same way)."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), **kwargs)
    session._retry_connection = False
    return session


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    metrics_base: int
    workers: int
    log_path: Path
    started: float

    def metrics_url(self, worker: int) -> str:
        return f"http://127.0.0.1:{self.metrics_base + worker}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def metrics(self, worker: int) -> str:
        async with fresh_session() as http, http.get(self.metrics_url(worker)) as resp:
            assert resp.status == 200, f"worker {worker} metrics: HTTP {resp.status}"
            return await resp.text()

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit status, or None if the process is still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.02)
        return self.proc.poll()

    def group_alive(self) -> bool:
        """Whether any process of the gateway's process group (parent or worker) still exists."""
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill_group(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


async def _wait_ready(gw: GatewayProcess, provider: str, timeout: float) -> None:
    """Every worker has loaded the provider's keys (per-worker metrics), and /_auth/readyz answers 200."""
    deadline = time.monotonic() + timeout
    pending = set(range(gw.workers))
    readyz = 0
    async with fresh_session() as http:
        while time.monotonic() < deadline:
            if gw.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {gw.proc.returncode} at start-up:\n{gw.log()}")
            for worker in sorted(pending):
                try:
                    async with http.get(gw.metrics_url(worker)) as resp:
                        text = await resp.text()
                    if metric(text, "gateway_jwks_refreshes_total", provider=provider, outcome="ok") >= 1:
                        pending.discard(worker)
                except (aiohttp.ClientError, AssertionError):
                    pass
            if not pending:
                try:
                    async with http.get(f"{gw.url}/_auth/readyz") as resp:
                        readyz = resp.status
                except aiohttp.ClientError:
                    readyz = 0
                if readyz == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(
        f"gateway not ready after {timeout}s (workers pending {pending}, readyz {readyz}):\n{gw.log()}"
    )


@asynccontextmanager
async def gateway_process(
    config: dict[str, Any],
    tmp_path: Path,
    *,
    workers: int,
    provider: str = "dev",
    ready_timeout: float = 20.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[GatewayProcess]:
    """Write ``config`` as YAML, run the gateway with ``--workers``, wait until it is ready; on the way out
    SIGTERM whatever still runs, and SIGKILL the whole process group after ``stop_timeout`` seconds."""
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    log_path = tmp_path / "gateway.log"
    host, _, port = config["listen"].rpartition(":")
    metrics_base = int(config["metrics"]["listen"].rpartition(":")[2])
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(GATEWAY_BIN), "run", "--config", str(config_path), "--workers", str(workers)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    gw = GatewayProcess(
        proc=proc,
        url=f"http://{host}:{port}",
        port=int(port),
        metrics_base=metrics_base,
        workers=workers,
        log_path=log_path,
        started=time.monotonic(),
    )
    try:
        await _wait_ready(gw, provider, ready_timeout)
        yield gw
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            await gw.wait_exit(stop_timeout)
        gw.kill_group()
        proc.wait(timeout=5)
