"""The gateway's own login pages (web layer): the BankID / CIBA waiting page and the provider choice.

No third-party code: one small script served by the gateway itself, allowed by a strict CSP
(script-src 'self', no inline script). The QR code is an SVG drawn by the gateway.
"""

from __future__ import annotations

import functools
import html
from importlib import resources
from urllib.parse import quote, urlencode

from aiohttp import web

from gateway.config import ProviderSettings
from gateway.errors import BadRequestError
from gateway.pages import SECURITY_HEADERS, render
from gateway.protocol import bankid, field_lines
from gateway.runtime import RUNTIME

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; img-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

TEXTS: dict[str, dict[str, str]] = {
    "sv": {
        "title": "Logga in med {name}",
        "qr_heading": "Skanna QR-koden med BankID-appen",
        "qr_help": "Öppna BankID-appen och välj QR-ikonen. Rikta kameran mot QR-koden.",
        "qr_alt": "QR-kod för BankID-appen",
        "same_device": "Öppna BankID på den här enheten",
        "same_device_alt": "Öppna BankID (alternativ länk)",
        "cancel": "Avbryt",
        "retry": "Försök igen",
        "ssn_label": "Personnummer (12 siffror)",
        "continue": "Fortsätt",
        "waiting": "Väntar…",
        "noscript": "Den här sidan behöver JavaScript. Aktivera JavaScript och ladda om sidan.",
        "connection": "Anslutningen bröts. Försöker igen…",
        "start_failed": "Inloggningen kunde inte startas. Försök igen.",
    },
    "en": {
        "title": "Log in with {name}",
        "qr_heading": "Scan the QR code with the BankID app",
        "qr_help": "Open the BankID app and choose the QR icon. Point the camera at the QR code.",
        "qr_alt": "QR code for the BankID app",
        "same_device": "Open BankID on this device",
        "same_device_alt": "Open BankID (alternative link)",
        "cancel": "Cancel",
        "retry": "Try again",
        "ssn_label": "Personal identity number (12 digits)",
        "continue": "Continue",
        "waiting": "Waiting…",
        "noscript": "This page needs JavaScript. Turn JavaScript on and reload the page.",
        "connection": "The connection was lost. Retrying…",
        "start_failed": "The login could not be started. Please try again.",
    },
}


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def login_page(provider: ProviderSettings, *, return_to: str, lang: bankid.Lang) -> web.Response:
    t = TEXTS[lang]
    is_ciba = provider.flow == "ciba"
    ciba_form = (
        f'<form id="identify" class="step" novalidate>'
        f'<label for="login-hint">{html.escape(t["ssn_label"])}</label>'
        f'<input id="login-hint" name="login_hint" inputmode="numeric" autocomplete="off" required '
        f'pattern="[0-9]{{10,12}}" maxlength="13" aria-describedby="form-error">'
        f'<p id="form-error" class="error" role="alert"></p>'
        f'<button type="submit">{html.escape(t["continue"])}</button></form>'
        if is_ciba
        else ""
    )
    qr_block = (
        ""
        if is_ciba
        else (
            f"<h2>{html.escape(t['qr_heading'])}</h2><p>{html.escape(t['qr_help'])}</p>"
            f'<div class="qr"><img id="qr" alt="{_attr(t["qr_alt"])}" width="240" height="240" hidden></div>'
            f'<p class="links"><a id="open-app" class="button" href="#" hidden>{html.escape(t["same_device"])}</a> '
            f'<a id="open-app-alt" href="#" hidden>{html.escape(t["same_device_alt"])}</a></p>'
        )
    )
    body = (
        f'<div id="login" data-provider="{_attr(provider.name)}" data-flow="{_attr(provider.flow)}" '
        f'data-rd="{_attr(return_to)}" data-lang="{lang}" '
        f'data-connection="{_attr(t["connection"])}" data-start-failed="{_attr(t["start_failed"])}">'
        f"<noscript><p>{html.escape(t['noscript'])}</p></noscript>"
        f"{ciba_form}"
        f'<section id="wait" class="step" {"hidden" if is_ciba else ""} aria-labelledby="status">'
        f"{qr_block}"
        f'<p id="status" role="status" aria-live="polite">{html.escape(t["waiting"])}</p>'
        f'<button id="cancel" type="button" class="secondary">{html.escape(t["cancel"])}</button></section>'
        f'<section id="done" class="step" hidden><p id="final" tabindex="-1"></p>'
        f'<button id="retry" type="button">{html.escape(t["retry"])}</button></section>'
        f'</div><script src="/_auth/static/headless.js" defer></script>'
    )
    response = render(t["title"].format(name=provider.display_name), body, lang=lang)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


async def handle_login_page(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    provider = rt.settings.provider(request.query.get("provider", ""))
    if provider is None or not provider.is_poll_flow:
        raise BadRequestError("unknown_provider", public_message="Unknown login provider.")
    return_to = rt.return_target(request.query.get("rd"))
    lang = bankid.choose_language(provider.ui_locales, field_lines.joined(request.headers, "Accept-Language"))
    return login_page(provider, return_to=return_to, lang=lang)


def provider_choice_page(providers: tuple[ProviderSettings, ...], *, return_to: str) -> web.Response:
    def link(provider: ProviderSettings) -> str:
        query = urlencode({"provider": provider.name, "rd": return_to}, quote_via=quote)
        return f'<li><a class="button" href="/_auth/login?{_attr(query)}">{html.escape(provider.display_name)}</a></li>'

    items = "".join(link(p) for p in providers)
    return render("Choose how to log in", f'<ul class="choices">{items}</ul>')


@functools.cache
def _script() -> bytes:
    return resources.files("gateway").joinpath("static/headless.js").read_bytes()


async def handle_script(_request: web.Request) -> web.StreamResponse:
    script = _script()
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}
    return web.Response(body=script, content_type="text/javascript", headers=headers)
