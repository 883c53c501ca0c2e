"""A stack for the poll flows: the development IdP with its headless endpoints (Idura's wire format), a
recording upstream and the real gateway with a `flow: headless` provider using private_key_jwt."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway import keys
from gateway.devidp import DevClient, create_devidp_app
from gateway.server import RunningGateway
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway
from tests.support.ports import free_port
from tests.support.stack import base_config

CLIENT_ID = "gw-headless"
POLL_INTERVAL = 0.2


@dataclass
class HeadlessStack:
    gateway: RunningGateway
    echo: EchoUpstream
    issuer: str
    config: dict[str, Any]

    @property
    def url(self) -> str:
        return self.gateway.url

    async def idp(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http, http.post(self.issuer + path, json=body) as resp:
            return resp.status, await resp.json(content_type=None)


@asynccontextmanager
async def running_headless_stack(
    tmp_path: Path, *, customize: Callable[[dict[str, Any]], None] | None = None, expires_in: int = 120
) -> AsyncIterator[HeadlessStack]:
    idp_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    pem = keys.generate_rsa_pem()
    (tmp_path / "idura-client.pem").write_bytes(pem)
    async with EchoUpstream() as echo:
        config = base_config(
            gateway_port=gateway_port,
            metrics_port=metrics_port,
            issuer=issuer,
            upstream=echo.url,
            client_secret=secrets.token_urlsafe(24),
        )
        config["providers"] = [
            {
                "name": "se-bankid",
                "display_name": "BankID",
                "flow": "headless",
                "issuer": issuer,
                "client_id": CLIENT_ID,
                "client_auth": "private_key_jwt",
                "private_key_file": "idura-client.pem",
                "scopes": ["openid"],
                "acr_values": ["urn:grn:authn:se:bankid"],
                "poll_interval": f"{int(POLL_INTERVAL * 1000)}ms",
                "claims": {"ssn": "ssn", "name": "name", "country": "country", "acr": "authenticationtype"},
            }
        ]
        if customize is not None:
            customize(config)
        idp_app = create_devidp_app(
            issuer=issuer,
            headless_interval=POLL_INTERVAL / 2,
            headless_expires_in=expires_in,
            clients=[
                DevClient(
                    client_id=CLIENT_ID,
                    auth_method="private_key_jwt",
                    jwks=(keys.signing_key_from_pem(pem).public,),
                    redirect_uris=(f"{config['public_url']}/_auth/callback/se-bankid",),
                )
            ],
        )
        runner = web.AppRunner(idp_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", idp_port).start()
        try:
            async with run_gateway(config, base_dir=tmp_path) as gateway:
                yield HeadlessStack(gateway=gateway, echo=echo, issuer=issuer, config=config)
        finally:
            await runner.cleanup()
