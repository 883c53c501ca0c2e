"""JSON answers of the back-channel endpoints (RFC 6749 §5.2 error bodies), never cached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_body(body: Mapping[str, Any], *, status: int = 200) -> web.Response:
    return web.json_response(dict(body), status=status, headers=NO_STORE)


def json_error(
    error: str,
    description: str,
    status: int = 400,
    *,
    challenge: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """``{"error", "error_description", ...extra}``; ``challenge`` asks for HTTP Basic (RFC 6749 §5.2)."""
    headers = dict(NO_STORE)
    if challenge:
        headers["WWW-Authenticate"] = 'Basic realm="devidp"'
    body = {"error": error, "error_description": description, **(extra or {})}
    return web.json_response(body, status=status, headers=headers)
