"""HTML pages the gateway shows a person (web layer). Every reflected value is escaped; no scripts."""

from __future__ import annotations

import html

from aiohttp import web

CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
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


def render(title: str, body_html: str, *, status: int = 200, lang: str = "en") -> web.Response:
    document = (
        f'<!doctype html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body_html}</main></body></html>"
    )
    return web.Response(status=status, text=document, content_type="text/html", headers=SECURITY_HEADERS)


def error_page(status: int, message: str, *, code: str, retry_url: str | None = None) -> web.Response:
    retry = f'<p><a class="button" href="{html.escape(retry_url)}">Try again</a></p>' if retry_url else ""
    body = f'<p>{html.escape(message)}</p>{retry}<p class="detail">Error code: {html.escape(code)}</p>'
    return render("Sign-in problem" if status < 500 else "Service problem", body, status=status)


def logout_confirm_page() -> web.Response:
    body = (
        '<p>Do you want to log out?</p><form method="post" action="/_auth/logout">'
        '<button type="submit">Log out</button></form>'
    )
    return render("Log out", body)


def logged_out_page() -> web.Response:
    return render("You are logged out", '<p><a class="button" href="/">Log in again</a></p>')
