"""Routes (gateway/routes.py) and pairwise subjects (gateway/protocol/pairwise.py): which route a request is
for, what a route's path becomes upstream, and the pseudonym each route sees."""

from __future__ import annotations

import re

import pytest

from gateway.protocol.claims import Identity
from gateway.protocol.pairwise import pairwise_subject, person_key
from gateway.routes import Route, RouteIndex, host_matches, host_without_port, select_route, sort_routes

SECRET = b"s" * 32


def route(name: str, *, host: str | None = None, prefix: str = "/", strip: str = "") -> Route:
    return Route(name=name, upstream="http://127.0.0.1:1", host=host, path_prefix=prefix, strip_prefix=strip)


ROUTES = sort_routes(
    [
        route("catch-all"),
        route("wild", host="*.example.com"),
        route("deep-wild", host="*.intra.example.com"),
        route("hr", host="hr.example.com"),
        route("hr-admin", host="hr.example.com", prefix="/admin/"),
        route("docs", prefix="/docs"),
        route("docs-api", prefix="/docs/api/"),
    ]
)


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("hr.example.com", "/", "hr"),
        ("hr.example.com", "/admin", "hr-admin"),
        ("hr.example.com", "/admin/users", "hr-admin"),
        ("hr.example.com", "/administrator", "hr"),  # a prefix matches whole segments only
        ("hr.example.com", "/docs/x", "hr"),  # any host beats none, whatever the prefix
        ("wiki.example.com", "/x", "wild"),
        ("a.b.example.com", "/x", "wild"),
        ("wiki.intra.example.com", "/x", "deep-wild"),  # the longer wildcard wins
        ("example.com", "/x", "catch-all"),  # *.example.com is not the apex
        ("evil-example.com", "/x", "catch-all"),
        ("example.com.evil", "/x", "catch-all"),
        ("other.test", "/docs", "docs"),
        ("other.test", "/docs/api/v1", "docs-api"),
        ("other.test", "/docsx", "catch-all"),
    ],
)
def test_the_most_specific_route_wins(host: str, path: str, expected: str) -> None:
    chosen = select_route(ROUTES, host, path)
    assert chosen is not None and chosen.name == expected


def test_the_index_chooses_as_the_full_scan_does() -> None:
    """RouteIndex (a dict lookup by host) and select_route (every route in order) agree on every request."""
    hosts = ["hr.example.com", "wiki.example.com", "wiki.intra.example.com", "example.com", "other.test", ""]
    paths = ["/", "/admin", "/admin/users", "/administrator", "/docs", "/docs/api/v1", "/docsx", "/x"]
    for routes in (ROUTES, sort_routes([route("hr", host="hr.example.com"), route("w", host="*.example.com")])):
        index = RouteIndex(routes)
        for host in hosts:
            for path in paths:
                assert index.select(host, path) == select_route(routes, host, path), (host, path)


def test_no_route_matches_without_a_catch_all() -> None:
    routes = sort_routes([route("hr", host="hr.example.com"), route("docs", prefix="/docs/")])
    assert select_route(routes, "other.example.com", "/x") is None
    assert select_route(routes, "other.example.com", "/docs") is not None
    assert select_route(routes, "hr.example.com.", "/x") is None  # callers strip the dot (host_without_port)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("App.Example.COM", "app.example.com"),
        ("app.example.com:8443", "app.example.com"),
        ("app.example.com.", "app.example.com"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("", None),
        ("app.example.com:port", None),
        ("app.example.com:", None),
        ("app example.com", None),
        ("app.example.com/x", None),
        ("user@app.example.com", None),
        ("-bad.example.com", None),
        ("[::1]x", None),
        ("a" * 64 + ".example.com", None),
        ("app.example.com\r\nX: y", None),
    ],
)
def test_host_without_port(value: str, expected: str | None) -> None:
    assert host_without_port(value) == expected


def test_host_patterns() -> None:
    assert host_matches(None, "anything")
    assert host_matches("a.example.com", "a.example.com")
    assert not host_matches("a.example.com", "b.a.example.com")
    assert host_matches("*.example.com", "a.example.com")
    assert not host_matches("*.example.com", ".example.com")


@pytest.mark.parametrize(
    ("strip", "path", "upstream"),
    [
        ("", "/app/x", "/app/x"),
        ("/app", "/app/x", "/x"),
        ("/app", "/app", "/"),
        ("/app", "/app/", "/"),
        ("/app", "/app/a/b?c", "/a/b?c"),
    ],
)
def test_strip_prefix(strip: str, path: str, upstream: str) -> None:
    assert route("r", prefix="/app/", strip=strip).upstream_path(path) == upstream


def identity(**values: str) -> Identity:
    return Identity(values={"sub": "s-1", "idp": "dev", **values})


def test_pairwise_subject_is_stable_per_sector_and_person() -> None:
    asa = identity(ssn="199003152387")
    value = pairwise_subject(SECRET, "intranet", asa)
    assert re.fullmatch(r"[a-z2-7]{52}", value)
    assert pairwise_subject(SECRET, "intranet", asa) == value
    assert pairwise_subject(SECRET, "hr", asa) != value
    assert pairwise_subject(b"t" * 32, "intranet", asa) != value
    assert pairwise_subject(SECRET, "intranet", identity(ssn="196802020575")) != value


def test_pairwise_subject_follows_the_national_id_across_providers() -> None:
    via_idura = Identity(values={"sub": "idura-abc", "idp": "idura", "ssn": "199003152387"})
    via_freja = Identity(values={"sub": "freja-xyz", "idp": "freja", "ssn": "199003152387"})
    assert pairwise_subject(SECRET, "s", via_idura) == pairwise_subject(SECRET, "s", via_freja)


def test_without_a_national_id_the_account_at_its_provider_is_the_person() -> None:
    one = Identity(values={"sub": "same", "idp": "a"})
    other = Identity(values={"sub": "same", "idp": "b"})
    assert person_key(one) != person_key(other)
    assert pairwise_subject(SECRET, "s", one) != pairwise_subject(SECRET, "s", other)
    # A sub that looks like a national ID is not mistaken for one.
    assert pairwise_subject(SECRET, "s", identity(ssn="199003152387")) != pairwise_subject(
        SECRET, "s", Identity(values={"sub": "nid:199003152387", "idp": "x"})
    )
