"""OpenID Provider client (I/O layer): cached discovery and JWKS, code exchange, ID token verification.

The aiohttp ClientSession is injected; nothing here touches aiohttp.web. Back-channel calls have a
timeout and are never retried once a response arrived (protocols.md §5.11).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from gateway import logs
from gateway.config import ProviderSettings
from gateway.errors import IdpUnavailableError, TokenValidationError
from gateway.idp.diagnostics import body_excerpt, failure_fields, safe_url, short
from gateway.protocol import authorization_request, jws, oidc, strict_json
from gateway.protocol.authorization_request import PushedRequest
from gateway.protocol.jws import DecryptionKey, EncryptionPublicKey, PublicKey, SigningKey

DISCOVERY_TTL = 3600.0
#: An unknown kid triggers at most one JWKS fetch per this many seconds (attacks.md T31).
JWKS_REFRESH_INTERVAL = 60.0
MAX_DOCUMENT_BYTES = 512 * 1024

Observer = Callable[[str, str, float], None]  # (endpoint, outcome, seconds)


def _ignore(_endpoint: str, _outcome: str, _seconds: float) -> None:
    return None


class OidcClient:
    """One provider: its metadata, its keys, and the token exchange."""

    def __init__(
        self,
        settings: ProviderSettings,
        http: aiohttp.ClientSession,
        *,
        client_key: SigningKey | None = None,
        encryption_keys: tuple[DecryptionKey, ...] = (),
        clock: Callable[[], float] = time.time,
        observe: Observer = _ignore,
    ) -> None:
        self.settings = settings
        self._http = http
        self._client_key = client_key
        # Ours (encryption_key_file + previous ones): what the OP encrypts ID tokens / UserInfo to.
        self._encryption_keys = encryption_keys
        self._clock = clock
        self._observe = observe
        self._metadata: oidc.ProviderMetadata | None = None
        self._metadata_fetched = 0.0
        self._keys: tuple[PublicKey, ...] = ()
        # The OP's use: enc keys (request objects are encrypted to one of them).
        self._op_encryption_keys: tuple[EncryptionPublicKey, ...] = ()
        # When a token with an unknown kid last made us fetch: such fetches are rate-limited, the
        # start-up fetch is not counted (a key rotated right after start must still be picked up).
        self._unknown_kid_fetched = float("-inf")
        self._lock = asyncio.Lock()
        self.on_jwks_refresh: Callable[[str], None] = lambda _outcome: None

    @property
    def ready(self) -> bool:
        return self._metadata is not None and bool(self._keys)

    def _log_failure(self, endpoint: str, url: str, **fields: Any) -> None:
        """One ``idp_request_failed`` line: what was asked (URL without query) and why it failed."""
        logs.event(
            "idp_request_failed",
            logging.WARNING,
            provider=self.settings.name,
            endpoint=endpoint,
            **{"url": safe_url(url), **fields},
        )

    async def _log_exception(self, endpoint: str, url: str, exc: BaseException) -> None:
        self._log_failure(endpoint, url, **await failure_fields(exc, url))

    async def _get_json(self, endpoint: str, url: str) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout, connect=min(5.0, self.settings.timeout))
            async with self._http.get(url, timeout=timeout, headers={"Accept": "application/json"}) as resp:
                body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
                if resp.status != 200:
                    self._log_failure(endpoint, url, cause="http_status", status=resp.status, body=body_excerpt(body))
                    raise IdpUnavailableError(f"{endpoint}_http_{resp.status}")
                if len(body) > MAX_DOCUMENT_BYTES:
                    self._log_failure(endpoint, url, cause="too_large", detail=f"over {MAX_DOCUMENT_BYTES} bytes")
                    raise IdpUnavailableError(f"{endpoint}_http_{resp.status}")
                outcome = "ok"
                try:
                    return strict_json.loads(body)
                except ValueError as exc:
                    self._log_failure(endpoint, url, cause="malformed", detail="not JSON", body=body_excerpt(body))
                    raise IdpUnavailableError(f"{endpoint}_unreachable") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            await self._log_exception(endpoint, url, exc)
            raise IdpUnavailableError(f"{endpoint}_unreachable") from exc
        finally:
            self._observe(endpoint, outcome, time.perf_counter() - started)

    async def metadata(self) -> oidc.ProviderMetadata:
        now = self._clock()
        if self._metadata is not None and now - self._metadata_fetched < DISCOVERY_TTL:
            return self._metadata
        async with self._lock:
            if self._metadata is None or now - self._metadata_fetched >= DISCOVERY_TTL:
                url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    document = await self._get_json("discovery", url)
                    try:
                        self._metadata = oidc.parse_provider_metadata(document, expected_issuer=self.settings.issuer)
                    except IdpUnavailableError as exc:
                        self._log_discovery_refused(url, document, exc.reason)
                        raise
                    self._metadata_fetched = now
                except IdpUnavailableError:
                    if self._metadata is None:
                        raise
                    # Keep serving from the stale copy; the IdP may be briefly down.
        assert self._metadata is not None
        return self._metadata

    def _log_discovery_refused(self, url: str, document: Any, reason: str) -> None:
        if reason == "discovery_issuer_mismatch":
            got = document.get("issuer") if isinstance(document, dict) else None
            self._log_failure(
                "discovery", url, cause="issuer_mismatch", expected=self.settings.issuer, got=short(got)
            )
        else:
            self._log_failure("discovery", url, cause="malformed", detail=reason)

    async def refresh_keys(self, *, force: bool = False) -> bool:
        """Fetch the JWKS; unless forced, at most once per JWKS_REFRESH_INTERVAL. True if keys changed."""
        now = self._clock()
        async with self._lock:
            if not force:
                if now - self._unknown_kid_fetched < JWKS_REFRESH_INTERVAL:
                    return False
                self._unknown_kid_fetched = now
            metadata = self._metadata
        if metadata is None:
            metadata = await self.metadata()
        try:
            document = await self._get_json("jwks", metadata.jwks_uri)
            try:
                keys = jws.parse_jwks(document)
                encryption_keys = jws.parse_encryption_jwks(document)
            except jws.JoseError as exc:
                self._log_failure("jwks", metadata.jwks_uri, cause="malformed", detail=exc.reason)
                raise
        except (IdpUnavailableError, jws.JoseError):
            self.on_jwks_refresh("error")
            raise
        self.on_jwks_refresh("ok")
        changed = keys != self._keys or encryption_keys != self._op_encryption_keys
        self._keys = keys
        self._op_encryption_keys = encryption_keys
        return changed

    async def warm_up(self) -> None:
        await self.metadata()
        await self.refresh_keys(force=True)

    async def verify_signature(self, token: str) -> dict[str, Any]:
        """The payload of a JWS signed by this provider (one rate-limited JWKS refresh on an unknown kid)."""
        if not self._keys:
            await self.refresh_keys(force=True)
        algorithms = self.settings.id_token_algorithms
        max_bytes = self.settings.max_token_bytes
        try:
            return jws.verify(token, self._keys, algorithms=algorithms, max_bytes=max_bytes)
        except jws.JoseError as exc:
            if exc.reason not in ("unknown_kid", "no_matching_key"):
                raise TokenValidationError(exc.reason) from exc
            try:
                refreshed = await self.refresh_keys()
            except (IdpUnavailableError, jws.JoseError) as fetch_error:
                raise TokenValidationError("jwks_unavailable") from fetch_error
            if not refreshed:
                raise TokenValidationError(exc.reason) from exc
            try:
                return jws.verify(token, self._keys, algorithms=algorithms, max_bytes=max_bytes)
            except jws.JoseError as again:
                raise TokenValidationError(again.reason) from again

    async def open_jwt(self, token: str) -> dict[str, Any]:
        """The payload of a JWT from this provider: a JWS, or a JWS encrypted to one of our keys.

        A JWE is decrypted with encryption_key_file (or a previous one), must hold a JWS, and that JWS is
        verified like any other (one rate-limited JWKS refresh on an unknown kid). Without
        encryption_key_file a JWE is refused ("encrypted_token_without_key"). Raises
        TokenValidationError(reason), reason safe for the metric label. For ID tokens and JWT UserInfo.
        """
        try:
            inner = jws.unwrap_nested(token, self._encryption_keys, max_bytes=self.settings.max_token_bytes)
        except jws.JoseError as exc:
            raise TokenValidationError(exc.reason) from exc
        return await self.verify_signature(inner)

    async def request_object_encryption(self) -> tuple[EncryptionPublicKey, str, str]:
        """(the OP's use: enc key, alg, enc) to encrypt a request object to (RFC 9101 §6.1).

        alg and enc come from discovery's request_object_encryption_*_values_supported within our
        allow-list (RSA-OAEP-256 and A256GCM preferred). Raises IdpUnavailableError(reason) when the OP
        offers nothing we can use: a 502, since no login can be started that way.
        """
        metadata = await self.metadata()
        if not self._keys and not self._op_encryption_keys:
            await self.refresh_keys(force=True)
        supported = (
            metadata.request_object_encryption_alg_values_supported,
            metadata.request_object_encryption_enc_values_supported,
        )
        try:
            return jws.choose_request_encryption(self._op_encryption_keys, *supported)
        except jws.JoseError as exc:
            if exc.reason != "request_encryption_no_key":
                raise IdpUnavailableError(exc.reason) from exc
        # The OP may have added its encryption key since our last fetch (rate-limited like an unknown kid).
        try:
            await self.refresh_keys()
            return jws.choose_request_encryption(self._op_encryption_keys, *supported)
        except jws.JoseError as exc:
            raise IdpUnavailableError(exc.reason) from exc

    async def verify_id_token(
        self, id_token: str, *, nonce: str | None, acr_values: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """Signature with the provider's keys (decrypted first if encrypted), then the claims (§3.1.3.7).
        ``acr_values`` are the ones this login asked for, when they differ from the provider's configured ones."""
        metadata = await self.metadata()
        claims = await self.open_jwt(id_token)
        oidc.validate_id_token_claims(
            claims,
            issuer=metadata.issuer,
            client_id=self.settings.client_id,
            now=self._clock(),
            nonce=nonce,
            acr_values=self.settings.acr_values if acr_values is None else acr_values,
            require_acr=self.settings.require_acr,
        )
        return claims

    def sign_request_object(self, params: dict[str, str], *, audience: str) -> str:
        """RFC 9101: the authorization parameters as a JWT signed with our client key (typ oauth-authz-req+jwt)."""
        if self._client_key is None:
            raise IdpUnavailableError("request_object_key_missing")  # config requires the key; never reached
        claims = authorization_request.request_object_claims(
            params, client_id=self.settings.client_id, audience=audience, now=self._clock()
        )
        return jws.sign(claims, self._client_key, typ="oauth-authz-req+jwt")

    async def encrypt_request_object(self, signed: str) -> str:
        """RFC 9101 §6.1: the signed request object encrypted to the provider's encryption key (nested JWT)."""
        key, alg, enc = await self.request_object_encryption()
        return jws.encrypt(signed.encode("ascii"), key, alg=alg, enc=enc, cty="JWT")

    async def push_authorization_request(self, form: dict[str, str]) -> PushedRequest:
        """RFC 9126 §2: POST the request to the PAR endpoint, authenticated like the token request."""
        metadata = await self.metadata()
        if metadata.pushed_authorization_request_endpoint is None:
            raise IdpUnavailableError("par_endpoint_missing")
        status, document = await self.post_authenticated("par", metadata.pushed_authorization_request_endpoint, form)
        return authorization_request.parse_par_response(status, document)

    async def fetch_userinfo(self, access_token: str | None, *, subject: str) -> dict[str, Any]:
        """OIDC Core §5.3: the UserInfo answer for this login's access token, as JSON or a signed JWT
        (``userinfo: signed`` accepts only the JWT), checked by oidc.validate_userinfo against the ID token's
        subject. Every failure refuses the login."""
        metadata = await self.metadata()
        if metadata.userinfo_endpoint is None:
            raise IdpUnavailableError("userinfo_endpoint_missing")
        if not access_token:
            raise TokenValidationError("userinfo_without_access_token")
        limit = self.settings.max_token_bytes
        started = time.perf_counter()
        outcome = "error"
        try:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout, connect=min(5.0, self.settings.timeout))
            headers = {"Authorization": "Bearer " + access_token, "Accept": "application/jwt, application/json"}
            async with self._http.get(metadata.userinfo_endpoint, headers=headers, timeout=timeout) as resp:
                body = await resp.content.read(limit + 1)
                status, content_type = resp.status, resp.content_type
            outcome = "ok" if status == 200 else f"http_{status // 100}xx"
        except (TimeoutError, aiohttp.ClientError) as exc:
            await self._log_exception("userinfo", metadata.userinfo_endpoint, exc)
            raise IdpUnavailableError("userinfo_unreachable") from exc
        finally:
            self._observe("userinfo", outcome, time.perf_counter() - started)
        if status != 200:  # never the body of a 200: it is the person's data
            self._log_failure(
                "userinfo", metadata.userinfo_endpoint, cause="http_status", status=status, body=body_excerpt(body)
            )
        if status >= 500:
            raise IdpUnavailableError("userinfo_endpoint_error")
        if status != 200:
            raise TokenValidationError("userinfo_refused")
        if len(body) > limit:
            raise TokenValidationError("userinfo_too_large")
        if content_type == "application/jwt":
            try:
                token = body.decode("ascii").strip()
            except UnicodeDecodeError as exc:
                raise TokenValidationError("userinfo_malformed") from exc
            claims = await self.open_jwt(token)
        elif content_type == "application/json" and self.settings.userinfo != "signed":
            try:
                claims = strict_json.loads(body)
            except ValueError as exc:
                raise TokenValidationError("userinfo_malformed") from exc
        else:
            raise TokenValidationError(
                "userinfo_not_signed" if content_type == "application/json" else "userinfo_content_type"
            )
        oidc.validate_userinfo(claims, issuer=metadata.issuer, client_id=self.settings.client_id, subject=subject)
        return claims

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> oidc.TokenSet:
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        status, document = await self.post_authenticated("token", metadata.token_endpoint, form)
        if status is None:
            raise IdpUnavailableError("token_endpoint_unreachable")
        return oidc.parse_token_response(status, document)

    async def refresh(self, refresh_token: str) -> oidc.RefreshedTokens:
        metadata = await self.metadata()
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        status, document = await self.post_authenticated("token", metadata.token_endpoint, form)
        if status is None:
            raise IdpUnavailableError("token_endpoint_unreachable")
        return oidc.parse_refresh_response(status, document)

    async def post_authenticated(self, endpoint: str, url: str, form: dict[str, str]) -> tuple[int | None, Any]:
        """POST a form with this client's authentication (a fresh assertion each time).

        Returns (status, parsed JSON or None); status is None when no response arrived (network
        error, timeout). Never retried here: the caller decides, and never after a response.
        """
        metadata = await self.metadata()
        assertion = None
        if self.settings.client_auth == "private_key_jwt":
            assert self._client_key is not None
            audience = metadata.issuer if self.settings.assertion_audience == "issuer" else metadata.token_endpoint
            assertion = oidc.build_client_assertion(
                client_id=self.settings.client_id, audience=audience, key=self._client_key, now=self._clock()
            )
        headers, auth_fields = oidc.client_authentication(
            client_id=self.settings.client_id,
            client_auth=self.settings.client_auth,
            client_secret=self.settings.client_secret,
            client_assertion=assertion,
        )
        started = time.perf_counter()
        outcome = "error"
        try:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout, connect=min(5.0, self.settings.timeout))
            async with self._http.post(url, data={**form, **auth_fields}, headers=headers, timeout=timeout) as resp:
                body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
                status = resp.status
            outcome = "ok" if status == 200 else f"http_{status // 100}xx"
        except (TimeoutError, aiohttp.ClientError) as exc:
            await self._log_exception(endpoint, url, exc)
            return None, None
        finally:
            self._observe(endpoint, outcome, time.perf_counter() - started)
        # A 2xx carries tokens (PAR: 201): never logged. A poll's 400 (authorization_pending, slow_down)
        # is the protocol at work.
        if not 200 <= status < 300 and (endpoint != "poll" or status >= 500):
            self._log_failure(endpoint, url, cause="http_status", status=status, body=body_excerpt(body))
        try:
            document = strict_json.loads(body) if len(body) <= MAX_DOCUMENT_BYTES else None
        except ValueError:
            document = None
        return status, document
