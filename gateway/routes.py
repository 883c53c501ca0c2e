"""Routes (pure layer): which application a request is for, and what that application may receive.

A route matches a host (exact, or ``*.example.com`` for any name below example.com, never the apex) and/or a
path prefix. The most specific route wins, in one documented order: an exact host beats a wildcard host,
a longer wildcard beats a shorter one, any host beats none; then the longest path prefix. Two routes with
the same host pattern and the same prefix are a configuration error (load_routes), so a tie never has to
be broken at request time. No route: the request is answered 404 and reaches no upstream.

Without a ``routes`` list the top-level ``upstream``/``headers``/``public_paths``/``rules`` form one route,
``default``, that matches everything and releases every claim in the assertion, as before routes existed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.policy import Rule

#: The name of the one route a configuration without ``routes`` has.
LEGACY_ROUTE = "default"
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    connect: float = 5.0
    read: float = 60.0


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    upstream: str
    #: Lower-case exact host, ``*.suffix`` for any host below suffix, or None for every host.
    host: str | None = None
    path_prefix: str = "/"
    #: Removed from the request path before forwarding ("" keeps the path).
    strip_prefix: str = ""
    #: Canonical claim (or ``pairwise_sub``) -> header name: exactly what this route's upstream receives.
    headers: Mapping[str, str] = field(default_factory=dict)
    audience: str = "upstream"
    ttl: float = 60
    public_paths: tuple[str, ...] = ()
    #: Authorization rules; an explicit route has at most one (its ``require``), the legacy route the
    #: top-level ``rules``.
    rules: tuple[Rule, ...] = ()
    #: Provider names this route accepts a session from; empty: every provider.
    providers: tuple[str, ...] = ()
    #: The pairwise subject's sector: routes with the same sector see the same pseudonym for one person.
    sector: str = LEGACY_ROUTE
    timeouts: UpstreamTimeouts = UpstreamTimeouts()
    #: True for the legacy route: the assertion carries every verified claim, as it always did.
    releases_everything: bool = False

    @property
    def released(self) -> frozenset[str]:
        return frozenset(self.headers)

    def matches(self, host: str, path: str) -> bool:
        return host_matches(self.host, host) and prefix_matches(self.path_prefix, path)

    def upstream_path(self, path: str) -> str:
        """The path the upstream sees: ``strip_prefix`` removed (``/app/x`` -> ``/x``; ``/app`` -> ``/``)."""
        if not self.strip_prefix:
            return path
        rest = path[len(self.strip_prefix.rstrip("/")) :]
        return rest if rest.startswith("/") else "/" + rest

    def accepts_provider(self, provider: str) -> bool:
        return not self.providers or provider in self.providers


def host_without_port(value: str) -> str | None:
    """``App.Example.com:8443`` -> ``app.example.com``; ``[::1]:80`` -> ``[::1]``; None for anything that is
    not a host name or an address (a route is never chosen from a malformed Host)."""
    value = value.strip().lower()
    if value.startswith("["):
        address, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:]))):
            return None
        return f"[{address}]" if address and all(c in "0123456789abcdef:." for c in address) else None
    host, colon, port = value.partition(":")
    if colon and not _PORT.fullmatch(port):
        return None
    host = host.removesuffix(".")
    return host if len(host) <= 253 and _HOST.fullmatch(host) else None


def host_matches(pattern: str | None, host: str) -> bool:
    """``host`` is already lower case and without a port."""
    if pattern is None:
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".example.com"
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def prefix_matches(prefix: str, path: str) -> bool:
    """``/app`` and ``/app/`` both match ``/app`` and everything below it, never ``/application``."""
    if prefix == "/":
        return True
    base = prefix.rstrip("/")
    return path == base or path.startswith(base + "/")


def specificity(route: Route) -> tuple[int, int, int]:
    """Bigger is more specific: (host kind, host length, prefix length); see the module docstring."""
    if route.host is None:
        host_kind, host_length = 0, 0
    elif route.host.startswith("*."):
        host_kind, host_length = 1, len(route.host)
    else:
        host_kind, host_length = 2, len(route.host)
    return host_kind, host_length, len(route.path_prefix.rstrip("/"))


def match_key(route: Route) -> tuple[str | None, str]:
    """Two routes with the same key match exactly the same requests."""
    return route.host, route.path_prefix.rstrip("/") or "/"


def select_route(routes: Sequence[Route], host: str, path: str) -> Route | None:
    """The most specific route for a request, or None. ``routes`` must be sorted by ``sort_routes``."""
    for route in routes:
        if route.matches(host, path):
            return route
    return None


def sort_routes(routes: Sequence[Route]) -> tuple[Route, ...]:
    """Most specific first, so the first match is the winner (ties were refused at load time)."""
    return tuple(sorted(routes, key=specificity, reverse=True))


def routes_by_name(routes: Sequence[Route]) -> Mapping[str, Route]:
    return {route.name: route for route in routes}


class RouteIndex:
    """select_route's answer without comparing a request with every route: the routes of an exact host are
    found by a dict lookup, so the cost grows with the routes of one host, not with all routes. Same result
    as select_route on the same sorted routes (tests/unit/test_routes.py)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        ordered = sort_routes(routes)
        exact: dict[str, list[Route]] = {}
        for route in ordered:
            if route.host is not None and not route.host.startswith("*."):
                exact.setdefault(route.host, []).append(route)
        self._exact = {host: tuple(found) for host, found in exact.items()}
        self._wildcard = tuple(r for r in ordered if r.host is not None and r.host.startswith("*."))
        self._any_host = tuple(r for r in ordered if r.host is None)

    def select(self, host: str, path: str) -> Route | None:
        for route in self._exact.get(host, ()):
            if prefix_matches(route.path_prefix, path):
                return route
        for route in self._wildcard:
            if route.matches(host, path):
                return route
        for route in self._any_host:
            if prefix_matches(route.path_prefix, path):
                return route
        return None
