"""Run the gateway: bind the public listener and the separate metrics listener (web layer)."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
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
#: A worker that could not open its sockets exits with this status; the parent then stops (no respawn loop).
EXIT_STARTUP = 2


class ListenerError(ConfigError):
    """A listener that cannot be opened: reported like a configuration problem (``<key>: <cause>; <fix>``)."""


def _proc_listen_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (any address), from /proc/net/tcp and tcp6; empty where unknown."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                        inodes.add(fields[9])
        except (OSError, ValueError):
            continue
    return inodes


def _pids() -> Iterator[str]:
    try:
        yield from (name for name in os.listdir("/proc") if name.isdigit())
    except OSError:
        return


def port_holder(port: int) -> str | None:
    """"pid 1234, nginx" for the process listening on ``port``, when /proc lets us see it (Linux; as an
    unprivileged user only our own processes), else None. One pass over /proc/*/fd: start-up errors only."""
    inodes = {f"socket:[{inode}]" for inode in _proc_listen_inodes(port)}
    if not inodes:
        return None
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") not in inodes:
                    continue
            except OSError:
                continue
            try:
                with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
                    name = fh.read().strip()
            except OSError:
                name = "?"
            return f"pid {pid}, {name}"
    return None


def _unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return 1024


def bind_problem(key: str, host: str, port: int, exc: OSError, *, option: str | None = None) -> str:
    """``<key>: <what failed on host:port>; <fix>`` for a socket that could not be opened. ``option`` names
    the command-line flag that sets this port (the demo's ``--gateway-port``), else the config key does."""
    where = f"port {port} on {host}"
    setting = option or f"{key}:"
    if exc.errno == errno.EADDRINUSE:
        holder = port_holder(port)
        held = f" (held by {holder})" if holder else ""
        demo = " (or --gateway-port for the demo)" if option is None and key == "listen" else ""
        return f"{key}: {where} is in use{held}; free it or choose another port with {setting}{demo}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        if port < _unprivileged_port_start():
            return (
                f"{key}: {where}: permission denied (ports below {_unprivileged_port_start()} need root or "
                f"CAP_NET_BIND_SERVICE); choose a port from 1024 up with {setting}, or grant the capability"
            )
        return f"{key}: {where}: permission denied ({exc.strerror}); check the security policy (SELinux, seccomp)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{key}: {host} is not an address of this machine; use 0.0.0.0, 127.0.0.1 or one of its addresses"
    if isinstance(exc, socket.gaierror):
        return f"{key}: host {host} does not resolve ({exc.strerror}); use an IP address or a name in /etc/hosts"
    return f"{key}: cannot open {where} ({exc.strerror or exc})"


def try_bind(host: str, port: int, *, reuse_port: bool) -> None:
    """Open and close the sockets aiohttp would listen on (every address ``host`` resolves to)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    for family, kind, proto, _name, address in {(i[0], i[1], i[2], "", i[4]) for i in infos}:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)


def listeners(settings: Settings, workers: int = 1) -> list[tuple[str, str, int, bool]]:
    """(config key, host, port, shared) of every socket the gateway opens, as start_gateway opens them: the
    public and forward-auth ports shared by the workers (SO_REUSEPORT), one metrics port of its own each."""
    shared = workers > 1
    out = [("listen", settings.listen_host, settings.listen_port, shared)]
    if settings.forward_auth_listen is not None:
        out.append(("forward_auth.listen", *settings.forward_auth_listen, shared))
    if settings.metrics_listen is not None:
        host, port = settings.metrics_listen
        out += [("metrics.listen", host, port + i, False) for i in range(max(1, workers))]
    return out


def check_listeners(settings: Settings, workers: int = 1) -> list[str]:
    """What would stop ``run`` from opening its sockets, found before any worker starts: one problem each."""
    problems = []
    for key, host, port, shared in listeners(settings, workers):
        try:
            try_bind(host, port, reuse_port=shared)
        except OSError as exc:
            problems.append(bind_problem(key, host, port, exc))
    return problems


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
    runners = [runner]

    async def open_site(site_runner: web.AppRunner, key: str, host: str, port: int, **options: Any) -> None:
        # A socket that cannot be opened is a start-up problem like a config one (exit 2), not a traceback.
        try:
            await web.TCPSite(site_runner, host, port, **options).start()
        except OSError as exc:
            for started in reversed(runners):
                await started.cleanup()
            raise ListenerError([bind_problem(key, host, port, exc)]) from exc

    await open_site(runner, "listen", settings.listen_host, settings.listen_port, backlog=1024, reuse_port=reuse_port)
    if settings.forward_auth_listen is not None:
        forward_runner = web.AppRunner(
            create_forward_auth_app(runtime),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=settings.shutdown_grace,
            logger=ProtocolErrorLog(metrics.malformed_requests),
        )
        await forward_runner.setup()
        runners.append(forward_runner)
        host, port = settings.forward_auth_listen
        await open_site(forward_runner, "forward_auth.listen", host, port, backlog=1024, reuse_port=reuse_port)
    metrics_url = None
    if settings.metrics_listen is not None:
        admin = admin_routes(runtime) if runtime.admin_token is not None else None
        metrics_runner = web.AppRunner(create_metrics_app(metrics, admin), access_log=None, handle_signals=False)
        await metrics_runner.setup()
        runners.append(metrics_runner)
        # Each worker has its own registry, so each gets its own metrics port: listen port + worker index.
        host, port = settings.metrics_listen[0], settings.metrics_listen[1] + worker
        await open_site(metrics_runner, "metrics.listen", host, port)
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
    try:
        _run_loop(
            serve_forever(
                settings, reuse_port=True, worker=worker, generated_key_pem=generated_key_pem, config_path=config_path
            )
        )
    except ListenerError as error:
        # Taken between the parent's check and this worker's bind: say so once, and do not come back.
        logs.event("worker_start_failed", logging.ERROR, worker=worker, problems=error.problems)
        sys.exit(EXIT_STARTUP)


def run(settings: Settings, *, workers: int = 1, config_path: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads ``config_path`` (in every worker). With workers > 1, N
    processes share the port (SO_REUSEPORT) and nothing else but the configuration and the keys (cookie
    keys, a generated assertion key). A socket that cannot be opened raises ListenerError (one worker), or
    stops every worker and returns EXIT_STARTUP (several; the worker logged ``worker_start_failed``)."""
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
            if not stopping and child.exitcode == EXIT_STARTUP:
                # A worker that could not open its sockets would fail the same way again: stop them all.
                stopping = True
                status = EXIT_STARTUP
                for other in children.values():
                    if other.pid and other.is_alive():
                        os.kill(other.pid, signal.SIGTERM)
                continue
            if not stopping:
                # A worker that dies on its own is replaced; the others keep serving meanwhile.
                logs.event("worker_died", logging.ERROR, worker=index, exitcode=child.exitcode)
                status = 1
                replacement = context.Process(target=_worker_main, args=(settings, index, generated, config_path))
                replacement.start()
                children[index] = replacement
    return status
