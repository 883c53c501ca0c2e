"""Poll-based login engine, pure core: Idura Headless and CIBA poll mode (pure layer).

Both flows open with a back-channel request that returns an opaque request id and a lifetime,
then poll the token endpoint until the user has finished in their eID app:

- Idura Headless (protocols.md §2): ``POST /headless/authorize`` answers ``headless_req_id``,
  ``expires_in`` and ``acr_data`` (Swedish BankID: ``qrData``, ``autoStartToken``); the token
  endpoint is polled with ``grant_type=urn:grn:params:grant-type:headless`` (§2.2 table).
- OpenID CIBA Core 1.0 poll mode: the §7.1 request answers ``auth_req_id``, ``expires_in`` and an
  optional ``interval`` (§7.3); the token endpoint is polled with
  ``grant_type=urn:openid:params:grant-type:ciba`` (§10.1) and errors follow §11.

The I/O layer sends the forms built here (adding client authentication, protocols.md §1.2),
hands back the HTTP status and the parsed JSON body, and keeps the :class:`PollTransaction`
(``poll_transaction.py``) in server-side session state via :meth:`PollTransaction.to_payload`. No clock is read here:
``now`` (seconds, any epoch) is always a parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv6Address, ip_address

from gateway.protocol.poll_transaction import (
    AUTO_START_TOKEN,
    HINT_CODE,
    KINDS,
    POLL_RESULTS,
    PROVIDER_NAME,
    QR_DATA,
    REASON,
    REQUEST_ID,
    PollKind,
    PollOutcome,
    PollProtocolError,
    PollResult,
    PollStatus,
    PollTransaction,
    is_int,
    is_number,
    match_pattern,
)

__all__ = [
    "AUTO_START_TOKEN",
    "CIBA_GRANT_TYPE",
    "DEFAULT_INTERVAL",
    "HEADLESS_GRANT_TYPE",
    "HINT_CODE",
    "MAX_BACKOFF",
    "MIN_INTERVAL",
    "POLL_RESULTS",
    "QR_DATA",
    "SLOW_DOWN_STEP",
    "PollKind",
    "PollOutcome",
    "PollProtocolError",
    "PollResult",
    "PollStatus",
    "PollTransaction",
    "apply_poll_response",
    "build_poll_form",
    "build_start_form",
    "cancel",
    "complete",
    "expire_if_past",
    "fail",
    "is_due",
    "parse_start_response",
    "wait_until_due",
]

HEADLESS_GRANT_TYPE = "urn:grn:params:grant-type:headless"
CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
DEFAULT_INTERVAL = 5.0  # CIBA §7.3 default; Idura: "polled every 5 seconds" (protocols.md §2.2)
SLOW_DOWN_STEP = 5.0  # CIBA §11: "increased by at least 5 seconds for this and all subsequent requests"
MAX_BACKOFF = 60.0
MIN_INTERVAL = 1.0  # floor for an interval the IdP sends; the operator's default may be shorter (tests, QR)

_GRANT_TYPE = re.compile(r"[\x21-\x7e]{1,256}")
# RFC 6749 §3.3 scope-token; acr values are space-separated the same way (OIDC Core §3.1.2.1).
_SPACE_DELIMITED_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}")
_DECIMAL_SECONDS = re.compile(r"[0-9]{1,9}")
# A poll interval above a day is not an interval; refusing it also keeps float() away from huge ints.
_MAX_INTERVAL_SECONDS = 86_400
_MAX_ID_TOKEN_CHARS = 16_384
# 2**16 already dwarfs MAX_BACKOFF; the cap keeps the float product finite whatever the counter says.
_MAX_BACKOFF_EXPONENT = 16

# CIBA Core §13 authentication errors (plus slow_down, which some servers send at start);
# only these are ever echoed as a reason, anything else becomes "start_failed".
_START_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "unauthorized_client",
        "access_denied",
        "unknown_user_id",
        "expired_login_hint_token",
        "invalid_scope",
        "invalid_binding_message",
        "missing_user_code",
        "invalid_user_code",
        "slow_down",
    }
)

# Terminal token errors (CIBA §11, protocols.md §2.2): error -> (status, reason, metric result).
_TERMINAL_ERRORS: dict[str, tuple[PollStatus, str, PollResult]] = {
    "access_denied": ("failed", "access_denied", "access_denied"),
    "expired_token": ("expired", "expired_token", "expired_token"),
    "invalid_grant": ("failed", "invalid_grant", "invalid_grant"),
    "invalid_client": ("failed", "invalid_client", "error"),
}
_OTHER_TOKEN_ERROR: tuple[PollStatus, str, PollResult] = ("failed", "idp_error", "error")


def build_start_form(
    kind: PollKind,
    *,
    scope: Sequence[str],
    acr_values: Sequence[str] = (),
    end_user_ip: str | None = None,
    login_hint: str | None = None,
    binding_message: str | None = None,
) -> dict[str, str]:
    """The form body of the start request, without client authentication (the I/O layer adds it).

    Headless (protocols.md §2.1): ``scope``, ``acr_values`` and ``end_user_ip`` when given.
    CIBA (Core §7.1): ``scope``, ``login_hint`` (required: the gateway supports no other user
    hint), ``binding_message`` and ``acr_values`` when given. ``scope`` must contain ``openid``.
    Each flow sends only its own parameters, so the caller may pass one provider's settings
    unfiltered: ``login_hint``/``binding_message`` are not sent for headless (whether Idura
    honours them there is undocumented, §1.2), nor ``end_user_ip`` for CIBA.
    """
    _check_kind(kind)
    scopes = _space_delimited(scope, "scope")
    if "openid" not in scopes:
        raise ValueError("scope must include openid")
    acrs = _space_delimited(acr_values, "acr_values")
    form = {"scope": " ".join(scopes)}
    if kind == "headless":
        if acrs:
            form["acr_values"] = " ".join(acrs)
        if end_user_ip is not None:
            form["end_user_ip"] = _normalise_ip(end_user_ip)
        return form
    if not login_hint:
        raise ValueError("CIBA needs a login_hint (CIBA Core §7.1)")
    form["login_hint"] = login_hint
    if binding_message is not None:
        if not binding_message:
            raise ValueError("binding_message must not be empty")
        form["binding_message"] = binding_message
    if acrs:
        form["acr_values"] = " ".join(acrs)
    return form


def build_poll_form(tx: PollTransaction, *, grant_type: str | None = None) -> dict[str, str]:
    """The form body of one token-endpoint poll, without client authentication.

    ``grant_type`` overrides the headless grant type only: Idura's BankID page prints
    ``urn:urn:params:grant-type:headless``, which protocols.md §2.2 treats as a typo, so the
    value is configurable. CIBA always uses its registered grant type (Core §10.1).
    """
    if tx.terminal:
        raise ValueError("the transaction is not pending; there is nothing to poll")
    if tx.kind == "headless":
        value = HEADLESS_GRANT_TYPE if grant_type is None else grant_type
        if not _GRANT_TYPE.fullmatch(value):
            raise ValueError("grant_type must be a non-empty token of visible ASCII")
        return {"grant_type": value, "headless_req_id": tx.request_id}
    if grant_type is not None and grant_type != CIBA_GRANT_TYPE:
        raise ValueError("CIBA polls always use urn:openid:params:grant-type:ciba")
    return {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": tx.request_id}


def parse_start_response(
    kind: PollKind,
    status: int,
    body: object,
    *,
    provider: str,
    now: float,
    default_interval: float = DEFAULT_INTERVAL,
    max_lifetime: float = 600.0,
) -> PollTransaction:
    """Turn the start response into a pending transaction (protocols.md §2.1, CIBA Core §7.3).

    ``body`` is the parsed JSON, or None when the body was not JSON. The lifetime is the
    IdP's ``expires_in`` (an int, or a decimal string), clamped to ``max_lifetime``. An
    ``interval`` in the answer is honoured for either flow, never below one second; without
    one, ``default_interval`` (the operator's setting, any positive number) applies. The
    first poll is due one interval after ``now`` (CIBA §7.3: the client MUST wait at least
    that long; Idura's cadence is the same).

    Raises PollProtocolError with reason "idp_unavailable" (429, 5xx), an allow-listed error
    code or "start_failed" (other errors), or "malformed_response".
    """
    _check_kind(kind)
    _check_now(now)
    if not (math.isfinite(default_interval) and default_interval > 0):
        raise ValueError("default_interval must be a finite positive number of seconds")
    if not (math.isfinite(max_lifetime) and max_lifetime > 0):
        raise ValueError("max_lifetime must be a finite positive number of seconds")
    if not PROVIDER_NAME.fullmatch(provider):
        raise ValueError("provider must be a short name of [A-Za-z0-9._-]")

    if status == 429 or 500 <= status <= 599:
        raise PollProtocolError("idp_unavailable")
    if status != 200:
        error = _error_code(body)
        if error is None:
            raise PollProtocolError("malformed_response")
        raise PollProtocolError(error if error in _START_ERRORS else "start_failed")
    if not isinstance(body, dict):
        raise PollProtocolError("malformed_response")

    request_id = body.get("headless_req_id" if kind == "headless" else "auth_req_id")
    lifetime = _positive_seconds(body.get("expires_in"))
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id) or lifetime is None:
        raise PollProtocolError("malformed_response")

    interval = default_interval
    raw_interval = body.get("interval")
    if raw_interval is not None:
        if not is_int(raw_interval) or raw_interval > _MAX_INTERVAL_SECONDS:
            raise PollProtocolError("malformed_response")
        # Polling faster than the OP asked is never allowed (§7.3); 0 or less would mean a busy
        # loop, so one second is the floor.
        interval = max(float(raw_interval), MIN_INTERVAL)

    hint_code = qr_data = auto_start_token = None
    acr_data = body.get("acr_data") if kind == "headless" else None
    if isinstance(acr_data, dict):
        hint_code = match_pattern(HINT_CODE, acr_data.get("hintCode"))
        qr_data = match_pattern(QR_DATA, acr_data.get("qrData"))
        auto_start_token = match_pattern(AUTO_START_TOKEN, acr_data.get("autoStartToken"))

    return PollTransaction(
        kind=kind,
        provider=provider,
        request_id=request_id,
        created=now,
        expires_at=now + min(lifetime, max_lifetime),
        interval=interval,
        next_poll_at=now + interval,
        hint_code=hint_code,
        qr_data=qr_data,
        auto_start_token=auto_start_token,
    )


def is_due(tx: PollTransaction, now: float) -> bool:
    """True when the next poll may be sent: pending, the interval has passed, not yet expired.

    Expiry is included so a poll loop stops at ``expires_at`` even before the caller has
    called :func:`expire_if_past` (protocols.md §2.2: stop polling at ``expires_in``).
    """
    return tx.status == "pending" and tx.next_poll_at <= now < tx.expires_at


#: A status call this close before the next poll is due waits for it (at most this long, and at most half
#: the interval) instead of answering "not due": a client that asks once per interval on its own clock is
#: a little early every time (the next poll is due an interval after the previous *answer*) and would get
#: a provider poll only on every second ask. With the wait it gets one on each ask until the round trips
#: add up to more than the window (with 20 ms per poll and a 1 s window, one ask in fifty is skipped).
EARLY_ASK_WINDOW = 1.0


def wait_until_due(tx: PollTransaction, now: float) -> float:
    """Seconds a status call at ``now`` should wait for the next poll; 0 when it should not wait (the poll
    is due already, too far ahead, or the transaction ends first). Never makes a poll come sooner."""
    if tx.status != "pending":
        return 0.0
    wait = tx.next_poll_at - now
    if wait <= 0 or wait > min(EARLY_ASK_WINDOW, tx.interval / 2) or tx.next_poll_at >= tx.expires_at:
        return 0.0
    return wait


def expire_if_past(tx: PollTransaction, now: float) -> PollTransaction:
    """Expire a pending transaction once ``now`` reaches its ``expires_at`` (reason "expired")."""
    _check_now(now)
    if tx.status == "pending" and now >= tx.expires_at:
        return _finish(tx, "expired", "expired")
    return tx


def apply_poll_response(tx: PollTransaction, status: int | None, body: object, *, now: float) -> PollOutcome:
    """Apply one token-endpoint answer (protocols.md §2.2 table, CIBA Core §11).

    ``status`` None means the request failed without an answer (network error, timeout);
    ``body`` is the parsed JSON or None. Expiry is checked first, so even a success that
    arrives after ``expires_at`` expires the transaction. Then:

    - 400 ``authorization_pending``: stay pending, take the validated ``acr_data`` (headless),
      next poll one interval later, error streak reset.
    - 400 ``slow_down``: the interval grows by SLOW_DOWN_STEP for good (CIBA §11).
    - ``access_denied`` / ``invalid_grant`` / ``invalid_client``: failed with that reason;
      ``expired_token``: expired; any other 4xx error code: failed("idp_error"); a 4xx without
      a JSON error object: failed("malformed_response").
    - 429, 5xx, no answer: stay pending with exponential back-off, interval unchanged.
    - 200: the ID token is handed back and the transaction stays pending until the caller
      validates it and calls :func:`complete` or :func:`fail`.
    - anything else: failed("malformed_response").

    Raises ValueError if the transaction is not pending: a stale answer to a finished
    transaction must never revive it.
    """
    _check_now(now)
    if tx.terminal:
        raise ValueError("the transaction is not pending")
    tx = replace(tx, polls=tx.polls + 1)
    if now >= tx.expires_at:
        return PollOutcome(_finish(tx, "expired", "expired"), None, "expired")
    if status is None:
        return _back_off(tx, now, "network_error")
    if status == 429:
        return _back_off(tx, now, "rate_limited")
    if 500 <= status <= 599:
        return _back_off(tx, now, "server_error")
    if status == 200:
        return _success(tx, body, now)
    if not 400 <= status <= 499:
        return PollOutcome(_finish(tx, "failed", "malformed_response"), None, "malformed")

    error = _error_code(body)
    if error is None:
        return PollOutcome(_finish(tx, "failed", "malformed_response"), None, "malformed")
    if error in ("authorization_pending", "slow_down"):
        slow_down = error == "slow_down"
        interval = tx.interval + SLOW_DOWN_STEP if slow_down else tx.interval
        tx = _absorb_acr_data(tx, body, ui_material=True)
        tx = replace(tx, interval=interval, next_poll_at=now + interval, errors_in_row=0)
        return PollOutcome(tx, None, "slow_down" if slow_down else "pending")
    new_status, reason, result = _TERMINAL_ERRORS.get(error, _OTHER_TOKEN_ERROR)
    # A failed BankID order may carry its final hintCode (userCancel, startFailed, ...), which
    # picks a more precise user message; the QR and autostart token are dead by now.
    tx = _absorb_acr_data(tx, body, ui_material=False)
    return PollOutcome(_finish(tx, new_status, reason), None, result)


def complete(tx: PollTransaction, now: float) -> PollTransaction:
    """Mark the transaction complete once the caller has validated the ID token.

    Raises ValueError unless it is pending: completing a cancelled, failed or expired
    transaction would sign in a user who is no longer meant to be.
    """
    _check_now(now)
    if tx.terminal:
        raise ValueError("only a pending transaction can complete")
    return _finish(tx, "complete", "")


def fail(tx: PollTransaction, reason: str, now: float) -> PollTransaction:
    """Fail a pending transaction with a bounded reason word (e.g. "token_invalid").

    A transaction that has already ended keeps its first outcome.
    """
    _check_now(now)
    if not REASON.fullmatch(reason):
        raise ValueError("reason must be a short lower-case word ([a-z][a-z0-9_]{0,39})")
    if tx.terminal:
        return tx
    return _finish(tx, "failed", reason)


def cancel(tx: PollTransaction, now: float) -> PollTransaction:
    """Cancel a pending transaction (the user gave up in the gateway's UI); others stay as they are."""
    _check_now(now)
    if tx.terminal:
        return tx
    return _finish(tx, "cancelled", "cancelled")


# --- helpers ---------------------------------------------------------------------------------


def _finish(tx: PollTransaction, status: PollStatus, reason: str) -> PollTransaction:
    # The QR payload and autostart token are useless once the order has ended, and dropping
    # them keeps them out of the session from then on (protocols.md §5 item 12).
    return replace(tx, status=status, reason=reason, qr_data=None, auto_start_token=None)


def _back_off(tx: PollTransaction, now: float, result: PollResult) -> PollOutcome:
    errors = tx.errors_in_row + 1
    delay = min(tx.interval * 2 ** min(errors, _MAX_BACKOFF_EXPONENT), MAX_BACKOFF)
    # After several slow_downs the interval itself may exceed MAX_BACKOFF; the back-off must
    # still never poll sooner than the interval allows (CIBA §10.1).
    delay = max(delay, tx.interval)
    return PollOutcome(replace(tx, errors_in_row=errors, next_poll_at=now + delay), None, result)


def _success(tx: PollTransaction, body: object, now: float) -> PollOutcome:
    if not isinstance(body, dict):
        return PollOutcome(_finish(tx, "failed", "malformed_response"), None, "malformed")
    id_token = body.get("id_token")
    token_type = body.get("token_type")
    expires_in = body.get("expires_in")
    if (
        not isinstance(id_token, str)
        or not 0 < len(id_token) <= _MAX_ID_TOKEN_CHARS
        or (token_type is not None and not _is_bearer(token_type))
        # Idura sends "120" as a string (protocols.md §2.2); the value itself is not used.
        or (expires_in is not None and not (is_int(expires_in) or isinstance(expires_in, str)))
    ):
        return PollOutcome(_finish(tx, "failed", "malformed_response"), None, "malformed")
    tx = replace(tx, errors_in_row=0, next_poll_at=now + tx.interval)
    return PollOutcome(tx, id_token, "success")


def _absorb_acr_data(tx: PollTransaction, body: object, *, ui_material: bool) -> PollTransaction:
    """Take validated values from a headless ``acr_data``; invalid ones are ignored, never stored."""
    if tx.kind != "headless" or not isinstance(body, dict):
        return tx
    acr_data = body.get("acr_data")
    if not isinstance(acr_data, dict):
        return tx
    hint_code = match_pattern(HINT_CODE, acr_data.get("hintCode")) or tx.hint_code
    if not ui_material:
        return replace(tx, hint_code=hint_code)
    return replace(
        tx,
        hint_code=hint_code,
        qr_data=match_pattern(QR_DATA, acr_data.get("qrData")) or tx.qr_data,
        auto_start_token=match_pattern(AUTO_START_TOKEN, acr_data.get("autoStartToken")) or tx.auto_start_token,
    )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError("kind must be 'headless' or 'ciba'")


def _check_now(now: float) -> None:
    if not is_number(now) or not math.isfinite(now):
        raise ValueError("now must be a finite number of seconds")


def _is_bearer(value: object) -> bool:
    # RFC 6749 §7.1: the token type is case-insensitive.
    return isinstance(value, str) and value.isascii() and value.lower() == "bearer"


def _error_code(body: object) -> str | None:
    """The OAuth ``error`` of a JSON error body (RFC 6749 §5.2), or None if there is none."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str) and error:
            return error
    return None


def _positive_seconds(value: object) -> int | None:
    """``expires_in`` as a positive int; Idura documents both 120 and "120" (protocols.md §2.2)."""
    if isinstance(value, str) and _DECIMAL_SECONDS.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _space_delimited(values: Sequence[str], name: str) -> list[str]:
    # A bare str is also a Sequence[str]; iterating it would send one character per token.
    items = values.split() if isinstance(values, str) else list(values)
    for item in items:
        if not isinstance(item, str) or not _SPACE_DELIMITED_TOKEN.fullmatch(item):
            raise ValueError(f"{name} values must be non-empty tokens of visible ASCII without spaces or quotes")
    return items


def _normalise_ip(value: str) -> str:
    """``end_user_ip`` as BankID expects it: a canonical address, IPv4 when IPv4-mapped."""
    try:
        address = ip_address(value)
    except ValueError:
        raise ValueError("end_user_ip must be an IP address") from None
    # Dual-stack listeners report IPv4 peers as ::ffff:a.b.c.d; BankID wants the IPv4 form.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
