"""JSON control endpoints for tests (development only): act as the BankID app, inject poll faults.

- ``POST /_dev/bankid/scan``     ``{"qrData": ...}`` | ``{"autoStartToken": ...}`` | ``{"order": ...}``
- ``POST /_dev/bankid/identify`` the same plus ``"person": "se-asa"``; opens the order first if needed
- ``POST /_dev/bankid/decline``  the same as scan; opens the order first if needed
  all three answer ``200 {"order": "<opaque id>"}`` or ``400 {"error", "error_description"}``.
- ``POST /_dev/headless/faults`` ``{"fault": <kind>, "count": N}`` queues N faults; ``DELETE`` clears;
  ``GET`` shows the queue. All answer ``200 {"faults": [...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.devidp.bankid_sim import LOCATOR_KINDS, Locator, SimulatorError, decline, identify, open_order
from gateway.devidp.headless_store import FAULT_KINDS, MAX_QUEUED_FAULTS, HeadlessOrder
from gateway.devidp.oauth_errors import json_body, json_error
from gateway.devidp.state import STATE, DevIdpState


class _BadControl(ValueError):
    pass


async def handle_scan(request: web.Request) -> web.StreamResponse:
    return await _act(request, lambda state, body: open_order(state, _locator(body, extra=())))


async def handle_identify(request: web.Request) -> web.StreamResponse:
    def act(state: DevIdpState, body: dict[str, Any]) -> HeadlessOrder:
        person = body.get("person")
        if not isinstance(person, str):
            raise _BadControl("person (a test person id such as se-asa) is required")
        return identify(state, _locator(body, extra=("person",)), person)

    return await _act(request, act)


async def handle_decline(request: web.Request) -> web.StreamResponse:
    return await _act(request, lambda state, body: decline(state, _locator(body, extra=())))


async def _act(
    request: web.Request, action: Callable[[DevIdpState, dict[str, Any]], HeadlessOrder]
) -> web.StreamResponse:
    try:
        body = await _json_object(request)
        order = action(request.app[STATE], body)
    except (_BadControl, SimulatorError) as exc:
        return json_error("invalid_request", str(exc))
    return json_body({"order": order.order_id})


def _locator(body: dict[str, Any], *, extra: tuple[str, ...]) -> Locator:
    unknown = set(body) - {*LOCATOR_KINDS, *extra}
    if unknown:
        raise _BadControl(f"unknown members: {', '.join(sorted(unknown))}")
    given = [kind for kind in LOCATOR_KINDS if kind in body]
    if len(given) != 1:
        raise _BadControl(f"exactly one of {', '.join(LOCATOR_KINDS)} is required")
    value = body[given[0]]
    if not isinstance(value, str) or not value:
        raise _BadControl(f"{given[0]} must be a non-empty string")
    return Locator(given[0], value)


async def handle_faults_add(request: web.Request) -> web.StreamResponse:
    faults = request.app[STATE].headless_faults
    try:
        body = await _json_object(request)
        unknown = set(body) - {"fault", "count"}
        if unknown:
            raise _BadControl(f"unknown members: {', '.join(sorted(unknown))}")
        kind, count = body.get("fault"), body.get("count", 1)
        if kind not in FAULT_KINDS:
            raise _BadControl(f"fault must be one of {', '.join(FAULT_KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_QUEUED_FAULTS:
            raise _BadControl(f"count must be an integer from 1 to {MAX_QUEUED_FAULTS}")
        faults.add(str(kind), count)
    except (_BadControl, ValueError) as exc:
        return json_error("invalid_request", str(exc))
    return json_body({"faults": faults.snapshot()})


async def handle_faults_clear(request: web.Request) -> web.StreamResponse:
    faults = request.app[STATE].headless_faults
    faults.clear()
    return json_body({"faults": faults.snapshot()})


async def handle_faults_show(request: web.Request) -> web.StreamResponse:
    return json_body({"faults": request.app[STATE].headless_faults.snapshot()})


async def handle_poll_times(request: web.Request) -> web.StreamResponse:
    """When the headless polls arrived, on the IdP's clock (oldest first)."""
    return json_body({"polls": list(request.app[STATE].headless_poll_times)})


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise _BadControl("the body must be application/json")
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise _BadControl("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadControl("the body must be a JSON object")
    return body
