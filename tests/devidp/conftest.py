from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse

from gateway.devidp import DevClient, create_devidp_app
from gateway.keys import generate_ec_pem, generate_rsa_pem, signing_key_from_pem
from gateway.protocol.jws import SigningKey

from .driver import (
    ISSUER,
    JWT_BEARER,
    LOGGED_OUT_URI,
    REDIRECT_URI,
    Authorization,
    Idp,
    MakeClient,
    basic_auth,
    client_assertion,
    token_form,
)

# A secret whose characters change under form-urlencoding, to check RFC 6749 §2.3.1 handling.
BASIC_SECRET = "s3cr:t/+ é%20&="
POST_SECRET = "post-secret-0123456789"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def idp_key() -> SigningKey:
    return signing_key_from_pem(generate_rsa_pem(), kid="devidp-test")


@pytest.fixture(scope="session")
def client_key() -> SigningKey:
    return signing_key_from_pem(generate_ec_pem(), kid="client-ec-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clients(client_key: SigningKey) -> list[DevClient]:
    common: dict[str, Any] = {
        "redirect_uris": (REDIRECT_URI,),
        "post_logout_redirect_uris": (LOGGED_OUT_URI,),
    }
    return [
        DevClient("basic-client", auth_method="client_secret_basic", client_secret=BASIC_SECRET, **common),
        DevClient("post-client", auth_method="client_secret_post", client_secret=POST_SECRET, **common),
        DevClient("jwt-client", auth_method="private_key_jwt", jwks=(client_key.public,), **common),
    ]


@pytest.fixture
async def idp(
    aiohttp_client: MakeClient,
    clients: list[DevClient],
    idp_key: SigningKey,
    clock: FakeClock,
) -> Idp:
    app = create_devidp_app(issuer=ISSUER, clients=clients, signing_key=idp_key, clock=clock)
    return await aiohttp_client(app)


Redeem = Callable[..., Awaitable[ClientResponse]]


@pytest.fixture
def redeem(idp: Idp, client_key: SigningKey, clock: FakeClock) -> Redeem:
    """POST /token for ``auth``, authenticating the way each test client is registered."""

    async def _redeem(client_id: str, auth: Authorization, **overrides: str | None) -> ClientResponse:
        form = token_form(auth, **overrides)
        headers = {}
        if client_id == "basic-client":
            headers["Authorization"] = basic_auth(client_id, BASIC_SECRET)
        elif client_id == "post-client":
            form.update(client_id=client_id, client_secret=POST_SECRET)
        else:
            form.update(
                client_assertion_type=JWT_BEARER,
                client_assertion=client_assertion(client_key, client_id, clock()),
            )
        return await idp.post("/token", data=form, headers=headers)

    return _redeem
