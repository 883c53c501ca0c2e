"""The routes in force, and everything derived from them, as one value that a reload replaces whole.

A request reads ``Runtime.table`` once and uses that table to the end, so a reload (SIGHUP) never gives one
request the route of one configuration and the headers of another: requests in flight finish on the table
they started with, new requests get the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from gateway.assertion import protected_names
from gateway.config import Settings
from gateway.protocol.claims import HeaderEncoding
from gateway.protocol.jws import SigningKey
from gateway.release import Release
from gateway.routes import Route, RouteIndex
from gateway.upstream import UpstreamPool

PoolKey = tuple[str, float, float]
ROUTE_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]
    releases: Mapping[str, Release]
    #: Client-sent headers never forwarded: every header name any route releases, the assertion header, and
    #: the routing headers only the gateway writes.
    protected: frozenset[str]
    #: Whether any route matches on the host (else the Host header need not be read).
    needs_host: bool
    pools: Mapping[str, UpstreamPool]
    index: RouteIndex

    def route_for(self, host: str, path: str) -> Route | None:
        return self.index.select(host, path)

    def release(self, route: Route) -> Release:
        return self.releases[route.name]


def build_route_table(
    settings: Settings, signing_key: SigningKey, pools: dict[PoolKey, UpstreamPool]
) -> RouteTable:
    """``pools``: the process's upstream pools by (upstream, connect, read), reused across reloads and
    extended here; routes with the same upstream and timeouts share one."""
    pairwise = settings.pairwise
    secrets = [pairwise.secret, *pairwise.previous_secrets] if pairwise else []
    encoding = cast(HeaderEncoding, settings.header_encoding)
    # The per-session caches of all routes together hold about as much as one route's did: 20 routes must not
    # take 20 times the memory (a miss only costs a recompute).
    cache_size = max(1_000, ROUTE_CACHE_ENTRIES // len(settings.routes))
    releases = {
        route.name: Release(
            route,
            signing_key=signing_key,
            issuer=settings.public_url,
            encoding=encoding,
            pairwise_secrets=[secret.encode() for secret in secrets],
            cache_size=cache_size,
        )
        for route in settings.routes
    }
    by_route: dict[str, UpstreamPool] = {}
    for route in settings.routes:
        key = (route.upstream, route.timeouts.connect, route.timeouts.read)
        if key not in pools:
            pools[key] = UpstreamPool(
                route.upstream, connect_timeout=route.timeouts.connect, read_timeout=route.timeouts.read
            )
        by_route[route.name] = pools[key]
    return RouteTable(
        routes=settings.routes,
        releases=releases,
        protected=protected_names(
            [header for route in settings.routes for header in route.headers.values()], settings.assertion.header
        ),
        needs_host=any(route.host is not None for route in settings.routes),
        pools=by_route,
        index=RouteIndex(settings.routes),
    )
