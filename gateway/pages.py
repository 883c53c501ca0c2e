"""HTML pages the gateway shows a person (web layer). Every reflected value is escaped; no scripts."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

from aiohttp import web

CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}\Z")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1a1a1a}"
    "h1{font-size:1.4rem}button,a.button{font-size:1rem;padding:.5rem 1.2rem;border-radius:.3rem;"
    "border:1px solid #245;background:#245;color:#fff;text-decoration:none;cursor:pointer}"
    "p.detail{color:#555;font-size:.9rem}[hidden]{display:none!important}"
    "button.secondary{background:#fff;color:#245}:focus-visible{outline:3px solid #f90;outline-offset:2px}"
    ".qr img{display:block;margin:1rem 0;image-rendering:pixelated}.error{color:#a00}"
    "ul.choices{list-style:none;padding:0}ul.choices li{margin:.8rem 0}"
    "label{display:block;margin:.5rem 0}input{font-size:1.1rem;padding:.4rem;margin-bottom:.8rem}"
)


def csp_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL as a CSP source expression; None for anything else, so a
    provider's metadata can never add a directive or a wildcard to our policy."""
    if any(c <= " " or c == "\x7f" for c in url):  # urlsplit would silently drop tabs and newlines
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not _HOST.match(host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def render(
    title: str,
    body_html: str,
    *,
    status: int = 200,
    lang: str = "en",
    referrer_policy: str = "no-referrer",
    form_action: tuple[str, ...] = (),
) -> web.Response:
    document = (
        f'<!doctype html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body_html}</main></body></html>"
    )
    headers = {**SECURITY_HEADERS, "Referrer-Policy": referrer_policy}
    if form_action:
        allowed = " ".join(("form-action 'self'", *form_action))
        headers["Content-Security-Policy"] = CSP.replace("form-action 'self'", allowed)
    return web.Response(status=status, text=document, content_type="text/html", headers=headers)


def error_page(status: int, message: str, *, code: str, retry_url: str | None = None) -> web.Response:
    retry = f'<p><a class="button" href="{html.escape(retry_url)}">Try again</a></p>' if retry_url else ""
    body = f'<p>{html.escape(message)}</p>{retry}<p class="detail">Error code: {html.escape(code)}</p>'
    return render("Sign-in problem" if status < 500 else "Service problem", body, status=status)


def logout_confirm_page(*, continues_to: str | None = None) -> web.Response:
    """``continues_to``: the provider's end-session URL the logout redirects to. Browsers apply CSP
    form-action to a form's redirects as well, so its origin must be allowed, or the post is blocked."""
    body = (
        '<p>Do you want to log out?</p><form method="post" action="/_auth/logout">'
        '<button type="submit">Log out</button></form>'
        '<form method="post" action="/_auth/logout?everywhere=1">'
        '<p><button type="submit" class="secondary">Log out on all devices</button></p></form>'
    )
    # A page with a form sends its origin with the post (the logout's same-origin check reads it);
    # no-referrer would make browsers send `Origin: null`. The referrer still never leaves this origin.
    extra = csp_origin(continues_to) if continues_to else None
    return render("Log out", body, referrer_policy="same-origin", form_action=(extra,) if extra else ())


def logged_out_page() -> web.Response:
    return render("You are logged out", '<p><a class="button" href="/">Log in again</a></p>')
