"""Authorization-code login, callback and logout handlers (web layer; protocol logic is in protocol/)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from aiohttp import web

from gateway import logs, pages
from gateway.config import ProviderSettings
from gateway.errors import (
    AssuranceTooLowError,
    AuthenticationError,
    BadRequestError,
    CallbackError,
    CrossSiteRequestError,
    ForbiddenError,
    GatewayError,
    LogoutNotConfirmedError,
    StateMismatchError,
    StepUpRefusedError,
    TokenValidationError,
)
from gateway.flows.limits import enforce_per_client
from gateway.flows.page import provider_choice_page
from gateway.flows.sessions import current_session, end_presented_session, presented_sessions
from gateway.idp.oidc_client import OidcClient
from gateway.protocol import assurance, authorization_request, field_lines, oidc
from gateway.protocol.claims import ClaimError, map_claims
from gateway.responses import error_response, is_same_origin, redirect_to
from gateway.routes import Route
from gateway.runtime import RUNTIME, Runtime
from gateway.session.cookies import (
    AMBIGUOUS,
    clear_session,
    read_pending_logins,
    read_session,
    session_cookie_sent,
    write_pending_logins,
    write_session,
)
from gateway.session.model import PendingLogin, Session, add_pending
from gateway.session.store import StoreUnavailableError

MAX_CALLBACK_BODY = 64 * 1024


def preferred_locales(accept_language: str | None) -> tuple[str, ...]:
    """Language tags from Accept-Language in order of preference (q-values honoured, at most 5)."""
    if not accept_language:
        return ()
    ranked = []
    for index, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35 or not all(c.isalnum() or c == "-" for c in tag):
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-q, index, tag))
    return tuple(tag for _, _, tag in sorted(ranked)[:5])


def login_url(return_to: str) -> str:
    return "/_auth/login?" + urlencode({"rd": return_to}, quote_via=quote)


def direct_provider(rt: Runtime, route: Route) -> str | None:
    """With direct_login_redirect: the provider to send a browser to for this route, if it accepts it."""
    name = rt.settings.default_provider
    return name if rt.settings.direct_login_redirect and route.accepts_provider(name) else None


async def handle_login(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    return_to = rt.return_target(request.query.get("rd"))
    route = rt.route_of_target(return_to)
    # The providers the application being returned to accepts (a route's providers), else all of them.
    offered = tuple(p for p in rt.settings.providers if route is None or route.accepts_provider(p.name))
    asked_for = request.query.get("provider")
    if asked_for is not None and route is not None and not route.accepts_provider(asked_for):
        raise BadRequestError(
            "provider_not_allowed", public_message="This application does not accept logins with that provider."
        )
    default = rt.settings.default_provider if any(p.name == rt.settings.default_provider for p in offered) else ""
    name = asked_for or default or (offered[0].name if len(offered) == 1 else "")
    if not name:
        return provider_choice_page(offered, return_to=return_to)
    provider = rt.settings.provider(name)
    if provider is not None and provider.is_poll_flow:
        return redirect_to("/_auth/headless?" + urlencode({"provider": name, "rd": return_to}, quote_via=quote))
    if request.query.get("step_up") == "1":
        # A step-up keeps the session until the stronger login comes back as the same person (then it ends).
        current = await current_session(request, rt)
        return await redirect_to_provider(
            request, rt, name, return_to, login_request(request, provider) if provider else None,
            step_up_of=current.session,
        )
    response = await redirect_to_provider(
        request, rt, name, return_to, login_request(request, provider) if provider else None
    )
    # Starting a login ends any session this browser had (attacks.md T37, session fixation).
    await end_presented_session(request, rt)
    if session_cookie_sent(request, rt):  # a browser that sent none has none to clear
        clear_session(response, rt)
    return response


def step_up_url(name: str, acr_values: tuple[str, ...], return_to: str) -> str:
    """The login an application (or forward-auth) sends a person to for a stronger login (RFC 9470)."""
    query = {"provider": name, "acr_values": " ".join(acr_values), "rd": return_to, "step_up": "1"}
    return "/_auth/login?" + urlencode(query, quote_via=quote)


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """What an application asked for on /_auth/login, checked against the provider's configuration."""

    acr_values: tuple[str, ...] | None = None
    login_hint: authorization_request.LoginHint | None = None
    ui_locales: tuple[str, ...] | None = None


def login_request(request: web.Request, provider: ProviderSettings) -> LoginRequest:
    """Per-login parameters (issue 16 item 7); each appears at most once (ambiguity is refused)."""
    values: dict[str, str | None] = {}
    for name in ("acr_values", "login_hint", "ui_locales"):
        given = request.query.getall(name, [])
        if len(given) > 1:
            raise BadRequestError("repeated_parameter", public_message=f"The login link repeats {name}.")
        values[name] = given[0] if given else None
    return LoginRequest(
        acr_values=authorization_request.requested_acr_values(values["acr_values"], provider.acr_values),
        login_hint=authorization_request.requested_login_hint(values["login_hint"], provider.allowed_login_hints),
        ui_locales=authorization_request.requested_ui_locales(values["ui_locales"]),
    )


async def redirect_to_provider(
    request: web.Request,
    rt: Runtime,
    name: str,
    return_to: str,
    asked: LoginRequest | None = None,
    *,
    step_up_of: Session | None = None,
) -> web.StreamResponse:
    """302 to the redirect-flow provider ``name``'s authorization endpoint, with the pending login (state,
    nonce, PKCE verifier) added to the browser's login cookie. ``return_to`` must already be a safe target.
    Ending a session the browser presented is the caller's job."""
    provider = rt.settings.provider(name)
    client = rt.providers.get(name)
    if provider is None or client is None or provider.is_poll_flow:
        raise BadRequestError("unknown_provider", public_message="Unknown login provider.")
    asked = asked or LoginRequest()
    await enforce_per_client(request, rt, "login_per_client")
    metadata = await client.metadata()
    verifier, challenge = oidc.make_pkce_pair()
    pending = PendingLogin(
        state=oidc.random_token(),
        nonce=oidc.random_token(),
        code_verifier=verifier,
        provider=name,
        return_to=return_to,
        created=rt.clock(),
        acr_values=asked.acr_values,
        step_up=assurance.person_digest(step_up_of.identity) if step_up_of is not None else None,
    )
    if step_up_of is not None:
        rt.metrics.step_ups.labels(name, "started").inc()
    params = oidc.authorization_parameters(
        client_id=provider.client_id,
        redirect_uri=rt.redirect_uri(name),
        scopes=provider.scopes,
        state=pending.state,
        nonce=pending.nonce,
        code_challenge=challenge,
        response_mode=provider.response_mode,
        acr_values=provider.acr_values if asked.acr_values is None else asked.acr_values,
        prompt=provider.prompt,
        login_hint=asked.login_hint.value if asked.login_hint else provider.login_hint,
        ui_locales=asked.ui_locales
        or provider.ui_locales
        or preferred_locales(field_lines.joined(request.headers, "Accept-Language")),
    )
    url = await _authorization_url(client, metadata, params, asked)
    try:
        in_flight = read_pending_logins(request, rt)
    except StateMismatchError:
        in_flight = []  # the login cookie came twice: neither is kept, this login starts afresh
    route = rt.route_of_target(return_to)
    rt.audit_login("login_started", request, provider=name, route=route.name if route else None)
    response = redirect_to(url)
    write_pending_logins(response, rt, add_pending(in_flight, pending))
    rt.metrics.logins_started.labels(name).inc()
    logs.event("login_started", provider=name)
    return response


async def _authorization_url(
    client: OidcClient, metadata: oidc.ProviderMetadata, params: dict[str, str], asked: LoginRequest
) -> str:
    """Where the browser goes: the parameters in the query, in a request object (RFC 9101), or pushed first
    (RFC 9126) so that the browser carries only a request_uri."""
    provider = client.settings
    pushed = authorization_request.use_par(
        provider.par,
        endpoint=metadata.pushed_authorization_request_endpoint,
        required_by_discovery=metadata.require_pushed_authorization_requests,
    )
    if (
        asked.login_hint
        and asked.login_hint.carries_national_id
        and not pushed
        and provider.request_object != "encrypted"
    ):
        # The config check makes this unreachable (par: required or request_object: encrypted); kept so that a
        # national identity number can never end up in a URL, a browser history or an access log.
        raise BadRequestError("login_hint_in_clear", public_message="This login cannot be started with that hint.")
    if provider.request_object == "off":
        sent = params
    else:
        request_object = client.sign_request_object(params, audience=metadata.issuer)
        if provider.request_object == "encrypted":
            request_object = await client.encrypt_request_object(request_object)
        sent = (
            {"client_id": provider.client_id, "request": request_object}
            if pushed
            else authorization_request.front_channel_with_request_object(params, request_object)
        )
    if not pushed:
        return oidc.authorization_url(metadata.authorization_endpoint, sent)
    result = await client.push_authorization_request(sent)
    return oidc.authorization_url(
        metadata.authorization_endpoint, authorization_request.front_channel_after_par(provider.client_id, result)
    )


async def _callback_params(request: web.Request) -> dict[str, str]:
    if request.method == "POST":
        if request.content_length is not None and request.content_length > MAX_CALLBACK_BODY:
            raise BadRequestError("callback_body_too_large")
        if request.content_type != "application/x-www-form-urlencoded":
            raise BadRequestError("callback_content_type")
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge as exc:  # a chunked body over the app's 64 KiB cap (T45)
            raise BadRequestError("callback_body_too_large") from exc
        source = form
    else:
        source = request.query  # type: ignore[assignment]
    params: dict[str, str] = {}
    for key in ("code", "state", "error", "error_description", "iss"):
        values = source.getall(key, [])
        if len(values) > 1:
            raise CallbackError("repeated_parameter")
        if values:
            if not isinstance(values[0], str):
                raise CallbackError("malformed_parameter")
            params[key] = values[0]
    return params


async def _take_pending(rt: Runtime, pending: list[PendingLogin], state: str, provider: str) -> PendingLogin:
    """Find the login this state belongs to (every entry compared in constant time) and spend it, once
    across every replica."""
    match = None
    for entry in pending:
        if oidc.states_match(state, entry.state) and entry.provider == provider:
            match = entry
    if match is None:
        raise StateMismatchError("state_mismatch")
    expires = match.created + rt.settings.session.login_timeout
    if not await rt.store.spend("state:" + match.state, expires, rt.clock()):
        raise StateMismatchError("state_mismatch")
    return match


async def handle_callback(request: web.Request, *, provider_name: str) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    name = provider_name
    provider = rt.settings.provider(name)
    client = rt.providers.get(name)
    if provider is None or client is None:
        raise BadRequestError("unknown_provider", public_message="Unknown login provider.")
    pending: list[PendingLogin] = []
    try:
        pending = read_pending_logins(request, rt)  # the login cookie sent twice: refused, never one picked
        params = await _callback_params(request)
        state = params.get("state", "")
        if not state:
            raise StateMismatchError("missing_state")
        login = await _take_pending(rt, pending, state, name)
    except GatewayError as exc:
        rt.metrics.logins_failed.labels(name, exc.reason).inc()
        rt.audit_login("login_refused", request, provider=name, reason=exc.reason)
        if exc.reason == "ambiguous_cookie":
            refused = error_response(request, exc)
            write_pending_logins(refused, rt, [])  # the next login starts with one login cookie
            return refused
        raise
    # The state is spent whatever happens next; the cookie keeps only the other tabs' logins.
    remaining = [p for p in pending if p is not login]
    try:
        code = oidc.parse_callback(params, metadata=await client.metadata())
        tokens = await client.exchange_code(
            code=code, redirect_uri=rt.redirect_uri(name), code_verifier=login.code_verifier
        )
        claims = await client.verify_id_token(tokens.id_token, nonce=login.nonce, acr_values=login.acr_values)
        if provider.userinfo != "off":
            userinfo = await client.fetch_userinfo(tokens.access_token, subject=claims["sub"])
            claims = oidc.merge_userinfo(claims, userinfo)
        try:
            identity = map_claims(claims, provider.claims, provider=name, required=provider.required_claims)
        except ClaimError as exc:
            raise ForbiddenError(exc.reason) from exc
        identity = assurance.with_level(identity, provider.acr_levels)
        if provider.min_level is not None and (assurance.session_level(identity) or -1) < provider.min_level:
            raise AssuranceTooLowError(
                "acr_below_min_level", public_message=assurance.too_low_message(provider.min_level, identity)
            )
        if login.step_up is not None and assurance.person_digest(identity) != login.step_up:
            rt.metrics.step_ups.labels(name, "other_person").inc()
            raise StepUpRefusedError("step_up_other_person")
    except GatewayError as exc:
        if isinstance(exc, TokenValidationError):
            rt.metrics.token_failures.labels(name, exc.reason).inc()
        rt.metrics.logins_failed.labels(name, exc.reason).inc()
        logs.event("login_failed", logging.WARNING, provider=name, reason=exc.reason)
        route = rt.route_of_target(login.return_to)
        rt.audit_login("login_refused", request, provider=name, reason=exc.reason, route=route.name if route else None)
        failed = error_response(request, exc, retry_url=login_url(login.return_to))
        write_pending_logins(failed, rt, remaining)
        return failed
    now = rt.clock()
    provider_sid = claims.get("sid")
    session = Session.new(
        identity,
        now=now,
        lifetime=rt.settings.session.lifetime,
        idle_timeout=rt.settings.session.idle_timeout,
        provider_sid=provider_sid if isinstance(provider_sid, str) and 0 < len(provider_sid) <= 255 else None,
        refresh_token=tokens.refresh_token if provider.refresh_tokens else None,
        refresh_at=oidc.refresh_deadline(now, tokens.expires_in) if provider.refresh_tokens else None,
    )
    route = rt.route_of_target(login.return_to)
    # Before the session exists: with audit.required, a login that cannot be recorded does not happen.
    rt.audit_login(
        "login_succeeded", request, provider=name, identity=identity, sid=session.sid,
        route=route.name if route else None,
    )
    response = redirect_to(login.return_to)
    if login.step_up is not None:
        # The same person, now stronger: the old session ends (in the store too) and the new one replaces it.
        await end_presented_session(request, rt)
        rt.metrics.step_ups.labels(name, "completed").inc()
        rt.audit_event("step_up", request, identity=identity, sid=session.sid)
    await write_session(response, rt, session)
    write_pending_logins(response, rt, remaining)
    rt.metrics.logins_completed.labels(name).inc()
    logs.event("login_completed", provider=name, sub=identity.sub, ssn=identity.get("ssn") or "")
    return response


async def _end_session_url(rt: Runtime, session: Session) -> str | None:
    """The provider's RP-initiated logout URL (OIDC RP-Initiated Logout 1.0), None when it has none."""
    client = rt.providers.get(session.identity.idp)
    if client is None:
        return None
    try:
        metadata = await client.metadata()
    except GatewayError:
        return None
    if metadata.end_session_endpoint is None:
        return None
    params = {
        "client_id": client.settings.client_id,
        "post_logout_redirect_uri": rt.settings.public_url + "/_auth/logged-out",
    }
    return metadata.end_session_endpoint + "?" + urlencode(params, quote_via=quote)


async def handle_logout_page(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    loaded = await read_session(request, rt)
    if loaded.rejection == AMBIGUOUS:
        return pages.logout_confirm_page(continues_to=None)  # the POST ends every session presented
    if loaded.session is None:
        return pages.logged_out_page()
    return pages.logout_confirm_page(continues_to=await _end_session_url(rt, loaded.session))


async def handle_logout(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    if not is_same_origin(request, rt.settings.public_url):
        raise CrossSiteRequestError("cross_site_logout")
    sessions = await presented_sessions(request, rt)
    target = "/_auth/logged-out"
    for session in sessions:
        now = rt.clock()
        cause = "logout_everywhere" if request.query.get("everywhere") == "1" else "logout"
        try:
            # The record is deleted before the answer: a copied cookie stops working at once (attacks.md T39).
            # With Redis the delete waits for a replica: a failover must not bring the session back.
            await rt.store.end(session, now)
            if cause == "logout_everywhere":
                await rt.store.end_for_subject(session.identity.idp, session.identity.sub, now)
        except StoreUnavailableError as exc:
            logs.event("logout_not_confirmed", logging.WARNING, provider=session.identity.idp, reason=exc.reason)
            raise LogoutNotConfirmedError(exc.reason) from exc  # the cookie is kept: the person can try again
        rt.forget_session(session.sid)
        rt.audit_event(cause, request, identity=session.identity, sid=session.sid)
        rt.metrics.sessions_ended.labels(cause).inc()
        logs.event(cause, provider=session.identity.idp, sub=session.identity.sub)
    if len(sessions) == 1:  # the provider's logout belongs to one session; with two, neither is followed
        target = await _end_session_url(rt, sessions[0]) or target
    response = redirect_to(target, status=303)
    clear_session(response, rt)
    return response


async def handle_logged_out(_request: web.Request) -> web.StreamResponse:
    return pages.logged_out_page()


#: What /_auth/userinfo shows when the config has routes: enough for a "logged in as" line and a logout.
USERINFO_WITH_ROUTES = frozenset({"name", "given_name", "family_name", "idp", "acr", "auth_time"})


async def handle_userinfo(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    current = await current_session(request, rt)
    if current.session is None:
        raise AuthenticationError("unauthenticated")
    shown = current.session.identity.to_json()
    if rt.settings.explicit_routes:
        # Any application's script on the gateway's hosts can read this: with routes, the person's own
        # display data only, never what a route might withhold from its application.
        shown = {name: value for name, value in shown.items() if name in USERINFO_WITH_ROUTES}
    response = web.json_response(shown, headers={"Cache-Control": "no-store"})
    if current.set_cookie is not None:
        current.set_cookie(response)
    return response
