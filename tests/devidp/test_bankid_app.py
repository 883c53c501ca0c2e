"""The simulated BankID app: the HTML pages a person uses, and the JSON controls tests use."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.devidp.bankid_qr import animated_qr_data
from gateway.protocol import jws
from gateway.protocol.jws import SigningKey

from .conftest import FakeClock
from .driver import BANNER, Idp, form_with_button, parse_forms
from .headless_driver import Headless, json_of, order_of, qr_frame

SWEDISH_BUTTONS = ["Identify as Sven Svensson", "Identify as Åsa Öberg"]


@pytest.fixture
def headless(idp: Idp, client_key: SigningKey, clock: FakeClock) -> Headless:
    return Headless(idp, client_key, clock)


async def page(response: Any, status: int = 200) -> str:
    html: str = await response.text()
    assert response.status == status, html
    assert BANNER in html and "<script" not in html
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "form-action 'self'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    return html


def buttons_of(html: str) -> list[str]:
    return [b for form in parse_forms(html) for b in form.buttons]


async def press(idp: Idp, html: str, button: str) -> str:
    form = form_with_button(html, button)
    assert form.method == "post"
    return await page(await idp.post(form.action, data=form.fields, allow_redirects=False))


async def test_home_page_offers_scan_autostart_and_pending_orders(headless: Headless, idp: Idp) -> None:
    empty = await page(await idp.get("/bankid-app"))
    assert buttons_of(empty) == ["Scan QR code", "Open with autostart token"]
    assert "No pending orders" in empty

    req_ids = [(await headless.start())["headless_req_id"] for _ in range(2)]
    orders = [order_of(idp, r) for r in req_ids]
    html = await page(await idp.get("/bankid-app"))
    expected = [f"Open order …{o.auto_start_token[-6:]}" for o in orders]
    assert buttons_of(html) == ["Scan QR code", "Open with autostart token", *expected]
    for order in orders:  # only the last 6 characters, and nothing secret
        for secret in (order.auto_start_token, order.req_id, order.qr_start_secret, order.qr_start_token):
            assert secret not in html
    for form in parse_forms(html):
        assert (form.action, form.method) == ("/bankid-app/open", "post")


async def test_autostart_link_then_identify(headless: Headless, idp: Idp) -> None:
    req_id = (await headless.start())["headless_req_id"]
    order = order_of(idp, req_id)
    await headless.pending(req_id, "outstandingTransaction")
    html = await page(await idp.get("/bankid-app", params={"autostarttoken": order.auto_start_token}))
    assert buttons_of(html) == [*SWEDISH_BUTTONS, "Cancel"]  # Swedish test persons only
    assert order.auto_start_token not in html and order.req_id not in html
    await headless.pending(req_id, "started")

    done = await press(idp, html, "Identify as Åsa Öberg")
    assert "Identified" in done and "Åsa Öberg" in done
    await headless.pending(req_id, "userSign")
    claims = jws.unverified_claims((await headless.collect(req_id))["id_token"])
    assert (claims["name"], claims["ssn"]) == ("Åsa Öberg", "199003152387")


async def test_pasting_the_qr_code(headless: Headless, idp: Idp) -> None:
    req_id = (await headless.start())["headless_req_id"]
    qr_data = await headless.pending(req_id, "outstandingTransaction")
    home = await page(await idp.get("/bankid-app"))
    form = form_with_button(home, "Scan QR code")
    html = await page(await idp.post(form.action, data={"qrData": qr_data}))
    assert buttons_of(html) == [*SWEDISH_BUTTONS, "Cancel"]
    await headless.pending(req_id, "started")
    await press(idp, html, "Identify as Sven Svensson")
    await headless.pending(req_id, "userSign")
    assert jws.unverified_claims((await headless.collect(req_id))["id_token"])["ssn"] == "196802020575"


async def test_autostart_token_form(headless: Headless, idp: Idp) -> None:
    body = await headless.start()
    html = await page(await idp.post("/bankid-app/open", data={"autostarttoken": body["acr_data"]["autoStartToken"]}))
    assert "Cancel" in buttons_of(html)
    await headless.pending(body["headless_req_id"], "started")


async def test_pending_order_button(headless: Headless, idp: Idp) -> None:
    req_id = (await headless.start())["headless_req_id"]
    order = order_of(idp, req_id)
    home = await page(await idp.get("/bankid-app"))
    html = await press(idp, home, f"Open order …{order.auto_start_token[-6:]}")
    assert buttons_of(html) == [*SWEDISH_BUTTONS, "Cancel"]
    await headless.pending(req_id, "started")
    assert "No pending orders" not in await page(await idp.get("/bankid-app"))  # opened, not answered


async def test_cancel_button(headless: Headless, idp: Idp, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    token = order_of(idp, req_id).auto_start_token
    html = await page(await idp.get("/bankid-app", params={"autostarttoken": token}))
    assert "Cancelled" in await press(idp, html, "Cancel")
    clock.advance(5)
    body = await json_of(await headless.poll(req_id), 400)
    assert body == {"error": "access_denied", "error_description": "user declined"}
    assert "No pending orders" in await page(await idp.get("/bankid-app"))


async def test_answered_order_cannot_be_answered_again(headless: Headless, idp: Idp) -> None:
    req_id = (await headless.start())["headless_req_id"]
    token = order_of(idp, req_id).auto_start_token
    html = await page(await idp.get("/bankid-app", params={"autostarttoken": token}))
    await press(idp, html, "Identify as Sven Svensson")
    form = form_with_button(html, "Identify as Åsa Öberg")
    await page(await idp.post(form.action, data=form.fields), 400)
    await page(await idp.get("/bankid-app", params={"autostarttoken": token}), 400)
    await headless.pending(req_id, "userSign")
    assert jws.unverified_claims((await headless.collect(req_id))["id_token"])["name"] == "Sven Svensson"


async def test_identify_form_refuses_other_persons(headless: Headless, idp: Idp) -> None:
    req_id = (await headless.start())["headless_req_id"]
    token = order_of(idp, req_id).auto_start_token
    html = await page(await idp.get("/bankid-app", params={"autostarttoken": token}))
    form = form_with_button(html, "Identify as Sven Svensson")
    refused = await page(await idp.post(form.action, data={**form.fields, "person": "no-kari"}), 400)
    assert "Swedish" in refused
    await headless.pending(req_id, "started")


async def test_return_link_only_towards_the_client(headless: Headless, idp: Idp) -> None:
    token = (await headless.start())["acr_data"]["autoStartToken"]
    good = "http://127.0.0.1:8080/auth/se/status?x=1"
    html = await page(await idp.get("/bankid-app", params={"autostarttoken": token, "redirect": good}))
    done = await press(idp, html, "Identify as Sven Svensson")
    assert 'href="http://127.0.0.1:8080/auth/se/status?x=1"' in done

    for bad in ("https://evil.example/", "null", "javascript:alert(1)", "http://user@127.0.0.1:8080/"):
        token = (await headless.start())["acr_data"]["autoStartToken"]
        html = await page(await idp.get("/bankid-app", params={"autostarttoken": token, "redirect": bad}))
        done = await press(idp, html, "Cancel")
        assert "Return to the application" not in done


@pytest.mark.parametrize(
    "params",
    [
        {"autostarttoken": "d2c96ea2-f8d9-4e9f-8d39-4f2e88e10e1c"},
        {"autostarttoken": "<b>x</b>"},
    ],
)
async def test_unknown_autostart_token(idp: Idp, params: dict[str, str]) -> None:
    html = await page(await idp.get("/bankid-app", params=params), 400)
    assert "<b>x</b>" not in html


async def test_repeated_query_parameters(idp: Idp) -> None:
    await page(await idp.get("/bankid-app?autostarttoken=a&autostarttoken=b"), 400)


async def test_open_form_needs_exactly_one_locator(headless: Headless, idp: Idp) -> None:
    body = await headless.start()
    data = {"autostarttoken": body["acr_data"]["autoStartToken"], "qrData": body["acr_data"]["qrData"]}
    await page(await idp.post("/bankid-app/open", data=data), 400)
    await page(await idp.post("/bankid-app/open", data={}), 400)
    await page(await idp.post("/bankid-app/open", json={"qrData": body["acr_data"]["qrData"]}), 400)
    await headless.pending(body["headless_req_id"], "outstandingTransaction")


# --- QR code checks (HTML form and JSON control alike) ----------------------------------------------


async def test_qr_frame_age(headless: Headless, idp: Idp, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    order = order_of(idp, req_id)
    clock.now = order.created_at + 31
    body = await headless.control("scan", 400, qrData=qr_frame(order, 0))
    assert "30 seconds" in body["error_description"]
    assert (await headless.control("scan", qrData=qr_frame(order, 1)))["order"] == order.order_id


async def test_qr_frame_from_the_future(headless: Headless, idp: Idp, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    order = order_of(idp, req_id)
    clock.now = order.created_at + 3.5
    await headless.control("scan", 400, qrData=qr_frame(order, 4))
    await headless.control("scan", 200, qrData=qr_frame(order, 3))


async def test_qr_with_a_wrong_hmac(headless: Headless, idp: Idp) -> None:
    body = await headless.start()
    order = order_of(idp, body["headless_req_id"])
    forged = animated_qr_data(order.qr_start_token, "d28db9a7-4cde-429e-a983-359be676944c", 0)
    result = await headless.control("scan", 400, qrData=forged)
    assert "HMAC" in result["error_description"]
    flipped = body["acr_data"]["qrData"][:-1] + ("0" if body["acr_data"]["qrData"][-1] != "0" else "1")
    await headless.control("scan", 400, qrData=flipped)
    await page(await idp.post("/bankid-app/open", data={"qrData": forged}), 400)
    await headless.pending(body["headless_req_id"], "outstandingTransaction")


@pytest.mark.parametrize(
    "qr_data",
    [
        "not a qr code",
        "bankid.67df3917-fa0d-44e5-b327-edcc928297f8.0.dc69358e712458a66a7525beef148ae8526b1c71610eff2c16cdffb4cdac9bf8",
        "bankid.x.0.y",
    ],
)
async def test_qr_garbage_or_unknown(headless: Headless, qr_data: str) -> None:
    await headless.control("scan", 400, qrData=qr_data)


async def test_expired_orders_cannot_be_opened(headless: Headless, idp: Idp, clock: FakeClock) -> None:
    body = await headless.start()
    order = order_of(idp, body["headless_req_id"])
    clock.advance(120)
    await headless.control("scan", 400, autoStartToken=order.auto_start_token)
    await headless.control("identify", 400, order=order.order_id, person="se-sven")
    await page(await idp.get("/bankid-app", params={"autostarttoken": order.auto_start_token}), 400)
    assert "No pending orders" in await page(await idp.get("/bankid-app"))


# --- JSON control request checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("scan", {}),
        ("scan", {"autoStartToken": "", "qrData": ""}),
        ("scan", {"autoStartToken": 5}),
        ("scan", {"autoStartToken": "x", "person": "se-sven"}),
        ("identify", {"autoStartToken": "TOKEN"}),
        ("identify", {"autoStartToken": "TOKEN", "person": 1}),
        ("decline", {"autoStartToken": "TOKEN", "order": "x"}),
    ],
)
async def test_control_requests_are_checked(headless: Headless, action: str, body: dict[str, Any]) -> None:
    token = (await headless.start())["acr_data"]["autoStartToken"]
    filled = {k: token if v == "TOKEN" else v for k, v in body.items()}
    result = await headless.control(action, 400, **filled)
    assert result["error"] == "invalid_request"


async def test_control_needs_json(idp: Idp) -> None:
    response = await idp.post("/_dev/bankid/scan", data={"autoStartToken": "x"})
    assert response.status == 400 and (await response.json())["error"] == "invalid_request"
