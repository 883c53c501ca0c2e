"""Poll engine core: protocols.md §2 (Idura Headless) and CIBA Core 1.0 §7.3/§11, with an injected clock."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from gateway.protocol.poll import (
    CIBA_GRANT_TYPE,
    HEADLESS_GRANT_TYPE,
    MAX_BACKOFF,
    POLL_RESULTS,
    PollProtocolError,
    PollTransaction,
    apply_poll_response,
    build_poll_form,
    build_start_form,
    cancel,
    complete,
    expire_if_past,
    fail,
    is_due,
    parse_start_response,
    wait_until_due,
)

T0 = 1_700_000_000.0
REQ_ID = "3857f8ff-21b9-48ae-a732-a3bd8128a7ae"
AUTH_REQ_ID = "1c266114-a1be-4252-8ad1-04986c5b9ac1"
AUTO = "d2c96ea2-f8d9-4e9f-8d39-4f2e88e10e1c"
QR0 = "bankid.5367b735-a3f9-47d9-aafc-6d2ad5a14901.0.425c66c472e756fc6a070b86eef1adb4fac0a2714d828c902afa77a5b15e8590"
QR5 = "bankid.67df3917-fa0d-44e5-b327-edcc928297f8.5.dc69358e712458a66a7525beef148ae8526b1c71610eff2c16cdffb4cdac9bf8"
QR10 = "bankid.67df3917-fa0d-44e5-b327-edcc928297f8.10.949d559bf23403952a94d103e67743126381eda00f0b3cbddbf7c96b1adcbce2"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def start_body(**overrides):
    body = {
        "headless_req_id": REQ_ID,
        "expires_in": 120,
        "acr_data": {"qrData": QR0, "autoStartToken": AUTO},
    }
    body.update(overrides)
    return body


def headless(now: float = T0, **overrides) -> PollTransaction:
    return parse_start_response("headless", 200, start_body(**overrides), provider="se-bankid", now=now)


def ciba(now: float = T0, **overrides) -> PollTransaction:
    body = {"auth_req_id": AUTH_REQ_ID, "expires_in": 120}
    body.update(overrides)
    return parse_start_response("ciba", 200, body, provider="idura-ciba", now=now)


def pending(hint: str | None = None, qr: str | None = None, **acr) -> dict:
    acr_data = dict(acr)
    if hint is not None:
        acr_data["hintCode"] = hint
    if qr is not None:
        acr_data["qrData"] = qr
    return {"error": "authorization_pending", "error_description": "awaiting user identification", "acr_data": acr_data}


def success_body(**overrides):
    body = {"token_type": "Bearer", "expires_in": "120", "id_token": ID_TOKEN, "access_token": "cf1ce646"}
    body.update(overrides)
    return body


# --- the whole walk -----------------------------------------------------------------------------


def test_headless_walk_from_start_to_success():
    tx = headless()
    assert (tx.kind, tx.provider, tx.request_id, tx.status, tx.reason) == (
        "headless",
        "se-bankid",
        REQ_ID,
        "pending",
        "",
    )
    assert (tx.created, tx.expires_at, tx.interval, tx.next_poll_at) == (T0, T0 + 120, 5.0, T0 + 5)
    assert (tx.qr_data, tx.auto_start_token, tx.hint_code) == (QR0, AUTO, None)
    assert not tx.terminal
    assert not is_due(tx, T0 + 4.999)
    assert is_due(tx, T0 + 5)

    out = apply_poll_response(tx, 400, pending("outstandingTransaction"), now=T0 + 5)
    assert (out.result, out.id_token, out.tx.hint_code, out.tx.next_poll_at) == (
        "pending",
        None,
        "outstandingTransaction",
        T0 + 10,
    )
    assert out.tx.qr_data == QR0  # no new qrData: the last good one stays

    out = apply_poll_response(out.tx, 400, pending("started", QR5), now=T0 + 10)
    assert (out.tx.hint_code, out.tx.qr_data, out.tx.next_poll_at) == ("started", QR5, T0 + 15)

    out = apply_poll_response(out.tx, 400, pending("userSign", QR10), now=T0 + 15)
    assert (out.result, out.tx.hint_code, out.tx.qr_data) == ("pending", "userSign", QR10)

    out = apply_poll_response(out.tx, 200, success_body(), now=T0 + 20)
    assert (out.result, out.id_token) == ("success", ID_TOKEN)
    assert out.tx.status == "pending"  # until the caller has validated the token
    assert out.tx.polls == 4

    done = complete(out.tx, now=T0 + 20.5)
    assert (done.status, done.reason, done.terminal) == ("complete", "", True)
    assert (done.qr_data, done.auto_start_token) == (None, None)
    assert done.hint_code == "userSign"
    assert not is_due(done, T0 + 1000)


def test_pending_resets_error_streak_and_keeps_interval():
    tx = headless()
    tx = apply_poll_response(tx, None, None, now=T0 + 5).tx
    assert tx.errors_in_row == 1
    out = apply_poll_response(tx, 400, pending("started"), now=T0 + 15)
    assert (out.tx.errors_in_row, out.tx.interval, out.tx.next_poll_at) == (0, 5.0, T0 + 20)


# --- slow_down and back-off -----------------------------------------------------------------------


def test_slow_down_twice_adds_ten_seconds_for_good():
    tx = headless()
    out = apply_poll_response(tx, 400, {"error": "slow_down"}, now=T0 + 5)
    assert (out.result, out.tx.interval, out.tx.next_poll_at, out.tx.status) == ("slow_down", 10.0, T0 + 15, "pending")
    out = apply_poll_response(out.tx, 400, {"error": "slow_down"}, now=T0 + 15)
    assert (out.tx.interval, out.tx.next_poll_at) == (15.0, T0 + 30)
    out = apply_poll_response(out.tx, 400, pending("started"), now=T0 + 30)
    assert (out.tx.interval, out.tx.next_poll_at) == (15.0, T0 + 45)
    assert not is_due(out.tx, T0 + 44.9)


def test_slow_down_also_takes_acr_data():
    out = apply_poll_response(headless(), 400, {"error": "slow_down", "acr_data": {"qrData": QR5}}, now=T0 + 5)
    assert out.tx.qr_data == QR5


def test_rate_limit_server_error_network_error_back_off_then_reset():
    tx = headless()
    now = T0 + 5
    out = apply_poll_response(tx, 429, None, now=now)
    assert (out.result, out.tx.next_poll_at - now, out.tx.errors_in_row) == ("rate_limited", 10.0, 1)
    now = out.tx.next_poll_at
    out = apply_poll_response(out.tx, 500, {"error": "server_error"}, now=now)
    assert (out.result, out.tx.next_poll_at - now, out.tx.errors_in_row) == ("server_error", 20.0, 2)
    now = out.tx.next_poll_at
    out = apply_poll_response(out.tx, None, None, now=now)
    assert (out.result, out.tx.next_poll_at - now, out.tx.errors_in_row) == ("network_error", 40.0, 3)
    assert out.tx.interval == 5.0
    assert out.tx.status == "pending"
    now = T0 + 100
    out = apply_poll_response(out.tx, 503, None, now=now)
    assert out.tx.next_poll_at - now == MAX_BACKOFF
    out = apply_poll_response(out.tx, 400, pending("started"), now=T0 + 110)
    assert (out.tx.errors_in_row, out.tx.next_poll_at) == (0, T0 + 115)


def test_back_off_is_never_shorter_than_the_interval():
    tx = replace(headless(), interval=75.0, errors_in_row=3, expires_at=T0 + 600)
    out = apply_poll_response(tx, None, None, now=T0 + 80)
    assert out.tx.next_poll_at == T0 + 80 + 75


def test_back_off_survives_a_huge_error_streak():
    tx = replace(headless(), errors_in_row=100_000)
    out = apply_poll_response(tx, 502, None, now=T0 + 5)
    assert out.tx.next_poll_at == T0 + 5 + MAX_BACKOFF


# --- expiry ---------------------------------------------------------------------------------------


def test_late_success_after_expiry_still_expires():
    tx = headless()
    out = apply_poll_response(tx, 200, success_body(), now=T0 + 120)
    assert (out.result, out.id_token, out.tx.status, out.tx.reason) == ("expired", None, "expired", "expired")
    assert (out.tx.qr_data, out.tx.auto_start_token, out.tx.polls) == (None, None, 1)


def test_late_pending_after_expiry_still_expires():
    out = apply_poll_response(headless(), 400, pending("userSign"), now=T0 + 500)
    assert (out.tx.status, out.result) == ("expired", "expired")


def test_expire_if_past():
    tx = headless()
    assert expire_if_past(tx, T0 + 119.9) is tx
    expired = expire_if_past(tx, T0 + 120)
    assert (expired.status, expired.reason, expired.qr_data) == ("expired", "expired", None)
    assert expire_if_past(expired, T0 + 999) is expired
    done = cancel(tx, T0 + 1)
    assert expire_if_past(done, T0 + 999) is done


def test_polling_stops_at_expiry_even_before_expire_if_past():
    tx = replace(headless(), next_poll_at=T0 + 118)
    assert is_due(tx, T0 + 119.99)
    assert not is_due(tx, T0 + 120)


# --- start response -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "lifetime"), [(120, 120), ("120", 120), ("7", 7), (3600, 600), ("999999999", 600)]
)
def test_expires_in_int_or_decimal_string_clamped(expires_in, lifetime):
    assert headless(expires_in=expires_in).expires_at == T0 + lifetime


@pytest.mark.parametrize(
    "expires_in", [0, -1, "0", "", " 120", "12a", "1e3", "\u0661\u0662\u0660", 1.5, True, None, [120], "1234567890"]
)
def test_bad_expires_in_is_malformed(expires_in):
    with pytest.raises(PollProtocolError) as caught:
        headless(expires_in=expires_in)
    assert caught.value.reason == "malformed_response"


@pytest.mark.parametrize("default_interval", [2.0, 0.05])
def test_start_with_max_lifetime_and_default_interval(default_interval):
    tx = parse_start_response(
        "headless", 200, start_body(), provider="se", now=T0, default_interval=default_interval, max_lifetime=60.0
    )
    assert (tx.interval, tx.next_poll_at, tx.expires_at) == (default_interval, T0 + default_interval, T0 + 60)
    assert PollTransaction.from_payload(tx.to_payload()) == tx


def test_the_idp_interval_floor_is_one_second_even_with_a_shorter_default():
    tx = parse_start_response(
        "ciba",
        200,
        {"auth_req_id": AUTH_REQ_ID, "expires_in": 60, "interval": 0},
        provider="c",
        now=T0,
        default_interval=0.1,
    )
    assert tx.interval == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_interval": 0},
        {"default_interval": -1.0},
        {"default_interval": math.inf},
        {"max_lifetime": 0},
        {"max_lifetime": math.nan},
        {"provider": ""},
        {"provider": "se bankid"},
        {"now": math.nan},
    ],
)
def test_start_refuses_bad_caller_arguments(kwargs):
    arguments = {"provider": "se", "now": T0} | kwargs
    with pytest.raises(ValueError):
        parse_start_response("headless", 200, start_body(), **arguments)


def test_start_refuses_unknown_kind():
    with pytest.raises(ValueError):
        parse_start_response("saml", 200, start_body(), provider="se", now=T0)


@pytest.mark.parametrize(
    "acr_data",
    [
        {"qrData": "bankid.not-a-token.0.abc", "autoStartToken": "<script>"},
        {"qrData": QR0.upper(), "autoStartToken": AUTO.upper()},
        {"qrData": QR0 + "\n", "autoStartToken": AUTO + "\n"},
        {"qrData": 42, "autoStartToken": None},
        {"qrData": QR0.replace(".0.", ".1234567."), "autoStartToken": "{" + AUTO + "}"},
        {"qrData": QR0.replace(".0.", ".\u0663."), "autoStartToken": AUTO[:-1]},
        "not an object",
    ],
)
def test_start_ignores_malformed_acr_data(acr_data):
    tx = headless(acr_data=acr_data)
    assert (tx.qr_data, tx.auto_start_token, tx.status) == (None, None, "pending")


def test_start_without_acr_data_is_fine():
    body = start_body()
    del body["acr_data"]
    tx = parse_start_response("headless", 200, body, provider="se", now=T0)
    assert (tx.qr_data, tx.auto_start_token) == (None, None)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, {"error": "invalid_request"}, "invalid_request"),
        (401, {"error": "invalid_client"}, "invalid_client"),
        (400, {"error": "unauthorized_client"}, "unauthorized_client"),
        (403, {"error": "access_denied"}, "access_denied"),
        (400, {"error": "unknown_user_id"}, "unknown_user_id"),
        (400, {"error": "expired_login_hint_token"}, "expired_login_hint_token"),
        (400, {"error": "invalid_scope"}, "invalid_scope"),
        (400, {"error": "invalid_binding_message"}, "invalid_binding_message"),
        (400, {"error": "slow_down"}, "slow_down"),
        (400, {"error": "<script>alert(1)</script>"}, "start_failed"),
        (400, {"error": "server_error"}, "start_failed"),
        (404, {"error": "not_found"}, "start_failed"),
        (400, None, "malformed_response"),
        (401, None, "malformed_response"),
        (400, {"error": 3}, "malformed_response"),
        (400, ["error"], "malformed_response"),
        (302, None, "malformed_response"),
        (201, start_body(), "malformed_response"),
        (429, {"error": "invalid_request"}, "idp_unavailable"),
        (500, None, "idp_unavailable"),
        (503, {"error": "temporarily_unavailable"}, "idp_unavailable"),
        (200, None, "malformed_response"),
        (200, [start_body()], "malformed_response"),
        (200, {"expires_in": 120}, "malformed_response"),
        (200, start_body(headless_req_id=""), "malformed_response"),
        (200, start_body(headless_req_id="a" * 513), "malformed_response"),
        (200, start_body(headless_req_id="has space"), "malformed_response"),
        (200, start_body(headless_req_id="id\n"), "malformed_response"),
        (200, start_body(headless_req_id="idé"), "malformed_response"),
        (200, start_body(headless_req_id=12345), "malformed_response"),
        (200, {"auth_req_id": REQ_ID, "expires_in": 120}, "malformed_response"),
    ],
)
def test_start_errors(status, body, reason):
    with pytest.raises(PollProtocolError) as caught:
        parse_start_response("headless", status, body, provider="se", now=T0)
    assert caught.value.reason == reason
    assert str(caught.value) == reason  # never echoes the IdP's text


def test_start_accepts_a_512_char_id():
    assert headless(headless_req_id="a" * 512).request_id == "a" * 512


# --- CIBA -----------------------------------------------------------------------------------------


def test_ciba_interval_is_honoured():
    tx = ciba(interval=10)
    assert (tx.kind, tx.request_id, tx.interval, tx.next_poll_at) == ("ciba", AUTH_REQ_ID, 10.0, T0 + 10)
    assert not is_due(tx, T0 + 9.999)
    assert is_due(tx, T0 + 10)
    out = apply_poll_response(tx, 400, {"error": "authorization_pending"}, now=T0 + 10)
    assert out.tx.next_poll_at == T0 + 20
    out = apply_poll_response(out.tx, 400, {"error": "slow_down"}, now=T0 + 20)
    assert (out.tx.interval, out.tx.next_poll_at) == (15.0, T0 + 35)
    out = apply_poll_response(
        out.tx, 200, {"id_token": ID_TOKEN, "token_type": "bearer", "expires_in": 60}, now=T0 + 35
    )
    assert out.id_token == ID_TOKEN


@pytest.mark.parametrize(("interval", "expected"), [(None, 5.0), (1, 1.0), (0, 1.0), (-3, 1.0), (30, 30.0)])
def test_ciba_interval_default_and_floor(interval, expected):
    tx = ciba() if interval is None else ciba(interval=interval)
    assert tx.interval == expected
    assert tx.next_poll_at == T0 + expected


@pytest.mark.parametrize("interval", ["5", 5.5, True, 86_401, 10**400, [5]])
def test_ciba_bad_interval_is_malformed(interval):
    with pytest.raises(PollProtocolError) as caught:
        ciba(interval=interval)
    assert caught.value.reason == "malformed_response"


def test_headless_honours_an_interval_if_one_is_ever_sent():
    assert headless(interval=8).interval == 8.0


def test_ciba_ignores_acr_data():
    tx = ciba(acr_data={"qrData": QR0, "autoStartToken": AUTO, "hintCode": "started"})
    assert (tx.qr_data, tx.auto_start_token, tx.hint_code) == (None, None, None)
    out = apply_poll_response(tx, 400, pending("userSign", QR5), now=T0 + 5)
    assert (out.tx.hint_code, out.tx.qr_data) == (None, None)


def test_ciba_start_error_codes():
    with pytest.raises(PollProtocolError) as caught:
        parse_start_response("ciba", 400, {"error": "unknown_user_id"}, provider="idura", now=T0)
    assert caught.value.reason == "unknown_user_id"


# --- acr_data on pending --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "acr_data",
    [
        {"qrData": "bankid.bad", "hintCode": "user Sign", "autoStartToken": "x"},
        {"qrData": QR5 + "0", "hintCode": "a" * 41, "autoStartToken": AUTO + "0"},
        {"qrData": QR5.replace("bankid.", "BANKID."), "hintCode": 42, "autoStartToken": 7},
        {"qrData": None, "hintCode": "", "autoStartToken": ""},
        {"qrData": ["x"], "hintCode": "userSign\n", "autoStartToken": {}},
    ],
)
def test_malformed_pending_acr_data_is_ignored_and_previous_values_kept(acr_data):
    tx = apply_poll_response(headless(), 400, pending("started"), now=T0 + 5).tx
    out = apply_poll_response(tx, 400, {"error": "authorization_pending", "acr_data": acr_data}, now=T0 + 10)
    assert (out.tx.qr_data, out.tx.hint_code, out.tx.auto_start_token) == (QR0, "started", AUTO)
    assert out.result == "pending"


@pytest.mark.parametrize(
    "body", [{"error": "authorization_pending"}, {"error": "authorization_pending", "acr_data": 5}]
)
def test_pending_without_acr_data(body):
    out = apply_poll_response(headless(), 400, body, now=T0 + 5)
    assert (out.tx.qr_data, out.result) == (QR0, "pending")


# --- terminal answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "tx_status", "reason", "result"),
    [
        (
            400,
            {"error": "access_denied", "error_description": "user declined"},
            "failed",
            "access_denied",
            "access_denied",
        ),
        (403, {"error": "access_denied"}, "failed", "access_denied", "access_denied"),
        (400, {"error": "expired_token"}, "expired", "expired_token", "expired_token"),
        (400, {"error": "invalid_grant"}, "failed", "invalid_grant", "invalid_grant"),
        (400, {"error": "invalid_client"}, "failed", "invalid_client", "error"),
        (401, {"error": "invalid_client"}, "failed", "invalid_client", "error"),
        (400, {"error": "unsupported_grant_type"}, "failed", "idp_error", "error"),
        (400, {"error": "invalid_request"}, "failed", "idp_error", "error"),
        (400, {"error": "<b>weird</b>"}, "failed", "idp_error", "error"),
        (404, {"error": "not_found"}, "failed", "idp_error", "error"),
        (400, None, "failed", "malformed_response", "malformed"),
        (400, {}, "failed", "malformed_response", "malformed"),
        (400, {"error": ""}, "failed", "malformed_response", "malformed"),
        (400, {"error": ["access_denied"]}, "failed", "malformed_response", "malformed"),
        (401, None, "failed", "malformed_response", "malformed"),
        (404, ["not", "an", "object"], "failed", "malformed_response", "malformed"),
        (302, None, "failed", "malformed_response", "malformed"),
        (204, None, "failed", "malformed_response", "malformed"),
        (100, None, "failed", "malformed_response", "malformed"),
        (600, None, "failed", "malformed_response", "malformed"),
    ],
)
def test_every_terminal_answer(status, body, tx_status, reason, result):
    out = apply_poll_response(headless(), status, body, now=T0 + 5)
    assert (out.tx.status, out.tx.reason, out.result, out.id_token) == (tx_status, reason, result, None)
    assert out.tx.terminal
    assert (out.tx.qr_data, out.tx.auto_start_token) == (None, None)
    assert not is_due(out.tx, T0 + 10)


def test_terminal_answer_keeps_the_final_hint_code():
    body = {"error": "access_denied", "acr_data": {"hintCode": "startFailed", "qrData": QR5}}
    out = apply_poll_response(headless(), 400, body, now=T0 + 5)
    assert (out.tx.hint_code, out.tx.qr_data) == ("startFailed", None)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [success_body()],
        success_body(id_token=""),
        success_body(id_token=None),
        success_body(id_token=42),
        success_body(id_token="x" * 16_385),
        success_body(token_type="mac"),
        success_body(token_type="DPoP"),
        success_body(token_type=1),
        success_body(token_type="bearer "),
        success_body(expires_in=1.5),
        success_body(expires_in=[120]),
        success_body(expires_in=True),
    ],
)
def test_malformed_success_fails(body):
    out = apply_poll_response(headless(), 200, body, now=T0 + 5)
    assert (out.tx.status, out.tx.reason, out.result, out.id_token) == (
        "failed",
        "malformed_response",
        "malformed",
        None,
    )


@pytest.mark.parametrize(
    "body",
    [
        success_body(),
        success_body(token_type="bearer"),
        success_body(token_type="BEARER"),
        success_body(expires_in=120),
        {"id_token": ID_TOKEN},
        {"id_token": "x" * 16_384, "token_type": None, "expires_in": None},
    ],
)
def test_valid_success_variants(body):
    out = apply_poll_response(headless(), 200, body, now=T0 + 5)
    assert out.result == "success"
    assert out.id_token == body["id_token"]
    assert out.tx.status == "pending"


def test_polls_counts_every_applied_response():
    tx = headless()
    answers = [(None, None), (429, None), (400, pending()), (400, {"error": "slow_down"})]
    for status, body in answers:
        tx = apply_poll_response(tx, status, body, now=tx.next_poll_at).tx
    assert tx.polls == 4
    tx = apply_poll_response(tx, 400, {"error": "access_denied"}, now=tx.next_poll_at).tx
    assert tx.polls == 5


def test_results_are_bounded_labels():
    assert set(POLL_RESULTS) == {
        "pending",
        "slow_down",
        "success",
        "access_denied",
        "expired_token",
        "invalid_grant",
        "error",
        "rate_limited",
        "server_error",
        "network_error",
        "malformed",
        "expired",
        "not_due",
    }


# --- transitions ----------------------------------------------------------------------------------


def test_finished_transactions_cannot_be_revived():
    done = cancel(headless(), T0 + 1)
    with pytest.raises(ValueError):
        apply_poll_response(done, 200, success_body(), now=T0 + 5)
    with pytest.raises(ValueError):
        complete(done, T0 + 5)
    with pytest.raises(ValueError):
        build_poll_form(done)


def test_cancel_and_fail():
    tx = headless()
    cancelled = cancel(tx, T0 + 3)
    assert (cancelled.status, cancelled.reason, cancelled.qr_data, cancelled.auto_start_token) == (
        "cancelled",
        "cancelled",
        None,
        None,
    )
    assert cancel(cancelled, T0 + 4) is cancelled
    assert fail(cancelled, "token_invalid", T0 + 4) is cancelled
    failed = fail(tx, "token_invalid", T0 + 3)
    assert (failed.status, failed.reason) == ("failed", "token_invalid")
    assert cancel(failed, T0 + 4) is failed
    completed = complete(tx, T0 + 3)
    assert cancel(completed, T0 + 4) is completed
    assert fail(completed, "token_invalid", T0 + 4) is completed


@pytest.mark.parametrize("reason", ["", "Token", "token invalid", "x" * 41, "1abc", "tok\n"])
def test_fail_reason_must_be_a_bounded_word(reason):
    with pytest.raises(ValueError):
        fail(headless(), reason, T0)


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_transitions_refuse_a_non_finite_clock(now):
    tx = headless()
    for call in (
        lambda: apply_poll_response(tx, 400, pending(), now=now),
        lambda: complete(tx, now),
        lambda: fail(tx, "x", now),
        lambda: cancel(tx, now),
        lambda: expire_if_past(tx, now),
    ):
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "failed"},
        {"status": "pending", "reason": "access_denied"},
        {"status": "complete", "reason": "x"},
        {"status": "done"},
        {"kind": "saml"},
        {"request_id": ""},
        {"provider": "a b"},
        {"interval": 0.0},
        {"expires_at": T0 - 1},
        {"next_poll_at": math.nan},
        {"hint_code": "a-b"},
        {"qr_data": "bankid.x"},
        {"auto_start_token": "x"},
        {"polls": -1},
        {"errors_in_row": True},
    ],
)
def test_inconsistent_transactions_cannot_be_built(changes):
    with pytest.raises(ValueError) as caught:
        replace(headless(), **changes)
    assert REQ_ID not in str(caught.value)


# --- payload --------------------------------------------------------------------------------------


def _states():
    tx = headless()
    yield tx
    tx = apply_poll_response(tx, 400, pending("userSign", QR5), now=T0 + 5).tx
    yield tx
    yield apply_poll_response(tx, 400, {"error": "slow_down"}, now=T0 + 10).tx
    yield apply_poll_response(tx, None, None, now=T0 + 10).tx
    yield complete(tx, T0 + 12)
    yield apply_poll_response(tx, 400, {"error": "access_denied"}, now=T0 + 10).tx
    yield expire_if_past(tx, T0 + 500)
    yield cancel(tx, T0 + 7)
    yield ciba(interval=7)


@pytest.mark.parametrize("tx", list(_states()))
def test_payload_round_trip_through_json(tx):
    payload = tx.to_payload()
    assert PollTransaction.from_payload(json.loads(json.dumps(payload))) == tx
    assert PollTransaction.from_payload(payload) == tx


def test_payload_is_compact():
    payload = complete(headless(), T0 + 1).to_payload()
    assert set(payload) == {"v", "k", "p", "r", "c", "e", "i", "n", "s", "np", "ne"}
    assert len(json.dumps(headless().to_payload())) < 400


def test_payload_accepts_integral_numbers_for_times():
    payload = headless().to_payload() | {"c": int(T0), "i": 5}
    tx = PollTransaction.from_payload(payload)
    assert (tx.created, tx.interval) == (T0, 5.0)


def _tampered():
    base = headless().to_payload()
    yield None
    yield []
    yield "payload"
    yield {}
    yield {k: v for k, v in base.items() if k != "r"}
    yield base | {"zz": 1}
    yield base | {"v": 2}
    yield base | {"v": True}
    yield base | {"v": "1"}
    yield base | {"k": "saml"}
    yield base | {"k": 1}
    yield base | {"s": "done"}
    yield base | {"s": "complete", "x": "access_denied"}
    yield base | {"s": "failed"}
    yield base | {"x": "access_denied"}
    yield base | {"x": 5}
    yield base | {"r": ""}
    yield base | {"r": "a b"}
    yield base | {"r": ["id"]}
    yield base | {"p": ""}
    yield base | {"c": "1700000000"}
    yield base | {"c": True}
    yield base | {"c": None}
    yield base | {"n": math.nan}
    yield base | {"e": math.inf}
    yield base | {"e": 10**400}
    yield base | {"e": T0 - 10}
    yield base | {"i": 0}
    yield base | {"i": -5}
    yield base | {"np": 1.0}
    yield base | {"np": -1}
    yield base | {"ne": True}
    yield base | {"ne": "0"}
    yield base | {"h": 5}
    yield base | {"h": "user sign"}
    yield base | {"q": "bankid.x"}
    yield base | {"a": "AUTO"}
    yield base | {"a": 1}
    yield {1: 2} | base


@pytest.mark.parametrize("payload", list(_tampered()))
def test_tampered_payload_is_refused(payload):
    with pytest.raises(PollProtocolError) as caught:
        PollTransaction.from_payload(payload)
    assert caught.value.reason == "malformed_state"


# --- forms ----------------------------------------------------------------------------------------


def test_headless_start_form():
    assert build_start_form("headless", scope=["openid"]) == {"scope": "openid"}
    assert build_start_form(
        "headless", scope=["openid", "evidence"], acr_values=["urn:grn:authn:se:bankid"], end_user_ip="185.157.134.134"
    ) == {"scope": "openid evidence", "acr_values": "urn:grn:authn:se:bankid", "end_user_ip": "185.157.134.134"}


@pytest.mark.parametrize(
    ("raw", "sent"),
    [("::ffff:185.157.134.134", "185.157.134.134"), ("2001:DB8::0001", "2001:db8::1"), ("10.0.0.1", "10.0.0.1")],
)
def test_end_user_ip_is_canonical(raw, sent):
    assert build_start_form("headless", scope=["openid"], end_user_ip=raw)["end_user_ip"] == sent


def test_scope_given_as_a_string_is_split():
    assert build_start_form("headless", scope="openid  evidence")["scope"] == "openid evidence"


def test_each_flow_sends_only_its_own_parameters():
    # The I/O layer passes a provider's settings unfiltered; nothing of the other flow is sent.
    assert build_start_form(
        "headless", scope=["openid"], login_hint="sub:ssn:196802020575", binding_message="Caller 4711"
    ) == {"scope": "openid"}
    assert build_start_form("ciba", scope=["openid"], login_hint="x", end_user_ip="not even an ip") == {
        "scope": "openid",
        "login_hint": "x",
    }


def test_ciba_start_form():
    assert build_start_form("ciba", scope=["openid"], login_hint="sub:ssn:196802020575") == {
        "scope": "openid",
        "login_hint": "sub:ssn:196802020575",
    }
    assert build_start_form(
        "ciba",
        scope=["openid"],
        login_hint="sub:ssn:196802020575",
        binding_message="Caller 4711",
        acr_values=["urn:grn:authn:se:bankid"],
    ) == {
        "scope": "openid",
        "login_hint": "sub:ssn:196802020575",
        "binding_message": "Caller 4711",
        "acr_values": "urn:grn:authn:se:bankid",
    }


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("ciba", {"scope": ["openid"]}),
        ("ciba", {"scope": ["openid"], "login_hint": ""}),
        ("ciba", {"scope": ["openid"], "login_hint": "x", "binding_message": ""}),
        ("headless", {"scope": ["openid"], "end_user_ip": "not-an-ip"}),
        ("headless", {"scope": ["openid"], "end_user_ip": "1.2.3.4\n"}),
        ("headless", {"scope": ["profile"]}),
        ("headless", {"scope": []}),
        ("headless", {"scope": ["openid", "two words"]}),
        ("headless", {"scope": ["openid", ""]}),
        ("headless", {"scope": ["openid"], "acr_values": ['urn:"quoted"']}),
        ("saml", {"scope": ["openid"]}),
    ],
)
def test_start_form_refuses_bad_arguments(kind, kwargs):
    with pytest.raises(ValueError):
        build_start_form(kind, **kwargs)


def test_poll_forms():
    assert build_poll_form(headless()) == {"grant_type": HEADLESS_GRANT_TYPE, "headless_req_id": REQ_ID}
    assert build_poll_form(headless(), grant_type="urn:urn:params:grant-type:headless") == {
        "grant_type": "urn:urn:params:grant-type:headless",
        "headless_req_id": REQ_ID,
    }
    assert build_poll_form(ciba()) == {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": AUTH_REQ_ID}
    assert build_poll_form(ciba(), grant_type=CIBA_GRANT_TYPE)["grant_type"] == CIBA_GRANT_TYPE
    assert HEADLESS_GRANT_TYPE == "urn:grn:params:grant-type:headless"
    assert CIBA_GRANT_TYPE == "urn:openid:params:grant-type:ciba"


@pytest.mark.parametrize(("tx", "grant_type"), [(headless, ""), (headless, "a b"), (ciba, HEADLESS_GRANT_TYPE)])
def test_poll_form_refuses_bad_grant_type(tx, grant_type):
    with pytest.raises(ValueError):
        build_poll_form(tx(), grant_type=grant_type)


# --- an early status call waits for the due time --------------------------------------------------


def test_an_ask_just_before_the_due_time_waits_exactly_until_it():
    tx = replace(headless(), interval=5.0, next_poll_at=T0 + 5)
    for asked in (T0 + 4.0, T0 + 4.5, T0 + 4.99):
        wait = wait_until_due(tx, asked)
        assert wait == pytest.approx(T0 + 5 - asked)
        # Waiting that long makes the poll due, and not a moment sooner.
        assert is_due(tx, asked + wait) and not is_due(tx, asked + wait - 0.001)


def test_an_ask_far_before_the_due_time_or_after_it_does_not_wait():
    tx = replace(headless(), interval=5.0, next_poll_at=T0 + 5)
    assert wait_until_due(tx, T0 + 3.9) == 0.0
    assert wait_until_due(tx, T0 + 5) == 0.0
    assert wait_until_due(tx, T0 + 9) == 0.0


def test_the_early_window_is_at_most_half_the_interval():
    tx = replace(headless(), interval=0.4, next_poll_at=T0 + 0.4)
    assert wait_until_due(tx, T0 + 0.21) == pytest.approx(0.19)
    assert wait_until_due(tx, T0 + 0.19) == 0.0


def test_no_wait_for_a_finished_transaction_or_a_poll_past_expiry():
    tx = replace(headless(), interval=5.0, next_poll_at=T0 + 5)
    assert wait_until_due(cancel(tx, T0 + 1), T0 + 4.5) == 0.0
    assert wait_until_due(replace(tx, expires_at=T0 + 5), T0 + 4.5) == 0.0
