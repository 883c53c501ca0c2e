"""One place that turns a GatewayError into a response: JSON for API clients, a page for browsers."""

from __future__ import annotations

from aiohttp import web

from gateway import pages
from gateway.errors import GatewayError, RateLimitedError


def is_same_origin(request: web.Request, public_url: str) -> bool:
    """For state-changing requests: did this page's own origin send it?

    ``Sec-Fetch-Site`` decides when the browser sends it (every current browser does, on every request):
    the browser sets it from the initiator, and no page can forge or suppress it; ``same-site`` (a
    sibling host) is refused like ``cross-site``. ``Origin`` must never name another origin. Without
    ``Sec-Fetch-Site``, ``Origin`` must be ours or absent (non-browser clients; browsers always send it on
    a cross-origin POST); ``Origin: null`` is then refused: it is what a sandboxed frame of another site
    sends, and without Sec-Fetch-Site it cannot be told apart from the ``null`` a no-referrer page sends.
    """
    origin = request.headers.get("Origin")
    if origin is not None and origin not in (public_url, "null"):
        return False
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    return origin != "null"


def wants_html(request: web.Request) -> bool:
    """A browser navigation: GET/HEAD that accepts text/html (oauth2-proxy's isAjax, inverted)."""
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")


def is_browser_form_post(request: web.Request) -> bool:
    """A form a person submitted in a browser, which shows our answer as a page (fetch() calls are
    mode cors/same-origin and get JSON). Sec-Fetch-Mode where sent; else an HTML-accepting form post."""
    if request.method != "POST":
        return False
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in request.headers.get("Accept", "") and request.content_type in _FORM_TYPES


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
#: Where a refused browser form post leads: the page that serves the form, else the start page.
_FORM_PAGES = {"/_auth/logout": "/_auth/logout"}


def error_response(request: web.Request, error: GatewayError, *, retry_url: str | None = None) -> web.Response:
    status = error.status
    form_post = is_browser_form_post(request)
    response: web.Response
    if wants_html(request) or form_post or request.path.startswith("/_auth/callback/"):
        if form_post and retry_url is None:
            retry_url = _FORM_PAGES.get(request.path, "/")
        response = pages.error_page(status, error.public_message, code=error.code, retry_url=retry_url)
    else:
        body: dict[str, str] = {"error": error.code, "message": error.public_message}
        response = web.json_response(body, status=status, headers={"Cache-Control": "no-store"})
    if isinstance(error, RateLimitedError):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def redirect_to(location: str, *, status: int = 302) -> web.Response:
    """A redirect we return (not raise), so cookies can be set on it; never cached."""
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})
