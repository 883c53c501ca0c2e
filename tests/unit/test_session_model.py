"""Session and pending-login records: validity windows, refresh pacing, payload round trips and the
type checks that keep a corrupted payload from ever becoming an identity."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from gateway.protocol.claims import Identity
from gateway.session.model import MAX_PENDING_LOGINS, PendingLogin, Session, add_pending

IDENTITY = Identity(values={"sub": "u1", "idp": "bankid-no", "name": "Åsa Öberg", "ssn": "01010112345"})
T0 = 1_700_000_000.0
LIFETIME = 8 * 3600.0
IDLE = 3600.0


def session(**changes: Any) -> Session:
    base = Session(sid="sid-1", identity=IDENTITY, created=T0, last_seen=T0, expires=T0 + LIFETIME, idle_timeout=IDLE)
    return dataclasses.replace(base, **changes)


def test_new_session() -> None:
    s = Session.new(IDENTITY, now=T0, lifetime=LIFETIME, idle_timeout=IDLE)
    assert (s.identity, s.created, s.last_seen, s.expires, s.idle_timeout) == (IDENTITY, T0, T0, T0 + LIFETIME, IDLE)
    assert len(s.sid) == 22  # 16 random bytes, base64url
    assert Session.new(IDENTITY, now=T0, lifetime=LIFETIME, idle_timeout=IDLE).sid != s.sid


@pytest.mark.parametrize(
    ("last_seen", "now", "valid"),
    [
        (T0, T0, True),
        (T0, T0 + IDLE - 0.001, True),
        (T0, T0 + IDLE, False),  # idle window closed
        (T0, T0 + IDLE + 1, False),
        (T0 + LIFETIME - 10, T0 + LIFETIME - 1, True),
        (T0 + LIFETIME - 10, T0 + LIFETIME, False),  # absolute end, although active
        (T0 + LIFETIME - 10, T0 + LIFETIME + 1, False),
        (T0 + 5 * 3600, T0 + 5 * 3600 + 1800, True),
    ],
)
def test_is_valid_absolute_and_idle(last_seen: float, now: float, valid: bool) -> None:
    assert session(last_seen=last_seen).is_valid(now) is valid


def test_touch_extends_idle_but_never_the_absolute_end() -> None:
    s = session()
    now = T0
    while now + 3000 < T0 + LIFETIME:
        now += 3000
        assert s.is_valid(now)
        s = s.touched(now)
    assert s.expires == T0 + LIFETIME
    assert not s.is_valid(T0 + LIFETIME)
    assert s.touched(T0 + 10).last_seen == T0 + 10
    assert s.touched(T0 + 10).sid == s.sid


@pytest.mark.parametrize(
    ("idle", "elapsed", "refresh"),
    [
        (3600.0, 0, False),
        (3600.0, 60, False),
        (3600.0, 60.001, True),
        (3600.0, 600, True),
        (300.0, 30, False),  # a tenth of a short idle window
        (300.0, 30.5, True),
        (60.0, 6.5, True),
    ],
)
def test_needs_refresh(idle: float, elapsed: float, refresh: bool) -> None:
    assert session(idle_timeout=idle).needs_refresh(T0 + elapsed) is refresh


@pytest.mark.parametrize(
    ("last_seen", "expected"),
    [(T0, T0 + IDLE), (T0 + LIFETIME - 100, T0 + LIFETIME)],
)
def test_cookie_expiry_is_the_earlier_end(last_seen: float, expected: float) -> None:
    assert session(last_seen=last_seen).cookie_expiry() == expected
    assert session(last_seen=last_seen).to_payload()["exp"] == expected


def test_payload_round_trip() -> None:
    s = session(last_seen=T0 + 42.5)
    payload = s.to_payload()
    assert payload == {
        "sid": "sid-1",
        "id": {"sub": "u1", "idp": "bankid-no", "name": "Åsa Öberg", "ssn": "01010112345"},
        "c": T0,
        "l": T0 + 42.5,
        "x": T0 + LIFETIME,
        "i": IDLE,
        "exp": T0 + 42.5 + IDLE,
    }
    again = Session.from_payload(json.loads(json.dumps(payload)))
    assert again == s
    assert dict(again.identity.values) == dict(IDENTITY.values)


def test_from_payload_accepts_integers() -> None:
    payload = {**session().to_payload(), "c": 1, "l": 2, "x": 3, "i": 4}
    s = Session.from_payload(payload)
    assert (s.created, s.last_seen, s.expires, s.idle_timeout) == (1.0, 2.0, 3.0, 4.0)
    assert all(type(v) is float for v in (s.created, s.last_seen, s.expires, s.idle_timeout))


GOOD = session().to_payload()


@pytest.mark.parametrize(
    "changes",
    [
        {"sid": None},
        {"sid": 123},
        {"sid": ["sid-1"]},
        {"id": None},
        {"id": "u1"},
        {"id": [["sub", "u1"]]},
        {"id": {"idp": "bankid-no"}},  # no sub
        {"id": {"sub": 1, "idp": "bankid-no"}},
        {"id": {"sub": "u1", "idp": "bankid-no", "ssn": 1234}},
        {"id": {"sub": "u1", "idp": "bankid-no", "name": None}},
        {"id": {"sub": "u1", "idp": "bankid-no", "name": ["Åsa"]}},
        {"id": {"sub": "u1", "idp": "bankid-no", 1: "x"}},
        {"id": {"sub": "u1"}},  # no idp
        {"id": {"sub": "", "idp": "bankid-no"}},
        {"id": {"sub": "u1", "idp": "bankid-no", "role": "admin"}},  # not a canonical claim
        {"c": "1700000000"},
        {"l": None},
        {"x": True},
        {"i": False},
        {"x": [1]},
        {"i": {"v": 1}},
    ],
)
def test_from_payload_refuses_wrong_types(changes: dict[str, Any]) -> None:
    payload = {**GOOD, **changes}
    with pytest.raises(ValueError):
        Session.from_payload(payload)


@pytest.mark.parametrize("missing", ["sid", "id", "c", "l", "x", "i"])
def test_from_payload_refuses_missing_fields(missing: str) -> None:
    payload = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ValueError):
        Session.from_payload(payload)


def test_identity_from_payload_is_read_only() -> None:
    payload = session().to_payload()
    s = Session.from_payload(payload)
    payload["id"]["sub"] = "attacker"
    assert s.identity.sub == "u1"
    with pytest.raises(TypeError):
        s.identity.values["sub"] = "attacker"  # type: ignore[index]


# --- pending logins ----------------------------------------------------------------------------------


def pending(n: int) -> PendingLogin:
    return PendingLogin(
        state=f"state-{n}",
        nonce=f"nonce-{n}",
        code_verifier=f"verifier-{n}",
        provider="bankid-no",
        return_to=f"/page/{n}?a=1",
        created=T0 + n,
    )


def test_pending_round_trip() -> None:
    login = pending(1)
    payload = login.to_payload()
    assert payload == {
        "s": "state-1",
        "n": "nonce-1",
        "v": "verifier-1",
        "p": "bankid-no",
        "r": "/page/1?a=1",
        "t": T0 + 1,
    }
    assert PendingLogin.from_payload(json.loads(json.dumps(payload))) == login


def test_pending_from_payload_integer_time() -> None:
    login = PendingLogin.from_payload({**pending(1).to_payload(), "t": 1_700_000_000})
    assert login is not None and login.created == 1_700_000_000.0 and type(login.created) is float


@pytest.mark.parametrize(
    "item",
    [
        None,
        "state-1",
        [],
        {**pending(1).to_payload(), "s": None},
        {**pending(1).to_payload(), "n": 5},
        {**pending(1).to_payload(), "v": ["x"]},
        {**pending(1).to_payload(), "p": {}},
        {**pending(1).to_payload(), "r": b"/"},
        {**pending(1).to_payload(), "t": "1700000000"},
        {**pending(1).to_payload(), "t": None},
        pytest.param({**pending(1).to_payload(), "t": True}, id="created-is-bool"),  # Session refuses bools too
        {k: v for k, v in pending(1).to_payload().items() if k != "s"},
        {k: v for k, v in pending(1).to_payload().items() if k != "t"},
    ],
)
def test_pending_from_payload_refuses_wrong_types(item: Any) -> None:
    assert PendingLogin.from_payload(item) is None


def test_add_pending_caps_at_three_keeping_the_newest() -> None:
    assert MAX_PENDING_LOGINS == 3
    current: list[PendingLogin] = []
    for n in range(1, 6):
        before = list(current)
        current = add_pending(current, pending(n))
        assert before == current[:-1] or before[1:] == current[:-1]
    assert [p.state for p in current] == ["state-3", "state-4", "state-5"]


def test_add_pending_does_not_mutate_its_input() -> None:
    original = [pending(1), pending(2), pending(3)]
    result = add_pending(original, pending(4))
    assert [p.state for p in original] == ["state-1", "state-2", "state-3"]
    assert [p.state for p in result] == ["state-2", "state-3", "state-4"]


@pytest.mark.parametrize(
    ("count", "expected"), [(0, ["state-9"]), (1, ["state-0", "state-9"]), (2, ["state-0", "state-1", "state-9"])]
)
def test_add_pending_below_the_cap_keeps_all(count: int, expected: list[str]) -> None:
    assert [p.state for p in add_pending([pending(i) for i in range(count)], pending(9))] == expected
