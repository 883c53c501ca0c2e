"""Configuration loading: every problem at once with its key path, did-you-mean hints, ${VAR}
expansion, URL and duration rules, a complete config, and the shipped example and demo files."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway import keys
from gateway.config import (
    AssertionSettings,
    ProviderSettings,
    SessionSettings,
    Settings,
    UpstreamTimeouts,
    load_file,
    load_settings,
)
from gateway.config.reader import parse_duration, parse_host_port
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SECRET = "0123456789abcdef0123456789abcdef-session"
OLD_SECRET = "fedcba9876543210fedcba9876543210-previous"
ENV = {"GW_SESSION_SECRET": SECRET, "GW_CLIENT_SECRET": "client-secret-value"}


def minimal(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "public_url": "https://app.example.com",
        "upstream": "http://127.0.0.1:8082",
        "providers": [
            {"name": "idp", "issuer": "https://idp.example.com", "client_id": "gw", "client_secret": "client-secret"}
        ],
        "session": {"secret": SECRET},
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def provider(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "idp",
        "issuer": "https://idp.example.com",
        "client_id": "gw",
        "client_secret": "client-secret",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def problems(document: Any, tmp_path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(document, ENV if environ is None else environ, base_dir=tmp_path)
    assert str(info.value).startswith("invalid configuration:\n")
    return info.value.problems


def paths(items: list[str]) -> set[str]:
    return {p.split(": ", 1)[0] for p in items}


def write_key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(keys.generate_ec_pem())
    return path


# --- a complete, valid config ------------------------------------------------------------------------


def test_complete_config_loads_into_settings(tmp_path: Path) -> None:
    write_key(tmp_path / "keys" / "client.pem")
    write_key(tmp_path / "assertion.pem")
    write_key(tmp_path / "next.pem")
    document = {
        "listen": "0.0.0.0:8443",
        "public_url": "https://app.example.com/",
        "upstream": "http://127.0.0.1:8082/",
        "default_provider": "bankid-no",
        "providers": [
            {
                "name": "bankid-no",
                "display_name": "BankID",
                "flow": "redirect",
                "issuer": "https://auth.current.bankid.no/auth/realms/current",
                "client_id": "my-client",
                "client_auth": "private_key_jwt",
                "private_key_file": "keys/client.pem",
                "private_key_id": "client-key-1",
                "assertion_audience": "token_endpoint",
                "scopes": ["openid", "profile", "nnin_altsub"],
                "acr_values": ["urn:bankid:bid", "urn:bankid:bim"],
                "require_acr": False,
                "prompt": "login",
                "login_hint": "BID",
                "ui_locales": ["nb", "en"],
                "response_mode": "form_post",
                "claims": {"ssn": "nnin_altsub", "name": "name", "country": "=NO"},
                "required_claims": ["ssn"],
                "id_token_algorithms": ["RS256"],
                "timeout": "15s",
            },
            {
                "name": "dev",
                "issuer": "http://127.0.0.1:8081",
                "client_id": "gw",
                "client_auth": "client_secret_post",
                "client_secret": "${GW_CLIENT_SECRET}",
            },
        ],
        "session": {
            "secret": "${GW_SESSION_SECRET}",
            "previous_secrets": [OLD_SECRET],
            "lifetime": "8h",
            "idle_timeout": "60s",
            "cookie_name": "my_session",
            "login_timeout": 90,
        },
        "headers": {"ssn": "X-Auth-Ssn", "name": "X-Auth-Name", "birthdate": "X-Auth-Birthdate"},
        "header_encoding": "base64url",
        "assertion": {
            "header": "X-Identity",
            "signing_key_file": "assertion.pem",
            "published_key_files": ["next.pem"],
            "audience": "my-app",
            "ttl": "2m",
        },
        "public_paths": ["/healthz", "/static/"],
        "trusted_proxies": ["10.0.0.0/8", "192.168.1.5", "fd00::/8"],
        "metrics": {"listen": "127.0.0.1:9090"},
        "upstream_timeouts": {"connect": "3s", "read": "500ms"},
        "log_level": "debug",
    }
    settings = load_settings(document, ENV, base_dir=tmp_path)
    assert settings == Settings(
        listen_host="0.0.0.0",
        listen_port=8443,
        public_url="https://app.example.com",
        upstream="http://127.0.0.1:8082",
        providers=(
            ProviderSettings(
                name="bankid-no",
                display_name="BankID",
                flow="redirect",
                issuer="https://auth.current.bankid.no/auth/realms/current",
                client_id="my-client",
                client_auth="private_key_jwt",
                client_secret=None,
                private_key_file=str(tmp_path / "keys" / "client.pem"),
                private_key_id="client-key-1",
                assertion_audience="token_endpoint",
                scopes=("openid", "profile", "nnin_altsub"),
                acr_values=("urn:bankid:bid", "urn:bankid:bim"),
                require_acr=False,
                prompt="login",
                login_hint="BID",
                ui_locales=("nb", "en"),
                response_mode="form_post",
                claims={"ssn": "nnin_altsub", "name": "name", "country": "=NO"},
                required_claims=("ssn",),
                id_token_algorithms=("RS256",),
                timeout=15.0,
            ),
            ProviderSettings(
                name="dev",
                display_name="dev",
                issuer="http://127.0.0.1:8081",
                client_id="gw",
                client_auth="client_secret_post",
                client_secret="client-secret-value",
            ),
        ),
        session=SessionSettings(
            secret=SECRET,
            previous_secrets=(OLD_SECRET,),
            lifetime=28800.0,
            idle_timeout=60.0,
            cookie_name="my_session",
            login_timeout=90.0,
        ),
        headers={"ssn": "X-Auth-Ssn", "name": "X-Auth-Name", "birthdate": "X-Auth-Birthdate"},
        header_encoding="base64url",
        assertion=AssertionSettings(
            header="X-Identity",
            signing_key_file=str(tmp_path / "assertion.pem"),
            published_key_files=(str(tmp_path / "next.pem"),),
            audience="my-app",
            ttl=120.0,
        ),
        public_paths=("/healthz", "/static/"),
        trusted_proxies=(
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("192.168.1.5/32"),
            ipaddress.ip_network("fd00::/8"),
        ),
        metrics_listen=("127.0.0.1", 9090),
        upstream_timeouts=UpstreamTimeouts(connect=3.0, read=0.5),
        default_provider="bankid-no",
        log_level="debug",
    )
    assert settings.secure_cookies is True
    assert settings.provider("dev") is settings.providers[1]
    assert settings.provider("nope") is None


def test_minimal_config_defaults(tmp_path: Path) -> None:
    settings = load_settings(minimal(), {}, base_dir=tmp_path)
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 8080)
    assert settings.headers == {"ssn": "X-Auth-Ssn", "name": "X-Auth-Name", "country": "X-Auth-Country"}
    assert settings.assertion == AssertionSettings()
    assert settings.session == SessionSettings(secret=SECRET)
    assert (settings.session.lifetime, settings.session.idle_timeout) == (28800, 3600)
    assert settings.metrics_listen is None
    assert settings.trusted_proxies == ()
    assert settings.default_provider == "idp"
    assert settings.header_encoding == "rfc8187"
    assert settings.providers[0] == ProviderSettings(
        name="idp", display_name="idp", issuer="https://idp.example.com", client_id="gw", client_secret="client-secret"
    )


# --- every problem at once ---------------------------------------------------------------------------


def test_six_mistakes_are_all_reported_with_their_key_paths(tmp_path: Path) -> None:
    document = minimal(
        public_url="http://app.example.com",  # http for a non-loopback host
        providers=[provider(client_auth="client_secret_jwt", client_secret=None)],  # unknown method, no secret
        session={"secret": "too-short"},
        headers={"ssn": "X_Auth_Ssn"},  # '_' is not allowed in a header name
        metrics={"listen": "9090"},  # no host
    )
    found = problems(document, tmp_path)
    assert paths(found) == {
        "public_url",
        "providers[0].client_auth",
        "providers[0].client_secret",
        "session.secret",
        "headers.ssn",
        "metrics.listen",
    }
    assert "public_url: must use https (http is accepted for loopback hosts only, for development)" in found
    assert "providers[0].client_auth: must be one of client_secret_basic, client_secret_post, private_key_jwt" in found
    assert "providers[0].client_secret: is required for client_auth client_secret_basic" in found
    assert (
        "session.secret: must be at least 32 characters of random data; generate one with: eid-gateway keygen" in found
    )
    assert "headers.ssn: must be a header name of letters, digits and '-', e.g. X-Auth-Ssn" in found
    assert "metrics.listen: must be host:port, e.g. 127.0.0.1:9090 (a separate, internal port)" in found


def test_many_independent_problems_in_one_go(tmp_path: Path) -> None:
    document = {
        "listen": "nonsense",
        "public_url": "https://app.example.com/base",
        "upstream": "ftp://x",
        "providers": [
            provider(name="Bad Name", scopes=["profile"], claims={"email": "email"}, prompt="sometimes"),
            provider(issuer="idp.example.com", id_token_algorithms=["HS256"]),
        ],
        "session": {"secret": SECRET, "lifetime": "1h", "idle_timeout": "2h", "cookie_name": "a;b"},
        "assertion": {"ttl": "2h", "header": "X Bad"},
        "public_paths": ["healthz", "/a/../b"],
        "trusted_proxies": ["10.0.0.0/33"],
        "log_level": "verbose",
        "header_encoding": "latin1",
    }
    assert paths(problems(document, tmp_path)) == {
        "listen",
        "public_url",
        "upstream",
        "providers[0].name",
        "providers[0].scopes",
        "providers[0].claims.email",
        "providers[0].prompt",
        "providers[1].issuer",
        "providers[1].id_token_algorithms",
        "session.idle_timeout",
        "session.cookie_name",
        "assertion.ttl",
        "assertion.header",
        "public_paths[0]",
        "public_paths[1]",
        "trusted_proxies[0]",
        "log_level",
        "header_encoding",
    }


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"public_url": None}, "public_url"),
        ({"upstream": None}, "upstream"),
        ({"providers": None}, "providers"),
        ({"providers": []}, "providers"),
        ({"providers": "idp"}, "providers"),
        ({"providers": ["idp"]}, "providers[0]"),
        ({"session": None}, "session"),
        ({"session": {"lifetime": "8h"}}, "session.secret"),
        ({"session": {"secret": ""}}, "session.secret"),
        ({"session": "secret"}, "session"),
        ({"providers": [provider(issuer=None)]}, "providers[0].issuer"),
        ({"providers": [provider(client_id=None)]}, "providers[0].client_id"),
        ({"providers": [provider(name=None)]}, "providers[0].name"),
        ({"providers": [provider(), provider()]}, "providers"),
    ],
)
def test_required_parts(tmp_path: Path, changes: dict[str, Any], path: str) -> None:
    document = {**minimal(), **changes}
    document = {k: v for k, v in document.items() if v is not None}
    assert path in paths(problems(document, tmp_path))


def test_empty_session_mapping_needs_a_secret(tmp_path: Path) -> None:
    """`session: {}` must not load with an empty secret (every such deployment would share one key)."""
    found = problems(minimal(session={}), tmp_path)
    assert "session.secret" in paths(found)


def test_session_secret_from_an_empty_variable_is_refused(tmp_path: Path) -> None:
    found = problems(minimal(session={"secret": "${GW_SESSION_SECRET}"}), tmp_path, {"GW_SESSION_SECRET": ""})
    assert found == ["session.secret: is required"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, "(top level)"),
        ([], "(top level)"),
        ("public_url: x", "(top level)"),
    ],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, document: Any, expected: str) -> None:
    found = problems(document, tmp_path)
    assert found == ["(top level): the config must be a YAML mapping; start from config/example.yaml"]


# --- unknown keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"publc_url": "x"}, "publc_url: unknown key; did you mean 'public_url'?"),
        ({"trusted_proxy": []}, "trusted_proxy: unknown key; did you mean 'trusted_proxies'?"),
        ({"zzzzzz": 1}, "zzzzzz: unknown key; remove it"),
        (
            {"providers": [provider(client_secert="x")]},
            "providers[0].client_secert: unknown key; did you mean 'client_secret'?",
        ),
        ({"providers": [provider(scope=["openid"])]}, "providers[0].scope: unknown key; did you mean 'scopes'?"),
        (
            {"session": {"secret": SECRET, "idle_timout": "1h"}},
            "session.idle_timout: unknown key; did you mean 'idle_timeout'?",
        ),
        (
            {"assertion": {"signing_key": "k.pem"}},
            "assertion.signing_key: unknown key; did you mean 'signing_key_file'?",
        ),
        ({"metrics": {"listn": "127.0.0.1:9090"}}, "metrics.listn: unknown key; did you mean 'listen'?"),
        ({"upstream_timeouts": {"conect": "5s"}}, "upstream_timeouts.conect: unknown key; did you mean 'connect'?"),
    ],
)
def test_unknown_keys_with_did_you_mean(tmp_path: Path, changes: dict[str, Any], problem: str) -> None:
    assert problem in problems(minimal(**changes), tmp_path)


# --- ${VAR} expansion --------------------------------------------------------------------------------


def test_env_expansion_everywhere(tmp_path: Path) -> None:
    environ = {
        **ENV,
        "HOST": "app.example.com",
        "PORT": "8443",
        "CID": "client-1",
        "NESTED": "${GW_SESSION_SECRET}",
    }
    document = minimal(
        listen="0.0.0.0:${PORT}",
        public_url="https://${HOST}",
        providers=[provider(client_id="${CID}", client_secret="${NESTED}-x", scopes=["openid", "${CID}"])],
        session={"secret": "${GW_SESSION_SECRET}"},
    )
    settings = load_settings(document, environ, base_dir=tmp_path)
    assert settings.listen_port == 8443
    assert settings.public_url == "https://app.example.com"
    assert settings.providers[0].client_id == "client-1"
    assert settings.providers[0].scopes == ("openid", "client-1")
    assert settings.providers[0].client_secret == "${GW_SESSION_SECRET}-x"  # expanded once, never twice
    assert settings.session.secret == SECRET


def test_only_braced_references_expand(tmp_path: Path) -> None:
    settings = load_settings(
        minimal(providers=[provider(client_secret="$GW_CLIENT_SECRET and $ alone")]), ENV, base_dir=tmp_path
    )
    assert settings.providers[0].client_secret == "$GW_CLIENT_SECRET and $ alone"


def test_missing_variables_are_named_with_their_key_paths(tmp_path: Path) -> None:
    document = minimal(
        providers=[provider(client_secret="${GW_CLIENT_SECRET}")],
        session={"secret": "${GW_SESSION_SECRET}"},
    )
    found = problems(document, tmp_path, environ={})
    assert "session.secret: environment variable GW_SESSION_SECRET is not set; export it or write the value" in found
    assert (
        "providers[0].client_secret: environment variable GW_CLIENT_SECRET is not set; export it or write the value"
        in found
    )


def test_environment_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_SESSION_SECRET", SECRET)
    settings = load_settings(minimal(session={"secret": "${GW_TEST_SESSION_SECRET}"}), base_dir=tmp_path)
    assert settings.session.secret == SECRET


# --- public_url and other URLs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("https://app.example.com/", "https://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://127.0.0.5", "http://127.0.0.5"),
    ],
)
def test_public_url_accepted(tmp_path: Path, url: str, stored: str) -> None:
    settings = load_settings(minimal(public_url=url), {}, base_dir=tmp_path)
    assert settings.public_url == stored
    assert settings.secure_cookies is url.startswith("https://")


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example.com",
        "http://10.0.0.1:8080",
        "http://0.0.0.0:8080",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "https://app.example.com/base",
        "https://app.example.com?x=1",
        "https://app.example.com#f",
        "ftp://app.example.com",
        "app.example.com",
        "https://",
        "//app.example.com",
        123,
    ],
)
def test_public_url_refused(tmp_path: Path, url: Any) -> None:
    assert "public_url" in paths(problems(minimal(public_url=url), tmp_path))


@pytest.mark.parametrize(
    ("issuer", "ok"),
    [
        ("https://idp.example.com", True),
        ("https://idp.example.com/realms/x", True),
        ("http://127.0.0.1:8081", True),
        ("http://idp.example.com", False),
        ("https://idp.example.com?x=1", False),
        ("idp.example.com", False),
    ],
)
def test_issuer_url(tmp_path: Path, issuer: str, ok: bool) -> None:
    document = minimal(providers=[provider(issuer=issuer)])
    if ok:
        assert load_settings(document, {}, base_dir=tmp_path).providers[0].issuer == issuer
    else:
        assert "providers[0].issuer" in paths(problems(document, tmp_path))


# --- durations and host:port -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("8h", 28800.0),
        ("60s", 60.0),
        (90, 90.0),
        ("90", 90.0),
        ("15m", 900.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("0", 0.0),
        (" 8h ", 28800.0),
        (1.5, 1.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "8 h",
        "8H",
        "1.5h",
        "-5",
        -5,
        -0.1,
        "h",
        "",
        "8hours",
        "1h30m",
        True,
        False,
        None,
        [1],
        {"h": 1},
        float("inf"),
        float("nan"),
    ],
)
def test_parse_duration_refusals(value: Any) -> None:
    assert parse_duration(value) is None


def test_durations_in_a_config(tmp_path: Path) -> None:
    settings = load_settings(
        minimal(session={"secret": SECRET, "lifetime": "8h", "idle_timeout": "60s", "login_timeout": 90}),
        {},
        base_dir=tmp_path,
    )
    assert (settings.session.lifetime, settings.session.idle_timeout, settings.session.login_timeout) == (
        28800.0,
        60.0,
        90.0,
    )
    found = problems(minimal(session={"secret": SECRET, "lifetime": "8 hours"}), tmp_path)
    assert found == ["session.lifetime: must be a duration such as 30s, 15m, 8h or a number of seconds"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9090", ("::1", 9090)),
        ("localhost:65535", ("localhost", 65535)),
        ("8080", None),
        (":8080", None),
        ("host:", None),
        ("host:65536", None),
        ("host:-1", None),
        ("host:80a", None),
        (8080, None),
        (None, None),
    ],
)
def test_parse_host_port(value: Any, expected: tuple[str, int] | None) -> None:
    assert parse_host_port(value) == expected


def test_metrics_must_not_share_the_public_port(tmp_path: Path) -> None:
    found = problems(minimal(listen="0.0.0.0:8080", metrics={"listen": "0.0.0.0:8080"}), tmp_path)
    assert found == ["metrics.listen: must differ from listen; metrics are never served on the public port"]


@pytest.mark.parametrize("metrics", [{"listen": None}, {}])
def test_metrics_off(tmp_path: Path, metrics: dict[str, Any]) -> None:
    assert load_settings(minimal(metrics=metrics), {}, base_dir=tmp_path).metrics_listen is None


# --- secrets, headers, claims, files -----------------------------------------------------------------


def test_previous_secrets_are_checked_too(tmp_path: Path) -> None:
    found = problems(minimal(session={"secret": SECRET, "previous_secrets": [OLD_SECRET, "short"]}), tmp_path)
    assert paths(found) == {"session.previous_secrets[1]"}


@pytest.mark.parametrize(
    ("headers", "assertion", "path"),
    [
        ({"ssn": "X_Auth_Ssn"}, {}, "headers.ssn"),
        ({"ssn": "X-Auth-Ssn\r\nX-Evil"}, {}, "headers.ssn"),
        ({"ssn": ""}, {}, "headers.ssn"),
        ({"ssn": 5}, {}, "headers.ssn"),
        ({"email": "X-Auth-Email"}, {}, "headers.email"),
        ({"ssn": "X-Auth-Ssn", "name": "x-auth-ssn"}, {}, "headers"),
        ({"ssn": "X-Auth-Ssn"}, {"header": "x-AUTH-ssn"}, "headers"),
    ],
)
def test_header_problems(tmp_path: Path, headers: dict[str, Any], assertion: dict[str, Any], path: str) -> None:
    assert path in paths(problems(minimal(headers=headers, assertion=assertion), tmp_path))


@pytest.mark.parametrize(
    ("claims", "path"),
    ids=lambda v: str(v) if isinstance(v, dict) else "",
    argvalues=[
        ({"email": "email"}, "providers[0].claims.email"),
        ({"ssn": ""}, "providers[0].claims.ssn"),
        ({"ssn": 5}, "providers[0].claims.ssn"),
        # sub and idp always come from the provider; map_claims refuses such a mapping at login
        # time (claims.validate_claim_mapping), so check-config must refuse it too.
        ({"sub": "email"}, "providers[0].claims.sub"),
        ({"idp": "=bankid"}, "providers[0].claims.idp"),
        ({"ssn": "="}, "providers[0].claims.ssn"),
    ],
)
def test_claim_mapping_problems(tmp_path: Path, claims: dict[str, Any], path: str) -> None:
    assert path in paths(problems(minimal(providers=[provider(claims=claims)]), tmp_path))


def test_private_key_jwt_needs_an_existing_key_file(tmp_path: Path) -> None:
    found = problems(minimal(providers=[provider(client_auth="private_key_jwt", client_secret=None)]), tmp_path)
    assert found == [
        "providers[0].private_key_file: is required for client_auth private_key_jwt (a PEM RSA or EC P-256 key)"
    ]
    document = minimal(
        providers=[provider(client_auth="private_key_jwt", client_secret=None, private_key_file="absent.pem")]
    )
    assert problems(document, tmp_path) == [
        f"providers[0].private_key_file: file {tmp_path / 'absent.pem'} does not exist"
    ]


def test_missing_signing_key_file(tmp_path: Path) -> None:
    found = problems(minimal(assertion={"signing_key_file": "absent.pem"}), tmp_path)
    assert found == [
        f"assertion.signing_key_file: file {tmp_path / 'absent.pem'} does not exist; "
        "create one with: eid-gateway keygen --out absent.pem"
    ]


def test_key_files_resolve_against_base_dir(tmp_path: Path) -> None:
    write_key(tmp_path / "conf" / "a.pem")
    settings = load_settings(minimal(assertion={"signing_key_file": "a.pem"}), {}, base_dir=tmp_path / "conf")
    assert settings.assertion.signing_key_file == str(tmp_path / "conf" / "a.pem")


@pytest.mark.parametrize("ttl", ["4s", "2h", 0])
def test_assertion_ttl_range(tmp_path: Path, ttl: Any) -> None:
    assert problems(minimal(assertion={"ttl": ttl}), tmp_path) == ["assertion.ttl: must be between 5s and 1h"]


def test_default_provider_must_name_a_provider(tmp_path: Path) -> None:
    found = problems(minimal(default_provider="other"), tmp_path)
    assert found == ["default_provider: names no provider; use one of idp"]


def test_direct_login_redirect_is_off_by_default_and_can_be_switched_on(tmp_path: Path) -> None:
    assert load_settings(minimal(), {}, base_dir=tmp_path).direct_login_redirect is False
    assert load_settings(minimal(direct_login_redirect=True), {}, base_dir=tmp_path).direct_login_redirect is True


def test_direct_login_redirect_needs_a_default_provider(tmp_path: Path) -> None:
    two = [provider(), provider(name="other")]
    found = problems(minimal(providers=two, direct_login_redirect=True), tmp_path)
    assert found == [
        "direct_login_redirect: needs one provider to send browsers to; set default_provider to a redirect-flow "
        "provider, or remove direct_login_redirect"
    ]
    settings = load_settings(
        minimal(providers=two, default_provider="other", direct_login_redirect=True), {}, base_dir=tmp_path
    )
    assert settings.direct_login_redirect and settings.default_provider == "other"


def test_direct_login_redirect_with_a_mistyped_default_provider_names_only_that_key(tmp_path: Path) -> None:
    found = problems(minimal(default_provider="idq", direct_login_redirect=True), tmp_path)
    assert found == ["default_provider: names no provider; use one of idp"]


def test_direct_login_redirect_refuses_a_poll_flow_default_provider(tmp_path: Path) -> None:
    write_key(tmp_path / "idura.pem")
    headless = provider(
        name="se-bankid",
        flow="headless",
        client_auth="private_key_jwt",
        client_secret=None,
        private_key_file="idura.pem",
        acr_values=["urn:grn:authn:se:bankid"],
    )
    assert load_settings(minimal(providers=[headless]), {}, base_dir=tmp_path).default_provider == "se-bankid"
    found = problems(minimal(providers=[headless], direct_login_redirect=True), tmp_path)
    assert found == [
        "direct_login_redirect: default_provider 'se-bankid' uses the headless flow, which has no provider page to "
        "redirect to; remove direct_login_redirect or set default_provider to a redirect-flow provider"
    ]


def test_direct_login_redirect_must_be_a_boolean(tmp_path: Path) -> None:
    assert problems(minimal(direct_login_redirect="yes"), tmp_path) == ["direct_login_redirect: must be true or false"]


# --- load_file ---------------------------------------------------------------------------------------


def test_load_file_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("public_url: [unclosed\nupstream: x\n")
    with pytest.raises(ConfigError) as info:
        load_file(path, {})
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: not valid YAML at line ")
    assert problem.endswith("; check the indentation and quoting")


def test_load_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path / "absent.yaml", {})
    assert info.value.problems == [
        f"{tmp_path / 'absent.yaml'}: cannot read the config file (No such file or directory)"
    ]


def test_load_file_resolves_key_files_next_to_the_config(tmp_path: Path) -> None:
    write_key(tmp_path / "etc" / "assertion.pem")
    config = tmp_path / "etc" / "gw.yaml"
    config.write_text(
        "public_url: https://app.example.com\nupstream: http://127.0.0.1:8082\n"
        "providers: [{name: idp, issuer: 'https://idp.example.com', client_id: gw, client_secret: s}]\n"
        "session: {secret: '${GW_SESSION_SECRET}'}\nassertion: {signing_key_file: assertion.pem}\n"
    )
    settings = load_file(config, ENV)
    assert settings.assertion.signing_key_file == str(tmp_path / "etc" / "assertion.pem")
    assert settings.session.secret == SECRET


# --- the shipped files -------------------------------------------------------------------------------


def test_example_yaml_is_complete_and_valid(tmp_path: Path) -> None:
    shutil.copy(REPO / "config" / "example.yaml", tmp_path / "example.yaml")
    write_key(tmp_path / "client-key.pem")
    write_key(tmp_path / "idura-client-key.pem")
    write_key(tmp_path / "assertion-key.pem")
    settings = load_file(tmp_path / "example.yaml", {"GW_SESSION_SECRET": SECRET})
    assert settings.public_url == "https://app.example.com"
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 8080)
    assert settings.session.secret == SECRET
    assert [p.name for p in settings.providers] == ["bankid-no", "se-bankid"]
    assert settings.providers[1].flow == "headless"
    bankid = settings.providers[0]
    assert bankid.client_auth == "private_key_jwt"
    assert bankid.private_key_file == str(tmp_path / "client-key.pem")
    assert "openid" in bankid.scopes
    assert settings.assertion.signing_key_file == str(tmp_path / "assertion-key.pem")
    assert settings.metrics_listen == ("127.0.0.1", 9090)
    assert settings.metrics_listen != (settings.listen_host, settings.listen_port)


def test_example_yaml_names_what_is_missing(tmp_path: Path) -> None:
    shutil.copy(REPO / "config" / "example.yaml", tmp_path / "example.yaml")
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path / "example.yaml", {})
    assert paths(info.value.problems) == {
        "session.secret",
        "providers[0].private_key_file",
        "providers[1].private_key_file",
        "assertion.signing_key_file",
    }


def test_example_yaml_lists_every_key(tmp_path: Path) -> None:
    """The example documents every key the loader knows (commented-out keys count)."""
    text = (REPO / "config" / "example.yaml").read_text()
    for name in (
        *("listen", "public_url", "upstream", "default_provider", "providers", "session", "headers"),
        *("header_encoding", "assertion", "public_paths", "trusted_proxies", "upstream_timeouts", "metrics"),
        *("log_level", "name", "display_name", "flow", "issuer", "client_id", "client_auth", "client_secret"),
        *("private_key_file", "private_key_id", "assertion_audience", "scopes", "acr_values", "require_acr"),
        *("prompt", "login_hint", "ui_locales", "response_mode", "claims", "required_claims"),
        *("id_token_algorithms", "timeout", "secret", "previous_secrets", "lifetime", "idle_timeout"),
        *("cookie_name", "login_timeout", "header", "signing_key_file", "published_key_files", "audience", "ttl"),
        *("connect", "read", "direct_login_redirect"),
    ):
        assert f"{name}:" in text, name
