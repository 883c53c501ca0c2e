"""The simulated BankID app (development only): plain HTML forms, no JavaScript.

- ``GET  /bankid-app``                          scan a QR code, use an autostart token, or pick an order
- ``GET  /bankid-app?autostarttoken=T[&redirect=URL]``  open that order (what an autostart link does)
- ``POST /bankid-app/open``      ``qrData`` | ``autostarttoken`` | ``order`` [+ ``redirect``]
- ``POST /bankid-app/identify``  ``order``, ``person`` [+ ``redirect``]
- ``POST /bankid-app/cancel``    ``order`` [+ ``redirect``]

``redirect`` is BankID's return URL; it is offered as a link only when its origin is one of the
ordering client's registered redirect URI origins.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from gateway.devidp import bankid_pages, pages
from gateway.devidp.bankid_sim import (
    AUTO_START_TOKEN,
    ORDER,
    QR_DATA,
    SWEDISH_PERSONS,
    Locator,
    SimulatorError,
    decline,
    identify,
    open_order,
)
from gateway.devidp.clients import origin_of
from gateway.devidp.headless_store import HeadlessOrder
from gateway.devidp.params import Params, RepeatedParameterError, check_no_repeats, collect_params, single
from gateway.devidp.state import STATE, DevIdpState

APP_PATH = "/bankid-app"
_FORM_LOCATORS = {"qrData": QR_DATA, "autostarttoken": AUTO_START_TOKEN, "order": ORDER}


async def handle_app(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        params = collect_params(request.query)
        check_no_repeats(params)
        token, redirect = single(params, "autostarttoken"), single(params, "redirect")
    except RepeatedParameterError as exc:
        return _refused(state, str(exc))
    if token is None:
        body = bankid_pages.home_page(
            open_action=state.endpoints.path(APP_PATH + "/open"),
            orders=state.headless.open_orders(),
            now=state.clock(),
        )
        return pages.html_response(bankid_pages.TITLE, body)
    return _opened(state, Locator(AUTO_START_TOKEN, token), redirect)


async def handle_open(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        form = await _form(request)
        given = [(name, single(form, name)) for name in _FORM_LOCATORS]
        present = [(name, value) for name, value in given if value is not None]
        if len(present) != 1:
            raise SimulatorError("Give exactly one of a QR code, an autostart token or an order.")
        name, value = present[0]
        return _opened(state, Locator(_FORM_LOCATORS[name], value), single(form, "redirect"))
    except (RepeatedParameterError, SimulatorError) as exc:
        return _refused(state, str(exc))


async def handle_identify(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        form = await _form(request)
        order_id, person_id = single(form, "order"), single(form, "person")
        if order_id is None or person_id is None:
            raise SimulatorError("The form was not submitted as expected.")
        order = identify(state, Locator(ORDER, order_id), person_id)
        redirect = single(form, "redirect")
    except (RepeatedParameterError, SimulatorError) as exc:
        return _refused(state, str(exc))
    name = next(p.name for p in SWEDISH_PERSONS if p.id == order.person_id)
    message = f"You identified as {name}. The application gets the result on its next poll."
    return _answered(state, order, "Identified", message, redirect)


async def handle_cancel(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        form = await _form(request)
        order_id = single(form, "order")
        if order_id is None:
            raise SimulatorError("The form was not submitted as expected.")
        order = decline(state, Locator(ORDER, order_id))
        redirect = single(form, "redirect")
    except (RepeatedParameterError, SimulatorError) as exc:
        return _refused(state, str(exc))
    return _answered(state, order, "Cancelled", "You cancelled the identification.", redirect)


def _opened(state: DevIdpState, locator: Locator, redirect: str | None) -> web.Response:
    try:
        order = open_order(state, locator)
    except SimulatorError as exc:
        return _refused(state, str(exc))
    body = bankid_pages.order_page(
        order,
        persons=SWEDISH_PERSONS,
        identify_action=state.endpoints.path(APP_PATH + "/identify"),
        cancel_action=state.endpoints.path(APP_PATH + "/cancel"),
        redirect=redirect,
        now=state.clock(),
    )
    return pages.html_response("Identify with BankID", body)


def _answered(
    state: DevIdpState, order: HeadlessOrder, heading: str, message: str, redirect: str | None
) -> web.Response:
    body = bankid_pages.answered_page(
        heading, message, return_to=_return_to(state, order, redirect), home=state.endpoints.path(APP_PATH)
    )
    return pages.html_response(heading, body)


def _return_to(state: DevIdpState, order: HeadlessOrder, redirect: str | None) -> str | None:
    """BankID's ``redirect``, only towards the ordering client's own origins (no open redirect)."""
    client = state.clients.get(order.client_id)
    if redirect is None or client is None:
        return None
    parts = urlsplit(redirect)
    credentials = parts.username is not None or parts.password is not None
    if parts.scheme not in ("http", "https") or not parts.hostname or credentials:
        return None
    allowed = {origin_of(uri) for uri in (*client.redirect_uris, *client.post_logout_redirect_uris)}
    return redirect if f"{parts.scheme}://{parts.netloc}" in allowed else None


async def _form(request: web.Request) -> Params:
    if request.content_type != "application/x-www-form-urlencoded":
        raise SimulatorError("The form was not submitted as expected.")
    form = collect_params(await request.post())
    check_no_repeats(form)
    return form


def _refused(state: DevIdpState, message: str) -> web.Response:
    body = bankid_pages.refused_page(message, home=state.endpoints.path(APP_PATH))
    return pages.html_response("Cannot do that", body, status=400)
