"""The ``routes`` and ``pairwise`` sections: what loads, and every bad input refused with the key and the fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.routes import LEGACY_ROUTE

PAIRWISE = "p" * 40


def document(*routes: dict[str, Any], **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "public_url": "https://login.example.com",
        "providers": [
            {"name": "idura", "issuer": "https://a.example.com", "client_id": "c", "client_secret": "s"},
            {"name": "freja", "issuer": "https://b.example.com", "client_id": "c", "client_secret": "s"},
        ],
        "session": {"secret": "x" * 40},
        "pairwise": {"secret": PAIRWISE},
        "routes": list(routes),
    }
    doc.update(top)
    return doc


def app(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "upstream": f"http://{name}.internal:8080", **extra}


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(doc, {})
    return caught.value.problems


def test_three_routes_load_most_specific_first() -> None:
    settings = load_settings(
        document(
            app("wiki", match={"host": "intranet.example.com"}, sector="intranet",
                headers={"pairwise_sub": "X-Auth-Subject", "name": "X-Auth-Name"}),
            app("helpdesk", match={"host": "intranet.example.com", "path_prefix": "/helpdesk/"}, strip_prefix=True,
                sector="intranet", headers={"pairwise_sub": "X-Auth-Subject"}, providers=["freja"],
                upstream_timeouts={"read": "5s"}, assertion={"audience": "helpdesk-app", "ttl": "2m"},
                public_paths=["/helpdesk/static/"], require={"country": ["SE"]}),
            app("hr", match={"host": "hr.example.com"}, headers={"ssn": "X-Auth-Ssn"}),
        ),
        {},
    )
    assert [r.name for r in settings.routes] == ["helpdesk", "wiki", "hr"]
    helpdesk = settings.routes[0]
    assert helpdesk.strip_prefix == "/helpdesk" and helpdesk.upstream_path("/helpdesk/t/7") == "/t/7"
    assert helpdesk.audience == "helpdesk-app" and helpdesk.ttl == 120
    assert helpdesk.timeouts.read == 5 and helpdesk.timeouts.connect == 5
    assert helpdesk.providers == ("freja",) and helpdesk.public_paths == ("/helpdesk/static/",)
    assert helpdesk.rules[0].require == {"country": ("SE",)}
    assert settings.routes[1].audience == "wiki"  # its own audience by default
    assert settings.routes[2].sector == "hr" and settings.routes[2].headers == {"ssn": "X-Auth-Ssn"}
    assert settings.routes[1].headers == {"pairwise_sub": "X-Auth-Subject", "name": "X-Auth-Name"}
    assert settings.upstream == "" and settings.explicit_routes
    # A route's hosts are places a login may return to (on the public_url's port).
    assert ("intranet.example.com", None) in settings.allowed_redirect_domains


def test_a_route_without_headers_releases_nothing() -> None:
    settings = load_settings(document(app("a")), {})
    assert settings.routes[0].headers == {}


def test_without_routes_the_top_level_keys_are_one_route() -> None:
    doc = document(upstream="http://app:8080", public_paths=["/healthz"], rules=[{"require": {"country": ["SE"]}}])
    del doc["routes"]
    settings = load_settings(doc, {})
    (only,) = settings.routes
    assert only.name == LEGACY_ROUTE and only.upstream == "http://app:8080" and only.releases_everything
    assert only.headers == settings.headers and only.public_paths == ("/healthz",) and only.rules == settings.rules
    assert only.audience == "upstream"


def test_wildcard_hosts_allow_their_subdomains_as_return_targets() -> None:
    settings = load_settings(document(app("a", match={"host": "*.apps.example.com"})), {})
    assert (".apps.example.com", None) in settings.allowed_redirect_domains


@pytest.mark.parametrize(
    ("routes", "top", "expected"),
    [
        ([], {}, "routes: must be a non-empty list of routes, each with name, match and upstream"),
        ([app("a"), app("b")], {},
         "routes[1].match: matches exactly the requests routes[0] matches; give one a different host or path_prefix"),
        ([app("a", match={"path_prefix": "/x/"}), app("b", match={"path_prefix": "/x"})], {},
         "routes[1].match: matches exactly the requests routes[0] matches"),
        ([app("a"), app("a", match={"path_prefix": "/x/"})], {}, "routes[1].name: 'a' is already the name of"),
        ([{"name": "a"}], {}, "routes[0].upstream: is required"),
        ([{"upstream": "http://a:1"}], {}, "routes[0].name: is required"),
        ([app("Bad_Name")], {}, "routes[0].name: must be 1-63 characters of a-z, 0-9 and '-'"),
        ([app("a", headers={"email": "X-Email"})], {}, "routes[0].headers.email: unknown canonical claim; use one of"),
        ([app("a", headers={"ssn": "X-A", "name": "x-a"})], {}, "routes[0].headers: two identity headers have"),
        ([app("a", headers={"ssn": "X-Auth-Assertion"})], {}, "routes[0].headers: two identity headers"),
        ([app("a", upstream="http://user:pw@a.internal:8080")], {},
         "routes[0].upstream: must not contain a user name or password (user@host)"),
        ([app("a", upstream="ftp://a.internal")], {}, "routes[0].upstream: must be an http(s) URL"),
        ([app("a", upstream="http://a.internal/?x=1")], {}, "routes[0].upstream: must not have a query or fragment"),
        ([app("a", match={"host": "a.example.com:8443"})], {}, "routes[0].match.host: must be a host name"),
        ([app("a", match={"host": "*.*.example.com"})], {}, "routes[0].match.host: must be a host name"),
        ([app("a", match={"path_prefix": "/a/../b"})], {}, "routes[0].match.path_prefix: must be a plain path"),
        ([app("a", match={"port": 1})], {}, "routes[0].match.port: unknown key"),
        ([app("a", strip_prefix=True)], {}, "routes[0].strip_prefix: needs a match.path_prefix to remove"),
        ([app("a", match={"path_prefix": "/app/"}, strip_prefix="/other")], {},
         "routes[0].strip_prefix: must be a prefix of match.path_prefix (/app/)"),
        ([app("a", match={"path_prefix": "/app/"}, public_paths=["/static/"])], {},
         "routes[0].public_paths[0]: is outside this route's match.path_prefix (/app/)"),
        ([app("a", public_paths=["/"])], {}, "routes[0].public_paths[0]: '/' would make every path public"),
        ([app("a", providers=["bankid"])], {}, "routes[0].providers[0]: names no provider; use one of idura, freja"),
        ([app("a", providers=[])], {}, "routes[0].providers: must name at least one provider"),
        ([app("a", sector="has space")], {}, "routes[0].sector: must be 1-128 characters"),
        ([app("a", require={"email": ["x"]})], {}, "routes[0].require.email: unknown canonical claim"),
        ([app("a", require={"country": ["SE", False]})], {}, "routes[0].require.country: YAML read a bare NO"),
        ([app("a", assertion={"ttl": "2h"})], {}, "routes[0].assertion.ttl: must be between 5s and 1h"),
        ([app("a", assertion={"header": "X"})], {}, "routes[0].assertion.header: unknown key"),
        ([app("a", headers={"pairwise_sub": "X-Sub"})], {"pairwise": None},
         "routes[0].headers.pairwise_sub: needs pairwise.secret"),
        ([app("a")], {"pairwise": {"secret": "short"}}, "pairwise.secret: must be at least 32 characters"),
        ([app("a")], {"upstream": "http://app:8080"},
         "upstream: belongs to a route once routes is set; move it into each routes[].upstream"),
        ([app("a")], {"headers": {"ssn": "X-Auth-Ssn"}}, "headers: belongs to a route once routes is set"),
        ([app("a")], {"public_paths": ["/x"]}, "public_paths: belongs to a route once routes is set"),
        ([app("a")], {"rules": []}, "rules: belongs to a route once routes is set"),
        (["not-a-mapping"], {}, "routes[0]: must be a mapping with name, match and upstream"),
    ],
)
def test_bad_routes_name_the_key_and_the_fix(routes: list[Any], top: dict[str, Any], expected: str) -> None:
    found = problems(document(*copy.deepcopy(routes), **top))
    assert any(p.startswith(expected) for p in found), found


def test_pairwise_sub_without_routes_needs_the_secret_too() -> None:
    doc = document(upstream="http://app:8080", headers={"pairwise_sub": "X-Auth-Subject"}, pairwise=None)
    del doc["routes"]
    assert any(p.startswith("headers.pairwise_sub: needs pairwise.secret") for p in problems(doc))


def test_show_routes_rewrites_a_legacy_file_into_routes_that_decide_the_same(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main
    from gateway.policy import decide
    from gateway.protocol.claims import Identity
    from gateway.protocol.paths import is_public

    legacy = document(
        upstream="http://app:8080",
        public_paths=["/healthz", "/admin/public/"],
        rules=[
            {"path_prefix": "/admin/", "require": {"country": ["SE", "NO"]}},
            {"host": "payroll.example.com", "require": {"acr": ["high"]}},
        ],
    )
    del legacy["routes"], legacy["pairwise"]
    path = tmp_path / "legacy.yaml"
    path.write_text(yaml.safe_dump(legacy))
    assert main(["check-config", "--config", str(path), "--show-routes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: configuration is valid\n# Without routes")
    rewritten = {**legacy, "routes": yaml.safe_load(out.split("\n", 1)[1])["routes"]}
    for key in ("upstream", "headers", "public_paths", "rules"):
        rewritten.pop(key, None)
    before, after = load_settings(legacy, {}), load_settings(rewritten, {})
    (old,) = before.routes
    people = [Identity(values={"sub": "s", "idp": "idura", "country": c, "acr": a})
              for c in ("SE", "DK") for a in ("high", "low")]
    for host in ("payroll.example.com", "app.example.com"):
        for request_path in ("/", "/x", "/admin", "/admin/x", "/admin/public/y", "/healthz"):
            new = next(r for r in after.routes if r.matches(host, request_path))
            assert new.upstream == old.upstream and new.headers == old.headers and new.audience == old.audience
            if host == "app.example.com":
                assert is_public(request_path, new.public_paths) == is_public(request_path, old.public_paths)
            for person in people:
                assert decide(new.rules, host=host, path=request_path, identity=person) == decide(
                    old.rules, host=host, path=request_path, identity=person
                ), (host, request_path, person)


def test_a_routes_require_can_ask_for_a_level() -> None:
    from gateway.policy import StepUp, decide
    from gateway.protocol.claims import Identity

    doc = document(app("pay", require={"country": ["SE"], "min_level": 4}))
    doc["providers"][0].update(acr_values=["loa3", "loa4"], acr_levels={"loa3": 3, "loa4": 4})
    (route,) = load_settings(doc, {}).routes
    assert route.rules[0].step_up == StepUp(min_level=4)
    weak = Identity(values={"sub": "s", "idp": "idura", "country": "SE", "level": "3"})
    strong = Identity(values={"sub": "s", "idp": "idura", "country": "SE", "level": "4"})
    foreign = Identity(values={"sub": "s", "idp": "idura", "country": "NO", "level": "4"})
    assert decide(route.rules, host="h", path="/", identity=weak).step_up == StepUp(min_level=4)
    assert decide(route.rules, host="h", path="/", identity=strong).allowed
    refused = decide(route.rules, host="h", path="/", identity=foreign)
    assert not refused.allowed and refused.step_up is None  # a claim no login changes: no step-up
