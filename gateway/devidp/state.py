"""The dev IdP's runtime state: configuration plus the in-memory stores, reached via ``STATE``."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from gateway.devidp.authrequest import AuthorizationRequest
from gateway.devidp.clients import DevClient
from gateway.devidp.headless_store import FaultQueue, HeadlessStore
from gateway.devidp.store import ExpiringStore
from gateway.protocol.jws import SigningKey

PENDING_TTL = 600.0  # a login page left open longer than this must be started again
CODE_TTL = 60.0
ACCESS_TOKEN_TTL = 600
ID_TOKEN_TTL = 300


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Absolute URLs (for discovery and the assertion audience) and the matching route paths."""

    issuer: str

    @property
    def base_path(self) -> str:
        return urlsplit(self.issuer).path.rstrip("/")

    def url(self, path: str) -> str:
        return self.issuer.rstrip("/") + path

    def path(self, path: str) -> str:
        return self.base_path + path


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """What an authorization code is bound to; ``redeemed`` flips on the first token request."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    person_id: str
    acr: str
    auth_time: int
    redeemed: bool = False
    access_token: str | None = None


@dataclass(frozen=True, slots=True)
class AccessGrant:
    client_id: str
    person_id: str


@dataclass(slots=True)
class DevIdpState:
    endpoints: Endpoints
    signing_key: SigningKey
    clients: Mapping[str, DevClient]
    clock: Callable[[], float]
    headless_interval: float = 5.0
    headless_expires_in: int = 120
    pending: ExpiringStore[AuthorizationRequest] = field(init=False)
    codes: ExpiringStore[IssuedCode] = field(init=False)
    access_tokens: ExpiringStore[AccessGrant] = field(init=False)
    assertion_ids: ExpiringStore[bool] = field(init=False)
    headless: HeadlessStore = field(init=False)
    headless_faults: FaultQueue = field(init=False)
    #: When each headless poll arrived (newest last, bounded): tests check the gateway's pacing with it.
    headless_poll_times: deque[float] = field(init=False)
    #: Signs the ``bad_id_token`` fault: a key that is never published in /jwks. Made when needed.
    rogue_key: SigningKey | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.pending = ExpiringStore(self.clock)
        self.codes = ExpiringStore(self.clock)
        self.access_tokens = ExpiringStore(self.clock)
        self.assertion_ids = ExpiringStore(self.clock)
        self.headless = HeadlessStore(self.clock)
        self.headless_faults = FaultQueue()
        self.headless_poll_times = deque(maxlen=1000)

    @property
    def issuer(self) -> str:
        return self.endpoints.issuer


STATE = web.AppKey("devidp_state", DevIdpState)
