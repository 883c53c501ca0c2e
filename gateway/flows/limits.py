"""Applying the rate limits (web layer; the arithmetic is gateway/protocol/rate_limit.py).

``enforce`` counts one start and raises RateLimitedError (429, Retry-After; a page for browsers, JSON for
the headless page's script) when the window is full. Called where a start costs someone something: the
redirect login (per client address), the headless and CIBA start (per client address) and the CIBA start
(per national ID number, before anything is sent to the provider).
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway import logs
from gateway.errors import RateLimitedError
from gateway.runtime import Runtime


async def enforce(rt: Runtime, name: str, subject: str) -> None:
    limiter = rt.rate_limiter
    if not limiter.enabled(name):
        return
    verdict = await limiter.check(name, subject, rt.clock())
    if verdict.allowed:
        return
    rt.metrics.rate_limited.labels(name).inc()
    # The subject (an address, a national ID number) is not logged: the metric and the limit's name say enough.
    logs.event("rate_limited", logging.WARNING, limit=name, retry_after=verdict.retry_after)
    raise RateLimitedError(name, retry_after=verdict.retry_after)


async def enforce_per_client(request: web.Request, rt: Runtime, name: str) -> None:
    """The client's address as the gateway believes it (trusted_proxies), the same as the upstream gets."""
    await enforce(rt, name, rt.client_view(request).address)
