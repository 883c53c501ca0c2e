"""``listen``, ``metrics.listen`` and ``forward_auth.listen``: the gateway's sockets, which must not overlap.

Each is checked fully here, so that ``check-config`` refuses what ``run`` could not bind for reasons the
file alone shows: a port outside 1-65535 (``metrics.listen`` with ``--workers N`` uses N ports from its own),
a host that is neither an IP address nor a host name. What only the machine knows (a port in use, a port
below 1024 without the privilege, an address not on this host) is found when ``run`` opens the sockets
(gateway/server.py ``check_listeners``) and reported the same way."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from gateway.config.reader import Problems, parse_host_port
from gateway.config.schema import FORWARD_AUTH_KEYS, METRICS_KEYS

MAX_PORT = 65535
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?\Z")


def valid_listen_host(host: str) -> bool:
    """An IPv4/IPv6 address or a DNS host name (letters, digits, '-', dots)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOST_NAME.match(host) is not None
    return True


def _listener(value: Any, key: str, example: str, problems: Problems) -> tuple[str, int] | None:
    """One listener address, or None with the problem recorded (the most specific message that fits)."""
    parsed = parse_host_port(value)
    if parsed is None:
        if isinstance(value, str) and ":" in value:
            host, _, digits = value.rpartition(":")
            if host.strip("[]") and digits.isascii() and digits.isdigit() and int(digits) > MAX_PORT:
                problems.add(key, f"port {int(digits)} is out of range; choose a port from 1 to {MAX_PORT}")
                return None
        problems.add(key, example)
        return None
    host, port = parsed
    if port == 0:
        problems.add(key, f"port {port} is out of range; choose a port from 1 to {MAX_PORT}")
        return None
    if not valid_listen_host(host):
        problems.add(key, f"host '{host}' is not an IP address or host name; e.g. 127.0.0.1, 0.0.0.0 or [::1]")
        return None
    return parsed


def load_listen(data: Mapping[str, Any], problems: Problems) -> tuple[str, int] | None:
    example = "must be host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"
    return _listener(data.get("listen", "127.0.0.1:8080"), "listen", example, problems)


def load_metrics_listen(
    metrics_raw: Mapping[str, Any] | None, problems: Problems, listen: tuple[str, int] | None
) -> tuple[str, int] | None:
    if metrics_raw is None:
        return None
    problems.unknown_keys("metrics.", metrics_raw, METRICS_KEYS)
    if metrics_raw.get("listen") is None:
        return None
    metrics_listen = _listener(
        metrics_raw.get("listen"),
        "metrics.listen",
        "must be host:port, e.g. 127.0.0.1:9090 (a separate, internal port)",
        problems,
    )
    if metrics_listen is not None and listen and metrics_listen == listen:
        problems.add("metrics.listen", "must differ from listen; metrics are never served on the public port")
    return metrics_listen


def metrics_ports_problem(metrics_listen: tuple[str, int] | None, workers: int) -> str | None:
    """With --workers N, worker i serves metrics on metrics.listen's port + i: every one must be a port."""
    if metrics_listen is None or metrics_listen[1] + workers - 1 <= MAX_PORT:
        return None
    port = metrics_listen[1]
    return (
        f"metrics.listen: port {port} with --workers {workers} needs ports {port}-{port + workers - 1} "
        f"(one per worker), beyond {MAX_PORT}; choose a port at most {MAX_PORT - workers + 1}"
    )


def load_forward_auth_listen(
    forward_auth_raw: Mapping[str, Any], problems: Problems, *taken_by_others: tuple[str, int] | None
) -> tuple[str, int] | None:
    problems.unknown_keys("forward_auth.", forward_auth_raw, FORWARD_AUTH_KEYS)
    if forward_auth_raw.get("listen") is None:
        return None
    forward_auth_listen = _listener(
        forward_auth_raw.get("listen"),
        "forward_auth.listen",
        "must be host:port, e.g. 127.0.0.1:8090 (an internal port)",
        problems,
    )
    taken = {a for a in taken_by_others if a is not None}
    if forward_auth_listen is not None and forward_auth_listen in taken:
        problems.add("forward_auth.listen", "must differ from listen and metrics.listen")
    return forward_auth_listen
