"""Shared by the browser tests: Debian's Chromium and the demo (`python -m gateway demo`) as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parent.parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 30.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Demo:
    gateway_url: str
    idp_url: str
    upstream_url: str
    log_file: Path

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _healthy(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _distinct_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    gateway_port, idp_port, upstream_port = _distinct_ports(3)
    log_file = tmp_path / "demo.log"
    running = Demo(
        gateway_url=f"http://127.0.0.1:{gateway_port}",
        idp_url=f"http://127.0.0.1:{idp_port}",
        upstream_url=f"http://127.0.0.1:{upstream_port}",
        log_file=log_file,
    )
    command = [
        sys.executable,
        "-m",
        "gateway",
        "demo",
        "--gateway-port",
        str(gateway_port),
        "--idp-port",
        str(idp_port),
        "--upstream-port",
        str(upstream_port),
    ]
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(f"{running.gateway_url}/_auth/healthz"):
            if process.poll() is not None:
                pytest.fail(f"`gateway demo` exited with code {process.returncode}:\n{running.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"`gateway demo` was not healthy within {START_TIMEOUT:.0f}s:\n{running.log_tail()}")
            time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
