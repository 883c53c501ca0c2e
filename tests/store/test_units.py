"""Unit tests of the session store seam, no network: ``session.store`` URLs, logout token rules, the session
payload with provider sid and refresh fields, ``oidc.refresh_deadline``, the cookie store's contract, and
the config errors for ``session.store``, ``store_prefix`` and ``store_timeout``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError, TokenValidationError
from gateway.protocol import oidc
from gateway.protocol.claims import Identity
from gateway.protocol.logout_token import (
    BACKCHANNEL_LOGOUT_EVENT,
    MAX_TOKEN_AGE,
    LogoutRequest,
    validate_logout_token,
)
from gateway.protocol.oidc import CLOCK_SKEW
from gateway.session.codec import Keyring
from gateway.session.model import Session
from gateway.session.store import CookieStore
from gateway.session.store_url import StoreAddress, parse_store_url

SECRET = "0123456789abcdef0123456789abcdef-session"
T0 = 1_700_000_000.0

# --- parse_store_url -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("cookie", StoreAddress("cookie")),
        ("redis://127.0.0.1:6379/0", StoreAddress("redis", url="redis://127.0.0.1:6379/0")),
        ("redis://cache.internal", StoreAddress("redis", url="redis://cache.internal")),
        ("redis://cache.internal/", StoreAddress("redis", url="redis://cache.internal/")),
        (
            "redis://gw:pa%40ss@10.0.0.5:6380/3",
            StoreAddress("redis", url="redis://gw:pa%40ss@10.0.0.5:6380/3", db=3),
        ),
        ("rediss://cache.internal:6380/1", StoreAddress("redis", url="rediss://cache.internal:6380/1", db=1, tls=True)),
        ("redis://[::1]:6379/2", StoreAddress("redis", url="redis://[::1]:6379/2", db=2)),
        ("unix:///run/redis/redis.sock?db=2", StoreAddress("redis", url="unix:///run/redis/redis.sock?db=2")),
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/4",
            StoreAddress(
                "sentinel", hosts=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)), service="mymaster", db=4
            ),
        ),
        (
            "rediss+sentinel://gw:s%3Acret@s1:26379/main",
            StoreAddress(
                "sentinel", hosts=(("s1", 26379),), service="main", username="gw", password="s:cret", tls=True
            ),
        ),
        ("redis+sentinel://:only-password@s1/main", None),  # checked below: no username, a password
        ("redis+cluster://n1:7000,n2:7001", StoreAddress("cluster", hosts=(("n1", 7000), ("n2", 7001)))),
        ("redis+cluster://n1", StoreAddress("cluster", hosts=(("n1", 6379),))),
        (
            "rediss+cluster://gw:pw@n1:7000/",
            StoreAddress("cluster", hosts=(("n1", 7000),), username="gw", password="pw", tls=True),
        ),
    ],
)
def test_parse_store_url_every_scheme(url: str, expected: StoreAddress | None) -> None:
    address = parse_store_url(url)
    if expected is None:
        assert (address.kind, address.username, address.password, address.service) == (
            "sentinel",
            None,
            "only-password",
            "main",
        )
        assert address.hosts == (("s1", 26379),)
        return
    assert address == expected


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("", "must be 'cookie' or a URL such as redis://127.0.0.1:6379/0"),
        ("redis", "must be 'cookie' or a URL such as redis://127.0.0.1:6379/0"),
        ("Cookie", "must be 'cookie' or a URL such as redis://127.0.0.1:6379/0"),
        ("127.0.0.1:6379", "must be 'cookie' or a URL such as redis://127.0.0.1:6379/0"),
        ("redis://", "must be 'cookie' or a URL such as redis://127.0.0.1:6379/0"),
        (
            "memcached://127.0.0.1:11211",
            "unknown scheme 'memcached'; use cookie, redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://",
        ),
        ("http://127.0.0.1:6379", "unknown scheme 'http'"),
        ("redis:///0", "needs a host, e.g. redis://127.0.0.1:6379/0"),
        ("rediss://:secret@/0", "needs a host, e.g. redis://127.0.0.1:6379/0"),
        ("redis://cache:port/0", "has an invalid port"),
        ("redis://cache:70000/0", "has an invalid port"),
        ("redis://cache:6379/zero", "the path must be a database number, e.g. /0"),
        ("redis://cache:6379/0/1", "the path must be a database number, e.g. /0"),
        (
            "redis+sentinel://s1:26379",
            "needs the master's service name, e.g. redis+sentinel://10.0.0.1:26379/mymaster/0",
        ),
        ("redis+sentinel://s1:26379/", "needs the master's service name"),
        ("redis+sentinel://s1:26379/main/x", "path must be /service_name or /service_name/db"),
        ("redis+sentinel://s1:26379/main/0/1", "path must be /service_name or /service_name/db"),
        ("redis+sentinel://s1:0/main", "'s1:0' is not host:port"),
        ("redis+sentinel://s1:26379,:26380/main", "':26380' is not host:port"),
        ("redis+cluster://n1:7000/0", "a Redis Cluster has only database 0: remove the path"),
        ("redis+cluster://n1:seven", "'n1:seven' is not host:port"),
        ("redis+cluster://n1:65536", "'n1:65536' is not host:port"),
        ("rediss+cluster://[::1]:x", "'[::1]:x' is not host:port"),
    ],
)
def test_parse_store_url_errors_name_the_fix(url: str, fix: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_store_url(url)
    assert fix in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://gw:hunter2-secret@cache:6379/0",
        "redis://:hunter2-secret@cache:6379/0",
        "rediss://gw:hunter2-secret@cache/1",
        "redis+sentinel://gw:hunter2-secret@s1:26379,s2/main/2",
        "rediss+cluster://gw:hunter2-secret@n1:7000,n2:7001",
        # redis-py's own forms for a password on a socket: in the userinfo, or as a query parameter.
        "unix://:hunter2-secret@/run/redis/redis.sock?db=1",
        "unix:///run/redis/redis.sock?db=1&password=hunter2-secret",
        "redis://cache:6379/0?password=hunter2-secret",
    ],
)
def test_redacted_store_address_never_shows_the_password(url: str) -> None:
    redacted = parse_store_url(url).redacted()
    assert "hunter2-secret" not in redacted, redacted


def test_redacted_names_kind_place_and_database() -> None:
    assert parse_store_url("cookie").redacted() == "cookie"
    assert parse_store_url("redis://gw:pw@cache:6379/3").redacted() == "redis://cache/3"
    assert parse_store_url("redis+sentinel://s1:26379,s2/main/2").redacted() == "sentinel://s1:26379,s2:26379/main/2"
    assert parse_store_url("redis+cluster://n1:7000").redacted() == "cluster://n1:7000/0"


# --- logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6) -----------------------------------

ISSUER = "https://op.example.com"
CLIENT = "gw"
NOW = T0


def logout_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT,
        "iat": NOW - 5,
        "exp": NOW + 115,
        "jti": "jti-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sub": "person-1",
        "sid": "op-session-1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not DROP}


DROP = object()


def validate(claims: dict[str, Any], header: dict[str, Any] | None = None) -> LogoutRequest:
    return validate_logout_token(
        {"alg": "RS256", "typ": "logout+jwt"} if header is None else header,
        claims,
        issuer=ISSUER,
        client_id=CLIENT,
        now=NOW,
    )


def test_valid_logout_token() -> None:
    logout = validate(logout_claims())
    assert logout == LogoutRequest(
        jti="jti-1", sub="person-1", sid="op-session-1", remember_until=NOW - 5 + MAX_TOKEN_AGE + CLOCK_SKEW
    )
    # The jti is remembered for as long as the token could be accepted: its exp, if later than iat + max age.
    late = validate(logout_claims(exp=NOW + 2 * MAX_TOKEN_AGE))
    assert late.remember_until == NOW + 2 * MAX_TOKEN_AGE + CLOCK_SKEW


@pytest.mark.parametrize("typ", [DROP, "JWT", "logout+jwt", "application/logout+jwt"])
def test_logout_token_types_accepted(typ: Any) -> None:
    header = {"alg": "RS256"} if typ is DROP else {"alg": "RS256", "typ": typ}
    assert validate(logout_claims(), header).jti == "jti-1"


@pytest.mark.parametrize("typ", ["at+jwt", "jwt", "Logout+JWT", "secevent+jwt", "", 1])
def test_logout_token_other_types_refused(typ: Any) -> None:
    with pytest.raises(TokenValidationError) as info:
        validate(logout_claims(), {"alg": "RS256", "typ": typ})
    assert info.value.reason == "typ"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://op.example.com/"}, "issuer"),
        ({"iss": "https://evil.example.com"}, "issuer"),
        ({"iss": DROP}, "issuer"),
        ({"aud": "other"}, "audience"),
        ({"aud": ["other", "another"]}, "audience"),
        ({"aud": DROP}, "audience"),
        ({"aud": {"gw": True}}, "audience"),
        ({"aud": "GW"}, "audience"),
        ({"iat": DROP}, "missing_iat"),
        ({"iat": "1700000000"}, "missing_iat"),
        ({"iat": True}, "missing_iat"),
        ({"iat": NOW + CLOCK_SKEW + 1}, "issued_in_future"),
        ({"iat": NOW - MAX_TOKEN_AGE - 1}, "too_old"),
        ({"exp": DROP}, "missing_exp"),
        ({"exp": None}, "missing_exp"),
        ({"exp": NOW - CLOCK_SKEW}, "expired"),
        ({"exp": NOW - CLOCK_SKEW - 100}, "expired"),
        ({"jti": DROP}, "missing_jti"),
        ({"jti": ""}, "missing_jti"),
        ({"jti": 42}, "missing_jti"),
        ({"jti": "j" * 256}, "missing_jti"),
        ({"events": DROP}, "events"),
        ({"events": {}}, "events"),
        ({"events": [BACKCHANNEL_LOGOUT_EVENT]}, "events"),
        ({"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}}, "events"),
        ({"events": {"http://schemas.openid.net/event/other": {}}}, "events"),
        ({"nonce": "n-1"}, "nonce_present"),
        ({"nonce": None}, "nonce_present"),
        ({"sub": DROP, "sid": DROP}, "missing_sub_and_sid"),
        ({"sub": None, "sid": None}, "missing_sub_and_sid"),
        ({"sub": ""}, "malformed_sub"),
        ({"sub": 7}, "malformed_sub"),
        ({"sid": "s" * 256}, "malformed_sid"),
        ({"sid": ["op-session-1"]}, "malformed_sid"),
    ],
)
def test_logout_token_rules(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenValidationError) as info:
        validate(logout_claims(**changes))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": ["other", CLIENT]},
        {"iat": NOW + CLOCK_SKEW - 1},  # within the clock skew
        {"iat": NOW - MAX_TOKEN_AGE + 1},
        {"exp": NOW - CLOCK_SKEW + 1},
        {"sub": DROP},  # sid alone
        {"sid": DROP},  # sub alone
        {"jti": "j" * 255},
        {"events": {BACKCHANNEL_LOGOUT_EVENT: {}, "urn:other": 1}},
    ],
)
def test_logout_token_edges_accepted(changes: dict[str, Any]) -> None:
    logout = validate(logout_claims(**changes))
    assert logout.sub is not None or logout.sid is not None


# --- the session payload ------------------------------------------------------------------------------------

IDENTITY = Identity(values={"sub": "person-1", "idp": "op", "name": "Åsa Öberg", "ssn": "199003152387"})


def new_session(now: float = T0, **changes: Any) -> Session:
    values: dict[str, Any] = {"now": now, "lifetime": 8 * 3600.0, "idle_timeout": 3600.0}
    values.update(changes)
    return Session.new(IDENTITY, **values)


def test_payload_round_trip_with_provider_sid_and_refresh_fields() -> None:
    session = new_session(provider_sid="op-sid-9", refresh_token="rt-1", refresh_at=T0 + 540)
    payload = session.to_payload()
    assert (payload["os"], payload["rt"], payload["ra"]) == ("op-sid-9", "rt-1", T0 + 540)
    back = Session.from_payload(json.loads(json.dumps(payload)))
    assert back == session
    assert (back.provider_sid, back.refresh_token, back.refresh_at) == ("op-sid-9", "rt-1", T0 + 540)
    assert back.refresh_due(T0 + 540) and not back.refresh_due(T0 + 539.9)


def test_payload_without_optional_fields_round_trips_and_omits_them() -> None:
    session = new_session()
    payload = session.to_payload()
    assert not {"os", "rt", "ra"} & payload.keys()
    back = Session.from_payload(payload)
    assert back == session and back.provider_sid is None and back.refresh_token is None
    assert not back.refresh_due(T0 + 10**9)


def test_handle_is_never_serialised() -> None:
    session = dataclasses.replace(new_session(provider_sid="op-sid"), handle="r1.secret-handle")
    payload = session.to_payload()
    assert "r1.secret-handle" not in json.dumps(payload)
    assert Session.from_payload(payload).handle is None


def test_refresh_fields_come_in_pairs() -> None:
    assert new_session(refresh_token="rt-1").refresh_token is None  # no deadline: nothing to refresh for
    assert new_session(refresh_at=T0 + 60).refresh_at is None
    refreshed = new_session(refresh_token="rt-1", refresh_at=T0 + 60).refreshed(refresh_token="rt-2", refresh_at=None)
    assert (refreshed.refresh_token, refreshed.refresh_at) == (None, None)
    rotated = new_session(refresh_token="rt-1", refresh_at=T0 + 60).refreshed(refresh_token="rt-2", refresh_at=T0 + 99)
    assert (rotated.refresh_token, rotated.refresh_at) == ("rt-2", T0 + 99)


@pytest.mark.parametrize(
    "changes",
    [
        {"os": 12},
        {"os": ["op-sid"]},
        {"rt": "rt-1"},  # a refresh token without its deadline
        {"ra": T0 + 60},  # a deadline without a token
        {"rt": 5, "ra": T0 + 60},
        {"rt": "rt-1", "ra": "soon"},
        {"rt": "rt-1", "ra": True},
        {"rt": "rt-1", "ra": None},
        {"sid": None},
        {"id": "person-1"},
        {"id": {"sub": "person-1", "idp": "op", "ssn": 199003152387}},
        {"id": {"sub": "person-1"}},  # no provider
        {"id": {"idp": "op"}},
        {"id": {"sub": "person-1", "idp": "op", "role": "admin"}},  # not a canonical claim
        {"c": "1700000000"},
        {"x": None},
        {"i": False},
    ],
)
def test_malformed_payloads_are_refused(changes: dict[str, Any]) -> None:
    base = new_session(provider_sid="op-sid").to_payload()  # no refresh fields of its own
    assert Session.from_payload({**base, "rt": "rt-1", "ra": T0 + 1}).refresh_token == "rt-1"  # the pair is fine
    payload = {**base, **changes}
    with pytest.raises(ValueError):
        Session.from_payload(payload)


# --- oidc.refresh_deadline ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "deadline"),
    [
        (None, None),
        (0, None),
        (-30, None),
        (3600, T0 + 3600 - 60),  # a minute early at most
        (240, T0 + 180),
        (100, T0 + 75),  # a quarter early for short tokens
        (1, T0 + 0.75),
    ],
)
def test_refresh_deadline(expires_in: int | None, deadline: float | None) -> None:
    assert oidc.refresh_deadline(T0, expires_in) == deadline


# --- CookieStore semantics -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def cookie_store(clock: Clock | None = None) -> CookieStore:
    return CookieStore(Keyring([SECRET]), lifetime=8 * 3600.0, clock=clock or Clock())


def person(sub: str, idp: str = "op") -> Identity:
    return Identity(values={"sub": sub, "idp": idp})


async def test_cookie_store_save_load_and_sliding_reissue() -> None:
    store = cookie_store()
    session = Session.new(person("p1"), now=T0, lifetime=100, idle_timeout=10)
    cookie = await store.save(session, T0)
    loaded = await store.load(cookie, T0 + 0.5)
    assert loaded.session == session and loaded.rejection is None and not loaded.reissue
    assert (await store.load(cookie, T0 + 1.5)).reissue  # past a tenth of the idle window: re-seal
    assert store.cookie_max_age(session, T0) == 10
    assert (await store.load(cookie, T0 + 10)).rejection == "expired"
    later = await store.save(session, T0 + 9)  # touched: slides the idle window
    assert (await store.load(later, T0 + 18)).session is not None
    assert (await store.load(later, T0 + 19)).rejection == "expired"
    assert (await store.load("v1.not-a-cookie", T0)).session is None
    assert (await store.load(cookie[:-4] + "AAAA", T0)).rejection is not None
    foreign = await CookieStore(Keyring(["f" * 40]), lifetime=100, clock=Clock()).save(session, T0)
    assert (await store.load(foreign, T0)).session is None


async def test_cookie_store_absolute_lifetime() -> None:
    store = cookie_store()
    session = Session.new(person("p1"), now=T0, lifetime=20, idle_timeout=10)
    cookie = await store.save(session.touched(T0 + 15), T0 + 15)
    assert (await store.load(cookie, T0 + 19)).session is not None
    assert (await store.load(cookie, T0 + 20)).rejection == "expired"
    assert store.cookie_max_age(session, T0 + 15) == 5


async def test_cookie_store_spends_a_marker_once_until_it_expires() -> None:
    store = cookie_store()
    assert not await store.is_spent("state:abc", T0)
    assert await store.spend("state:abc", T0 + 60, T0)
    assert not await store.spend("state:abc", T0 + 60, T0 + 1)
    assert await store.is_spent("state:abc", T0 + 59)
    assert await store.spend("state:other", T0 + 60, T0)  # markers are independent
    assert not await store.is_spent("state:abc", T0 + 60)
    assert await store.spend("state:abc", T0 + 120, T0 + 60)


async def test_cookie_store_end_refuses_that_session_only() -> None:
    store = cookie_store()
    first = Session.new(person("p1"), now=T0, lifetime=100, idle_timeout=50)
    second = Session.new(person("p1"), now=T0, lifetime=100, idle_timeout=50)
    cookies = [await store.save(s, T0) for s in (first, second)]
    await store.end(first, T0 + 1)
    assert (await store.load(cookies[0], T0 + 2)).rejection == "logged_out"
    assert (await store.load(cookies[1], T0 + 2)).session == second
    # A re-sealed cookie of the same session (sliding expiry) is refused too.
    assert (await store.load(await store.save(first, T0 + 3), T0 + 3)).rejection == "logged_out"


async def test_cookie_store_end_for_subject_refuses_only_sessions_created_before() -> None:
    store = cookie_store()
    before = Session.new(person("p1"), now=T0, lifetime=100, idle_timeout=50)
    same_moment = Session.new(person("p1"), now=T0 + 10, lifetime=100, idle_timeout=50)
    other_person = Session.new(person("p2"), now=T0, lifetime=100, idle_timeout=50)
    other_provider = Session.new(person("p1", idp="bankid"), now=T0, lifetime=100, idle_timeout=50)
    cookies = {s.sid: await store.save(s, s.created) for s in (before, same_moment, other_person, other_provider)}
    assert await store.end_for_subject("op", "p1", T0 + 10) == 0  # unknown: the sessions are in browsers
    after = Session.new(person("p1"), now=T0 + 10.5, lifetime=100, idle_timeout=50)
    cookies[after.sid] = await store.save(after, after.created)

    async def outcome(session: Session) -> str | None:
        return (await store.load(cookies[session.sid], T0 + 11)).rejection

    assert await outcome(before) == "logged_out"
    assert await outcome(same_moment) == "logged_out"
    assert await outcome(after) is None
    assert await outcome(other_person) is None
    assert await outcome(other_provider) is None


async def test_cookie_store_end_for_provider_session() -> None:
    store = cookie_store()
    made = Session.new(person("p1"), now=T0, lifetime=100, idle_timeout=50, provider_sid="op-sid")
    other = Session.new(person("p1"), now=T0, lifetime=100, idle_timeout=50, provider_sid="op-sid-2")
    cookies = [await store.save(s, T0) for s in (made, other)]
    assert await store.end_for_provider_session("op", "op-sid", T0 + 1) == 0
    # A new login on the same provider session (the provider kept it) is not refused.
    relogin = Session.new(person("p1"), now=T0 + 2, lifetime=100, idle_timeout=50, provider_sid="op-sid")
    assert (await store.load(cookies[0], T0 + 3)).rejection == "logged_out"
    assert (await store.load(cookies[1], T0 + 3)).session == other
    assert (await store.load(await store.save(relogin, T0 + 2), T0 + 3)).session == relogin


async def test_cookie_store_lock_is_exclusive_until_unlocked_or_expired() -> None:
    clock = Clock()
    store = cookie_store(clock)
    token = await store.lock("refresh:s1", ttl=5)
    assert token is not None
    assert await store.lock("refresh:s1", ttl=5) is None
    assert await store.lock("refresh:s2", ttl=5) is not None
    await store.unlock("refresh:s1", token)
    again = await store.lock("refresh:s1", ttl=5)
    assert again is not None
    clock.now += 5
    assert await store.lock("refresh:s1", ttl=5) is not None  # the holder's lock expired
    assert await store.healthy()
    assert store.name == "cookie"


# --- config: session.store, store_prefix, store_timeout ------------------------------------------------------


def document(**session: Any) -> dict[str, Any]:
    return {
        "public_url": "https://app.example.com",
        "upstream": "http://127.0.0.1:8082",
        "providers": [
            {"name": "idp", "issuer": "https://idp.example.com", "client_id": "gw", "client_secret": "client-secret"}
        ],
        "session": {"secret": SECRET, **session},
    }


def problems(doc: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(doc, {}, base_dir=tmp_path)
    return list(info.value.problems)


def test_default_store_is_the_sealed_cookie(tmp_path: Path) -> None:
    session = load_settings(document(), {}, base_dir=tmp_path).session
    assert (session.store.kind, session.store_prefix, session.store_timeout) == ("cookie", "eidgw:", 1.0)


def test_redis_store_settings_load(tmp_path: Path) -> None:
    doc = document(store="redis://127.0.0.1:6390/2", store_prefix="app1:gw.", store_timeout="500ms")
    session = load_settings(doc, {}, base_dir=tmp_path).session
    assert session.store == StoreAddress("redis", url="redis://127.0.0.1:6390/2", db=2)
    assert (session.store_prefix, session.store_timeout) == ("app1:gw.", 0.5)


def test_store_url_from_an_environment_variable(tmp_path: Path) -> None:
    doc = document(store="${GW_STORE}")
    session = load_settings(doc, {"GW_STORE": "redis+cluster://n1:7000"}, base_dir=tmp_path).session
    assert session.store.kind == "cluster"


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        ("memcached://cache:11211", "unknown scheme 'memcached'; use cookie, redis://"),
        ("redis://", "must be 'cookie' or a URL such as redis://127.0.0.1:6379/0"),
        ("redis:///0", "needs a host"),
        ("redis://cache/db0", "the path must be a database number"),
        ("redis+cluster://n1:7000/1", "remove the path"),
        ("redis+sentinel://s1:26379", "needs the master's service name"),
    ],
)
def test_bad_session_store_is_reported_with_its_fix(value: str, fix: str, tmp_path: Path) -> None:
    found = problems(document(store=value), tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith("session.store: ")
    assert fix in found[0]
    assert "or omit it to keep sessions in sealed cookies" in found[0]


def test_non_string_session_store_is_refused(tmp_path: Path) -> None:
    assert any(p.startswith("session.store: must be a string") for p in problems(document(store=6379), tmp_path))


@pytest.mark.parametrize("prefix", ["eid gw:", "gw/", "ö:", "x" * 65, "{gw}", "gw\n"])
def test_bad_store_prefix(prefix: str, tmp_path: Path) -> None:
    assert problems(document(store="redis://cache/0", store_prefix=prefix), tmp_path) == [
        "session.store_prefix: must be 1-64 characters of A-Z a-z 0-9 : _ . -"
    ]


def test_non_string_store_prefix(tmp_path: Path) -> None:
    assert "session.store_prefix: must be a string" in problems(document(store_prefix=7), tmp_path)


@pytest.mark.parametrize(
    ("timeout", "fix"),
    [
        ("49ms", "session.store_timeout: must be between 50ms and 30s"),
        ("0", "session.store_timeout: must be between 50ms and 30s"),
        ("31s", "session.store_timeout: must be between 50ms and 30s"),
        ("1m", "session.store_timeout: must be between 50ms and 30s"),
        ("soon", "session.store_timeout: must be a duration such as 30s, 15m, 8h or a number of seconds"),
        ("-1s", "session.store_timeout: must be a duration such as 30s, 15m, 8h or a number of seconds"),
        (True, "session.store_timeout: must be a duration such as 30s, 15m, 8h or a number of seconds"),
    ],
)
def test_bad_store_timeout(timeout: Any, fix: str, tmp_path: Path) -> None:
    assert fix in problems(document(store="redis://cache/0", store_timeout=timeout), tmp_path)


@pytest.mark.parametrize(("timeout", "seconds"), [("50ms", 0.05), ("30s", 30.0), (2, 2.0), ("750ms", 0.75)])
def test_store_timeout_bounds_accepted(timeout: Any, seconds: float, tmp_path: Path) -> None:
    session = load_settings(document(store_timeout=timeout), {}, base_dir=tmp_path).session
    assert session.store_timeout == seconds


def test_every_store_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(document(store="nope://x", store_prefix="bad prefix", store_timeout="10ms"), tmp_path)
    assert {p.split(": ", 1)[0] for p in found} == {"session.store", "session.store_prefix", "session.store_timeout"}
