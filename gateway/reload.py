"""Reload without restart (SIGHUP): the routes and what they release change; sessions and connections stay.

What a reload can change is the part of the configuration that decides where a request goes and what it
carries: ``routes``, ``pairwise``, and the legacy route's ``upstream``, ``headers``, ``header_encoding``,
``public_paths``, ``rules``, ``upstream_timeouts``, plus ``allowed_redirect_domains``. Anything else (listeners,
providers, session, keys, trusted proxies, ...) is bound to open sockets, clients and stored sessions: a file
that changes it is refused as a whole, with the keys named, and the running configuration keeps serving
until a restart. An invalid file is refused the same way, with the messages ``check-config`` prints.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from gateway import logs
from gateway.config import Settings, load_file
from gateway.errors import ConfigError
from gateway.route_table import build_route_table
from gateway.runtime import Runtime

RELOADABLE = frozenset(
    {
        "upstream",
        "headers",
        "header_encoding",
        "public_paths",
        "rules",
        "upstream_timeouts",
        "allowed_redirect_domains",
        "routes",
        "pairwise",
        "explicit_routes",
    }
)
#: Settings fields under the config key an operator writes.
_KEY_OF_FIELD = {
    "listen_host": "listen",
    "listen_port": "listen",
    "metrics_listen": "metrics.listen",
    "forward_auth_listen": "forward_auth.listen",
}


def keys_needing_restart(running: Settings, loaded: Settings) -> list[str]:
    """The config keys whose change a reload cannot apply, in the order of the Settings fields."""
    changed: list[str] = []
    for item in dataclasses.fields(Settings):
        if item.name in RELOADABLE or getattr(running, item.name) == getattr(loaded, item.name):
            continue
        key = _KEY_OF_FIELD.get(item.name, item.name)
        if key not in changed:
            changed.append(key)
    return changed


def apply(rt: Runtime, loaded: Settings) -> None:
    """Put ``loaded`` in force: one assignment each, with no await between, so a request sees either the
    old table or the new one."""
    table = build_route_table(loaded, rt.signing_key, rt.upstream_pools)
    rt.settings = loaded
    rt.table = table


def on_sighup(rt: Runtime, path: str | Path) -> None:
    """SIGHUP: reopen the audit file (after a rotation), then reload the configuration."""
    rt.audit.reopen()
    reload_from(rt, path)


def reload_from(rt: Runtime, path: str | Path) -> bool:
    """Re-read the config file; True when the new routes are in force. Never raises: a refused reload is
    counted (gateway_config_reload_total{result="invalid"}) and logged, and the old configuration serves on."""
    try:
        try:
            loaded = load_file(path)
        except (OSError, ValueError) as exc:  # e.g. a file that is not UTF-8: refused like any bad file
            raise ConfigError([f"{path}: cannot be read ({exc})"]) from exc
        blocked = keys_needing_restart(rt.settings, loaded)
        if blocked:
            raise ConfigError([f"{key}: changed, and only a restart applies it" for key in blocked])
    except ConfigError as exc:
        rt.metrics.config_reloads.labels("invalid").inc()
        rt.audit_event("config_reload_failed", None, reason="; ".join(exc.problems)[:1000])
        logs.event(
            "config_reload_failed",
            logging.ERROR,
            config=str(path),
            problems="; ".join(exc.problems),
            detail="the running configuration keeps serving",
        )
        return False
    apply(rt, loaded)
    rt.metrics.config_reloads.labels("ok").inc()
    rt.audit_event("config_reloaded", None)
    logs.event("config_reloaded", config=str(path), routes=",".join(r.name for r in loaded.routes))
    return True
