"""``python -m gateway.devidp``: run the development IdP on loopback for manual testing."""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from gateway.devidp.app import create_devidp_app
from gateway.devidp.clients import AUTH_METHODS, PRIVATE_KEY_JWT, DevClient
from gateway.devidp.pages import BANNER
from gateway.keys import load_signing_key
from gateway.protocol.jws import JoseError, parse_jwks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.devidp", description=f"{BANNER}. Listens on loopback only."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--issuer", help="defaults to http://HOST:PORT")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", help="for client_secret_basic / client_secret_post")
    parser.add_argument("--auth-method", choices=AUTH_METHODS, default="client_secret_basic")
    parser.add_argument("--client-jwks", type=Path, help="JWKS file of the client, for private_key_jwt")
    parser.add_argument("--redirect-uri", action="append", required=True, help="repeatable")
    parser.add_argument("--post-logout-redirect-uri", action="append", default=[], help="repeatable")
    parser.add_argument("--signing-key", type=Path, help="PEM private key (default: a fresh RSA key)")
    return parser


def is_loopback_host(host: str) -> bool:
    """True for a loopback IP literal, or a name that resolves only to loopback addresses."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0])).is_loopback for info in infos)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        parser.error(f"--host {args.host} is not a loopback address; the dev IdP never listens elsewhere")
    issuer_host = f"[{args.host}]" if ":" in args.host else args.host
    issuer = args.issuer or f"http://{issuer_host}:{args.port}"
    if not is_loopback_host(urlsplit(issuer).hostname or ""):
        parser.error("--issuer must name a loopback host")
    try:
        jwks = parse_jwks(_read_json(args.client_jwks)) if args.client_jwks else ()
        client = DevClient(
            client_id=args.client_id,
            redirect_uris=tuple(args.redirect_uri),
            auth_method=args.auth_method,
            client_secret=args.client_secret if args.auth_method != PRIVATE_KEY_JWT else None,
            jwks=jwks,
            post_logout_redirect_uris=tuple(args.post_logout_redirect_uri),
        )
        key = load_signing_key(args.signing_key) if args.signing_key else None
        app = create_devidp_app(issuer=issuer, clients=[client], signing_key=key)
    except (ValueError, OSError, JoseError) as exc:
        parser.error(str(exc))
    print(f"*** {BANNER} ***\nissuer: {issuer}", file=sys.stderr)
    web.run_app(app, host=args.host, port=args.port)


def _read_json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
