"""Configuration: frozen settings types, loading from YAML, and validation that reports every problem.

Leaf layer: no I/O beyond reading the config file in ``load_file``. Key files are only checked for
presence here; ``runtime.py`` loads them. ``load_settings`` raises ConfigError listing every problem,
each prefixed by its key path and followed by the fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.config_reader import (
    Problems,
    Reader,
    check_url,
    expand_env,
    parse_host_port,
)
from gateway.errors import ConfigError
from gateway.policy import Rule
from gateway.protocol.claims import CANONICAL_CLAIMS, validate_claim_mapping
from gateway.protocol.jws import ASYMMETRIC_ALGORITHMS
from gateway.protocol.paths import validate_public_path_pattern
from gateway.protocol.rate_limit import LIMIT_NAMES, Limit, parse_limit
from gateway.protocol.redirect_target import parse_redirect_domain
from gateway.session.store_url import StoreAddress, parse_store_url

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
FLOWS = ("redirect", "headless", "ciba")
POLL_FLOWS = ("headless", "ciba")
RESPONSE_MODES = ("query", "form_post")
HEADER_ENCODINGS = ("rfc8187", "base64url")
_PROVIDER_NAME = re.compile(r"^[a-z0-9-]{1,32}\Z")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}\Z")


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    issuer: str
    client_id: str
    flow: str = "redirect"
    client_auth: str = "client_secret_basic"
    client_secret: str | None = None
    private_key_file: str | None = None
    private_key_id: str | None = None
    assertion_audience: str = "issuer"
    display_name: str = ""
    scopes: tuple[str, ...] = ("openid",)
    acr_values: tuple[str, ...] = ()
    require_acr: bool = True
    prompt: str | None = None
    login_hint: str | None = None
    ui_locales: tuple[str, ...] = ()
    response_mode: str = "query"
    claims: Mapping[str, str] = field(default_factory=dict)
    required_claims: tuple[str, ...] = ()
    id_token_algorithms: tuple[str, ...] = ("RS256", "ES256")
    timeout: float = 10.0
    # Poll flows (headless, ciba)
    headless_authorize_endpoint: str | None = None
    backchannel_authentication_endpoint: str | None = None
    grant_type: str | None = None
    poll_interval: float = 5.0
    login_hint_format: str = "{ssn}"
    binding_message: str | None = None
    refresh_tokens: bool = True

    @property
    def is_poll_flow(self) -> bool:
        return self.flow in POLL_FLOWS


@dataclass(frozen=True, slots=True)
class SessionSettings:
    secret: str
    previous_secrets: tuple[str, ...] = ()
    lifetime: float = 8 * 3600
    idle_timeout: float = 3600
    cookie_name: str = "gw_session"
    login_timeout: float = 600
    cookie_domain: str | None = None
    store: StoreAddress = field(default_factory=lambda: StoreAddress("cookie"))
    store_prefix: str = "eidgw:"
    store_timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class AssertionSettings:
    header: str = "X-Auth-Assertion"
    signing_key_file: str | None = None
    published_key_files: tuple[str, ...] = ()
    audience: str = "upstream"
    ttl: float = 60


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    connect: float = 5.0
    read: float = 60.0


#: On by default: a CIBA start pushes a notification to the phone of the person whose number was posted,
#: and login starts cost the provider (and, for BankID, the person) something. "off" turns one off.
DEFAULT_RATE_LIMITS = {
    "login_per_client": Limit(120, 60.0),
    "poll_start_per_client": Limit(30, 60.0),
    "ciba_per_person": Limit(5, 600.0),
}


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
    upstream_timeouts: UpstreamTimeouts = UpstreamTimeouts()
    default_provider: str = ""
    direct_login_redirect: bool = False
    log_level: str = "info"
    allowed_redirect_domains: tuple[tuple[str, int | None], ...] = ()
    rules: tuple[Rule, ...] = ()
    shutdown_grace: float = 10.0
    rate_limits: Mapping[str, Limit] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: A listener of its own for /_auth/verify; when set, the public listener answers 404 there.
    forward_auth_listen: tuple[str, int] | None = None

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def provider(self, name: str) -> ProviderSettings | None:
        return next((p for p in self.providers if p.name == name), None)


DEFAULT_HEADERS = {"ssn": "X-Auth-Ssn", "name": "X-Auth-Name", "country": "X-Auth-Country"}

_TOP_KEYS = {
    "listen",
    "public_url",
    "upstream",
    "providers",
    "session",
    "headers",
    "header_encoding",
    "assertion",
    "public_paths",
    "trusted_proxies",
    "metrics",
    "upstream_timeouts",
    "default_provider",
    "direct_login_redirect",
    "log_level",
    "allowed_redirect_domains",
    "rules",
    "shutdown_grace",
    "rate_limits",
    "forward_auth",
}
_PROVIDER_KEYS = {
    "name",
    "flow",
    "issuer",
    "client_id",
    "client_auth",
    "client_secret",
    "private_key_file",
    "private_key_id",
    "assertion_audience",
    "display_name",
    "scopes",
    "acr_values",
    "require_acr",
    "prompt",
    "login_hint",
    "ui_locales",
    "response_mode",
    "claims",
    "required_claims",
    "id_token_algorithms",
    "timeout",
    "headless_authorize_endpoint",
    "backchannel_authentication_endpoint",
    "grant_type",
    "poll_interval",
    "login_hint_format",
    "binding_message",
    "refresh_tokens",
}
_SESSION_KEYS = {
    "secret",
    "previous_secrets",
    "lifetime",
    "idle_timeout",
    "cookie_name",
    "login_timeout",
    "cookie_domain",
    "store",
    "store_prefix",
    "store_timeout",
}
_RULE_KEYS = {"host", "path_prefix", "require"}
_ASSERTION_KEYS = {"header", "signing_key_file", "published_key_files", "audience", "ttl"}


def _load_provider(raw: Any, index: int, problems: Problems, base_dir: Path) -> ProviderSettings | None:
    path = f"providers[{index}]."
    if not isinstance(raw, dict):
        problems.add(f"providers[{index}]", "must be a mapping with name, issuer, client_id, ...")
        return None
    problems.unknown_keys(path, raw, _PROVIDER_KEYS)
    r = Reader(raw, path, problems)
    name = r.string("name", required=True) or ""
    if name and not _PROVIDER_NAME.match(name):
        problems.add(r.key("name"), "must match [a-z0-9-]+ (at most 32 characters)")
    flow = r.choice("flow", FLOWS, "redirect")
    issuer = r.string("issuer", required=True)
    check_url(problems, r.key("issuer"), issuer)
    client_id = r.string("client_id", required=True) or ""
    client_auth = r.choice("client_auth", CLIENT_AUTH_METHODS, "client_secret_basic")
    client_secret = r.string("client_secret")
    private_key_file = r.string("private_key_file")
    if client_auth.startswith("client_secret") and not client_secret:
        problems.add(r.key("client_secret"), f"is required for client_auth {client_auth}")
    if client_auth == "private_key_jwt":
        if not private_key_file:
            problems.add(
                r.key("private_key_file"), "is required for client_auth private_key_jwt (a PEM RSA or EC P-256 key)"
            )
        else:
            resolved = base_dir / private_key_file
            if not resolved.is_file():
                problems.add(r.key("private_key_file"), f"file {resolved} does not exist")
            private_key_file = str(resolved)
    scopes = r.strings("scopes", ("openid",))
    if "openid" not in scopes:
        problems.add(r.key("scopes"), "must include openid")
    claims_raw = r.mapping("claims") or {}
    claims: dict[str, str] = {}
    for canonical, source in claims_raw.items():
        if canonical not in CANONICAL_CLAIMS:
            problems.add(
                f"{path}claims.{canonical}", f"unknown canonical claim; use one of {', '.join(CANONICAL_CLAIMS)}"
            )
        elif not isinstance(source, str) or not source:
            problems.add(f"{path}claims.{canonical}", "must be an ID token claim name, or =VALUE for a constant")
        else:
            claims[canonical] = source
    for message in validate_claim_mapping(claims):
        problems.add(f"{path}claims.{message.split(':', 1)[0]}", message.split(": ", 1)[1])
    # Fail closed by default: every mapped claim must arrive, or the login is refused. A provider that
    # sends some claims only to some users lists the ones it can count on (required_claims: [] for none).
    default_required = tuple(name for name, source in claims.items() if not source.startswith("="))
    required = r.strings("required_claims", default_required)
    for claim in required:
        if claim not in CANONICAL_CLAIMS:
            problems.add(r.key("required_claims"), f"'{claim}' is not a canonical claim")
    algorithms = r.strings("id_token_algorithms", ("RS256", "ES256"))
    for alg in algorithms:
        if alg not in ASYMMETRIC_ALGORITHMS:
            problems.add(
                r.key("id_token_algorithms"),
                f"'{alg}' is not allowed; use some of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}",
            )
    prompt = r.string("prompt")
    if prompt is not None and prompt not in ("none", "login", "consent", "select_account"):
        problems.add(r.key("prompt"), "must be none, login, consent or select_account")
    headless_endpoint = r.string("headless_authorize_endpoint")
    if flow == "headless" and headless_endpoint is None and issuer:
        headless_endpoint = issuer.rstrip("/") + "/headless/authorize"
    check_url(problems, r.key("headless_authorize_endpoint"), headless_endpoint)
    backchannel_endpoint = r.string("backchannel_authentication_endpoint")
    check_url(problems, r.key("backchannel_authentication_endpoint"), backchannel_endpoint)
    poll_interval = r.duration("poll_interval", 5.0)
    if not 0.05 <= poll_interval <= 60:
        problems.add(r.key("poll_interval"), "must be between 50ms and 60s (Idura asks for 5s)")
    login_hint_format = r.string("login_hint_format", "{ssn}") or "{ssn}"
    if login_hint_format.count("{ssn}") != 1 or login_hint_format.replace("{ssn}", "").count("{"):
        problems.add(r.key("login_hint_format"), "must contain {ssn} exactly once, e.g. {ssn} or sub:ssn:{ssn}")
    return ProviderSettings(
        name=name,
        flow=flow,
        issuer=issuer or "",
        client_id=client_id,
        client_auth=client_auth,
        client_secret=client_secret,
        private_key_file=private_key_file,
        private_key_id=r.string("private_key_id"),
        assertion_audience=r.choice("assertion_audience", ("issuer", "token_endpoint"), "issuer"),
        display_name=r.string("display_name", name) or name,
        scopes=scopes,
        acr_values=r.strings("acr_values"),
        require_acr=r.boolean("require_acr", True),
        prompt=prompt,
        login_hint=r.string("login_hint"),
        ui_locales=r.strings("ui_locales"),
        response_mode=r.choice("response_mode", RESPONSE_MODES, "query"),
        claims=claims,
        required_claims=required,
        id_token_algorithms=algorithms,
        timeout=r.duration("timeout", 10.0),
        headless_authorize_endpoint=headless_endpoint,
        backchannel_authentication_endpoint=backchannel_endpoint,
        grant_type=r.string("grant_type"),
        poll_interval=poll_interval,
        login_hint_format=login_hint_format,
        binding_message=r.string("binding_message"),
        refresh_tokens=r.boolean("refresh_tokens", True),
    )


def _store_address(sr: Reader, problems: Problems) -> StoreAddress:
    value = sr.string("store", "cookie") or "cookie"
    try:
        return parse_store_url(value)
    except ValueError as exc:
        problems.add("session.store", f"{exc} (or omit it to keep sessions in sealed cookies)")
        return StoreAddress("cookie")


def _cookie_domain(sr: Reader, problems: Problems, public_url: str | None) -> str | None:
    """A parent domain for header SSO across sibling hosts; it must contain the public host."""
    domain = sr.string("cookie_domain")
    if domain is None:
        return None
    parsed = parse_redirect_domain(domain.lstrip("."))
    host = (urlsplit(public_url).hostname or "") if public_url else ""
    if parsed is None or parsed[1] is not None or domain.count(".") - domain.startswith(".") < 1:
        problems.add("session.cookie_domain", "must be a domain such as example.com (no port, at least two labels)")
        return None
    bare = domain.lstrip(".").lower()
    if host != bare and not host.endswith("." + bare):
        problems.add("session.cookie_domain", f"must be {host} or a parent domain of it (public_url's host)")
        return None
    return bare


def _load_rate_limits(raw: Mapping[str, Any] | None, problems: Problems) -> dict[str, Limit]:
    limits = dict(DEFAULT_RATE_LIMITS)
    if raw is None:
        return limits
    problems.unknown_keys("rate_limits.", raw, set(LIMIT_NAMES))
    for name in LIMIT_NAMES:
        if name not in raw:
            continue
        value = raw[name]
        if value == "off" or value is False:  # YAML 1.1 reads a bare `off` as false
            del limits[name]
            continue
        limit = parse_limit(value)
        if limit is None:
            problems.add(f"rate_limits.{name}", "must be N/window such as 10/1m, 5/10m or 100/1h, or off")
        else:
            limits[name] = limit
    return limits


def _load_rules(raw: Any, problems: Problems) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("rules", "must be a list of {host, path_prefix, require}")
        return ()
    rules: list[Rule] = []
    for i, item in enumerate(raw):
        path = f"rules[{i}]."
        if not isinstance(item, dict):
            problems.add(f"rules[{i}]", "must be a mapping with path_prefix, host and require")
            continue
        problems.unknown_keys(path, item, _RULE_KEYS)
        r = Reader(item, path, problems)
        prefix = r.string("path_prefix", "/") or "/"
        if not prefix.startswith("/") or any(c in prefix for c in "?#%\\*") or "//" in prefix or "/../" in prefix + "/":
            problems.add(r.key("path_prefix"), "must be a plain path such as /admin/")
        host = r.string("host")
        if host is not None and parse_redirect_domain(host) is None:
            problems.add(r.key("host"), "must be a host name such as app.example.com")
        require: dict[str, tuple[str, ...]] = {}
        for claim, values in (r.mapping("require") or {}).items():
            if claim not in CANONICAL_CLAIMS:
                problems.add(
                    f"{path}require.{claim}", f"unknown canonical claim; use one of {', '.join(CANONICAL_CLAIMS)}"
                )
            elif isinstance(values, list) and any(isinstance(v, bool) for v in values):
                problems.add(
                    f"{path}require.{claim}",
                    'YAML read a bare NO, YES, ON or OFF as true/false; quote it, e.g. [SE, "NO"]',
                )
            elif not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                problems.add(f"{path}require.{claim}", 'must be a non-empty list of allowed values, e.g. [SE, "NO"]')
            else:
                require[claim] = tuple(values)
        rules.append(Rule(path_prefix=prefix, host=host.lower() if host else None, require=require))
    return tuple(rules)


def load_settings(document: Any, environ: Mapping[str, str] | None = None, *, base_dir: Path | None = None) -> Settings:
    """Turn a parsed config document into Settings, or raise ConfigError with every problem."""
    problems = Problems()
    environ = os.environ if environ is None else environ
    base = base_dir or Path.cwd()
    if not isinstance(document, dict):
        raise ConfigError(["(top level): the config must be a YAML mapping; start from config/example.yaml"])
    data = expand_env(document, environ, "", problems)
    problems.unknown_keys("", data, _TOP_KEYS)
    r = Reader(data, "", problems)

    listen = parse_host_port(data.get("listen", "127.0.0.1:8080"))
    if listen is None:
        problems.add("listen", "must be host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    public_url = r.string("public_url", required=True)
    check_url(problems, "public_url", public_url)
    if public_url and urlsplit(public_url).path not in ("", "/"):
        problems.add("public_url", "must be an origin without a path, e.g. https://app.example.com")
    upstream = r.string("upstream", required=True)
    if upstream:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.add("upstream", "must be an http(s) URL of the protected application, e.g. http://127.0.0.1:8082")

    providers: list[ProviderSettings] = []
    raw_providers = data.get("providers")
    if not isinstance(raw_providers, list) or not raw_providers:
        problems.add("providers", "must list at least one provider (name, issuer, client_id, ...)")
    else:
        for i, raw in enumerate(raw_providers):
            provider = _load_provider(raw, i, problems, base)
            if provider:
                providers.append(provider)
        names = [p.name for p in providers]
        for name in {n for n in names if names.count(n) > 1}:
            problems.add("providers", f"provider name '{name}' is used twice; names must be unique")

    session_raw = r.mapping("session")
    session_missing = session_raw is None
    if session_raw is None:
        problems.add("session", "is required (at least session.secret); generate one with: eid-gateway keygen")
        session_raw = {}
    problems.unknown_keys("session.", session_raw, _SESSION_KEYS)
    sr = Reader(session_raw, "session.", problems)
    secret = sr.string("secret", required=not session_missing) or ""
    previous = sr.strings("previous_secrets")
    for key_path, value in [("session.secret", secret)] + [
        (f"session.previous_secrets[{i}]", v) for i, v in enumerate(previous)
    ]:
        if value and len(value.encode()) < 32:
            problems.add(
                key_path, "must be at least 32 characters of random data; generate one with: eid-gateway keygen"
            )
    session = SessionSettings(
        secret=secret,
        previous_secrets=previous,
        lifetime=sr.duration("lifetime", 8 * 3600),
        idle_timeout=sr.duration("idle_timeout", 3600),
        cookie_name=sr.string("cookie_name", "gw_session") or "gw_session",
        login_timeout=sr.duration("login_timeout", 600),
        cookie_domain=_cookie_domain(sr, problems, public_url),
        store=_store_address(sr, problems),
        store_prefix=sr.string("store_prefix", "eidgw:") or "",
        store_timeout=sr.duration("store_timeout", 1.0),
    )
    if not re.fullmatch(r"[A-Za-z0-9:_.-]{1,64}", session.store_prefix):
        problems.add("session.store_prefix", "must be 1-64 characters of A-Z a-z 0-9 : _ . -")
    if not 0.05 <= session.store_timeout <= 30:
        problems.add("session.store_timeout", "must be between 50ms and 30s")
    if session.idle_timeout > session.lifetime:
        problems.add("session.idle_timeout", "must not be longer than session.lifetime")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", session.cookie_name):
        problems.add("session.cookie_name", "must be 1-32 characters of A-Z a-z 0-9 _ -")

    headers_raw = r.mapping("headers")
    headers = dict(DEFAULT_HEADERS) if headers_raw is None else {}
    for canonical, header in (headers_raw or {}).items():
        if canonical not in CANONICAL_CLAIMS:
            problems.add(f"headers.{canonical}", f"unknown canonical claim; use one of {', '.join(CANONICAL_CLAIMS)}")
        elif not isinstance(header, str) or not _HEADER_NAME.match(header):
            problems.add(f"headers.{canonical}", "must be a header name of letters, digits and '-', e.g. X-Auth-Ssn")
        else:
            headers[canonical] = header

    assertion_raw = r.mapping("assertion") or {}
    problems.unknown_keys("assertion.", assertion_raw, _ASSERTION_KEYS)
    ar = Reader(assertion_raw, "assertion.", problems)
    assertion_header = ar.string("header", "X-Auth-Assertion") or "X-Auth-Assertion"
    if not _HEADER_NAME.match(assertion_header):
        problems.add("assertion.header", "must be a header name of letters, digits and '-'")
    key_file = ar.string("signing_key_file")
    if key_file and not (base / key_file).is_file():
        problems.add(
            "assertion.signing_key_file",
            f"file {base / key_file} does not exist; create one with: eid-gateway keygen --out {key_file}",
        )
    published = ar.strings("published_key_files")
    for i, extra in enumerate(published):
        if not (base / extra).is_file():
            problems.add(f"assertion.published_key_files[{i}]", f"file {base / extra} does not exist")
    assertion = AssertionSettings(
        header=assertion_header,
        signing_key_file=str(base / key_file) if key_file else None,
        published_key_files=tuple(str(base / p) for p in published),
        audience=ar.string("audience", "upstream") or "upstream",
        ttl=ar.duration("ttl", 60),
    )
    if not 5 <= assertion.ttl <= 3600:
        problems.add("assertion.ttl", "must be between 5s and 1h")
    lowered = [h.lower().replace("_", "-") for h in [*headers.values(), assertion.header]]
    if len(set(lowered)) != len(lowered):
        problems.add("headers", "two identity headers have the same name (case and _/- are ignored)")

    public_paths = r.strings("public_paths")
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
    metrics_listen: tuple[str, int] | None = None
    metrics_raw = r.mapping("metrics")
    if metrics_raw is not None:
        problems.unknown_keys("metrics.", metrics_raw, {"listen"})
        if metrics_raw.get("listen") is not None:
            metrics_listen = parse_host_port(metrics_raw.get("listen"))
            if metrics_listen is None:
                problems.add("metrics.listen", "must be host:port, e.g. 127.0.0.1:9090 (a separate, internal port)")
            elif listen and metrics_listen == listen and listen[1] != 0:
                problems.add("metrics.listen", "must differ from listen; metrics are never served on the public port")
    forward_auth_listen: tuple[str, int] | None = None
    forward_auth_raw = r.mapping("forward_auth") or {}
    problems.unknown_keys("forward_auth.", forward_auth_raw, {"listen"})
    if forward_auth_raw.get("listen") is not None:
        forward_auth_listen = parse_host_port(forward_auth_raw.get("listen"))
        taken = {a for a in (listen, metrics_listen) if a is not None and a[1] != 0}
        if forward_auth_listen is None:
            problems.add("forward_auth.listen", "must be host:port, e.g. 127.0.0.1:8090 (an internal port)")
        elif forward_auth_listen in taken and forward_auth_listen[1] != 0:
            problems.add("forward_auth.listen", "must differ from listen and metrics.listen")
    timeouts_raw = r.mapping("upstream_timeouts") or {}
    problems.unknown_keys("upstream_timeouts.", timeouts_raw, {"connect", "read"})
    tr = Reader(timeouts_raw, "upstream_timeouts.", problems)
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
    settings = Settings(
        listen_host=listen[0] if listen else "127.0.0.1",
        listen_port=listen[1] if listen else 8080,
        public_url=(public_url or "").rstrip("/"),
        upstream=(upstream or "").rstrip("/"),
        providers=tuple(providers),
        session=session,
        headers=headers,
        assertion=assertion,
        header_encoding=r.choice("header_encoding", HEADER_ENCODINGS, "rfc8187"),
        public_paths=public_paths,
        trusted_proxies=tuple(trusted),
        metrics_listen=metrics_listen,
        upstream_timeouts=UpstreamTimeouts(connect=tr.duration("connect", 5.0), read=tr.duration("read", 60.0)),
        default_provider=default_provider,
        direct_login_redirect=direct_login_redirect,
        log_level=r.choice("log_level", ("debug", "info", "warning", "error"), "info"),
        allowed_redirect_domains=tuple(allowed_domains),
        rules=_load_rules(data.get("rules"), problems),
        shutdown_grace=r.duration("shutdown_grace", 10.0),
        rate_limits=_load_rate_limits(r.mapping("rate_limits"), problems),
        forward_auth_listen=forward_auth_listen,
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
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: not valid YAML{where}; check the indentation and quoting"]) from exc
    return load_settings(document, environ, base_dir=file.resolve().parent)
