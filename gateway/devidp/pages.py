"""HTML pages of the dev IdP. Every reflected value goes through ``esc``; every page has the banner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape

from aiohttp import web

from gateway.devidp.authrequest import AuthorizationRequest
from gateway.devidp.persons import TestPerson

BANNER = "Development identity provider — not for production use"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f6f6;color:#222}
.banner{background:#b00020;color:#fff;font-weight:bold;padding:.75em 1em;text-align:center}
main{max-width:42em;margin:1.5em auto;padding:0 1em}
.person{background:#fff;border:1px solid #ccc;border-radius:6px;padding:.75em 1em;margin:.75em 0}
button{font-size:1em;padding:.4em 1em;cursor:pointer}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;font-size:.9em}
dd{margin:0;word-break:break-all}
"""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def content_security_policy(form_action: Iterable[str] = (), script_nonce: str | None = None) -> str:
    sources = " ".join(["'self'", *form_action])
    script = f"script-src 'nonce-{script_nonce}'; " if script_nonce else ""
    return (
        f"default-src 'none'; {script}style-src 'unsafe-inline'; form-action {sources}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def html_response(title: str, body: str, *, status: int = 200, csp: str | None = None) -> web.Response:
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{esc(title)} · dev IdP</title><style>{_STYLE}</style></head>\n"
        f'<body><div class="banner" role="alert">{esc(BANNER)}</div>\n<main>\n{body}\n</main></body></html>\n'
    )
    response = web.Response(text=page, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = csp or content_security_policy()
    return response


def login_page(
    request: AuthorizationRequest, *, request_id: str, decide_path: str, persons: Sequence[TestPerson]
) -> str:
    hidden = f'<input type="hidden" name="request_id" value="{esc(request_id)}">'
    forms = "\n".join(
        f'<form class="person" method="post" action="{esc(decide_path)}">{hidden}'
        f'<input type="hidden" name="person" value="{esc(p.id)}">'
        f"<div>{esc(p.name)} · {esc(p.country)} · {esc(p.ssn)} · born {esc(p.birthdate)}</div>"
        f'<button type="submit">Log in as {esc(p.name)}</button></form>'
        for p in persons
    )
    cancel = (
        f'<form method="post" action="{esc(decide_path)}">{hidden}'
        '<input type="hidden" name="cancel" value="1"><button type="submit">Cancel</button></form>'
    )
    details = _definition_list(
        {
            "Client": request.client_id,
            "Redirect URI": request.target.redirect_uri,
            "Response mode": request.target.response_mode,
            "Scope": " ".join(request.scope),
            "ACR to be issued": request.acr,
            "State": request.state,
            "UI locales": " ".join(request.ui_locales) or "(none)",
            "Login hint": request.login_hint or "(none)",
        }
    )
    return f"<h1>Choose a test person</h1>\n{details}\n{forms}\n{cancel}"


def error_page(message: str) -> str:
    return f"<h1>Request refused</h1>\n<p>{esc(message)}</p>\n<p>Nothing was sent back to the application.</p>"


def form_post_page(action: str, fields: Mapping[str, str], *, script_nonce: str) -> str:
    """OAuth 2.0 Form Post Response Mode: auto-submitted, with a button for when scripts are off."""
    inputs = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields.items())
    return (
        f'<h1>Returning to the application</h1>\n<form method="post" action="{esc(action)}">{inputs}'
        '<button type="submit">Continue</button></form>\n'
        f'<script nonce="{esc(script_nonce)}">document.forms[0].submit();</script>'
    )


def logged_out_page(note: str | None = None) -> str:
    extra = f"\n<p>{esc(note)}</p>" if note else ""
    return f"<h1>You are logged out</h1>\n<p>You can close this window.</p>{extra}"


def _definition_list(items: Mapping[str, str]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items.items())
    return f"<dl>{rows}</dl>"
