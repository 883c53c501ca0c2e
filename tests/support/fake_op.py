"""An in-process OpenID Provider for security tests, whose token endpoint answers whatever the test queues.

``FakeOP`` serves discovery, a JWKS with one RSA key (RS256, kid "rsa1") and one EC P-256 key (ES256, kid
"ec1"), an authorize endpoint that immediately 302s back to the ``redirect_uri`` with a code, the state and
(by default) ``iss``, and a token endpoint that pops the next queued reply. It records every request it
gets, so a test can read the gateway's ``nonce`` from the authorize request, check the token request, and
use the OP as a canary for header-driven key fetches (``jku``/``x5u``, attacks.md T31).

It also speaks Idura's Headless flow (protocols.md §2, attacks.md T43): ``POST /headless/authorize`` records
the start (form, headers, the ``headless_req_id`` it hands out) and the headless grant at ``/token`` answers
``authorization_pending`` until the test queues a reply for that request id (``queue_headless``).

``running_op_stack`` runs a FakeOP, a recording ``EchoUpstream`` and the real gateway on loopback;
``begin_login``/``finish_login`` drive one code-flow login through them. ``forge`` builds unsigned or
HMAC tokens as in attacks.md §0.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.cookies import Morsel, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from multidict import CIMultiDict
from yarl import URL

from gateway.keys import generate_ec_pem, generate_rsa_pem, public_jwk, signing_key_from_pem
from gateway.protocol import jws
from gateway.protocol.jws import SigningKey
from gateway.server import RunningGateway
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway
from tests.support.ports import free_port
from tests.support.stack import CLIENT_ID, base_config

#: A well-formed Swedish personnummer (valid Luhn digit) and the identity BASE claims carry.
SSN = "199003152387"
NAME = "Åsa Öberg"
COUNTRY = "SE"

#: Marker for ``FakeOP.claims(..., name=DROP)``: leave that claim out.
DROP: Any = object()


# ---------------------------------------------------------------------------------------------- keys


@functools.cache
def _pem(kind: str, label: str) -> bytes:
    """One key per (kind, label) per test session: RSA generation is the slow part of a stack."""
    return generate_rsa_pem() if kind == "rsa" else generate_ec_pem()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: Mapping[str, Any], claims: Mapping[str, Any], hmac_key: bytes | None = None,
          *, digest: Callable[[], Any] = hashlib.sha256, signature: bytes | None = None) -> str:
    """attacks.md §0: an unsigned token (empty signature) or one MACed with ``hmac_key``."""
    si = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if signature is None:
        signature = hmac.new(hmac_key, si.encode(), digest).digest() if hmac_key is not None else b""
    return si + "." + b64(signature)


@dataclass(frozen=True)
class KeyPair:
    """A private key with its PEM and the gateway's SigningKey view of it."""

    pem: bytes
    signing: SigningKey

    @property
    def kid(self) -> str:
        return self.signing.kid

    @property
    def private(self) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.pem, password=None)
        assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
        return key

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.signing)

    def public_forms(self) -> dict[str, bytes]:
        """The public key as an attacker finds it, for HMAC key confusion (attacks.md T30)."""
        public = self.private.public_key()
        forms = {
            "pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
            "openssh": public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
            "jwk_json": json.dumps(self.jwk).encode(),
        }
        if isinstance(public, rsa.RSAPublicKey):
            forms["pkcs1_pem"] = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
            forms["jwk_n"] = self.jwk["n"].encode()
        else:
            forms["jwk_x"] = self.jwk["x"].encode()
        return forms

    def raw_signature(self, signing_input: bytes, *, der: bool = False) -> bytes:
        """JOSE signature bytes: RSASSA-PKCS1-v1_5 SHA-256, or ECDSA P-256 as R||S (``der`` for the wrong form)."""
        key = self.private
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        der_sig = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        if der:
            return der_sig
        r, s = decode_dss_signature(der_sig)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def key_pair(kind: str, *, kid: str, label: str = "op") -> KeyPair:
    pem = _pem(kind, label)
    return KeyPair(pem=pem, signing=signing_key_from_pem(pem, kid=kid))


# ---------------------------------------------------------------------------------------------- the OP


@dataclass
class OpRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Authorization:
    """One authorize request the gateway's browser made, and the code the OP answered with."""

    params: dict[str, str]
    code: str

    @property
    def nonce(self) -> str:
        return self.params["nonce"]

    @property
    def state(self) -> str:
        return self.params["state"]


@dataclass
class TokenRequest:
    """What the gateway posted to the token endpoint, with the authorization the code belongs to."""

    form: dict[str, str]
    headers: CIMultiDict[str]
    authorization: Authorization | None

    @property
    def nonce(self) -> str | None:
        return self.authorization.nonce if self.authorization is not None else None


@dataclass(frozen=True)
class TokenReply:
    """A token-endpoint answer: ``body`` is sent as JSON when it is a dict, else as given."""

    status: int = 200
    body: Any = None
    content_type: str = "application/json"


Queued = str | TokenReply | Callable[[TokenRequest], "str | TokenReply"]
ISSUER_DEFAULT: Any = object()

#: Idura's headless grant (protocols.md §2.2).
HEADLESS_GRANT = "urn:grn:params:grant-type:headless"


@dataclass
class HeadlessStart:
    """One ``POST /headless/authorize`` the gateway made, the id the OP issued, and that id's poll replies."""

    form: dict[str, str]
    headers: CIMultiDict[str]
    req_id: str
    qr_data: str
    auto_start_token: str
    replies: deque[Queued] = field(default_factory=deque)
    polls: list[TokenRequest] = field(default_factory=list)
    #: Set once a 200 answer went out: like Idura, the id is used up and later polls get ``invalid_grant``.
    finished: bool = False

    @property
    def client_assertion(self) -> str | None:
        return self.form.get("client_assertion")


@dataclass
class FakeOP:
    client_id: str = CLIENT_ID
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: ``authorization_response_iss_parameter_supported`` in discovery (RFC 9207).
    iss_parameter_supported: bool = False
    #: ``iss`` sent back on the authorize redirect: the issuer (default), None to omit it, or any string.
    authorization_iss: Any = ISSUER_DEFAULT
    end_session: bool = True
    port: int = field(default_factory=free_port)
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    #: More JWKs published beside the signing keys (e.g. the OP's ``use: enc`` key for request objects).
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)
    requests: list[OpRequest] = field(default_factory=list)
    authorizations: list[Authorization] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)
    rsa: KeyPair = field(default_factory=lambda: key_pair("rsa", kid="rsa1"))
    ec: KeyPair = field(default_factory=lambda: key_pair("ec", kid="ec1"))
    #: Keys an attacker holds: same kinds, never published.
    attacker_rsa: KeyPair = field(default_factory=lambda: key_pair("rsa", kid="rsa1", label="attacker"))
    attacker_ec: KeyPair = field(default_factory=lambda: key_pair("ec", kid="ec1", label="attacker"))
    _queue: deque[Queued] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    #: ``expires_in`` of the headless start answer (an int, as in Idura's sample).
    headless_expires_in: int = 120
    headless_starts: list[HeadlessStart] = field(default_factory=list)
    #: Seconds the headless grant waits before answering (a slow provider widens races in the gateway).
    headless_poll_delay: float = 0.0

    # -- addresses

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url

    def canary_url(self, name: str = "jwks.json") -> str:
        """An address on this OP that nothing legitimate ever fetches (jku/x5u targets)."""
        return f"{self.url}/canary/{name}"

    def requests_to(self, prefix: str) -> list[OpRequest]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    @property
    def jwks_fetches(self) -> int:
        return len(self.requests_to("/jwks"))

    @property
    def canary_hits(self) -> list[OpRequest]:
        return self.requests_to("/canary")

    # -- tokens

    def claims(self, nonce: str | None, /, **overrides: Any) -> dict[str, Any]:
        """attacks.md §0 BASE for this OP and client; ``name=DROP`` removes a claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.client_id, "sub": "u1", "ssn": SSN, "name": NAME, "country": COUNTRY,
            "iat": now, "exp": now + 300, "nonce": nonce,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not DROP}

    def sign(self, claims: Mapping[str, Any], key: str | KeyPair = "rsa") -> str:
        """A properly signed token (gateway.protocol.jws.sign) with the OP's RSA or EC key."""
        pair = self._pair(key)
        return jws.sign(claims, pair.signing)

    def sign_with_header(self, header: Mapping[str, Any], claims: Mapping[str, Any], key: str | KeyPair = "rsa",
                         *, der: bool = False) -> str:
        """Sign with an arbitrary protected header (jku, x5u, jwk, odd kid ...), signature computed by hand."""
        pair = self._pair(key)
        si = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims, ensure_ascii=False).encode())
        return si + "." + b64(pair.raw_signature(si.encode(), der=der))

    def _pair(self, key: str | KeyPair) -> KeyPair:
        if isinstance(key, KeyPair):
            return key
        return {"rsa": self.rsa, "ec": self.ec, "attacker_rsa": self.attacker_rsa, "attacker_ec": self.attacker_ec}[key]

    def valid_token(self, nonce: str | None, /, **overrides: Any) -> str:
        return self.sign(self.claims(nonce, **overrides))

    def queue(self, *replies: Queued) -> None:
        """Queue token-endpoint answers: an id_token string, a TokenReply, or f(TokenRequest) -> either."""
        self._queue.extend(replies)

    def queue_claims(self, key: str = "rsa", **overrides: Any) -> None:
        """Queue a token signed with ``key`` whose nonce is the one of the flow being exchanged."""
        self.queue(lambda req: self.sign(self.claims(req.nonce, **overrides), key))

    def queue_error(self, status: int, body: Any = None) -> None:
        self.queue(TokenReply(status=status, body=body if body is not None else {"error": "invalid_grant"}))

    @property
    def pending_replies(self) -> int:
        return len(self._queue)

    # -- headless

    def headless(self, req_id: str | None = None) -> HeadlessStart:
        """The headless start with ``req_id``, or the latest one."""
        if req_id is None:
            return self.headless_starts[-1]
        return next(s for s in self.headless_starts if s.req_id == req_id)

    def queue_headless(self, *replies: Queued, req_id: str | None = None) -> None:
        """Queue answers for the polls of one headless request (default: the latest): an id_token string
        (sent in Idura's 200 shape), a TokenReply, or f(TokenRequest) -> either. Polls find
        ``authorization_pending`` while nothing is queued."""
        self.headless(req_id).replies.extend(replies)

    def client_assertions(self) -> list[str]:
        """Every client assertion the gateway sent to this OP (headless starts and all token requests)."""
        found = [s.client_assertion for s in self.headless_starts]
        found += [t.form.get("client_assertion") for t in self.token_requests]
        return [a for a in found if a]

    # -- handlers

    @web.middleware
    async def _record(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(OpRequest(request.method, request.path, list(request.query.items()),
                                       CIMultiDict(request.headers), body))
        response: web.StreamResponse = await handler(request)
        return response

    async def _discovery(self, _request: web.Request) -> web.StreamResponse:
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "authorization_response_iss_parameter_supported": self.iss_parameter_supported,
        }
        if self.end_session:
            document["end_session_endpoint"] = f"{self.url}/logout"
        document.update(self.discovery_overrides)
        return web.json_response(document)

    async def _jwks(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response({"keys": [self.rsa.jwk, self.ec.jwk, *self.extra_jwks]})

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        code = secrets.token_urlsafe(32)
        self.authorizations.append(Authorization(params=params, code=code))
        answer = {"code": code, "state": params.get("state", "")}
        iss = self.issuer if self.authorization_iss is ISSUER_DEFAULT else self.authorization_iss
        if iss is not None:
            answer["iss"] = iss
        redirect_uri = params["redirect_uri"]
        separator = "&" if "?" in redirect_uri else "?"
        return web.Response(status=302, headers={"Location": redirect_uri + separator + urlencode(answer)})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = dict(parse_qsl((await request.read()).decode()))
        if form.get("grant_type") == HEADLESS_GRANT:
            return await self._headless_token(form, request)
        code = form.get("code")
        authorization = next((a for a in self.authorizations if a.code == code), None)
        token_request = TokenRequest(form=form, headers=CIMultiDict(request.headers), authorization=authorization)
        self.token_requests.append(token_request)
        if self._queue:
            reply: Any = self._queue.popleft()
        elif authorization is not None:
            reply = self.valid_token(authorization.nonce)
        else:
            reply = TokenReply(status=400, body={"error": "invalid_grant"})
        if callable(reply):
            reply = reply(token_request)
        if isinstance(reply, str):
            reply = TokenReply(body={"access_token": "at-" + secrets.token_urlsafe(8), "token_type": "Bearer",
                                     "expires_in": 300, "id_token": reply})
        return _respond(reply)

    async def _headless_authorize(self, request: web.Request) -> web.StreamResponse:
        form = dict(parse_qsl((await request.read()).decode()))
        start = HeadlessStart(
            form=form, headers=CIMultiDict(request.headers), req_id=str(uuid.uuid4()),
            qr_data=f"bankid.{uuid.uuid4()}.0.{secrets.token_hex(32)}", auto_start_token=str(uuid.uuid4()),
        )
        self.headless_starts.append(start)
        return web.json_response({
            "headless_req_id": start.req_id,
            "expires_in": self.headless_expires_in,
            "acr_data": {"qrData": start.qr_data, "autoStartToken": start.auto_start_token},
        })

    async def _headless_token(self, form: dict[str, str], request: web.Request) -> web.StreamResponse:
        if self.headless_poll_delay:
            await asyncio.sleep(self.headless_poll_delay)
        token_request = TokenRequest(form=form, headers=CIMultiDict(request.headers), authorization=None)
        self.token_requests.append(token_request)
        start = next((s for s in self.headless_starts if s.req_id == form.get("headless_req_id")), None)
        if start is None or start.finished:
            return _respond(TokenReply(status=400, body={"error": "invalid_grant"}))
        start.polls.append(token_request)
        if not start.replies:
            return _respond(TokenReply(status=400, body={
                "error": "authorization_pending", "error_description": "awaiting first user interaction",
                "acr_data": {"qrData": start.qr_data, "hintCode": "outstandingTransaction"}}))
        reply: Any = start.replies.popleft()
        if callable(reply):
            reply = reply(token_request)
        if isinstance(reply, str):  # Idura's success shape: expires_in is a string (protocols.md §2.2)
            reply = TokenReply(body={"token_type": "Bearer", "expires_in": "120", "id_token": reply,
                                     "access_token": str(uuid.uuid4())})
        if reply.status == 200:
            start.finished = True
        return _respond(reply)

    async def _logout(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text="logged out at the OP")

    async def _anything(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="not here")

    async def __aenter__(self) -> FakeOP:
        app = web.Application(middlewares=[self._record], client_max_size=16 * 1024 * 1024)
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_post("/headless/authorize", self._headless_authorize)
        app.router.add_get("/logout", self._logout)
        app.router.add_route("*", "/{tail:.*}", self._anything)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _respond(reply: TokenReply) -> web.Response:
    body = reply.body
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else (
        body.encode() if isinstance(body, str) else (body or b""))
    return web.Response(status=reply.status, body=data, headers={"Content-Type": reply.content_type})


# ---------------------------------------------------------------------------------------------- the stack


@dataclass
class OpStack:
    gateway: RunningGateway
    echo: EchoUpstream
    op: FakeOP
    config: dict[str, Any]

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def port(self) -> int:
        return int(self.gateway.url.rsplit(":", 1)[1])

    @property
    def callback_url(self) -> str:
        return f"{self.config['public_url']}/_auth/callback/{self.config['providers'][0]['name']}"

    def reset(self) -> None:
        """Forget what earlier tests recorded (a module-scoped stack is shared)."""
        self.echo.requests.clear()
        self.op.requests.clear()
        self.op.authorizations.clear()
        self.op.token_requests.clear()
        self.op._queue.clear()
        self.op.headless_starts.clear()
        self.op.headless_poll_delay = 0.0


async def wait_ready(url: str, timeout: float = 10.0) -> None:
    """Wait until the gateway fetched discovery and the JWKS (its readiness probe says so)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{url}/_auth/readyz") as resp:
                if resp.status == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError("gateway did not become ready")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_op_stack(*, customize: Callable[[dict[str, Any]], None] | None = None,
                           **op_options: Any) -> AsyncIterator[OpStack]:
    """FakeOP + EchoUpstream + the real gateway (config as tests/support/stack.base_config), ready to log in."""
    async with FakeOP(**op_options) as op, EchoUpstream() as echo:
        config = base_config(gateway_port=free_port(), metrics_port=free_port(), issuer=op.issuer,
                             upstream=echo.url, client_secret=op.client_secret)
        config["providers"][0]["client_id"] = op.client_id
        config["providers"][0]["scopes"] = ["openid"]
        if customize is not None:
            customize(config)
        async with run_gateway(config) as gateway:
            await wait_ready(gateway.url)
            yield OpStack(gateway=gateway, echo=echo, op=op, config=config)


# ---------------------------------------------------------------------------------------------- a browser


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


@dataclass
class Outcome:
    """One HTTP answer as a user inspects it: status, headers, body text and the cookies it sets."""

    status: int
    headers: CIMultiDict[str]
    body: str
    set_cookies: dict[str, Morsel[str]]

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    def sets(self, name: str) -> bool:
        """True when a non-empty value is set for ``name`` (a session was issued)."""
        morsel = self.set_cookies.get(name)
        return morsel is not None and bool(morsel.value) and morsel["max-age"] not in ("0",)

    def clears(self, name: str) -> bool:
        morsel = self.set_cookies.get(name)
        return morsel is not None and (not morsel.value or morsel["max-age"] == "0")


async def outcome_of(resp: aiohttp.ClientResponse) -> Outcome:
    cookies: dict[str, Morsel[str]] = {}
    for header in resp.headers.getall("Set-Cookie", []):
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        cookies.update(parsed)
    body = (await resp.read()).decode("utf-8", "replace")
    return Outcome(status=resp.status, headers=CIMultiDict(resp.headers), body=body, set_cookies=cookies)


async def fetch(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Outcome:
    """One request, never following redirects; ``url`` is sent as given (already encoded)."""
    kwargs.setdefault("allow_redirects", False)
    async with http.request(method, URL(url, encoded=True), **kwargs) as resp:
        return await outcome_of(resp)


@dataclass
class Flow:
    """A started login: the gateway's authorize request as the OP saw it and the callback the OP sent back."""

    start: Outcome
    authorization: Authorization
    callback_url: str

    @property
    def nonce(self) -> str:
        return self.authorization.nonce

    @property
    def state(self) -> str:
        return self.authorization.state


def rd_query(rd: str) -> str:
    return "rd=" + quote(rd, safe="/")


async def begin_login(http: aiohttp.ClientSession, stack: OpStack, rd: str = "/private/x",
                      *, query: str | None = None, headers: Mapping[str, str] | None = None) -> Flow:
    """GET /_auth/login (``query`` raw, or ``rd=<rd>``), then the OP's authorize endpoint; stop before the callback."""
    start = await fetch(http, "GET", f"{stack.url}/_auth/login?{query if query is not None else rd_query(rd)}",
                        headers={"Accept": "text/html", **(headers or {})})
    assert start.status == 302, start.body
    assert start.location is not None and start.location.startswith(stack.op.url + "/authorize?")
    authorize = await fetch(http, "GET", start.location)
    assert authorize.status == 302 and authorize.location is not None
    callback = authorize.location
    public = stack.config["public_url"]
    if callback.startswith(public) and public != stack.url:  # an https public_url served on loopback http
        callback = stack.url + callback[len(public):]
    return Flow(start=start, authorization=stack.op.authorizations[-1], callback_url=callback)


async def finish_login(http: aiohttp.ClientSession, flow: Flow, *, callback_url: str | None = None,
                       headers: Mapping[str, str] | None = None) -> Outcome:
    return await fetch(http, "GET", callback_url or flow.callback_url,
                       headers={"Accept": "text/html", **(headers or {})})


async def login(http: aiohttp.ClientSession, stack: OpStack, rd: str = "/private/x", **claims: Any) -> Outcome:
    """A whole successful login (unless ``claims`` break it); returns the callback's answer."""
    flow = await begin_login(http, stack, rd)
    if claims:
        stack.op.queue_claims(**claims)
    return await finish_login(http, flow)


def callback_with(flow: Flow, **params: str | None) -> str:
    """The flow's callback URL with some parameters replaced (value None removes one)."""
    parts = urlsplit(flow.callback_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in params.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return parts._replace(query=urlencode(query)).geturl()
