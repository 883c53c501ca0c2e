"""What the simulated BankID app does to an order: find it, open it, identify, decline.

Shared by the HTML simulator (bankid_app.py) and the JSON control endpoints (bankid_control.py).
An order is found the way a phone finds it: by scanning a QR frame (whose HMAC must verify with the
order's secret and which must be at most 30 seconds old), by an autostart token, or by the opaque
order id the simulator itself handed out.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.devidp.bankid_qr import frame_matches, parse_qr_data
from gateway.devidp.headless_store import OUTSTANDING, HeadlessOrder, OrderStateError
from gateway.devidp.persons import TEST_PERSONS, TestPerson
from gateway.devidp.state import DevIdpState

QR_MAX_AGE = 30
#: Only these can identify with (simulated) Swedish BankID.
SWEDISH_PERSONS: tuple[TestPerson, ...] = tuple(p for p in TEST_PERSONS if p.country == "SE")

QR_DATA = "qrData"
AUTO_START_TOKEN = "autoStartToken"
ORDER = "order"
LOCATOR_KINDS = (QR_DATA, AUTO_START_TOKEN, ORDER)


class SimulatorError(ValueError):
    """Shown to the user of the simulator (or returned to a test) as is."""


@dataclass(frozen=True, slots=True)
class Locator:
    kind: str  # one of LOCATOR_KINDS
    value: str


def locate(state: DevIdpState, locator: Locator) -> HeadlessOrder:
    if locator.kind == QR_DATA:
        return _by_qr_data(state, locator.value)
    if locator.kind == AUTO_START_TOKEN:
        order = state.headless.live_by_auto_start_token(locator.value)
        if order is None:
            raise SimulatorError("No pending order has this autostart token (unknown, finished or expired).")
        return order
    order = state.headless.live_by_order_id(locator.value)
    if order is None:
        raise SimulatorError("This order is unknown, finished or expired.")
    return order


def _by_qr_data(state: DevIdpState, qr_data: str) -> HeadlessOrder:
    frame = parse_qr_data(qr_data.strip())
    if frame is None:
        raise SimulatorError("This is not a BankID QR code (expected bankid.<token>.<time>.<hmac>).")
    order = state.headless.live_by_qr_start_token(frame.qr_start_token)
    if order is None:
        raise SimulatorError("No pending order has this QR code (unknown, finished or expired).")
    if not frame_matches(frame, order.qr_start_secret):
        raise SimulatorError("The QR code's HMAC does not match the order: it was not made by this IdP.")
    elapsed = state.clock() - order.created_at
    if frame.seconds > elapsed:
        raise SimulatorError("The QR code is from the future.")
    if elapsed - frame.seconds > QR_MAX_AGE:
        raise SimulatorError(f"The QR code is more than {QR_MAX_AGE} seconds old; scan the current one.")
    return order


def open_order(state: DevIdpState, locator: Locator) -> HeadlessOrder:
    """Scan the QR code or follow the autostart link: the order's hint becomes ``started``."""
    order = locate(state, locator)
    try:
        order.scan()
    except OrderStateError as exc:
        raise SimulatorError(str(exc).capitalize() + ".") from None
    return order


def identify(state: DevIdpState, locator: Locator, person_id: str) -> HeadlessOrder:
    """Choose a person and enter the security code; opens the order first if needed."""
    person = find_swedish_person(person_id)
    order = locate(state, locator)
    try:
        if order.hint == OUTSTANDING:
            order.scan()
        order.identify(person.id, state.clock())
    except OrderStateError as exc:
        raise SimulatorError(str(exc).capitalize() + ".") from None
    return order


def decline(state: DevIdpState, locator: Locator) -> HeadlessOrder:
    order = locate(state, locator)
    try:
        if order.hint == OUTSTANDING:
            order.scan()
        order.decline()
    except OrderStateError as exc:
        raise SimulatorError(str(exc).capitalize() + ".") from None
    return order


def find_swedish_person(person_id: str) -> TestPerson:
    person = next((p for p in SWEDISH_PERSONS if p.id == person_id), None)
    if person is None:
        choices = ", ".join(p.id for p in SWEDISH_PERSONS)
        raise SimulatorError(f"Only the Swedish test persons can identify with BankID ({choices}).")
    return person
