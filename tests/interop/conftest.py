"""A real OpenID Provider for the interop tests: tests/op/server.js (panva's oidc-provider) on loopback.

Two providers, each started once per test session and only if a test asks for it:

- ``oidc_provider``: the redirect flow. It registers one gateway callback URL, so every test using it runs
  its gateway on the same loopback port (``OpenIDProvider.gateway_port``), one test after another.
- ``ciba_provider``: OpenID CIBA Core 1.0 in poll mode (OP_CIBA=1), a separate process with only the
  gw-ciba client and test-only control endpoints that stand in for the user's authentication device.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.keys import generate_ec_pem, generate_rsa_pem, public_jwk, signing_key_from_pem
from tests.support.ports import free_port
from tests.support.redis_server import redis_server

OP_DIR = Path(__file__).resolve().parent.parent / "op"
PROVIDER_NAME = "op"
READY_TIMEOUT = 30.0
#: The OP stops by itself after this long, should the session never get to stop it.
OP_MAX_SECONDS = 1800
#: Kid of the ES256 client key; the gateway config names it with private_key_id. The RS256 key goes
#: without one, so the gateway uses its RFC 7638 thumbprint, as the published JWK does.
ES_KEY_ID = "gw-pkjwt-es-key"
#: The poll interval the CIBA OP announces (whole seconds, the smallest CIBA allows). oidc-provider itself
#: sends none, which would hold every client to CIBA's default of 5 s; tests/op/server.js adds it.
CIBA_INTERVAL = 1
#: Lifetime of a CIBA request at the OP, in seconds.
CIBA_EXPIRES_IN = 120
#: ... and at the short-lived CIBA OP: two polls' worth.
CIBA_SHORT_EXPIRES_IN = 2
#: The ssn of the OP's default account; a CIBA login_hint names the account by it.
ACCOUNT_SSN = "196802020575"


@dataclass(frozen=True)
class OpenIDProvider:
    issuer: str
    #: Loopback port the gateway must listen on: its callback is the registered redirect URI.
    gateway_port: int
    #: client_id -> client_secret for gw-basic and gw-post.
    client_secrets: dict[str, str]
    #: client_id -> PEM private key file for gw-pkjwt-rs and gw-pkjwt-es.
    client_key_files: dict[str, Path]
    #: client_id -> kid the OP knows the client's key by.
    client_key_ids: dict[str, str]
    log_file: Path

    provider_name: str = PROVIDER_NAME

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def callback_url(self) -> str:
        """The gateway's redirect URI, the only one registered at the OP."""
        return f"{self.gateway_url}/_auth/callback/{self.provider_name}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class CibaProvider:
    """The CIBA OP: client gw-ciba (client_secret_basic, poll mode) and its test control endpoints."""

    issuer: str
    client_secret: str
    #: Seconds the OP asks clients to wait between polls (the "interval" of its backchannel response).
    interval: int
    #: Lifetime of a CIBA request (the "expires_in" of its backchannel response).
    expires_in: int
    log_file: Path

    client_id: str = "gw-ciba"
    #: The national identity number of the OP's account: the login_hint that names it.
    account_ssn: str = ACCOUNT_SSN

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def _control(self, method: str, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        # A session of its own: the control calls are not the browser's and carry none of its cookies.
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.request(method, f"{self.issuer}{path}", params=params) as response,
        ):
            return response.status, await response.json(content_type=None)

    async def state(self) -> dict[str, Any]:
        """GET /_test/ciba: every CIBA request so far (oldest first), each with its token polls, and counters.

        ``requests[i]``: auth_req_id, account_id, client_id, login_hint, binding_message, scope, created,
        state (pending, approved, denied, expired), polls: [{at, status, error}] (``at``: arrival time,
        epoch seconds). Counters: backchannel_requests (all, refused ones too), token_requests (CIBA
        grant), unmatched_token_requests (naming no request of this OP).
        """
        status, body = await self._control("GET", "/_test/ciba")
        assert status == 200, f"GET /_test/ciba: {status} {body}"
        assert isinstance(body, dict)
        return body

    async def approve(self, auth_req_id: str | None = None) -> tuple[int, Any]:
        """The user approves the request (default: the newest pending one)."""
        return await self._control("POST", "/_test/ciba/approve", _only_id(auth_req_id))

    async def deny(self, auth_req_id: str | None = None) -> tuple[int, Any]:
        """The user declines the request (default: the newest pending one)."""
        return await self._control("POST", "/_test/ciba/deny", _only_id(auth_req_id))


def _only_id(auth_req_id: str | None) -> dict[str, str] | None:
    return None if auth_req_id is None else {"auth_req_id": auth_req_id}


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _discovery_answers(issuer: str) -> bool:
    try:
        with _NO_PROXY.open(f"{issuer}/.well-known/openid-configuration", timeout=2) as response:
            return bool(response.status == 200 and json.load(response).get("issuer") == issuer)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _write_client_keys(directory: Path) -> tuple[dict[str, Path], dict[str, str], dict[str, object]]:
    files: dict[str, Path] = {}
    kids: dict[str, str] = {}
    public: list[dict[str, str]] = []
    for client_id, pem, kid in (
        ("gw-pkjwt-rs", generate_rsa_pem(), None),
        ("gw-pkjwt-es", generate_ec_pem(), ES_KEY_ID),
    ):
        path = directory / f"{client_id}.pem"
        path.write_bytes(pem)
        path.chmod(0o600)
        key = signing_key_from_pem(pem, kid=kid)
        files[client_id] = path
        kids[client_id] = key.kid
        public.append(public_jwk(key))
    return files, kids, {"keys": public}


def _require_node() -> str:
    if not (OP_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("tests/op/node_modules is missing: run the README test command: it installs tests/op")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the interop tests need Node.js 20 or later")
    return node


@contextmanager
def _running_op(node: str, settings: dict[str, str], issuer: str, log_file: Path) -> Iterator[None]:
    """Run tests/op/server.js with ``settings`` added to the environment until the block ends."""

    def log_tail() -> str:
        text = log_file.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-40:])

    environ = {**os.environ, "OP_MAX_SECONDS": str(OP_MAX_SECONDS), **settings}
    for name in (
        "OP_ACCOUNT_CLAIMS",
        "OP_CIBA",
        "OP_CIBA_INTERVAL",
        "OP_CIBA_EXPIRES_IN",
        "OP_BACKCHANNEL",
        "OP_BACKCHANNEL_URI",
        "OP_REFRESH",
        "OP_REFRESH_ROTATE",
        "OP_ACCESS_TOKEN_TTL",
    ):
        if name not in settings:
            environ.pop(name, None)  # the tests expect the default account and only what they ask for
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [node, str(OP_DIR / "server.js")],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=OP_DIR,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _discovery_answers(issuer):
            if process.poll() is not None:
                pytest.fail(f"the OP exited with code {process.returncode}:\n{log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the OP did not answer discovery within {READY_TIMEOUT:.0f}s:\n{log_tail()}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _code_flow_env(provider: OpenIDProvider, port: int, client_secrets: dict[str, str]) -> dict[str, str]:
    """tests/op/server.js settings for the code-flow clients gw-basic and gw-post of ``provider``."""
    return {
        "OP_HOST": "127.0.0.1",
        "OP_PORT": str(port),
        "OP_ISSUER": provider.issuer,
        "REDIRECT_URIS": provider.callback_url,
        "POST_LOGOUT_REDIRECT_URIS": f"{provider.gateway_url}/_auth/logged-out",
        "OP_CLIENT_SECRET_BASIC": client_secrets["gw-basic"],
        "OP_CLIENT_SECRET_POST": client_secrets["gw-post"],
    }


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    node = _require_node()
    workdir = tmp_path_factory.mktemp("oidc-provider")
    key_files, key_ids, client_jwks = _write_client_keys(workdir)
    jwks_file = workdir / "client-jwks.json"
    jwks_file.write_text(json.dumps(client_jwks), encoding="utf-8")

    port = free_port()
    gateway_port = free_port()
    while gateway_port == port:
        gateway_port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    client_secrets = {"gw-basic": secrets.token_urlsafe(32), "gw-post": secrets.token_urlsafe(32)}
    log_file = workdir / "op.log"
    provider = OpenIDProvider(
        issuer=issuer,
        gateway_port=gateway_port,
        client_secrets=client_secrets,
        client_key_files=key_files,
        client_key_ids=key_ids,
        log_file=log_file,
    )
    settings = _code_flow_env(provider, port, client_secrets) | {"OP_CLIENT_JWKS_FILE": str(jwks_file)}
    with _running_op(node, settings, issuer, log_file):
        yield provider


def _ciba_op(tmp_path_factory: pytest.TempPathFactory, *, expires_in: int) -> Iterator[CibaProvider]:
    node = _require_node()
    workdir = tmp_path_factory.mktemp("oidc-provider-ciba")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    provider = CibaProvider(
        issuer=issuer,
        client_secret=secrets.token_urlsafe(32),
        interval=CIBA_INTERVAL,
        expires_in=expires_in,
        log_file=workdir / "op.log",
    )
    settings = {
        "OP_HOST": "127.0.0.1",
        "OP_PORT": str(port),
        "OP_ISSUER": issuer,
        "OP_CIBA": "1",
        "OP_CIBA_CLIENT_SECRET": provider.client_secret,
        "OP_CIBA_INTERVAL": str(CIBA_INTERVAL),
        "OP_CIBA_EXPIRES_IN": str(expires_in),
    }
    with _running_op(node, settings, issuer, provider.log_file):
        yield provider


@pytest.fixture(scope="session")
def ciba_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CibaProvider]:
    """The CIBA OP; its requests live CIBA_EXPIRES_IN seconds."""
    yield from _ciba_op(tmp_path_factory, expires_in=CIBA_EXPIRES_IN)


@pytest.fixture(scope="session")
def short_lived_ciba_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CibaProvider]:
    """A second CIBA OP whose requests expire after CIBA_SHORT_EXPIRES_IN seconds, for the expiry tests."""
    yield from _ciba_op(tmp_path_factory, expires_in=CIBA_SHORT_EXPIRES_IN)


# --- OPs with back-channel logout and refresh tokens, and a Redis server for the session store -----------------


@dataclass(frozen=True)
class ControlledOpenIDProvider(OpenIDProvider):
    """A redirect-flow OP with tests/op/server.js's control endpoints (OP_BACKCHANNEL=1 and/or OP_REFRESH=1).

    Its own process, with its own gateway port: only the client metadata differs from ``oidc_provider``.
    """

    #: Lifetime of its access tokens (the token responses' expires_in), seconds.
    access_token_ttl: int = 600
    #: Whether every refresh_token grant rotates the refresh token.
    refresh_rotate: bool = False

    @property
    def backchannel_logout_url(self) -> str:
        """The gateway's back-channel logout endpoint, registered as the clients' backchannel_logout_uri."""
        return f"{self.gateway_url}/_auth/backchannel-logout/{self.provider_name}"

    async def _control(self, method: str, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.request(method, f"{self.issuer}{path}", params=params) as response,
        ):
            return response.status, await response.json(content_type=None)

    async def counters(self) -> dict[str, Any]:
        """GET /_test/counters.

        ``token_requests``: grant_type -> count (answered or refused). ``logins``: every authorization_code
        grant (account_id, client_id, sid, grant_id, refresh_token_issued, expires_in). ``refresh``: every
        refresh_token grant (at, account_id, grant_id, status, error, error_description, error_detail,
        rotated). ``backchannel``: every logout token delivery (at, client_id, account_id, sid, ok, error).
        """
        status, body = await self._control("GET", "/_test/counters")
        assert status == 200, f"GET /_test/counters: {status} {body}"
        assert isinstance(body, dict)
        return body

    async def revoke_grants(self, account_id: str) -> list[str]:
        """Destroy every grant of ``account_id`` with its tokens (OP_REFRESH=1); returns the grant ids."""
        status, body = await self._control("POST", "/_test/revoke-grants", {"account_id": account_id})
        assert status == 200, f"POST /_test/revoke-grants: {status} {body}"
        return list(body["revoked_grants"])

    async def logout_token(self, sub: str, sid: str | None = None) -> dict[str, str]:
        """A logout token signed by the OP for ``sub`` (default sid: that of sub's newest login), not sent."""
        params = {"sub": sub, **({"sid": sid} if sid is not None else {})}
        status, body = await self._control("POST", "/_test/logout-token", params)
        assert status == 200, f"POST /_test/logout-token: {status} {body}"
        assert isinstance(body, dict)
        return body


def _controlled_op(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, backchannel: bool, refresh: bool, access_token_ttl: int
) -> Iterator[ControlledOpenIDProvider]:
    node = _require_node()
    workdir = tmp_path_factory.mktemp(name)
    port = free_port()
    gateway_port = free_port()
    while gateway_port == port:
        gateway_port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    client_secrets = {"gw-basic": secrets.token_urlsafe(32), "gw-post": secrets.token_urlsafe(32)}
    provider = ControlledOpenIDProvider(
        issuer=issuer,
        gateway_port=gateway_port,
        client_secrets=client_secrets,
        client_key_files={},
        client_key_ids={},
        log_file=workdir / "op.log",
        access_token_ttl=access_token_ttl,
        refresh_rotate=refresh,
    )
    settings = _code_flow_env(provider, port, client_secrets) | {"OP_ACCESS_TOKEN_TTL": str(access_token_ttl)}
    if backchannel:
        settings |= {"OP_BACKCHANNEL": "1", "OP_BACKCHANNEL_URI": provider.backchannel_logout_url}
    if refresh:
        settings |= {"OP_REFRESH": "1", "OP_REFRESH_ROTATE": "1"}
    with _running_op(node, settings, issuer, provider.log_file):
        yield provider


@pytest.fixture(scope="session")
def backchannel_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlledOpenIDProvider]:
    """An OP whose clients registered the gateway's back-channel logout endpoint (ID tokens carry sid)."""
    yield from _controlled_op(
        tmp_path_factory, "oidc-provider-backchannel", backchannel=True, refresh=False, access_token_ttl=600
    )


#: Lifetime of the access tokens of ``refresh_provider``, seconds.
REFRESH_ACCESS_TOKEN_TTL = 3


@pytest.fixture(scope="session")
def refresh_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlledOpenIDProvider]:
    """An OP that issues refresh tokens (rotated on every use) and access tokens of REFRESH_ACCESS_TOKEN_TTL s."""
    yield from _controlled_op(
        tmp_path_factory,
        "oidc-provider-refresh",
        backchannel=False,
        refresh=True,
        access_token_ttl=REFRESH_ACCESS_TOKEN_TTL,
    )


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A fresh redis-server of its own on a free loopback port, no persistence; its URL (database 0)."""
    with redis_server(tmp_path) as url:
        yield url
