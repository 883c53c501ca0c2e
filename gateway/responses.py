"""One place that turns a GatewayError into a response: JSON for API clients, a page for browsers."""

from __future__ import annotations

from aiohttp import web

from gateway import pages
from gateway.errors import GatewayError


def is_same_origin(request: web.Request, public_url: str) -> bool:
    """For state-changing requests: current browsers always send Origin on a cross-site POST, and
    Sec-Fetch-Site on every request; either one naming another site refuses it."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != public_url:
        return False
    return request.headers.get("Sec-Fetch-Site") in (None, "same-origin", "none")


def wants_html(request: web.Request) -> bool:
    """A browser navigation: GET/HEAD that accepts text/html (oauth2-proxy's isAjax, inverted)."""
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")


def error_response(request: web.Request, error: GatewayError, *, retry_url: str | None = None) -> web.Response:
    status = error.status
    if wants_html(request) or request.path.startswith("/_auth/callback/"):
        return pages.error_page(status, error.public_message, code=error.code, retry_url=retry_url)
    body: dict[str, str] = {"error": error.code, "message": error.public_message}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def redirect_to(location: str, *, status: int = 302) -> web.Response:
    """A redirect we return (not raise), so cookies can be set on it; never cached."""
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})
