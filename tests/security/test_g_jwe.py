"""Encrypted ID tokens through the real gateway (issue 16 item 5; catalogue rows T56-T58 in docs/security.md).

A FakeOP whose token endpoint answers signed-then-encrypted ID tokens, encrypted to the key the gateway
publishes at /_auth/client-jwks/<provider>.json (fetched over HTTP, as an OP does), and the attack cases:
each is a clean refusal (4xx page, no session, nothing forwarded) counted in
gateway_token_validation_failures_total{provider,reason}, and a good login works right after.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from gateway import keys
from gateway.config import load_settings
from gateway.errors import IdpUnavailableError, TokenValidationError
from gateway.idp.oidc_client import OidcClient
from gateway.protocol import jws
from tests.security.helpers import assert_no_traceback
from tests.support.fake_op import OpStack, TokenRequest, begin_login, finish_login, jar, running_op_stack
from tests.unit.test_jwe import forge_jwe, seg

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROVIDER = "dev"
ENCRYPTION_PEM = keys.generate_rsa_pem()
PREVIOUS_PEM = keys.generate_ec_pem()
OUR_KEY = keys.encryption_key_from_pem(ENCRYPTION_PEM)
PREVIOUS_KEY = keys.encryption_key_from_pem(PREVIOUS_PEM)
STRANGER = keys.encryption_key_from_pem(keys.generate_rsa_pem())
#: The OP's own encryption key (request objects are encrypted to it).
OP_ENC = keys.encryption_key_from_pem(keys.generate_rsa_pem())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def jwe_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpStack]:
    folder = tmp_path_factory.mktemp("jwe-keys")
    (folder / "enc.pem").write_bytes(ENCRYPTION_PEM)
    (folder / "enc-old.pem").write_bytes(PREVIOUS_PEM)

    def customize(config: dict[str, Any]) -> None:
        config["providers"][0]["encryption_key_file"] = str(folder / "enc.pem")
        config["providers"][0]["previous_encryption_key_files"] = [str(folder / "enc-old.pem")]

    async with running_op_stack(
        customize=customize,
        extra_jwks=[{**keys.encryption_public_jwk(OP_ENC), "kid": "op-enc"}],
        discovery_overrides={
            "request_object_encryption_alg_values_supported": ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"],
            "request_object_encryption_enc_values_supported": ["A128CBC-HS256", "A256GCM"],
        },
    ) as stack:
        yield stack


@pytest.fixture
def stack(jwe_stack: OpStack) -> OpStack:
    jwe_stack.reset()
    return jwe_stack


async def published_keys(stack: OpStack) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/_auth/client-jwks/{PROVIDER}.json") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        document = await resp.json()
    keys_: list[dict[str, Any]] = document["keys"]
    return keys_


async def failures(stack: OpStack, reason: str | None = None) -> float:
    assert stack.gateway.metrics_url is not None
    async with aiohttp.ClientSession() as http, http.get(stack.gateway.metrics_url) as resp:
        text = await resp.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_token_validation_failures_total"
        and sample.labels.get("provider") == PROVIDER
        and (reason is None or sample.labels.get("reason") == reason)
    )


TokenFactory = Callable[[OpStack, TokenRequest], str]


async def log_in(stack: OpStack, factory: TokenFactory) -> tuple[int, bool, str]:
    """(callback status, whether a session was issued, the page) for one login answered by ``factory``."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, stack)
        stack.op.queue(lambda req: factory(stack, req))
        outcome = await finish_login(http, flow)
        if outcome.sets("gw_session"):
            private = await http.get(f"{stack.url}/private/x", allow_redirects=False)
            assert private.status == 200
            private.release()
    return outcome.status, outcome.sets("gw_session"), outcome.body


def inner_token(stack: OpStack, req: TokenRequest, **overrides: Any) -> str:
    return stack.op.sign(stack.op.claims(req.nonce, **overrides))


def encrypted_to(jwk: dict[str, Any], *, alg: str = "RSA-OAEP-256", enc: str = "A256GCM") -> TokenFactory:
    recipient = jws.encryption_public_key_from_jwk(jwk)
    return lambda s, r: jws.encrypt(inner_token(s, r).encode(), recipient, alg=alg, enc=enc)


# -- the published document ----------------------------------------------------------------------------


async def test_client_jwks_publishes_the_encryption_keys_with_use_enc(stack: OpStack) -> None:
    published = await published_keys(stack)
    assert published == [keys.encryption_public_jwk(OUR_KEY), keys.encryption_public_jwk(PREVIOUS_KEY)]
    assert all(k["use"] == "enc" and "d" not in k and "p" not in k for k in published)
    assert [jws.encryption_public_key_from_jwk(k).kid for k in published] == [OUR_KEY.kid, PREVIOUS_KEY.kid]


async def test_client_jwks_publishes_signing_and_encryption_keys(tmp_path: Path) -> None:
    (tmp_path / "client.pem").write_bytes(keys.generate_ec_pem())
    (tmp_path / "enc.pem").write_bytes(ENCRYPTION_PEM)

    def customize(config: dict[str, Any]) -> None:
        config["providers"][0].update(client_auth="private_key_jwt", private_key_file=str(tmp_path / "client.pem"),
                                      encryption_key_file=str(tmp_path / "enc.pem"))
        del config["providers"][0]["client_secret"]

    async with running_op_stack(customize=customize) as stack:
        published = await published_keys(stack)
        async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/_auth/client-jwks/other.json") as resp:
            assert resp.status == 404
    assert [k["use"] for k in published] == ["sig", "enc"]
    signing = keys.load_signing_key(tmp_path / "client.pem")
    assert published[0] == keys.public_jwk(signing)
    assert published[1] == keys.encryption_public_jwk(OUR_KEY)
    assert published[0]["kid"] != published[1]["kid"]


# -- logins -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "enc"), [("RSA-OAEP-256", "A256GCM"), ("RSA-OAEP", "A128CBC-HS256")])
async def test_signed_then_encrypted_id_token_logs_in(stack: OpStack, alg: str, enc: str) -> None:
    published = await published_keys(stack)
    status, session, _body = await log_in(stack, encrypted_to(published[0], alg=alg, enc=enc))
    assert (status, session) == (302, True)
    (request,) = stack.echo.requests
    assert request.headers["X-Auth-Ssn"] == stack.op.claims(None)["ssn"]


async def test_previous_key_still_decrypts_during_rollover(stack: OpStack) -> None:
    published = await published_keys(stack)
    status, session, _ = await log_in(stack, encrypted_to(published[1], alg="ECDH-ES+A256KW"))
    assert (status, session) == (302, True)


async def test_a_plain_signed_id_token_is_still_accepted(stack: OpStack) -> None:
    """Encryption is the OP's choice per client registration; a JWS passes every check as before."""
    status, session, _ = await log_in(stack, inner_token)
    assert (status, session) == (302, True)


def _double(s: OpStack, r: TokenRequest) -> str:
    once = jws.encrypt(inner_token(s, r).encode(), OUR_KEY.public, alg="RSA-OAEP-256", enc="A256GCM")
    return jws.encrypt(once.encode(), OUR_KEY.public, alg="RSA-OAEP-256", enc="A256GCM")


def _tampered(s: OpStack, r: TokenRequest) -> str:
    parts = jws.encrypt(inner_token(s, r).encode(), OUR_KEY.public, alg="RSA-OAEP-256", enc="A256GCM").split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[3] + "=" * (-len(parts[3]) % 4)))
    raw[0] ^= 1
    parts[3] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return ".".join(parts)


def _forged_inner(s: OpStack, r: TokenRequest) -> str:
    forged = s.op.sign(s.op.claims(r.nonce), s.op.attacker_rsa)
    return jws.encrypt(forged.encode(), OUR_KEY.public, alg="RSA-OAEP-256", enc="A256GCM")


ATTACKS: dict[str, tuple[TokenFactory, str]] = {
    "jwe for another key": (encrypted_to(keys.encryption_public_jwk(STRANGER)), "jwe_unknown_key"),
    "jwe for another key, no kid": (
        lambda s, r: forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM"}, inner_token(s, r).encode(), to=STRANGER),
        "jwe_decrypt_failed",
    ),
    "rsa1_5": (
        lambda s, r: forge_jwe({"alg": "RSA1_5", "enc": "A256GCM", "kid": OUR_KEY.kid}, inner_token(s, r).encode(),
                               to=OUR_KEY),
        "jwe_algorithm_not_allowed",
    ),
    "dir": (
        lambda s, r: forge_jwe({"alg": "dir", "enc": "A256GCM"}, inner_token(s, r).encode(), to=None),
        "jwe_algorithm_not_allowed",
    ),
    "zip": (
        lambda s, r: forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM", "zip": "DEF"}, inner_token(s, r).encode(),
                               to=OUR_KEY),
        "jwe_unsupported_header",
    ),
    "jku": (
        lambda s, r: forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM", "jku": s.op.canary_url()},
                               inner_token(s, r).encode(), to=OUR_KEY),
        "jwe_unsupported_header",
    ),
    "plain claims inside": (
        lambda s, r: forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM"},
                               json.dumps(s.op.claims(r.nonce)).encode(), to=OUR_KEY),
        "jwe_plain_claims",
    ),
    "nested twice": (_double, "jwe_nested_twice"),
    "tampered ciphertext": (_tampered, "jwe_decrypt_failed"),
    "inner jws signed by an attacker": (_forged_inner, "bad_signature"),
    "inner jws alg none": (
        lambda s, r: jws.encrypt((seg({"alg": "none"}) + "." + seg(s.op.claims(r.nonce)) + ".").encode(),
                                 OUR_KEY.public, alg="RSA-OAEP-256", enc="A256GCM"),
        "algorithm_not_allowed",
    ),
    "inner jws with a wrong nonce": (
        lambda s, r: jws.encrypt(inner_token(s, r, nonce="other").encode(), OUR_KEY.public, alg="RSA-OAEP-256",
                                 enc="A256GCM"),
        "nonce",
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_bad_encrypted_id_tokens_are_refused_and_counted(stack: OpStack, attack: str) -> None:
    factory, reason = ATTACKS[attack]
    before = await failures(stack, reason)
    status, session, body = await log_in(stack, factory)
    assert status in (400, 401, 403), (status, body[:200])
    assert not session
    assert_no_traceback(body)
    assert stack.echo.requests == []
    assert stack.op.canary_hits == []
    assert await failures(stack, reason) == before + 1
    # the gateway is healthy after: the next good login works
    published = await published_keys(stack)
    assert (await log_in(stack, encrypted_to(published[0])))[:2] == (302, True)


# -- a provider without encryption_key_file: refused as before --------------------------------------------


async def test_jwe_without_encryption_key_file_is_refused() -> None:
    async with running_op_stack() as stack:
        before = await failures(stack, "encrypted_token_without_key")
        status, session, body = await log_in(stack, encrypted_to(keys.encryption_public_jwk(OUR_KEY)))
        assert status in (400, 401, 403) and not session, (status, body[:200])
        assert stack.echo.requests == []
        assert await failures(stack, "encrypted_token_without_key") == before + 1
        async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/_auth/client-jwks/{PROVIDER}.json") as r:
            assert r.status == 404  # nothing to publish: no signing key, no encryption key


# -- OidcClient: open_jwt and request_object_encryption (for UserInfo and request objects) -------------------


async def client_for(stack: OpStack, http: aiohttp.ClientSession, tmp_path: Path) -> OidcClient:
    (tmp_path / "enc.pem").write_bytes(ENCRYPTION_PEM)
    document = {**stack.config}
    document["providers"] = [{**stack.config["providers"][0], "encryption_key_file": str(tmp_path / "enc.pem"),
                              "previous_encryption_key_files": []}]
    settings = load_settings(document, {}, base_dir=tmp_path)
    return OidcClient(settings.providers[0], http, encryption_keys=(OUR_KEY,))


async def test_open_jwt_decrypts_then_verifies(stack: OpStack, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        client = await client_for(stack, http, tmp_path)
        userinfo = {"sub": "u1", "nnin": "01017012345"}
        signed = stack.op.sign(userinfo)
        assert await client.open_jwt(signed) == userinfo
        encrypted = jws.encrypt(signed.encode(), OUR_KEY.public, alg="RSA-OAEP-256", enc="A256GCM")
        assert await client.open_jwt(encrypted) == userinfo
        with pytest.raises(TokenValidationError) as caught:
            await client.open_jwt(forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM"},
                                            json.dumps(userinfo).encode(), to=OUR_KEY))
        assert caught.value.reason == "jwe_plain_claims"


async def test_request_object_encryption_picks_the_ops_key_and_best_pair(stack: OpStack, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        client = await client_for(stack, http, tmp_path)
        key, alg, enc = await client.request_object_encryption()
    assert (key.kid, alg, enc) == ("op-enc", "RSA-OAEP-256", "A256GCM")
    token = jws.encrypt(b"a.b.c", key, alg=alg, enc=enc)
    # the OP can open it with its own key
    assert jws.decrypt(token, (dataclasses.replace(OP_ENC, kid="op-enc"),)) == b"a.b.c"


async def test_request_object_encryption_when_the_op_offers_nothing_usable(tmp_path: Path) -> None:
    overrides = {"request_object_encryption_alg_values_supported": ["RSA1_5"],
                 "request_object_encryption_enc_values_supported": ["A256GCM"]}
    async with running_op_stack(discovery_overrides=overrides) as stack, aiohttp.ClientSession() as http:
        client = await client_for(stack, http, tmp_path)
        with pytest.raises(IdpUnavailableError) as caught:
            await client.request_object_encryption()
        assert caught.value.reason == "request_encryption_alg_unsupported"
        stack.op.discovery_overrides["request_object_encryption_alg_values_supported"] = ["RSA-OAEP-256"]
        client = await client_for(stack, http, tmp_path)
        with pytest.raises(IdpUnavailableError) as caught:
            await client.request_object_encryption()
        assert caught.value.reason == "request_encryption_no_key"  # the OP publishes no use: enc key
