"""The ``routes`` and ``pairwise`` sections: one entry per application behind the gateway, each with its own
upstream, released claims, assertion audience, public paths and access conditions (issue 17).

Without ``routes`` the top-level keys form the one legacy route (``legacy_route``); with ``routes``, the
top-level ``upstream``, ``headers``, ``public_paths`` and ``rules`` are refused rather than merged, so there is
one place that says what an application receives.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.config.assertion import AssertionSettings, check_header_names_distinct, load_headers
from gateway.config.reader import Problems, Reader
from gateway.config.rules import check_step_up, read_path_prefix, read_require, read_step_up
from gateway.config.schema import (
    MATCH_KEYS,
    PAIRWISE_KEYS,
    ROUTE_ASSERTION_KEYS,
    ROUTE_KEYS,
    UPSTREAM_TIMEOUT_KEYS,
)
from gateway.policy import Rule
from gateway.protocol.pairwise import MIN_SECRET_BYTES, PAIRWISE_CLAIM
from gateway.protocol.paths import validate_public_path_pattern
from gateway.protocol.redirect_target import parse_redirect_domain
from gateway.routes import LEGACY_ROUTE, Route, UpstreamTimeouts, match_key, prefix_matches, sort_routes

ROUTE_NAME = re.compile(r"[a-z0-9-]{1,63}")
SECTOR = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
#: Top-level keys that belong to a route once ``routes`` is used.
PER_ROUTE_TOP_KEYS = ("upstream", "headers", "public_paths", "rules")


@dataclass(frozen=True, slots=True)
class PairwiseSettings:
    secret: str
    previous_secrets: tuple[str, ...] = ()


def load_pairwise(raw: Mapping[str, Any] | None, problems: Problems) -> PairwiseSettings | None:
    if raw is None:
        return None
    problems.unknown_keys("pairwise.", raw, PAIRWISE_KEYS)
    r = Reader(raw, "pairwise.", problems)
    secret = r.string("secret", required=True) or ""
    previous = r.strings("previous_secrets")
    for key_path, value in [("pairwise.secret", secret)] + [
        (f"pairwise.previous_secrets[{i}]", v) for i, v in enumerate(previous)
    ]:
        if value and len(value.encode()) < MIN_SECRET_BYTES:
            problems.add(
                key_path, "must be at least 32 characters of random data; generate one with: eid-gateway keygen"
            )
    return PairwiseSettings(secret=secret, previous_secrets=previous) if secret else None


def check_upstream(problems: Problems, key: str, upstream: str | None) -> None:
    if not upstream:
        return
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(key, "must be an http(s) URL of the protected application, e.g. http://127.0.0.1:8082")
    elif "@" in parts.netloc:
        # A user-info part would travel as credentials to the upstream, or be read as a host by a lax parser.
        problems.add(key, "must not contain a user name or password (user@host); the upstream is a plain origin")
    elif parts.query or parts.fragment:
        problems.add(key, "must not have a query or fragment; the request's own query is passed on")


def load_timeouts(
    raw: Mapping[str, Any] | None, path: str, problems: Problems, default: UpstreamTimeouts
) -> UpstreamTimeouts:
    if raw is None:
        return default
    problems.unknown_keys(path, raw, UPSTREAM_TIMEOUT_KEYS)
    r = Reader(raw, path, problems)
    return UpstreamTimeouts(connect=r.duration("connect", default.connect), read=r.duration("read", default.read))


def _read_host(r: Reader) -> str | None:
    host = r.string("host")
    if host is None:
        return None
    bare = host[2:] if host.startswith("*.") else host
    parsed = parse_redirect_domain(bare)
    if parsed is None or bare.startswith(".") or parsed[1] is not None:
        r.problems.add(r.key("host"), "must be a host name (app.example.com) or *.example.com, without a port")
        return None
    return host.lower()


def _read_strip_prefix(r: Reader, prefix: str) -> str:
    value = r.data.get("strip_prefix")
    if value is None or value is False:
        return ""
    if value is True:
        if prefix == "/":
            r.problems.add(r.key("strip_prefix"), "needs a match.path_prefix to remove; remove strip_prefix")
        return prefix.rstrip("/")
    if not isinstance(value, str) or not value.startswith("/") or value == "/":
        r.problems.add(r.key("strip_prefix"), "must be true (remove match.path_prefix) or a path such as /app")
        return ""
    if not prefix_matches(value, prefix.rstrip("/") or "/"):
        r.problems.add(
            r.key("strip_prefix"), f"must be a prefix of match.path_prefix ({prefix}), which every matched path has"
        )
        return ""
    return value.rstrip("/")


def _read_route(
    item: Mapping[str, Any],
    path: str,
    problems: Problems,
    *,
    assertion: AssertionSettings,
    timeouts: UpstreamTimeouts,
    pairwise: PairwiseSettings | None,
    providers: Sequence[Any],
) -> Route | None:
    """``providers``: ProviderSettings (their names, and what a step-up may ask of them)."""
    provider_names = [p.name for p in providers]
    problems.unknown_keys(path + ".", item, ROUTE_KEYS)
    r = Reader(item, path + ".", problems)
    name = r.string("name", required=True) or ""
    if name and not ROUTE_NAME.fullmatch(name):
        problems.add(r.key("name"), "must be 1-63 characters of a-z, 0-9 and '-' (it is a metric label)")
    match_raw = r.mapping("match") or {}
    problems.unknown_keys(path + ".match.", match_raw, MATCH_KEYS)
    mr = Reader(match_raw, path + ".match.", problems)
    host = _read_host(mr)
    prefix = read_path_prefix(mr)
    upstream = r.string("upstream", required=True)
    check_upstream(problems, r.key("upstream"), upstream)
    headers = load_headers(r.mapping("headers"), problems, path=path + ".headers", default={})
    check_header_names_distinct(headers, assertion.header, problems, path=path + ".headers")
    if PAIRWISE_CLAIM in headers and pairwise is None:
        problems.add(
            f"{path}.headers.{PAIRWISE_CLAIM}",
            "needs pairwise.secret (at least 32 random characters; generate one with: eid-gateway keygen)",
        )
    assertion_raw = r.mapping("assertion") or {}
    problems.unknown_keys(path + ".assertion.", assertion_raw, ROUTE_ASSERTION_KEYS)
    ar = Reader(assertion_raw, path + ".assertion.", problems)
    ttl = ar.duration("ttl", assertion.ttl)
    if not 5 <= ttl <= 3600:
        problems.add(ar.key("ttl"), "must be between 5s and 1h")
    public_paths = r.strings("public_paths")
    for i, pattern in enumerate(public_paths):
        message = validate_public_path_pattern(pattern)
        if message is None and not prefix_matches(prefix, pattern):
            message = f"is outside this route's match.path_prefix ({prefix}); write the full request path"
        if message:
            problems.add(f"{path}.public_paths[{i}]", message)
    require = read_require(r.mapping("require"), path + ".require", problems)
    step_up = read_step_up(r.mapping("require"), path + ".require", problems)
    check_step_up(step_up, path + ".require", providers, problems)
    providers = r.strings("providers")
    for i, provider in enumerate(providers):
        if provider not in provider_names:
            problems.add(f"{path}.providers[{i}]", f"names no provider; use one of {', '.join(provider_names)}")
    if "providers" in item and not providers:
        problems.add(r.key("providers"), "must name at least one provider, or be left out to accept every provider")
    sector = r.string("sector", name) or name
    if sector and not SECTOR.fullmatch(sector):
        problems.add(r.key("sector"), "must be 1-128 characters of A-Z a-z 0-9 . _ : / -")
    if not name or not upstream:
        return None
    return Route(
        name=name,
        upstream=upstream.rstrip("/"),
        host=host,
        path_prefix=prefix,
        strip_prefix=_read_strip_prefix(r, prefix),
        headers=headers,
        # Its own audience by default: an assertion one application received is refused by another.
        audience=ar.string("audience", name) or name,
        ttl=ttl,
        public_paths=public_paths,
        rules=(Rule(require=require, step_up=step_up),) if require or step_up else (),
        providers=providers,
        sector=sector,
        timeouts=load_timeouts(r.mapping("upstream_timeouts"), path + ".upstream_timeouts.", problems, timeouts),
    )


def load_routes(
    raw: Any,
    problems: Problems,
    *,
    assertion: AssertionSettings,
    timeouts: UpstreamTimeouts,
    pairwise: PairwiseSettings | None,
    providers: Sequence[Any],
) -> tuple[Route, ...]:
    """The ``routes`` list, most specific first; overlapping matches and reused names are refused."""
    if not isinstance(raw, list) or not raw:
        problems.add("routes", "must be a non-empty list of routes, each with name, match and upstream")
        return ()
    routes: list[Route] = []
    names: dict[str, int] = {}
    matches: dict[tuple[str | None, str], int] = {}
    for i, item in enumerate(raw):
        path = f"routes[{i}]"
        if not isinstance(item, dict):
            problems.add(path, "must be a mapping with name, match and upstream")
            continue
        route = _read_route(
            item, path, problems, assertion=assertion, timeouts=timeouts, pairwise=pairwise, providers=providers,
        )
        if route is None:
            continue
        if route.name in names:
            problems.add(f"{path}.name", f"{route.name!r} is already the name of routes[{names[route.name]}]")
        names.setdefault(route.name, i)
        key = match_key(route)
        if key in matches:
            problems.add(
                f"{path}.match",
                f"matches exactly the requests routes[{matches[key]}] matches; give one a different host or "
                "path_prefix, or merge them",
            )
        matches.setdefault(key, i)
        routes.append(route)
    return sort_routes(routes)


def refuse_top_level_route_keys(data: Mapping[str, Any], problems: Problems) -> None:
    for key in PER_ROUTE_TOP_KEYS:
        if data.get(key) is not None:
            problems.add(key, f"belongs to a route once routes is set; move it into each routes[].{key}")


def legacy_route(
    *,
    upstream: str,
    headers: Mapping[str, str],
    assertion: AssertionSettings,
    public_paths: tuple[str, ...],
    rules: tuple[Rule, ...],
    timeouts: UpstreamTimeouts,
) -> Route:
    return Route(
        name=LEGACY_ROUTE,
        upstream=upstream,
        headers=headers,
        audience=assertion.audience,
        ttl=assertion.ttl,
        public_paths=public_paths,
        rules=rules,
        timeouts=timeouts,
        releases_everything=True,
    )


def routes_form(routes: Sequence[Route], *, legacy: bool, public_paths: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The ``routes`` list that means what these routes mean (``eid-gateway check-config --show-routes``).

    A legacy configuration becomes one route per rule (a rule's host and prefix become the route's match,
    most specific first exactly like rules), each with the upstream and headers; every public path goes to the
    route that would serve it."""
    if not legacy:
        return [_route_entry(route) for route in routes]
    (route,) = routes
    entries: list[dict[str, Any]] = []
    rules = sorted(route.rules, key=lambda rule: (rule.host is not None, len(rule.path_prefix)), reverse=True)
    split = [Route(name=f"rule-{i + 1}", upstream=route.upstream, host=rule.host, path_prefix=rule.path_prefix,
                   headers=route.headers, audience=route.audience, ttl=route.ttl, rules=(rule,))
             for i, rule in enumerate(rules)]
    if not any(rule.host is None and rule.path_prefix == "/" for rule in route.rules):
        split.append(dataclasses.replace(route, name="app", rules=()))
    split = list(sort_routes(split))
    owned: dict[str, list[str]] = {r.name: [] for r in split}
    for path in public_paths:
        owner = next((r for r in split if r.host is None and prefix_matches(r.path_prefix, path)), None)
        if owner is not None:
            owned[owner.name].append(path)
    for candidate in split:
        entry = _route_entry(dataclasses.replace(candidate, public_paths=tuple(owned[candidate.name])))
        entry.setdefault("assertion", {})["audience"] = route.audience  # a route's own default would differ
        entries.append(entry)
    return entries


def _route_entry(route: Route) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": route.name}
    match: dict[str, str] = {}
    if route.host is not None:
        match["host"] = route.host
    if route.path_prefix != "/":
        match["path_prefix"] = route.path_prefix
    if match:
        entry["match"] = match
    entry["upstream"] = route.upstream
    if route.strip_prefix:
        entry["strip_prefix"] = route.strip_prefix
    entry["headers"] = dict(route.headers)
    if route.audience != route.name:
        entry["assertion"] = {"audience": route.audience}
    if route.public_paths:
        entry["public_paths"] = list(route.public_paths)
    require = {claim: list(values) for rule in route.rules for claim, values in rule.require.items()}
    if require:
        entry["require"] = require
    if route.providers:
        entry["providers"] = list(route.providers)
    if route.sector != route.name:
        entry["sector"] = route.sector
    return entry
