from __future__ import annotations

from gateway.keys import generate_rsa_pem, signing_key_from_pem
from gateway.protocol import jws

from .conftest import FakeClock, Redeem
from .driver import BANNER, ISSUER, LOGGED_OUT_URI, REDIRECT_URI, Idp, authorize, redirect_params


async def id_token_for(idp: Idp, redeem: Redeem, client_id: str) -> str:
    auth = await authorize(idp, client_id)
    return str((await (await redeem(client_id, auth)).json())["id_token"])


async def test_redirects_to_a_registered_uri_with_state(idp: Idp, redeem: Redeem) -> None:
    hint = await id_token_for(idp, redeem, "post-client")
    query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGGED_OUT_URI, "state": "a b&c"}
    response = await idp.get("/logout", params=query, allow_redirects=False)
    assert redirect_params(response, LOGGED_OUT_URI) == {"state": "a b&c"}


async def test_client_id_instead_of_hint(idp: Idp) -> None:
    query = {"client_id": "jwt-client", "post_logout_redirect_uri": LOGGED_OUT_URI}
    response = await idp.get("/logout", params=query, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == LOGGED_OUT_URI


async def test_expired_hint_is_still_accepted(idp: Idp, redeem: Redeem, clock: FakeClock) -> None:
    hint = await id_token_for(idp, redeem, "basic-client")
    clock.advance(3600)
    query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGGED_OUT_URI}
    assert (await idp.get("/logout", params=query, allow_redirects=False)).status == 303


async def test_unregistered_uri_shows_a_page(idp: Idp, redeem: Redeem) -> None:
    hint = await id_token_for(idp, redeem, "post-client")
    for uri in (REDIRECT_URI, "http://evil.example/", LOGGED_OUT_URI + "?x=1"):
        query = {"id_token_hint": hint, "post_logout_redirect_uri": uri, "state": "<b>"}
        response = await idp.get("/logout", params=query, allow_redirects=False)
        html = await response.text()
        assert response.status == 200 and "Location" not in response.headers
        assert "You are logged out" in html and BANNER in html and "<b>" not in html


async def test_no_client_means_no_redirect(idp: Idp) -> None:
    response = await idp.get("/logout", params={"post_logout_redirect_uri": LOGGED_OUT_URI})
    assert response.status == 200 and "You are logged out" in await response.text()
    plain = await idp.get("/logout")
    assert plain.status == 200 and BANNER in await plain.text()


async def test_foreign_hint_is_refused(idp: Idp, clock: FakeClock) -> None:
    stranger = signing_key_from_pem(generate_rsa_pem(), kid="devidp-test")
    forged = jws.sign({"iss": ISSUER, "aud": "post-client", "sub": "x", "exp": int(clock()) + 60}, stranger)
    for hint in (forged, "not-a-jwt"):
        query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGGED_OUT_URI}
        response = await idp.get("/logout", params=query, allow_redirects=False)
        assert response.status == 400 and "Location" not in response.headers
        assert BANNER in await response.text()


async def test_client_id_must_match_hint(idp: Idp, redeem: Redeem) -> None:
    hint = await id_token_for(idp, redeem, "post-client")
    query = {"id_token_hint": hint, "client_id": "jwt-client", "post_logout_redirect_uri": LOGGED_OUT_URI}
    response = await idp.get("/logout", params=query, allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers
