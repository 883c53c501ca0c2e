"""``listen``, ``metrics.listen`` and ``forward_auth.listen``: the gateway's sockets, which must not overlap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.reader import Problems, parse_host_port
from gateway.config.schema import FORWARD_AUTH_KEYS, METRICS_KEYS


def load_listen(data: Mapping[str, Any], problems: Problems) -> tuple[str, int] | None:
    listen = parse_host_port(data.get("listen", "127.0.0.1:8080"))
    if listen is None:
        problems.add("listen", "must be host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    return listen


def load_metrics_listen(
    metrics_raw: Mapping[str, Any] | None, problems: Problems, listen: tuple[str, int] | None
) -> tuple[str, int] | None:
    if metrics_raw is None:
        return None
    problems.unknown_keys("metrics.", metrics_raw, METRICS_KEYS)
    if metrics_raw.get("listen") is None:
        return None
    metrics_listen = parse_host_port(metrics_raw.get("listen"))
    if metrics_listen is None:
        problems.add("metrics.listen", "must be host:port, e.g. 127.0.0.1:9090 (a separate, internal port)")
    elif listen and metrics_listen == listen and listen[1] != 0:
        problems.add("metrics.listen", "must differ from listen; metrics are never served on the public port")
    return metrics_listen


def load_forward_auth_listen(
    forward_auth_raw: Mapping[str, Any], problems: Problems, *taken_by_others: tuple[str, int] | None
) -> tuple[str, int] | None:
    problems.unknown_keys("forward_auth.", forward_auth_raw, FORWARD_AUTH_KEYS)
    if forward_auth_raw.get("listen") is None:
        return None
    forward_auth_listen = parse_host_port(forward_auth_raw.get("listen"))
    taken = {a for a in taken_by_others if a is not None and a[1] != 0}
    if forward_auth_listen is None:
        problems.add("forward_auth.listen", "must be host:port, e.g. 127.0.0.1:8090 (an internal port)")
    elif forward_auth_listen in taken and forward_auth_listen[1] != 0:
        problems.add("forward_auth.listen", "must differ from listen and metrics.listen")
    return forward_auth_listen
