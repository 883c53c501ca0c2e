"""HTML of the simulated BankID app (no JavaScript; the banner comes from pages.html_response)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.devidp.headless_store import HeadlessOrder
from gateway.devidp.pages import esc
from gateway.devidp.persons import TestPerson

TITLE = "Simulated BankID app"


def short_token(token: str) -> str:
    """Only the last 6 characters of an autostart token are ever shown."""
    return "…" + token[-6:]


def _hidden(name: str, value: str | None) -> str:
    return "" if value is None else f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def home_page(*, open_action: str, orders: Sequence[HeadlessOrder], now: float) -> str:
    scan = (
        f'<form method="post" action="{esc(open_action)}">'
        '<label>QR code payload (qrData) <input type="text" name="qrData" size="60" required></label> '
        '<button type="submit">Scan QR code</button></form>'
    )
    autostart = (
        f'<form method="post" action="{esc(open_action)}">'
        '<label>Autostart token <input type="text" name="autostarttoken" size="40" required></label> '
        '<button type="submit">Open with autostart token</button></form>'
    )
    if orders:
        items = "\n".join(
            f'<li><form method="post" action="{esc(open_action)}">{_hidden("order", o.order_id)}'
            f"Autostart token {esc(short_token(o.auto_start_token))} · client {esc(o.client_id)} · "
            f"{esc(o.hint)} · started {int(now - o.created_at)} s ago "
            f'<button type="submit">Open order {esc(short_token(o.auto_start_token))}</button></form></li>'
            for o in orders
        )
        pending = f"<ul>\n{items}\n</ul>"
    else:
        pending = "<p>No pending orders.</p>"
    return (
        f"<h1>{esc(TITLE)}</h1>\n<p>This page plays the BankID app on a phone. Scan (paste) a QR code, "
        "use an autostart token, or pick a pending order.</p>\n"
        f"<h2>Scan QR code</h2>\n{scan}\n<h2>Open with autostart token</h2>\n{autostart}\n"
        f"<h2>Pending orders</h2>\n{pending}"
    )


def order_page(
    order: HeadlessOrder,
    *,
    persons: Sequence[TestPerson],
    identify_action: str,
    cancel_action: str,
    redirect: str | None,
    now: float,
) -> str:
    hidden = _hidden("order", order.order_id) + _hidden("redirect", redirect)
    forms = "\n".join(
        f'<form class="person" method="post" action="{esc(identify_action)}">{hidden}{_hidden("person", p.id)}'
        f"<div>{esc(p.name)} · personnummer {esc(p.ssn)}</div>"
        f'<button type="submit">Identify as {esc(p.name)}</button></form>'
        for p in persons
    )
    cancel = f'<form method="post" action="{esc(cancel_action)}">{hidden}<button type="submit">Cancel</button></form>'
    details = (
        f"<dl><dt>Requested by</dt><dd>{esc(order.client_id)}</dd>"
        f"<dt>Autostart token</dt><dd>{esc(short_token(order.auto_start_token))}</dd>"
        f"<dt>Expires in</dt><dd>{max(0, int(order.expires_at - now))} s</dd></dl>"
    )
    return f"<h1>Identify with BankID</h1>\n{details}\n<p>Choose who you are.</p>\n{forms}\n{cancel}"


def answered_page(heading: str, message: str, *, return_to: str | None, home: str) -> str:
    back = (
        f'<p><a href="{esc(return_to)}">Return to the application</a></p>'
        if return_to
        else "<p>Go back to the application; it will notice on its next poll.</p>"
    )
    return f'<h1>{esc(heading)}</h1>\n<p>{esc(message)}</p>\n{back}\n<p><a href="{esc(home)}">{esc(TITLE)}</a></p>'


def refused_page(message: str, *, home: str) -> str:
    return f'<h1>Cannot do that</h1>\n<p>{esc(message)}</p>\n<p><a href="{esc(home)}">Back to the {esc(TITLE)}</a></p>'
