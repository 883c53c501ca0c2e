"""``eid-gateway demo``: the gateway, the development IdP and an echo upstream on loopback, in one process.

The echo upstream stands for "an application that knows nothing about authentication": it shows the
identity headers it received and whether the assertion verified against the gateway's JWKS.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway import keys, logs
from gateway.config import Settings, load_settings
from gateway.protocol import jws
from gateway.protocol.claims import decode_header_value

DEMO_CLIENT_ID = "eid-gateway-demo"
DEMO_HEADLESS_CLIENT_ID = "eid-gateway-demo-headless"
SHOWN_HEADERS = (
    "X-Auth-Ssn",
    "X-Auth-Name",
    "X-Auth-Country",
    "X-Auth-Birthdate",
    "X-Auth-Sub",
    "X-Auth-Idp",
    "X-Auth-Acr",
)
# form-action also covers the redirects after a form POST: the logout form ends at the IdP's
# end_session_endpoint, so the IdP's origin must be allowed too (any upstream with a CSP needs the same).
HTTP = web.AppKey("http", aiohttp.ClientSession)
ECHO_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {idp_origin}"


def demo_config(
    *,
    gateway_port: int,
    idp_port: int,
    upstream_port: int,
    client_secret: str,
    session_secret: str,
    headless_key_file: str,
) -> dict[str, Any]:
    """The same settings as config/demo.yaml, with the ports and secrets filled in."""
    return {
        "listen": f"127.0.0.1:{gateway_port}",
        "public_url": f"http://127.0.0.1:{gateway_port}",
        "upstream": f"http://127.0.0.1:{upstream_port}",
        "providers": [
            {
                "name": "dev",
                "display_name": "Development IdP",
                "flow": "redirect",
                "issuer": f"http://127.0.0.1:{idp_port}",
                "client_id": DEMO_CLIENT_ID,
                "client_auth": "client_secret_basic",
                "client_secret": client_secret,
                "scopes": ["openid", "profile"],
                "claims": {
                    "ssn": "ssn",
                    "name": "name",
                    "given_name": "given_name",
                    "family_name": "family_name",
                    "country": "country",
                    "birthdate": "birthdate",
                },
            },
            {
                # Swedish BankID through Idura's headless flow, imitated by the development IdP.
                "name": "se-bankid",
                "display_name": "BankID (Swedish, headless)",
                "flow": "headless",
                "issuer": f"http://127.0.0.1:{idp_port}",
                "client_id": DEMO_HEADLESS_CLIENT_ID,
                "client_auth": "private_key_jwt",
                "private_key_file": headless_key_file,
                "scopes": ["openid"],
                "acr_values": ["urn:grn:authn:se:bankid"],
                # Idura asks for 5 s; the development IdP allows 1 s so that the demo feels quick.
                "poll_interval": "1s",
                "claims": {"ssn": "ssn", "name": "name", "country": "country", "acr": "authenticationtype"},
            },
        ],
        "session": {"secret": session_secret, "lifetime": "8h", "idle_timeout": "1h"},
        "headers": {
            "ssn": "X-Auth-Ssn",
            "name": "X-Auth-Name",
            "country": "X-Auth-Country",
            "birthdate": "X-Auth-Birthdate",
            "sub": "X-Auth-Sub",
            "idp": "X-Auth-Idp",
            "acr": "X-Auth-Acr",
        },
        "assertion": {"header": "X-Auth-Assertion", "audience": "upstream", "ttl": "60s"},
        "public_paths": ["/healthz"],
    }


class AssertionChecker:
    """Verifies the gateway's assertion the way an upstream should: keys from /_auth/jwks.json."""

    def __init__(self, jwks_url: str, *, issuer: str, audience: str) -> None:
        self.jwks_url, self.issuer, self.audience = jwks_url, issuer, audience
        self.keys: tuple[jws.PublicKey, ...] = ()

    async def check(self, http: aiohttp.ClientSession, token: str | None) -> tuple[str, dict[str, Any]]:
        if not token:
            return "missing", {}
        for attempt in range(2):
            if attempt or not self.keys:
                async with http.get(self.jwks_url) as resp:
                    self.keys = jws.parse_jwks(await resp.json())
            try:
                claims = jws.verify(token, self.keys, algorithms={"ES256", "RS256"})
            except jws.JoseError as exc:
                if exc.reason == "unknown_kid" and attempt == 0:
                    continue
                return f"invalid ({exc.reason})", {}
            if claims.get("iss") != self.issuer or claims.get("aud") != self.audience:
                return "invalid (iss/aud)", claims
            if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
                return "invalid (expired)", claims
            return "verified", claims
        return "invalid", {}


def create_echo_app(checker: AssertionChecker, *, idp_origin: str) -> web.Application:
    csp = ECHO_CSP.format(idp_origin=idp_origin)

    async def lifecycle(app: web.Application) -> Any:
        app[HTTP] = aiohttp.ClientSession()
        yield
        await app[HTTP].close()

    async def handle_echo(request: web.Request) -> web.StreamResponse:
        status, claims = await checker.check(request.app[HTTP], request.headers.get("X-Auth-Assertion"))
        received = {name: request.headers.get(name) for name in SHOWN_HEADERS}
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response(
                {"path": request.path, "headers": dict(request.headers), "assertion": status, "claims": claims}
            )
        rows = "".join(
            f'<tr><th>{html.escape(name)}</th><td data-testid="header-{name.lower()}">'
            f"{html.escape(decode_header_value(value) if value else '(not sent)')}</td></tr>"
            for name, value in received.items()
        )
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Echo upstream</title>'
            "<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto}"
            "th{text-align:left;padding-right:1rem}</style></head><body><main>"
            "<h1>Echo upstream (demo application)</h1>"
            f"<p>Path: <code>{html.escape(request.path_qs)}</code></p>"
            f'<p>Assertion: <strong data-testid="assertion-status">{html.escape(status)}</strong></p>'
            f"<table>{rows}</table>"
            '<form method="post" action="/_auth/logout"><button type="submit">Log out</button></form>'
            "</main></body></html>"
        )
        return web.Response(text=body, content_type="text/html", headers={"Content-Security-Policy": csp})

    async def handle_health(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", handle_health)
    app.router.add_route("*", "/{tail:.*}", handle_echo)
    return app


async def _serve(app: web.Application, port: int, option: str) -> web.AppRunner:
    from gateway.server import ListenerError, bind_problem

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:  # taken since port_problems looked: the same message, no traceback
        await runner.cleanup()
        raise ListenerError([bind_problem(option, "127.0.0.1", port, exc, option=option)]) from exc
    return runner


async def start_demo(*, gateway_port: int, idp_port: int, upstream_port: int) -> tuple[Settings, list[Any]]:
    from gateway.devidp import DevClient, create_devidp_app
    from gateway.server import start_gateway

    client_secret = secrets.token_urlsafe(24)
    headless_pem = keys.generate_rsa_pem()
    key_dir = Path(tempfile.mkdtemp(prefix="eid-gateway-demo-"))
    key_file = key_dir / "headless-client.pem"
    key_file.write_bytes(headless_pem)
    key_file.chmod(0o600)
    settings = load_settings(
        demo_config(
            gateway_port=gateway_port,
            idp_port=idp_port,
            upstream_port=upstream_port,
            client_secret=client_secret,
            session_secret=secrets.token_urlsafe(32),
            headless_key_file=str(key_file),
        )
    )
    idp = create_devidp_app(
        issuer=f"http://127.0.0.1:{idp_port}",
        headless_interval=1.0,
        clients=[
            DevClient(
                client_id=DEMO_HEADLESS_CLIENT_ID,
                auth_method="private_key_jwt",
                jwks=(keys.signing_key_from_pem(headless_pem).public,),
                redirect_uris=(f"{settings.public_url}/_auth/callback/se-bankid",),
            ),
            DevClient(
                client_id=DEMO_CLIENT_ID,
                auth_method="client_secret_basic",
                client_secret=client_secret,
                redirect_uris=(f"{settings.public_url}/_auth/callback/dev",),
                post_logout_redirect_uris=(f"{settings.public_url}/_auth/logged-out",),
            ),
        ],
    )
    checker = AssertionChecker(
        f"{settings.public_url}/_auth/jwks.json", issuer=settings.public_url, audience="upstream"
    )
    runners: list[Any] = [
        await _serve(idp, idp_port, "--idp-port"),
        await _serve(create_echo_app(checker, idp_origin=f"http://127.0.0.1:{idp_port}"), upstream_port,
                     "--upstream-port"),
    ]
    runners.append(await start_gateway(settings))
    runners.append(_KeyDir(key_dir))
    return settings, runners


@dataclass
class _KeyDir:
    """The demo's generated client key lives only as long as the demo."""

    path: Path

    async def stop(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def port_problems(*, gateway_port: int, idp_port: int, upstream_port: int) -> list[str]:
    """The demo's loopback ports that cannot be opened, each named by the option that moves it."""
    from gateway.server import bind_problem, try_bind

    problems = []
    ports = (("--gateway-port", gateway_port), ("--idp-port", idp_port), ("--upstream-port", upstream_port))
    for option, port in ports:
        try:
            try_bind("127.0.0.1", port, reuse_port=False)
        except (OSError, OverflowError) as exc:
            error = exc if isinstance(exc, OSError) else OSError(None, str(exc))
            problems.append(bind_problem(option, "127.0.0.1", port, error, option=option))
    return problems


def run_demo(*, gateway_port: int, idp_port: int, upstream_port: int) -> int:
    problems = port_problems(gateway_port=gateway_port, idp_port=idp_port, upstream_port=upstream_port)
    if problems:
        return _print_port_problems(problems)
    logs.configure("info")

    async def main() -> None:
        settings, runners = await start_demo(gateway_port=gateway_port, idp_port=idp_port, upstream_port=upstream_port)
        print(
            f"\n  eid-gateway demo is running. Open {settings.public_url}/ in a browser.\n"
            f"  development IdP: http://127.0.0.1:{idp_port}   echo upstream: http://127.0.0.1:{upstream_port}\n"
            f"  For 'BankID (Swedish, headless)', act as the phone app at http://127.0.0.1:{idp_port}/bankid-app\n"
            "  Press Ctrl+C to stop.\n",
            flush=True,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for runner in reversed(runners):
                await (runner.stop() if hasattr(runner, "stop") else runner.cleanup())

    from gateway.server import ListenerError

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
    except ListenerError as error:
        return _print_port_problems(error.problems)
    return 0


def _print_port_problems(problems: list[str]) -> int:
    print(f"eid-gateway demo: {len(problems)} problem(s) with its ports:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 2
