"""``/_auth/verify``: the forward-auth endpoint for nginx auth_request, Traefik forwardAuth and Envoy
ext_authz (web layer). 2xx only with a valid session whose identity the route's rules accept; the
identity headers and the assertion then travel in the response for the proxy to copy upstream.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode

from aiohttp import web

from gateway import logs
from gateway.errors import BadRequestError
from gateway.flows import step_up
from gateway.flows.redirect import step_up_url
from gateway.flows.sessions import current_session
from gateway.forward_auth import ForwardAuthError, OriginalRequest, original_request
from gateway.policy import decide
from gateway.protocol import field_lines
from gateway.protocol.paths import is_public
from gateway.responses import redirect_to
from gateway.runtime import RUNTIME, Runtime
from gateway.session.cookies import AMBIGUOUS, clear_session

LOGIN_URL_HEADER = "X-Auth-Login-Url"
NO_STORE = {"Cache-Control": "no-store"}


def _denied(status: int, error: str, extra: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error}, status=status, headers={**NO_STORE, **(extra or {})})


def _is_own_origin(rt: Runtime, original: OriginalRequest) -> bool:
    public_scheme, public_host = rt.public_origin
    return original.host == public_host.lower() and original.scheme == public_scheme


def _login_url(rt: Runtime, original: OriginalRequest) -> str:
    # Another host: "/" unless it is allow-listed.
    target = original.target() if _is_own_origin(rt, original) else rt.return_target(original.url())
    return f"{rt.settings.public_url}/_auth/login?" + urlencode({"rd": target}, quote_via=quote)


def _is_browser_navigation(request: web.Request, original: OriginalRequest) -> bool:
    return original.method in ("GET", "HEAD") and "text/html" in (field_lines.joined(request.headers, "Accept") or "")


async def handle_verify(request: web.Request, *, envoy_path: str | None = None) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    try:
        trusted = rt.client_view(request).via_trusted_proxy
    except BadRequestError as exc:  # X-Forwarded-Proto/-Host on two lines: refused like any malformed ask
        rt.metrics.verify_decisions.labels("malformed").inc()
        logs.event("verify_refused", logging.WARNING, reason=exc.reason)
        return _denied(401, "unauthenticated")
    if not trusted:
        # Only the ingress may ask: from anywhere else this would be an identity oracle (attacks.md T21).
        return _denied(403, "untrusted_caller")
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    try:
        original = original_request(headers, envoy_path=envoy_path, method=request.method, host=request.host)
    except ForwardAuthError as exc:
        rt.metrics.verify_decisions.labels("malformed").inc()
        logs.event("verify_refused", logging.WARNING, reason=exc.reason)
        return _denied(401, "unauthenticated")
    table = rt.table  # this request's routes to its end, whatever a reload does meanwhile
    route = table.route_for(original.hostname, original.path)
    if route is None:
        # No application is configured for this host and path: the proxy must not pass the request on.
        rt.metrics.verify_decisions.labels("no_route").inc()
        return _denied(404, "no_route")
    # The legacy route's public paths are public on the gateway's own origin only, as before routes.
    if is_public(original.path, route.public_paths) and (route.host is not None or _is_own_origin(rt, original)):
        rt.metrics.verify_decisions.labels("public").inc()
        return web.Response(status=200, headers=NO_STORE)
    current = await current_session(request, rt)
    session = current.session
    if session is None or not route.accepts_provider(session.identity.idp):
        # A session cookie sent twice is decided as no session (neither value is believed); the answer also
        # clears both variants, for the proxies that pass a refusal's Set-Cookie on (Traefik). A session from a
        # provider this route does not accept is no session for it.
        if session is not None:
            rt.metrics.route_refusals.labels(route.name, "provider_not_allowed").inc()
        login = _login_url(rt, original)
        refused: web.Response
        if original.mode == "traefik" and _is_browser_navigation(request, original):
            rt.metrics.verify_decisions.labels("redirected_to_login").inc()
            refused = redirect_to(login)
        else:
            rt.metrics.verify_decisions.labels("unauthenticated").inc()
            refused = _denied(401, "unauthenticated", {LOGIN_URL_HEADER: login})
        if session is None and current.rejection == AMBIGUOUS:
            clear_session(refused, rt)
        return refused
    decision = decide(route.rules, host=original.hostname, path=original.path, identity=session.identity)
    target = (
        step_up.target(rt, session.identity, decision.step_up) if decision.step_up is not None else None
    )
    if target is not None:
        # RFC 9470 for forward-auth: the proxy passes the 401 (or Traefik's redirect) on; the stronger login
        # comes back to the original URL.
        name, acr_values = target
        return_to = original.target() if _is_own_origin(rt, original) else rt.return_target(original.url())
        login = rt.settings.public_url + step_up_url(name, acr_values, return_to)
        rt.metrics.verify_decisions.labels("step_up").inc()
        if original.mode == "traefik" and _is_browser_navigation(request, original):
            return redirect_to(login)
        answer = step_up.insufficient(login, acr_values)
        answer.headers[LOGIN_URL_HEADER] = login
        return answer
    if not decision.allowed:
        rt.metrics.verify_decisions.labels("forbidden").inc()
        rt.metrics.route_refusals.labels(route.name, "forbidden").inc()
        logs.event(
            "verify_forbidden", logging.WARNING, route=route.name, reasons=",".join(decision.reasons),
            sub=session.identity.sub,
        )
        return _denied(403, "forbidden")
    release = table.release(route)
    response = web.Response(status=200, headers=NO_STORE)
    # Only what this route releases: the proxy copies these headers to this route's application.
    for name, value in release.header_pairs(session.sid, session.identity):
        response.headers[name] = value
    response.headers[rt.settings.assertion.header] = release.assertion(session.sid, session.identity, now=rt.clock())
    if current.set_cookie is not None:
        # The proxy copies this Set-Cookie to the browser (see deploy/), so the idle timeout slides here too.
        current.set_cookie(response)
    rt.metrics.verify_decisions.labels("allowed").inc()
    return response
