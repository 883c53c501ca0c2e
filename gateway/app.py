"""Composition root: create_app(settings) -> aiohttp Application (web layer).

Every request goes through ``dispatch``: the path is normalised once, and that one path decides both
the route (gateway endpoint, public, protected) and what is forwarded (attacks.md T15). Client
identity headers are dropped in the only function that builds upstream headers, so no route can
forward them (T09).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import HttpVersion10, HttpVersion11, web

from gateway import logs
from gateway.config import Settings
from gateway.errors import AccessDeniedError, BadRequestError, GatewayError, MethodNotAllowedError, NotFoundError
from gateway.flows import backchannel, poll, redirect, step_up, verify
from gateway.flows import page as pages_poll
from gateway.flows.sessions import current_session
from gateway.keys import encryption_public_jwk, public_jwk
from gateway.metrics import Metrics
from gateway.policy import decide
from gateway.protocol.paths import PathError, encode_path, is_public, normalize_request_path
from gateway.proxy import UPSTREAM_ANSWER, build_upstream_headers, connection_tokens, forward
from gateway.responses import error_response, redirect_to, wants_html
from gateway.route_table import RouteTable
from gateway.routes import Route
from gateway.runtime import RUNTIME, Runtime, build_runtime
from gateway.session.cookies import clear_session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READINESS_RETRY = 5.0
SUPPORTED_VERSIONS = (HttpVersion10, HttpVersion11)


async def _store_state(rt: Runtime) -> str:
    return "up" if await rt.store.healthy() else "down"


async def handle_healthz(request: web.Request) -> web.StreamResponse:
    """Liveness: the process answers. A session store outage is shown, but does not make it fail (a
    restart would not bring Redis back)."""
    rt = request.app[RUNTIME]
    body = {"status": "ok", "session_store": await _store_state(rt)}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def handle_readyz(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    providers = {name: client.ready for name, client in rt.providers.items()}
    store = await _store_state(rt)
    ready = all(providers.values()) and store == "up" and not rt.draining
    status = "draining" if rt.draining else "ready" if ready else "not_ready"
    return web.json_response(
        {"status": status, "providers": providers, "session_store": store},
        status=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


async def handle_jwks(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    return web.json_response({"keys": list(rt.published_keys)}, headers={"Cache-Control": "public, max-age=300"})


AUTH_ROUTES: dict[str, dict[str, Handler]] = {
    "/_auth/login": {"GET": redirect.handle_login},
    "/_auth/logout": {"GET": redirect.handle_logout_page, "POST": redirect.handle_logout},
    "/_auth/logged-out": {"GET": redirect.handle_logged_out},
    "/_auth/userinfo": {"GET": redirect.handle_userinfo},
    "/_auth/jwks.json": {"GET": handle_jwks},
    "/_auth/healthz": {"GET": handle_healthz},
    "/_auth/readyz": {"GET": handle_readyz},
    "/_auth/headless": {"GET": pages_poll.handle_login_page},
    "/_auth/headless/start": {"POST": poll.handle_start},
    "/_auth/headless/status": {"GET": poll.handle_status},
    "/_auth/headless/cancel": {"POST": poll.handle_cancel},
    "/_auth/headless/qr.svg": {"GET": poll.handle_qr},
    "/_auth/static/headless.js": {"GET": pages_poll.handle_script},
}
CALLBACK_PREFIX = "/_auth/callback/"
BACKCHANNEL_PREFIX = "/_auth/backchannel-logout/"
CLIENT_JWKS_PREFIX = "/_auth/client-jwks/"
VERIFY_PATH = "/_auth/verify"
#: The name of the route a request was matched to (per-route metrics).
ROUTE = web.RequestKey("route", str)
#: Which listener an application serves: the public one, or forward_auth.listen (only /_auth/verify).
LISTENER = web.AppKey("listener", str)
PUBLIC, FORWARD_AUTH = "public", "forward_auth"


def _is_verify(path: str) -> bool:
    return path == VERIFY_PATH or path.startswith(VERIFY_PATH + "/")


def _raw_suffix(request: web.Request, prefix_length: int) -> str:
    """The still-encoded original target after /_auth/verify (it is normalised on its own later)."""
    return request.raw_path[prefix_length:] or "/"


def _client_jwks_handler(provider: str) -> Handler:
    """Our client's public keys for a provider, so they can be registered by URL and rotated (Idura).

    The signing key (use: sig) and every encryption key (use: enc; previous ones too, so an OP that
    cached the old key can still encrypt to it during a rollover).
    """

    async def handle_client_jwks(request: web.Request) -> web.StreamResponse:
        rt = request.app[RUNTIME]
        key = rt.client_keys.get(provider)
        encryption = rt.encryption_keys.get(provider, ())
        if key is None and not encryption:
            raise NotFoundError()
        published = ([public_jwk(key)] if key is not None else []) + [encryption_public_jwk(k) for k in encryption]
        return web.json_response({"keys": published}, headers={"Cache-Control": "public, max-age=300"})

    return handle_client_jwks


def _resolve_auth_route(request: web.Request, path: str) -> Handler:
    if path.startswith(CALLBACK_PREFIX):
        callback = functools.partial(redirect.handle_callback, provider_name=path[len(CALLBACK_PREFIX) :])
        methods: dict[str, Handler] = {"GET": callback, "POST": callback}
    elif path.startswith(BACKCHANNEL_PREFIX):
        name = path[len(BACKCHANNEL_PREFIX) :]
        methods = {"POST": functools.partial(backchannel.handle_backchannel_logout, provider_name=name)}
    elif _is_verify(path):
        if request.app[LISTENER] == PUBLIC and request.app[RUNTIME].settings.forward_auth_listen is not None:
            # Forward-auth has its own listener: clients that reach the public one through an ingress's
            # /_auth/ route must not get identity headers and an assertion here (issue 15, defect 5).
            raise NotFoundError()
        # Every method: Envoy's ext_authz forwards the original method; the original path follows the prefix.
        envoy_path = None if path == VERIFY_PATH else _raw_suffix(request, len(VERIFY_PATH))
        return functools.partial(verify.handle_verify, envoy_path=envoy_path)
    elif path.startswith(CLIENT_JWKS_PREFIX) and path.endswith(".json"):
        methods = {"GET": _client_jwks_handler(path[len(CLIENT_JWKS_PREFIX) : -len(".json")])}
    else:
        methods = AUTH_ROUTES.get(path, {})
        if not methods:
            raise NotFoundError()
    method = "GET" if request.method == "HEAD" else request.method
    if method not in methods:
        raise MethodNotAllowedError()
    return methods[method]


def _target(route: Route, path: str, request: web.Request) -> str:
    query = request.raw_path.partition("?")[2]
    return route.upstream + encode_path(route.upstream_path(path)) + (f"?{query}" if query else "")


async def _forward(
    request: web.Request,
    rt: Runtime,
    table: RouteTable,
    route: Route,
    path: str,
    identity: tuple[tuple[str, str], ...],
    before_prepare: Callable[[web.StreamResponse], None] | None = None,
    host: str | None = None,
) -> web.StreamResponse:
    """Forward with exactly the given identity headers: every client-sent copy is dropped first. ``host``:
    the host a host-matched route was chosen by, which the upstream then hears as X-Forwarded-Host."""
    client = rt.client_view(request)
    if host is not None and route.host is not None:
        # The Host (or trusted X-Forwarded-Host) the route was chosen by; request_host checked its form.
        trusted = client.via_trusted_proxy and "X-Forwarded-Host" in request.headers
        client = dataclasses.replace(client, host=client.host if trusted else request.host)
    headers = build_upstream_headers(
        request.headers.items(),
        protected=table.protected,
        own_cookies=rt.own_cookies,
        identity=identity,
        client=client,
        connection_tokens=connection_tokens(request.headers),
        request_id=rt.request_id(request),
    )
    timeouts = aiohttp.ClientTimeout(connect=route.timeouts.connect, sock_read=route.timeouts.read)
    assert rt.upstream_http is not None
    return await forward(
        request,
        http=rt.upstream_http,
        target=_target(route, path, request),
        headers=headers,
        timeouts=timeouts,
        metrics=rt.metrics,
        before_prepare=before_prepare,
        pool=table.pools.get(route.name),
        own_cookie_names=rt.own_cookie_spellings,
    )


async def _login_response(request: web.Request, rt: Runtime, route: Route, path: str) -> web.StreamResponse:
    """No session this route accepts: browsers go to the login, API clients get 401 with the login URL."""
    settings = rt.settings
    query = request.raw_path.partition("?")[2]
    return_to = encode_path(path) + (f"?{query}" if query else "")
    if not wants_html(request):
        return web.json_response(
            {"error": "unauthenticated", "login_url": settings.public_url + redirect.login_url(return_to)},
            status=401,
            headers={"Cache-Control": "no-store"},
        )
    direct = redirect.direct_provider(rt, route)
    if direct is not None:  # one hop instead of two; config checked it is a redirect provider
        return await redirect.redirect_to_provider(request, rt, direct, rt.return_target(return_to))
    return redirect_to(redirect.login_url(return_to))


async def _handle_protected(request: web.Request, rt: Runtime, path: str) -> tuple[web.StreamResponse, str]:
    table = rt.table  # this request's routes to its end, whatever a reload does meanwhile
    host = rt.request_host(request) if table.needs_host else ""
    route = table.route_for(host, path)
    if route is None:
        # No application is configured for this host and path: nothing is forwarded anywhere.
        raise NotFoundError("no_route")
    request[ROUTE] = route.name
    if is_public(path, route.public_paths):
        return await _forward(request, rt, table, route, path, identity=(), host=host), "public"
    current = await current_session(request, rt)
    session = current.session
    if session is None or not route.accepts_provider(session.identity.idp):
        if session is not None:
            rt.metrics.route_refusals.labels(route.name, "provider_not_allowed").inc()
        response = await _login_response(request, rt, route, path)
        if session is None and current.rejection is not None:
            clear_session(response, rt)
        return response, "unauthenticated" if response.status == 401 else "redirected_to_login"
    # The legacy route's rules name the configured public host, as they always did.
    rule_host = host if table.needs_host else rt.public_origin[1].split(":")[0]
    decision = decide(route.rules, host=rule_host, path=path, identity=session.identity)
    if decision.step_up is not None:
        stronger = await step_up.respond(request, rt, path, session, decision.step_up)
        if stronger is not None:
            return stronger, "unauthenticated" if stronger.status == 401 else "redirected_to_login"
    if not decision.allowed:
        rt.metrics.route_refusals.labels(route.name, "forbidden").inc()
        logs.event(
            "access_refused", logging.WARNING, route=route.name, reasons=",".join(decision.reasons),
            sub=session.identity.sub,
        )
        raise AccessDeniedError(",".join(decision.reasons))
    release = table.release(route)
    identity = release.header_pairs(session.sid, session.identity)
    assertion = release.assertion(session.sid, session.identity, now=rt.clock())
    response = await _forward(
        request,
        rt,
        table,
        route,
        path,
        identity=(*identity, (rt.settings.assertion.header, assertion)),
        before_prepare=current.set_cookie,
        host=host,
    )
    return response, "proxied"


async def dispatch(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    started = time.perf_counter()
    outcome, status, path = "error", 500, ""
    response_sent: web.StreamResponse | None = None
    try:
        if request.version not in SUPPORTED_VERSIONS:
            raise BadRequestError("http_version", public_message="Only HTTP/1.0 and HTTP/1.1 are supported.")
        rt.refuse_repeated_fields(request)  # two Host/Origin/... lines: 400, never one of them (issue 15)
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            path = normalize_request_path(raw_path)
        except PathError as exc:
            raise BadRequestError("bad_path") from exc
        if "#" in raw_query:
            # A fragment never travels on the wire: a raw '#' means gateway and upstream may split it
            # differently (attacks.md T17).
            raise BadRequestError("bad_query")
        if request.app[LISTENER] == FORWARD_AUTH and not _is_verify(path):
            raise NotFoundError()  # the forward-auth listener serves /_auth/verify and nothing else
        if path == "/_auth" or path.startswith("/_auth/"):
            outcome = "auth_endpoint"
            response = await _resolve_auth_route(request, path)(request)
        else:
            response, outcome = await _handle_protected(request, rt, path)
        status, response_sent = response.status, response
        return response
    except GatewayError as exc:
        outcome = "error" if exc.status >= 500 or outcome != "auth_endpoint" else outcome
        failed = error_response(request, exc)
        status, response_sent = failed.status, failed
        return failed
    except (asyncio.CancelledError, ConnectionResetError):
        status = 499
        raise
    except Exception:
        # Never a stack trace to the client, never a forwarded request: a generic 500 page.
        logs.event("internal_error", logging.ERROR, path=path)
        logging.getLogger("eid_gateway").exception("unhandled error")
        status = 500
        return error_response(request, GatewayError("internal_error"))
    finally:
        elapsed = time.perf_counter() - started
        rt.metrics.requests.labels(outcome).inc()
        route_name = request.get(ROUTE)
        if route_name is not None:
            rt.metrics.observe_route(route_name, outcome, status, elapsed)
        _log_request(request, rt, path, status, outcome, elapsed, route_name, response_sent)


def _body_bytes(response: web.StreamResponse | None) -> int | None:
    """A Response's body is sent after the handler returns; a streamed one has been sent by now."""
    if isinstance(response, web.Response):
        body = response.body
        return len(body) if isinstance(body, bytes | bytearray) else None
    return response.body_length if response is not None else None


def _log_request(
    request: web.Request, rt: Runtime, path: str, status: int, outcome: str, elapsed: float,
    route: str | None, response: web.StreamResponse | None,
) -> None:
    if not rt.access_log.enabled:
        return
    try:
        client, request_id = rt.client_view(request).address, rt.request_id(request)
    except BadRequestError:  # forwarded headers repeated: the line still says who sent it
        client, request_id = request.remote or "", None
    upstream = request.get(UPSTREAM_ANSWER)
    rt.access_log.request(
        method=request.method,
        host=request.host,
        route=route,
        path=path,
        status=status,
        outcome=outcome,
        ms=round(elapsed * 1000, 2),
        body_bytes=_body_bytes(response),
        upstream_status=upstream[0] if upstream else None,
        upstream_ms=upstream[1] if upstream else None,
        client=client,
        request_id=request_id,
    )


async def _keep_providers_ready(rt: Runtime) -> None:
    """Load discovery and JWKS at start-up; retry until every provider answered once."""
    while True:
        pending = [c for c in rt.providers.values() if not c.ready]
        if not pending:
            return
        for client in pending:
            try:
                await client.warm_up()
            except GatewayError as exc:
                logs.event("provider_not_ready", logging.WARNING, provider=client.settings.name, reason=exc.reason)
        if any(not c.ready for c in rt.providers.values()):
            await asyncio.sleep(READINESS_RETRY)


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, metrics: Metrics | None = None
) -> web.Application:
    rt = runtime or build_runtime(settings, metrics=metrics)
    app = web.Application(client_max_size=64 * 1024, handler_args={"max_field_size": 8190, "max_line_size": 8190})
    app[RUNTIME] = rt
    app[LISTENER] = PUBLIC

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await rt.start()
        warm = asyncio.create_task(_keep_providers_ready(rt))
        yield
        warm.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await warm
        await rt.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch)
    return app


def create_forward_auth_app(rt: Runtime) -> web.Application:
    """The forward_auth.listen application: the same runtime (sessions, keys, metrics) as the public one,
    which starts and stops it; only /_auth/verify is answered."""
    app = web.Application(client_max_size=64 * 1024, handler_args={"max_field_size": 8190, "max_line_size": 8190})
    app[RUNTIME] = rt
    app[LISTENER] = FORWARD_AUTH
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch)
    return app
