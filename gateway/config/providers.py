"""The ``providers`` section: one OpenID Provider (or headless / CIBA endpoint) per entry."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.reader import Problems, Reader, check_url
from gateway.config.schema import PROVIDER_KEYS
from gateway.config.yaml_loader import plain_word, quote_scalar
from gateway.protocol.authorization_request import NATIONAL_ID_PLACEHOLDER
from gateway.protocol.claims import CANONICAL_CLAIMS, validate_claim_mapping
from gateway.protocol.jws import ASYMMETRIC_ALGORITHMS

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
FLOWS = ("redirect", "headless", "ciba")
POLL_FLOWS = ("headless", "ciba")
RESPONSE_MODES = ("query", "form_post")
PAR_MODES = ("auto", "required", "off")
REQUEST_OBJECT_MODES = ("off", "signed", "encrypted")
USERINFO_MODES = ("off", "on", "signed")
_PROVIDER_NAME = re.compile(r"^[a-z0-9-]{1,32}\Z")


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
    #: Assurance levels (issue 16 item 1): returned acr (or its base before ';') -> integer, and the lowest a
    #: login may have (None: any).
    acr_levels: Mapping[str, int] = field(default_factory=dict)
    min_level: int | None = None
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
    # How the authorization request travels (issue 16): pushed (RFC 9126) and/or as a request object (RFC 9101).
    par: str = "auto"
    request_object: str = "off"
    # UserInfo after the token exchange: off, on (JSON or a signed JWT), or signed (a JWT only).
    userinfo: str = "off"
    #: Largest ID token, UserInfo answer or request object accepted (Idura and Freja answers can reach 64 KiB).
    max_token_bytes: int = 64 * 1024
    #: Forms of login_hint an application may ask for on /_auth/login (BankID Norway: BID, BID:{national_id}).
    allowed_login_hints: tuple[str, ...] = ()
    # JWE (issue 16 item 5): our decryption key for encrypted ID tokens / UserInfo, and older ones
    # still accepted during a rollover (all are published with use: enc).
    encryption_key_file: str | None = None
    previous_encryption_key_files: tuple[str, ...] = ()

    @property
    def is_poll_flow(self) -> bool:
        return self.flow in POLL_FLOWS


def load_provider(raw: Any, index: int, problems: Problems, base_dir: Path) -> ProviderSettings | None:
    path = f"providers[{index}]."
    if not isinstance(raw, dict):
        problems.add(f"providers[{index}]", "must be a mapping with name, issuer, client_id, ...")
        return None
    problems.unknown_keys(path, raw, PROVIDER_KEYS)
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
    par = r.switch("par", PAR_MODES, "auto")
    request_object = r.switch("request_object", REQUEST_OBJECT_MODES, "off")
    for needs_key, what in (
        (client_auth == "private_key_jwt", "client_auth private_key_jwt"),
        (request_object != "off", f"request_object {request_object}"),
    ):
        if needs_key and not private_key_file:
            problems.add(r.key("private_key_file"), f"is required for {what} (a PEM RSA or EC P-256 key)")
            break
    if private_key_file:
        resolved = base_dir / private_key_file
        if not resolved.is_file():
            problems.add(r.key("private_key_file"), f"file {resolved} does not exist")
        private_key_file = str(resolved)
    max_token_bytes = r.integer("max_token_bytes", 64 * 1024)
    if not 4096 <= max_token_bytes <= 1024 * 1024:
        problems.add(r.key("max_token_bytes"), "must be between 4096 and 1048576 (bytes; 65536 suits every Nordic eID)")
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
        elif not isinstance(source, str) and (word := plain_word(claims_raw, canonical)) is not None:
            problems.add(f"{path}claims.{canonical}", quote_scalar(word, source))
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
    allowed_login_hints = r.strings("allowed_login_hints")
    for hint in allowed_login_hints:
        if hint.count("{") != hint.count(NATIONAL_ID_PLACEHOLDER) or hint.count(NATIONAL_ID_PLACEHOLDER) > 1:
            problems.add(
                r.key("allowed_login_hints"), f"'{hint}': the only placeholder is {{national_id}}, at most once"
            )
        elif NATIONAL_ID_PLACEHOLDER in hint and par != "required" and request_object != "encrypted":
            problems.add(
                r.key("allowed_login_hints"),
                f"'{hint}' puts a national identity number in the login request: set par: required or "
                "request_object: encrypted, so that it never travels in a URL in clear",
            )
    if flow != "redirect" and (par == "required" or request_object != "off"):
        problems.add(
            r.key("par" if par == "required" else "request_object"), "applies to flow: redirect only; remove it"
        )
    encryption_key_file, previous_encryption_key_files = _encryption_key_files(r, base_dir, private_key_file)
    acr_levels, min_level = _levels(r)
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
        acr_levels=acr_levels,
        min_level=min_level,
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
        par=par,
        request_object=request_object,
        userinfo=r.switch("userinfo", USERINFO_MODES, "off"),
        max_token_bytes=max_token_bytes,
        allowed_login_hints=allowed_login_hints,
        encryption_key_file=encryption_key_file,
        previous_encryption_key_files=previous_encryption_key_files,
    )


def _levels(r: Reader) -> tuple[dict[str, int], int | None]:
    raw = r.mapping("acr_levels") or {}
    levels: dict[str, int] = {}
    for acr, level in raw.items():
        if not isinstance(acr, str) or not acr or any(not " " < c <= "~" for c in acr):
            r.problems.add(r.key("acr_levels"), f"{acr!r}: an acr value is printable ASCII without spaces")
        elif type(level) is not int or not 0 <= level <= 100:
            r.problems.add(f"{r.key('acr_levels')}.{acr}", "must be a whole number from 0 to 100, e.g. 3")
        else:
            levels[acr] = level
    min_level: int | None = None
    if "min_level" in r.data:
        value = r.data["min_level"]
        if type(value) is not int or not 0 <= value <= 100:
            r.problems.add(r.key("min_level"), "must be a whole number from 0 to 100")
        elif not levels:
            r.problems.add(r.key("min_level"), "needs acr_levels, which say what level each acr value is")
        else:
            min_level = value
    return levels, min_level


def _encryption_key_files(
    r: Reader, base_dir: Path, private_key_file: str | None
) -> tuple[str | None, tuple[str, ...]]:
    """encryption_key_file and previous_encryption_key_files, resolved; the keys themselves are read by
    runtime.load_key_files (which also refuses a key equal to private_key_file's under another name)."""
    current = r.string("encryption_key_file")
    previous = r.strings("previous_encryption_key_files")
    if previous and current is None:
        r.problems.add(
            r.key("previous_encryption_key_files"), "needs encryption_key_file (the key the provider encrypts to now)"
        )
    resolved: list[str] = []
    for key_name, value in [("encryption_key_file", current)] + [
        (f"previous_encryption_key_files[{i}]", v) for i, v in enumerate(previous)
    ]:
        if value is None:
            continue
        path = base_dir / value
        if not path.is_file():
            r.problems.add(r.key(key_name), f"file {path} does not exist")
        elif private_key_file is not None and path.resolve() == Path(private_key_file).resolve():
            r.problems.add(
                r.key(key_name),
                "must not be the private_key_file: use a separate key for encryption "
                "(eid-gateway keygen --rsa --out enc-key.pem)",
            )
        resolved.append(str(path))
    if current is None:
        return None, ()
    return resolved[0], tuple(resolved[1:])


def load_providers(raw_providers: Any, problems: Problems, base_dir: Path) -> tuple[ProviderSettings, ...]:
    providers: list[ProviderSettings] = []
    if not isinstance(raw_providers, list) or not raw_providers:
        problems.add("providers", "must list at least one provider (name, issuer, client_id, ...)")
        return ()
    for i, raw in enumerate(raw_providers):
        provider = load_provider(raw, i, problems, base_dir)
        if provider:
            providers.append(provider)
    names = [p.name for p in providers]
    for name in {n for n in names if names.count(n) > 1}:
        problems.add("providers", f"provider name '{name}' is used twice; names must be unique")
    return tuple(providers)
