"""Run the gateway: bind the public listener and the separate metrics listener (web layer)."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import http_parser, web

from gateway import keys, logs, reload
from gateway.admin import admin_routes
from gateway.app import create_app, create_forward_auth_app
from gateway.config import Settings, load_file
from gateway.errors import ConfigError
from gateway.metrics import Metrics, create_metrics_app
from gateway.protocol_errors import ProtocolErrorLog
from gateway.runtime import RUNTIME, build_runtime

#: aiohttp's pure-Python parser has had request-smuggling bugs its C parser did not (attacks.md T44).
ALLOW_PY_PARSER_ENV = "EID_GATEWAY_ALLOW_PYTHON_PARSER"
#: After SIGTERM, readiness reports 503 this long (at most half the grace) before the listener closes.
DRAIN_NOTICE = 2.0


def c_parser_active() -> bool:
    return http_parser.HttpRequestParser.__module__ != "aiohttp.http_parser"


def check_parser() -> str | None:
    if c_parser_active() or os.environ.get(ALLOW_PY_PARSER_ENV) == "1":
        return None
    return (
        "aiohttp's C HTTP parser is not active (AIOHTTP_NO_EXTENSIONS is set, or the wheel has no "
        "extensions); refusing to start. Unset AIOHTTP_NO_EXTENSIONS, "
        f"or set {ALLOW_PY_PARSER_ENV}=1 to accept the risk."
    )


@dataclass
class RunningGateway:
    url: str
    metrics_url: str | None
    app: web.Application
    _runners: list[web.AppRunner]
    forward_auth_url: str | None = None

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()


async def start_gateway(
    settings: Settings, *, reuse_port: bool = False, worker: int = 0, generated_key_pem: bytes | None = None
) -> RunningGateway:
    metrics = Metrics()
    runtime = build_runtime(settings, metrics=metrics, generated_key_pem=generated_key_pem)
    app = create_app(settings, runtime=runtime)
    # shutdown_timeout: how long in-flight requests may run on after the listener closed. logger: what
    # aiohttp's request handler logs to; malformed requests become one counted warning line each.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_grace,
        logger=ProtocolErrorLog(metrics.malformed_requests),
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.listen_host, settings.listen_port, backlog=1024, reuse_port=reuse_port)
    await site.start()
    runners = [runner]
    if settings.forward_auth_listen is not None:
        forward_runner = web.AppRunner(
            create_forward_auth_app(runtime),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=settings.shutdown_grace,
            logger=ProtocolErrorLog(metrics.malformed_requests),
        )
        await forward_runner.setup()
        host, port = settings.forward_auth_listen
        await web.TCPSite(forward_runner, host, port, backlog=1024, reuse_port=reuse_port).start()
        runners.append(forward_runner)
    metrics_url = None
    if settings.metrics_listen is not None:
        admin = admin_routes(runtime) if runtime.admin_token is not None else None
        metrics_runner = web.AppRunner(create_metrics_app(metrics, admin), access_log=None, handle_signals=False)
        await metrics_runner.setup()
        # Each worker has its own registry, so each gets its own metrics port: listen port + worker index.
        host, port = settings.metrics_listen[0], settings.metrics_listen[1] + worker
        await web.TCPSite(metrics_runner, host, port).start()
        runners.append(metrics_runner)
        metrics_url = f"http://{host}:{port}/metrics"
    url = f"http://{settings.listen_host}:{settings.listen_port}"
    forward_auth_url = None
    if settings.forward_auth_listen is not None:
        forward_auth_url = "http://{}:{}".format(*settings.forward_auth_listen)
    logs.event(
        "gateway_started",
        listen=url,
        public_url=settings.public_url,
        metrics=metrics_url or "off",
        forward_auth=forward_auth_url or "on the public listener",
        worker=worker,
    )
    return RunningGateway(
        url=url, metrics_url=metrics_url, app=app, _runners=runners, forward_auth_url=forward_auth_url
    )


async def drain(gateway: RunningGateway, grace: float) -> None:
    """Readiness turns 503 first, so load balancers stop sending; then the listener closes and in-flight
    requests get up to ``grace`` seconds to finish."""
    gateway.app[RUNTIME].draining = True
    await asyncio.sleep(min(DRAIN_NOTICE, grace / 2))
    await gateway.stop()


async def serve_forever(
    settings: Settings,
    *,
    reuse_port: bool = False,
    worker: int = 0,
    generated_key_pem: bytes | None = None,
    config_path: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; with ``config_path``, SIGHUP re-reads it (reload.py)."""
    gateway = await start_gateway(settings, reuse_port=reuse_port, worker=worker, generated_key_pem=generated_key_pem)
    # Most of what start-up built lives as long as the process: out of the collector's sight, a full
    # collection under load walks only what requests made (shorter pauses: p99 11 -> 6 ms in bench/ row 1).
    # Start-up objects that later become cyclic garbage are never freed: a one-off, bounded cost. Here and
    # not in start_gateway, which tests call many times in one process.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if config_path is not None:
        runtime = gateway.app[RUNTIME]
        loop.add_signal_handler(signal.SIGHUP, reload.on_sighup, runtime, config_path)
    await stop.wait()
    logs.event("gateway_draining", worker=worker, grace=settings.shutdown_grace)
    await drain(gateway, settings.shutdown_grace)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every platform we ship
        asyncio.run(main)
        return
    uvloop.run(main)


def _worker_main(
    settings: Settings, worker: int, generated_key_pem: bytes | None, config_path: str | None = None
) -> None:
    logs.configure(settings.log_level)
    _run_loop(
        serve_forever(
            settings, reuse_port=True, worker=worker, generated_key_pem=generated_key_pem, config_path=config_path
        )
    )


def run(settings: Settings, *, workers: int = 1, config_path: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads ``config_path`` (in every worker). With workers > 1, N
    processes share the port (SO_REUSEPORT) and nothing else but the configuration and the keys (cookie
    keys, a generated assertion key)."""
    generated = None if settings.assertion.signing_key_file else keys.generate_ec_pem()
    if workers <= 1:
        _run_loop(serve_forever(settings, generated_key_pem=generated, config_path=config_path))
        return 0
    context = multiprocessing.get_context("fork")
    children = {
        i: context.Process(target=_worker_main, args=(settings, i, generated, config_path), daemon=False)
        for i in range(workers)
    }
    for child in children.values():
        child.start()
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.pid and child.is_alive():
                os.kill(child.pid, signum)

    def forward_reload(signum: int, _frame: object) -> None:
        # Each worker re-reads the file itself; the parent keeps the newest valid one for replacements.
        nonlocal settings
        if config_path is not None:
            try:
                loaded = load_file(config_path)
                if not reload.keys_needing_restart(settings, loaded):
                    settings = loaded
            except ConfigError:
                pass  # each worker logs the problems
        for child in children.values():
            if child.pid and child.is_alive():
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward_reload)
    status = 0
    while children:
        for index, child in list(children.items()):
            child.join(timeout=0.5)
            if child.is_alive():
                continue
            del children[index]
            if not stopping:
                # A worker that dies on its own is replaced; the others keep serving meanwhile.
                logs.event("worker_died", logging.ERROR, worker=index, exitcode=child.exitcode)
                status = 1
                replacement = context.Process(target=_worker_main, args=(settings, index, generated, config_path))
                replacement.start()
                children[index] = replacement
    return status
