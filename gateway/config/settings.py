"""The whole configuration: the Settings type, and ``load_settings`` / ``load_file``, which read every section
(one module each, keys in schema.py) and raise one ConfigError listing every problem, each prefixed by its key
path and followed by the fix.

Leaf layer: no I/O beyond reading the config file in ``load_file``. Key files are only checked for presence
here; ``runtime.py`` loads them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.config.admin import AdminSettings, load_admin
from gateway.config.assertion import (
    HEADER_ENCODINGS,
    AssertionSettings,
    check_header_names_distinct,
    load_assertion,
    load_headers,
)
from gateway.config.audit import AuditSettings, load_audit
from gateway.config.listeners import load_forward_auth_listen, load_listen, load_metrics_listen
from gateway.config.providers import ProviderSettings, load_providers
from gateway.config.rate_limits import DEFAULT_RATE_LIMITS, load_rate_limits
from gateway.config.reader import Problems, Reader, check_url, expand_env
from gateway.config.routes import (
    PairwiseSettings,
    check_upstream,
    legacy_route,
    load_pairwise,
    load_routes,
    load_timeouts,
    refuse_top_level_route_keys,
)
from gateway.config.rules import check_step_up, load_rules
from gateway.config.schema import TOP_KEYS
from gateway.config.session import SessionSettings, load_session
from gateway.config.yaml_loader import parse_yaml
from gateway.errors import ConfigError
from gateway.policy import Rule
from gateway.protocol.paths import validate_public_path_pattern
from gateway.protocol.rate_limit import Limit
from gateway.protocol.redirect_target import parse_redirect_domain
from gateway.routes import Route, UpstreamTimeouts


@dataclass(frozen=True, slots=True)
class Settings:
    listen_host: str
    listen_port: int
    public_url: str
    upstream: str
    providers: tuple[ProviderSettings, ...]
    session: SessionSettings
    headers: Mapping[str, str]
    assertion: AssertionSettings
    header_encoding: str = "rfc8187"
    public_paths: tuple[str, ...] = ()
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    metrics_listen: tuple[str, int] | None = None
    upstream_timeouts: UpstreamTimeouts = field(default_factory=UpstreamTimeouts)
    default_provider: str = ""
    direct_login_redirect: bool = False
    log_level: str = "info"
    allowed_redirect_domains: tuple[tuple[str, int | None], ...] = ()
    rules: tuple[Rule, ...] = ()
    shutdown_grace: float = 10.0
    rate_limits: Mapping[str, Limit] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: A listener of its own for /_auth/verify; when set, the public listener answers 404 there.
    forward_auth_listen: tuple[str, int] | None = None
    #: Most specific first (routes.sort_routes). Without ``routes`` in the file: the one legacy route built
    #: from upstream/headers/public_paths/rules above (which are empty when ``routes`` is used).
    routes: tuple[Route, ...] = ()
    pairwise: PairwiseSettings | None = None
    #: True when the file has a ``routes`` list (false: the legacy route).
    explicit_routes: bool = False
    audit: AuditSettings | None = None
    admin: AdminSettings | None = None
    #: One JSON line per request on standard error (gateway/access_log.py); "off" for none.
    access_log: str = "on"

    def __post_init__(self) -> None:
        if not self.explicit_routes and not self.routes:
            legacy = legacy_route(
                upstream=self.upstream,
                headers=self.headers,
                assertion=self.assertion,
                public_paths=self.public_paths,
                rules=self.rules,
                timeouts=self.upstream_timeouts,
            )
            object.__setattr__(self, "routes", (legacy,))

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def provider(self, name: str) -> ProviderSettings | None:
        return next((p for p in self.providers if p.name == name), None)


def load_settings(document: Any, environ: Mapping[str, str] | None = None, *, base_dir: Path | None = None) -> Settings:
    """Turn a parsed config document into Settings, or raise ConfigError with every problem."""
    problems = Problems()
    environ = os.environ if environ is None else environ
    base = base_dir or Path.cwd()
    if not isinstance(document, dict):
        raise ConfigError(["(top level): the config must be a YAML mapping; start from config/example.yaml"])
    data = expand_env(document, environ, "", problems)
    problems.unknown_keys("", data, TOP_KEYS)
    r = Reader(data, "", problems)

    listen = load_listen(data, problems)
    public_url = r.string("public_url", required=True)
    check_url(problems, "public_url", public_url)
    if public_url and urlsplit(public_url).path not in ("", "/"):
        problems.add("public_url", "must be an origin without a path, e.g. https://app.example.com")
    explicit_routes = "routes" in data
    if explicit_routes:
        refuse_top_level_route_keys(data, problems)
    upstream = r.string("upstream", required=not explicit_routes)
    check_upstream(problems, "upstream", upstream)

    providers = load_providers(data.get("providers"), problems, base)

    session = load_session(r.mapping("session"), problems, public_url)

    headers = {} if explicit_routes else load_headers(r.mapping("headers"), problems)
    assertion = load_assertion(r.mapping("assertion") or {}, problems, base)
    check_header_names_distinct(headers, assertion.header, problems)
    pairwise = load_pairwise(r.mapping("pairwise"), problems)

    public_paths = () if explicit_routes else r.strings("public_paths")
    for i, pattern in enumerate(public_paths):
        message = validate_public_path_pattern(pattern)
        if message:
            problems.add(f"public_paths[{i}]", message)
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for i, cidr in enumerate(r.strings("trusted_proxies")):
        try:
            trusted.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            problems.add(f"trusted_proxies[{i}]", "must be an IP address or CIDR, e.g. 10.0.0.0/8")
    metrics_listen = load_metrics_listen(r.mapping("metrics"), problems, listen)
    forward_auth_listen = load_forward_auth_listen(r.mapping("forward_auth") or {}, problems, listen, metrics_listen)
    timeouts = load_timeouts(r.mapping("upstream_timeouts") or {}, "upstream_timeouts.", problems, UpstreamTimeouts())
    # Unset with several providers: the login shows a choice page.
    default_provider = r.string("default_provider", providers[0].name if len(providers) == 1 else "") or ""
    default_entry = next((p for p in providers if p.name == default_provider), None)
    if default_provider and default_entry is None:
        problems.add("default_provider", f"names no provider; use one of {', '.join(p.name for p in providers)}")
    direct_login_redirect = r.boolean("direct_login_redirect", False)
    if direct_login_redirect and providers and not (default_provider and default_entry is None):  # else: said above
        if default_entry is None:
            problems.add(
                "direct_login_redirect",
                "needs one provider to send browsers to; set default_provider to a redirect-flow provider, "
                "or remove direct_login_redirect",
            )
        elif default_entry.is_poll_flow:
            problems.add(
                "direct_login_redirect",
                f"default_provider {default_entry.name!r} uses the {default_entry.flow} flow, which has no "
                "provider page to redirect to; remove direct_login_redirect or set default_provider to a "
                "redirect-flow provider",
            )

    allowed_domains: list[tuple[str, int | None]] = []
    for i, entry in enumerate(r.strings("allowed_redirect_domains")):
        parsed_domain = parse_redirect_domain(entry)
        if parsed_domain is None:
            problems.add(
                f"allowed_redirect_domains[{i}]", "must be a host (app.example.com) or .example.com, optional :port"
            )
        else:
            allowed_domains.append(parsed_domain)
    rules = () if explicit_routes else load_rules(data.get("rules"), problems)
    for i, rule in enumerate(rules):
        check_step_up(rule.step_up, f"rules[{i}].require", providers, problems)
    if explicit_routes:
        routes = load_routes(
            data.get("routes"),
            problems,
            assertion=assertion,
            timeouts=timeouts,
            pairwise=pairwise,
            providers=providers,
        )
    else:
        if "pairwise_sub" in headers and pairwise is None:
            problems.add("headers.pairwise_sub", "needs pairwise.secret (generate one with: eid-gateway keygen)")
        routes = ()  # Settings builds the legacy route
    # The hosts routes serve are hosts the gateway answers for: a login may return there.
    try:
        public_port = urlsplit(public_url).port if public_url else None
    except ValueError:  # said under public_url
        public_port = None
    for route in routes:
        if route.host is not None:
            entry = ("." + route.host[2:]) if route.host.startswith("*.") else route.host
            if (entry, public_port) not in allowed_domains:
                allowed_domains.append((entry, public_port))
    settings = Settings(
        listen_host=listen[0] if listen else "127.0.0.1",
        listen_port=listen[1] if listen else 8080,
        public_url=(public_url or "").rstrip("/"),
        upstream=(upstream or "").rstrip("/"),
        providers=providers,
        session=session,
        headers=headers,
        assertion=assertion,
        header_encoding=r.choice("header_encoding", HEADER_ENCODINGS, "rfc8187"),
        public_paths=public_paths,
        trusted_proxies=tuple(trusted),
        metrics_listen=metrics_listen,
        upstream_timeouts=timeouts,
        default_provider=default_provider,
        direct_login_redirect=direct_login_redirect,
        log_level=r.choice("log_level", ("debug", "info", "warning", "error"), "info"),
        allowed_redirect_domains=tuple(allowed_domains),
        rules=rules,
        shutdown_grace=r.duration("shutdown_grace", 10.0),
        rate_limits=load_rate_limits(r.mapping("rate_limits"), problems),
        forward_auth_listen=forward_auth_listen,
        routes=routes,
        pairwise=pairwise,
        explicit_routes=explicit_routes,
        audit=load_audit(r.mapping("audit"), problems, base),
        access_log=r.switch("access_log", ("on", "off"), "on"),
        admin=load_admin(r.mapping("admin"), problems, base, metrics_listen),
    )
    if problems.items:
        raise ConfigError(problems.items)
    return settings


def load_file(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read a YAML config file; relative key-file paths resolve against the file's directory."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file ({exc.strerror})"]) from exc
    try:
        document = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: not valid YAML{where}; check the indentation and quoting"]) from exc
    return load_settings(document, environ, base_dir=file.resolve().parent)
