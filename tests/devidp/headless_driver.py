"""Drives the dev IdP's headless endpoints like a relying party, and its simulated BankID app."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse

from gateway.devidp.bankid_qr import animated_qr_data
from gateway.devidp.headless_store import HeadlessOrder
from gateway.devidp.state import STATE, DevIdpState
from gateway.protocol.jws import SigningKey

from .conftest import BASIC_SECRET, POST_SECRET, FakeClock
from .driver import ISSUER, JWT_BEARER, Idp, basic_auth, client_assertion

HEADLESS_GRANT = "urn:grn:params:grant-type:headless"
SE_BANKID = "urn:grn:authn:se:bankid"
QR_DATA = re.compile(r"^bankid\.[0-9a-f-]{36}\.\d+\.[0-9a-f]{64}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
END_USER_IP = "192.0.2.10"


def state_of(idp: Idp) -> DevIdpState:
    app = idp.app
    assert app is not None
    return app[STATE]


def order_of(idp: Idp, req_id: str) -> HeadlessOrder:
    order = state_of(idp).headless.get(req_id)
    assert order is not None
    return order


def qr_frame(order: HeadlessOrder, seconds: int) -> str:
    return animated_qr_data(order.qr_start_token, order.qr_start_secret, seconds)


async def json_of(response: ClientResponse, status: int) -> Any:
    body = await response.json()
    assert response.status == status, body
    assert response.headers["Cache-Control"] == "no-store"
    return body


async def error_of(response: ClientResponse, status: int, error: str) -> str:
    body = await json_of(response, status)
    assert body["error"] == error, body
    return str(body["error_description"])


@dataclass
class Headless:
    """A relying party of the dev IdP using the Headless flow, plus the test's hands on the app."""

    idp: Idp
    client_key: SigningKey
    clock: FakeClock

    def authenticate(self, form: dict[str, str], client_id: str, **assertion: Any) -> dict[str, str]:
        """Adds client authentication the way ``client_id`` is registered; returns the headers."""
        if client_id == "basic-client":
            return {"Authorization": basic_auth(client_id, BASIC_SECRET)}
        if client_id == "post-client":
            form.update(client_id=client_id, client_secret=POST_SECRET)
            return {}
        claims = {"aud": ISSUER, **assertion}
        form.update(
            client_assertion_type=JWT_BEARER,
            client_assertion=client_assertion(self.client_key, client_id, self.clock(), **claims),
        )
        return {}

    async def start_response(
        self, client_id: str = "jwt-client", *, assertion: dict[str, Any] | None = None, **overrides: Any
    ) -> ClientResponse:
        """POST /headless/authorize; ``overrides`` replace (None: drop) the scope, acr_values, end_user_ip."""
        fields: dict[str, str | None] = {"scope": "openid", "acr_values": SE_BANKID, "end_user_ip": END_USER_IP}
        fields.update(overrides)
        form = {k: v for k, v in fields.items() if v is not None}
        headers = self.authenticate(form, client_id, **(assertion or {}))
        return await self.idp.post("/headless/authorize", data=form, headers=headers)

    async def start(self, client_id: str = "jwt-client", **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = await json_of(await self.start_response(client_id, **overrides), 200)
        return body

    async def poll(
        self, req_id: str, client_id: str = "jwt-client", *, assertion: dict[str, Any] | None = None
    ) -> ClientResponse:
        form = {"grant_type": HEADLESS_GRANT, "headless_req_id": req_id}
        headers = self.authenticate(form, client_id, **(assertion or {}))
        return await self.idp.post("/token", data=form, headers=headers)

    async def pending(self, req_id: str, hint: str, client_id: str = "jwt-client") -> str:
        """Polls once (after waiting the interval) and expects authorization_pending with ``hint``."""
        self.clock.advance(5)
        body = await json_of(await self.poll(req_id, client_id), 400)
        assert (body["error"], body["acr_data"]["hintCode"]) == ("authorization_pending", hint), body
        return str(body["acr_data"]["qrData"])

    async def collect(self, req_id: str, client_id: str = "jwt-client") -> dict[str, Any]:
        self.clock.advance(5)
        body: dict[str, Any] = await json_of(await self.poll(req_id, client_id), 200)
        return body

    async def control(self, action: str, status: int = 200, **body: Any) -> Any:
        return await json_of(await self.idp.post(f"/_dev/bankid/{action}", json=body), status)

    async def fault(self, fault: str, count: int = 1) -> list[str]:
        body = await json_of(await self.idp.post("/_dev/headless/faults", json={"fault": fault, "count": count}), 200)
        return list(body["faults"])

    async def queued_faults(self) -> list[str]:
        return list((await json_of(await self.idp.get("/_dev/headless/faults"), 200))["faults"])
