"""Runtime: the immutable bundle of derived objects built once from Settings (keys, clients, caches).

Building this is the only place that reads key files; handlers reach it through ``RUNTIME``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from gateway import keys, logs
from gateway.audit import AuditLog, Context
from gateway.config import Settings
from gateway.errors import AuditUnavailableError, BadRequestError, ConfigError
from gateway.forwarded import ClientView, client_view
from gateway.idp.oidc_client import OidcClient
from gateway.idp.poll_client import PollClient
from gateway.metrics import Metrics
from gateway.protocol import field_lines
from gateway.protocol.claims import Identity
from gateway.protocol.jws import DecryptionKey, SigningKey
from gateway.protocol.paths import PathError, normalize_request_path
from gateway.protocol.rate_limit import RateLimiter
from gateway.protocol.redirect_target import safe_return_target
from gateway.protocol.request_id import HEADER as REQUEST_ID_HEADER
from gateway.protocol.request_id import request_id
from gateway.proxy import gateway_cookie_names
from gateway.route_table import PoolKey, RouteTable, build_route_table
from gateway.routes import Route, host_without_port
from gateway.session.codec import Keyring
from gateway.session.model import Session
from gateway.session.redis_store import RedisStore, connect
from gateway.session.store import BoundedCache, CookieStore, SessionStore
from gateway.upstream import UpstreamPool

REPEATED_HEADER_MESSAGE = "The request repeated a header that must be sent once."
CLIENT_VIEW = web.RequestKey("client_view", ClientView)
REQUEST_ID = web.RequestKey("request_id", str)


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    keyring: Keyring
    #: The routes in force and what each releases; replaced whole by a reload (route_table.py).
    table: RouteTable
    signing_key: SigningKey
    published_keys: tuple[dict[str, str], ...]
    client_keys: dict[str, SigningKey]
    session_cookie: str
    login_cookie: str
    clock: Callable[[], float] = time.time
    http: aiohttp.ClientSession | None = None
    upstream_http: aiohttp.ClientSession | None = None
    #: Upstream connection pools by (upstream, connect, read timeout), kept across reloads.
    upstream_pools: dict[PoolKey, UpstreamPool] = field(default_factory=dict)
    providers: dict[str, OidcClient] = field(default_factory=dict)
    poll_clients: dict[str, PollClient] = field(default_factory=dict)
    store: SessionStore = field(default=None)  # type: ignore[assignment]  # set by build_runtime
    rate_limiter: RateLimiter = field(default=None)  # type: ignore[assignment]  # set by build_runtime
    draining: bool = False
    # Provider -> our JWE keys for it (encryption_key_file first, then previous_encryption_key_files).
    encryption_keys: dict[str, tuple[DecryptionKey, ...]] = field(default_factory=dict)
    # Per-session work done once, not per request: the encoded identity headers (keyed by session id).
    identity_headers: BoundedCache = field(default_factory=BoundedCache)
    # Refresh grants in flight (session id -> future) and just finished (sid + old refresh token -> result).
    refreshing: dict[str, asyncio.Future[Session | None]] = field(default_factory=dict)
    recent_refreshes: BoundedCache = field(default_factory=BoundedCache)
    audit: AuditLog = field(default_factory=lambda: AuditLog(None))
    #: The bearer token of session administration (admin.token_file); None: no admin API.
    admin_token: str | None = None
    # Session id -> (when, cookie setter) of its last sliding renewal (flows/sessions.py).
    reissued_cookies: BoundedCache = field(default_factory=BoundedCache)

    @property
    def own_cookies(self) -> frozenset[str]:
        return frozenset({self.session_cookie, self.login_cookie, self.poll_cookie})

    @functools.cached_property
    def own_cookie_spellings(self) -> frozenset[str]:
        """Every spelling of own_cookies an upstream's Set-Cookie could use (proxy.gateway_cookie_names)."""
        return gateway_cookie_names(self.own_cookies)

    @functools.cached_property
    def public_origin(self) -> tuple[str, str]:
        parts = urlsplit(self.settings.public_url)
        return parts.scheme, parts.netloc

    def request_host(self, request: web.Request) -> str:
        """The host the client asked for, lower case without a port: X-Forwarded-Host from a trusted proxy,
        else Host. A host that is not a plain name or address is a 400 (never a route chosen from it)."""
        view = self.client_view(request)
        raw = view.host if view.via_trusted_proxy and "X-Forwarded-Host" in request.headers else request.host
        host = host_without_port(raw or "")
        if host is None:
            raise BadRequestError("bad_host", public_message="The request's Host header is not a host name.")
        return host

    def forget_session(self, sid: str) -> None:
        """A session ended: no route reuses a header or an assertion signed for it."""
        for release in self.table.releases.values():
            release.forget(sid)

    def return_target(self, raw: str | None) -> str:
        """Where to send the browser after login: a local path, or an allow-listed sibling host (SSO)."""
        return safe_return_target(raw, scheme=self.public_origin[0], allowed=self.settings.allowed_redirect_domains)

    @property
    def poll_cookie(self) -> str:
        return self.login_cookie.removesuffix("_login") + "_tx"

    def client_view(self, request: web.Request) -> ClientView:
        """The client's address, scheme and host, believing X-Forwarded-* from trusted proxies only.

        X-Forwarded-For is every line of it (a proxy appends its own line after the client's); a repeated
        X-Forwarded-Proto/-Host from a trusted proxy is a 400 (BadRequestError), never one line of two.
        Worked out once per request (routing and forwarding both ask)."""
        if CLIENT_VIEW in request:
            return request[CLIENT_VIEW]
        headers = request.headers
        view = client_view(
            peer=request.remote or "",
            # Without a trusted proxy the upstream hears the configured origin, never a client-chosen Host.
            scheme=self.public_origin[0],
            host=self.public_origin[1],
            forwarded_for=field_lines.joined(headers, "X-Forwarded-For"),
            forwarded_proto=headers.get("X-Forwarded-Proto"),
            forwarded_host=headers.get("X-Forwarded-Host"),
            trusted=self.settings.trusted_proxies,
        )
        if view.via_trusted_proxy and (name := field_lines.repeated(headers, field_lines.TRUSTED_SINGLETONS)):
            self.metrics.repeated_headers.labels(name.lower()).inc()
            raise BadRequestError("repeated_header", public_message=REPEATED_HEADER_MESSAGE)
        request[CLIENT_VIEW] = view
        return view

    def refuse_repeated_fields(self, request: web.Request) -> None:
        """Before any route: a singleton header the gateway decides on must come on one line (RFC 9110
        §5.3; Host: RFC 9112 §3.2). Raises BadRequestError (400); nothing is forwarded."""
        name = field_lines.repeated(request.headers, field_lines.SINGLETONS)
        if name is not None:
            self.metrics.repeated_headers.labels(name.lower()).inc()
            raise BadRequestError("repeated_header", public_message=REPEATED_HEADER_MESSAGE)

    def route_of_target(self, target: str) -> Route | None:
        """The route a (safe) return target belongs to: a local path on the public host, or an allowed URL."""
        parts = urlsplit(target)
        host = parts.hostname.lower() if parts.hostname else (host_without_port(self.public_origin[1]) or "")
        try:
            path = normalize_request_path(parts.path or "/")
        except PathError:
            return None
        return self.table.route_for(host, path)

    def request_id(self, request: web.Request) -> str:
        """This request's id (protocol/request_id.py), the same every time it is asked for."""
        if REQUEST_ID not in request:
            trusted = self.client_view(request).via_trusted_proxy
            request[REQUEST_ID] = request_id(request.headers.getall(REQUEST_ID_HEADER, []), from_trusted_proxy=trusted)
        return request[REQUEST_ID]

    def audit_context(self, request: web.Request, *, route: str | None = None) -> Context:
        return Context(
            client=self.client_view(request).address,
            request_id=self.request_id(request),
            user_agent=request.headers.get("User-Agent"),
            route=route,
        )

    def audit_login(
        self, event: str, request: web.Request, *, provider: str, identity: Identity | None = None,
        sid: str | None = None, reason: str | None = None, route: str | None = None,
    ) -> None:
        """Record a login event; with ``audit.required`` an unwritten record stops the login (fails closed)."""
        if not self.audit.enabled:
            return
        written = self.audit.record(
            event, self.audit_context(request, route=route), provider=provider, identity=identity, sid=sid,
            reason=reason,
        )
        if written:
            self.metrics.audit_records.labels(event).inc()
        elif self.audit.required and event != "login_refused":
            raise AuditUnavailableError("audit_write_failed")

    def audit_event(
        self, event: str, request: web.Request | None, *, provider: str | None = None,
        identity: Identity | None = None, sid: str | None = None, reason: str | None = None,
        person: Identity | None = None,
    ) -> None:
        """Record an event that has already happened (a logout, a reload): a failure is counted and logged."""
        if not self.audit.enabled:
            return
        context = self.audit_context(request) if request is not None else Context()
        if self.audit.record(
            event, context, provider=provider, identity=identity, sid=sid, reason=reason, person=person
        ):
            self.metrics.audit_records.labels(event).inc()

    def redirect_uri(self, provider: str) -> str:
        return f"{self.settings.public_url}/_auth/callback/{provider}"

    async def start(self) -> None:
        """Open the connection pools and build one OidcClient per provider."""
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), raise_for_status=False)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30, enable_cleanup_closed=True)
        self.upstream_http = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )
        for provider in self.settings.providers:
            client = OidcClient(
                provider,
                self.http,
                client_key=self.client_keys.get(provider.name),
                encryption_keys=self.encryption_keys.get(provider.name, ()),
                clock=self.clock,
                observe=self._idp_observer(provider.name),
            )
            client.on_jwks_refresh = self._jwks_counter(provider.name)
            self.providers[provider.name] = client
            if provider.is_poll_flow:
                self.poll_clients[provider.name] = PollClient(
                    provider,
                    client,
                    clock=self.clock,
                    count_poll=self._poll_counter(provider.name),
                    # One replica polls a transaction per interval; in one process the single flight does it.
                    claim_poll=self._claim_poll if self.store.name != "cookie" else None,
                )
        self.metrics.poll_pending.set_function(self._pending_transactions)

    async def _claim_poll(self, request_id: str, ttl: float) -> bool:
        return await self.store.lock("poll:" + request_id, ttl) is not None

    def _pending_transactions(self) -> float:
        return float(sum(c.pending_count(self.clock()) for c in self.poll_clients.values()))

    def _idp_observer(self, provider: str) -> Callable[[str, str, float], None]:
        def observe(endpoint: str, outcome: str, seconds: float) -> None:
            self.metrics.idp_duration.labels(provider, endpoint, outcome).observe(seconds)

        return observe

    def _poll_counter(self, provider: str) -> Callable[[str], None]:
        def count(result: str) -> None:
            self.metrics.idp_polls.labels(provider, result).inc()

        return count

    def _jwks_counter(self, provider: str) -> Callable[[str], None]:
        def count(outcome: str) -> None:
            self.metrics.jwks_refreshes.labels(provider, outcome).inc()

        return count

    async def close(self) -> None:
        for session in (self.http, self.upstream_http):
            if session is not None:
                await session.close()
        for pool in set(self.upstream_pools.values()):
            pool.close()
        await self.store.close()
        self.audit.close()

    def _store_observer(self) -> Callable[[str, bool], None]:
        def observe(operation: str, ok: bool) -> None:
            self.metrics.store_operations.labels(operation, "ok" if ok else "error").inc()
            self.metrics.store_up.set(1 if ok else 0)

        return observe


@dataclass(frozen=True)
class KeyMaterial:
    signing_key: SigningKey | None  # None: not configured, one is generated at start-up
    published: tuple[dict[str, str], ...]
    client_keys: dict[str, SigningKey]
    encryption_keys: dict[str, tuple[DecryptionKey, ...]] = field(default_factory=dict)
    admin_token: str | None = None


def read_admin_token(path: str, problems: list[str]) -> str | None:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"admin.token_file: cannot read {path} ({getattr(exc, 'strerror', None) or exc})")
        return None
    if len(token) < 32 or not token.isascii() or not token.isprintable() or " " in token:
        problems.append(f"admin.token_file: {path} must hold one token of at least 32 printable ASCII characters")
        return None
    return token


def load_key_files(settings: Settings) -> KeyMaterial:
    """Read every configured key file; raises ConfigError naming each key that is at fault."""
    problems: list[str] = []
    signing_key: SigningKey | None = None
    if settings.assertion.signing_key_file:
        try:
            signing_key = keys.load_signing_key(settings.assertion.signing_key_file)
        except keys.KeyFileError as exc:
            problems.append(f"assertion.signing_key_file: {exc}")
    published: list[dict[str, str]] = []
    for i, path in enumerate(settings.assertion.published_key_files):
        try:
            published.append(keys.public_jwk(keys.load_signing_key(path)))
        except keys.KeyFileError as exc:
            problems.append(f"assertion.published_key_files[{i}]: {exc}")
    client_keys: dict[str, SigningKey] = {}
    for i, provider in enumerate(settings.providers):
        if provider.private_key_file:  # private_key_jwt, and the signature of request objects
            try:
                client_keys[provider.name] = keys.load_signing_key(
                    Path(provider.private_key_file), kid=provider.private_key_id
                )
            except keys.KeyFileError as exc:
                problems.append(f"providers[{i}].private_key_file: {exc}")
    encryption_keys: dict[str, tuple[DecryptionKey, ...]] = {}
    for i, provider in enumerate(settings.providers):
        loaded = _load_encryption_keys(i, provider.encryption_key_file, provider.previous_encryption_key_files,
                                       client_keys.get(provider.name), problems)
        if loaded:
            encryption_keys[provider.name] = loaded
    admin_token = read_admin_token(settings.admin.token_file, problems) if settings.admin else None
    if problems:
        raise ConfigError(problems)
    return KeyMaterial(
        signing_key=signing_key, published=tuple(published), client_keys=client_keys, encryption_keys=encryption_keys,
        admin_token=admin_token,
    )


def _load_encryption_keys(
    index: int, current: str | None, previous: tuple[str, ...], signing: SigningKey | None, problems: list[str]
) -> tuple[DecryptionKey, ...]:
    """One provider's JWE keys; the signing key must not double as one (FTN: separate keys, issue 16)."""
    if current is None:
        return ()
    loaded: list[DecryptionKey] = []
    names = ["encryption_key_file"] + [f"previous_encryption_key_files[{j}]" for j in range(len(previous))]
    for name, path in zip(names, (current, *previous), strict=True):
        try:
            key = keys.load_encryption_key(path)
        except keys.KeyFileError as exc:
            problems.append(f"providers[{index}].{name}: {exc}")
            continue
        if signing is not None and keys.same_key_material(signing, key):
            problems.append(
                f"providers[{index}].{name}: is the same key as providers[{index}].private_key_file; "
                "generate a separate encryption key"
            )
            continue
        loaded.append(key)
    return tuple(loaded)


def build_runtime(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    generated_key_pem: bytes | None = None,
) -> Runtime:
    """Load keys and derive everything handlers need; raises ConfigError naming the key at fault."""
    material = load_key_files(settings)
    signing_key = material.signing_key
    if signing_key is None:
        # Workers share the key their parent generated, so every worker's JWKS is the same.
        signing_key = keys.signing_key_from_pem(generated_key_pem or keys.generate_ec_pem())
        logs.event(
            "assertion_key_generated",
            logging.WARNING,
            detail="assertion.signing_key_file is not set: a key was generated at start-up (one for all "
            "workers); upstreams must refetch /_auth/jwks.json after every restart",
        )
    published, client_keys = material.published, material.client_keys
    prefix = "__Host-" if settings.secure_cookies else ""
    # A session cookie shared by sibling hosts carries Domain=, which __Host- forbids; __Secure- still
    # guarantees it was set over https.
    session_prefix = ("__Secure-" if settings.session.cookie_domain else "__Host-") if settings.secure_cookies else ""
    keyring = Keyring([settings.session.secret, *settings.session.previous_secrets])
    pools: dict[PoolKey, UpstreamPool] = {}
    runtime = Runtime(
        settings=settings,
        metrics=metrics or Metrics(),
        keyring=keyring,
        table=build_route_table(settings, signing_key, pools),
        signing_key=signing_key,
        upstream_pools=pools,
        published_keys=(keys.public_jwk(signing_key), *published),
        client_keys=client_keys,
        encryption_keys=material.encryption_keys,
        session_cookie=session_prefix + settings.session.cookie_name,
        login_cookie=prefix + settings.session.cookie_name + "_login",
        clock=clock,
        admin_token=material.admin_token,
    )
    runtime.store = build_store(settings, keyring, clock=clock, observe=runtime._store_observer())
    runtime.audit = AuditLog(settings.audit, on_failure=runtime.metrics.audit_write_failures.inc, clock=clock)
    # Counter names are HMACs under a key of their own, derived from the session secret: the store never
    # holds an address or a national ID number, and the names are the same on every replica.
    limit_key = hmac.new(settings.session.secret.encode(), b"eid-gateway rate-limit buckets", hashlib.sha256).digest()
    runtime.rate_limiter = RateLimiter(dict(settings.rate_limits), limit_key, runtime.store.count_hit)
    return runtime


def build_store(
    settings: Settings, keyring: Keyring, *, clock: Callable[[], float], observe: Callable[[str, bool], None]
) -> SessionStore:
    session = settings.session
    if session.store.kind == "cookie":
        return CookieStore(keyring, lifetime=session.lifetime, clock=clock)
    # redis-py connects lazily: nothing is reached here, so a Redis that is down does not stop start-up.
    return RedisStore(
        connect(session.store, timeout=session.store_timeout),
        secrets_=[session.secret, *session.previous_secrets],
        prefix=session.store_prefix,
        idle_timeout=session.idle_timeout,
        lifetime=session.lifetime,
        on_result=observe,
    )


RUNTIME = web.AppKey("runtime", Runtime)
