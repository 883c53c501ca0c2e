"""Run the real gateway in-process on real loopback ports, from a config dict (the public contract)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.config import load_settings
from gateway.server import RunningGateway, start_gateway


@asynccontextmanager
async def run_gateway(
    config: dict[str, Any], environ: dict[str, str] | None = None, base_dir: Path | None = None
) -> AsyncIterator[RunningGateway]:
    settings = load_settings(config, environ if environ is not None else {}, base_dir=base_dir)
    gateway = await start_gateway(settings)
    try:
        yield gateway
    finally:
        await gateway.stop()
