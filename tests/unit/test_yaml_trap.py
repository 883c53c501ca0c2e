"""The YAML 1.1 trap (issue 13 item 6): a bare NO, no, yes, on or off is a boolean and 12345 a number, so
`country: [SE, NO]` would read as ['SE', False]. Where the gateway expects a string, the config loader
refuses such a value, names the key and the word, and shows the quoted form; the quoted form loads.
Everything goes through the real parser (gateway.config.yaml_loader.parse_yaml) and load_settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import keys
from gateway.config import Settings, load_settings
from gateway.config.schema import SECTIONS
from gateway.config.yaml_loader import YamlMapping, YamlSequence, parse_yaml
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
ENV = {"CLIENT_SECRET": "c" * 32, "SESSION_SECRET": "s" * 40}

BASE = """\
public_url: https://app.example.com
upstream: http://127.0.0.1:8082
providers:
  - name: bankid-no
    issuer: https://login.example.com
    client_id: my-client
    client_secret: ${{CLIENT_SECRET}}
{provider}
session:
  secret: ${{SESSION_SECRET}}
{top}
"""


def text(*, provider: str = "", top: str = "") -> str:
    """The smallest valid file, with `provider` lines added to the provider and `top` lines at the top level."""
    return BASE.format(provider="\n".join(f"    {line}" for line in provider.splitlines()), top=top)


def load(source: str) -> Settings:
    return load_settings(parse_yaml(source), ENV)


def problems(source: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(source)
    return list(raised.value.problems)


def suggestion(problem: str) -> str:
    """What the message says to write instead (after "quote it: " / "quote them: ")."""
    match = re.search(r"; quote (?:it|them): (.+)\Z", problem)
    assert match, problem
    return match.group(1)


# --- booleans where strings belong ------------------------------------------------------------------------

BOOLEAN_WORDS = [
    ("NO", "false"),
    ("no", "false"),
    ("No", "false"),
    ("yes", "true"),
    ("YES", "true"),
    ("on", "true"),
    ("On", "true"),
    ("off", "false"),
    ("OFF", "false"),
    ("true", "true"),
    ("false", "false"),
]


@pytest.mark.parametrize(("word", "read_as"), BOOLEAN_WORDS)
def test_a_bare_boolean_word_in_a_rule_is_refused_with_the_quoted_list(word: str, read_as: str) -> None:
    bare = text(top=f"rules: [{{path_prefix: /admin/, require: {{country: [SE, {word}]}}}}]")
    found = problems(bare)
    assert found == [f'rules[0].require.country: YAML read {word} as {read_as}; quote it: [SE, "{word}"]']
    fixed = bare.replace(f"[SE, {word}]", suggestion(found[0]))
    assert load(fixed).rules[0].require == {"country": ("SE", word)}


def test_the_country_list_of_the_nordics() -> None:
    """SE, NO, DK, FI, IS: only NO is a YAML boolean; the suggestion quotes it and keeps the others bare."""
    found = problems(text(top="rules: [{require: {country: [SE, NO, DK, FI, IS]}}]"))
    assert found == ['rules[0].require.country: YAML read NO as false; quote it: [SE, "NO", DK, FI, IS]']


def test_several_words_in_one_list_are_all_named() -> None:
    found = problems(text(top="rules: [{require: {country: [NO, yes, 7]}}]"))
    assert found == [
        'rules[0].require.country: YAML read NO as false, yes as true, 7 as a number; quote them: ["NO", "yes", "7"]'
    ]
    fixed = text(top=f"rules: [{{require: {{country: {suggestion(found[0])}}}}}]")
    assert load(fixed).rules[0].require == {"country": ("NO", "yes", "7")}


@pytest.mark.parametrize(
    ("key", "line", "expected"),
    [
        ("ui_locales", "ui_locales: [nb, no]", 'YAML read no as false; quote it: [nb, "no"]'),
        ("acr_values", "acr_values: [urn:bankid:bid, on]", 'YAML read on as true; quote it: [urn:bankid:bid, "on"]'),
        ("scopes", "scopes: [openid, yes]", 'YAML read yes as true; quote it: [openid, "yes"]'),
    ],
)
def test_lists_of_strings_in_a_provider(key: str, line: str, expected: str) -> None:
    found = problems(text(provider=line))
    assert found == [f"providers[0].{key}: {expected}"]
    fixed = text(provider=f"{key}: {suggestion(found[0])}")
    assert len(getattr(load(fixed).providers[0], key)) == 2


def test_top_level_lists_of_strings() -> None:
    found = problems(text(top="allowed_redirect_domains: [app2.example.com, off]"))
    assert found == ['allowed_redirect_domains: YAML read off as false; quote it: [app2.example.com, "off"]']


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("name: no", 'providers[0].name: YAML read no as false; quote it: "no"'),
        ("display_name: Yes", 'providers[0].display_name: YAML read Yes as true; quote it: "Yes"'),
        ("login_hint: ON", 'providers[0].login_hint: YAML read ON as true; quote it: "ON"'),
    ],
)
def test_a_bare_boolean_word_where_one_string_belongs(line: str, expected: str) -> None:
    source = text().replace("name: bankid-no", line) if line.startswith("name:") else text(provider=line)
    assert problems(source) == [expected]
    key, _, word = line.partition(": ")
    fixed = load(source.replace(line, f"{key}: {suggestion(expected)}"))
    assert getattr(fixed.providers[0], key) == word


def test_a_bare_word_at_the_top_level() -> None:
    assert problems(text(top="default_provider: off")) == ['default_provider: YAML read off as false; quote it: "off"']


def test_claims_and_headers_name_the_word() -> None:
    found = problems(text(provider="claims: {ssn: ssn, country: NO}", top="headers: {ssn: X-Auth-Ssn, country: 123}"))
    assert sorted(found) == [
        'headers.country: YAML read 123 as a number; quote it: "123"',
        'providers[0].claims.country: YAML read NO as false; quote it: "NO"',
    ]
    fixed = load(text(provider='claims: {ssn: ssn, country: "=NO"}', top='headers: {ssn: X-Auth-Ssn, country: "123"}'))
    assert fixed.providers[0].claims["country"] == "=NO"
    assert fixed.headers["country"] == "123"


# --- numbers where strings belong -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "read_as"),
    [
        ("12345", "a number"),
        ("0123", "the number 83"),
        ("1_000", "the number 1000"),
        ("4.5", "a number"),
        ("0x1F", "the number 31"),
        ("1:20", "the number 80"),
    ],
)
def test_a_number_client_id_is_refused_with_the_quoted_form(word: str, read_as: str) -> None:
    source = text().replace("client_id: my-client", f"client_id: {word}")
    found = problems(source)
    assert found == [f'providers[0].client_id: YAML read {word} as {read_as}; quote it: "{word}"']
    assert (
        load(source.replace(f"client_id: {word}", f"client_id: {suggestion(found[0])}")).providers[0].client_id == word
    )


def test_a_numeric_session_secret_and_a_date_are_named() -> None:
    secret = "1234567890" * 4
    source = text().replace("secret: ${SESSION_SECRET}", f"secret: {secret}")
    assert problems(source) == [f'session.secret: YAML read {secret} as a number; quote it: "{secret}"']
    found = problems(text(provider="display_name: 2026-12-07"))
    assert found == ['providers[0].display_name: YAML read 2026-12-07 as a date; quote it: "2026-12-07"']


# --- what keeps working ------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["Y", "y", "N", "n"])
def test_y_and_n_are_strings_as_in_yaml_1_2(word: str) -> None:
    """PyYAML (like YAML 1.2) reads y/n as strings: a country or locale list with them loads as written,
    and where a boolean belongs they are refused, never guessed."""
    assert load(text(top=f"rules: [{{require: {{country: [SE, {word}]}}}}]")).rules[0].require == {
        "country": ("SE", word)
    }
    assert problems(text(provider=f"require_acr: {word}")) == ["providers[0].require_acr: must be true or false"]


@pytest.mark.parametrize(
    ("word", "value"),
    [("yes", True), ("on", True), ("no", False), ("off", False), ("NO", False), ("true", True), ("False", False)],
)
def test_booleans_still_accept_yaml_1_1_words(word: str, value: bool) -> None:
    """Existing files write `require_acr: no` or `refresh_tokens: off`: where a boolean belongs, those stay."""
    settings = load(text(provider=f"require_acr: {word}\nrefresh_tokens: {word}", top=f"direct_login_redirect: {word}"))
    assert (settings.providers[0].require_acr, settings.providers[0].refresh_tokens) == (value, value)
    assert settings.direct_login_redirect is value


def test_switch_words_read_as_booleans_still_work() -> None:
    settings = load(text(provider="par: off\nuserinfo: on", top="rate_limits: {login_per_client: off}"))
    assert (settings.providers[0].par, settings.providers[0].userinfo) == ("off", "on")
    assert "login_per_client" not in settings.rate_limits


def test_a_document_without_the_words_gets_the_plain_message() -> None:
    """A document parsed elsewhere (yaml.safe_load, a dict in code) carries no words: the usual message."""
    document = yaml.safe_load(text().replace("client_id: my-client", "client_id: 12345"))
    with pytest.raises(ConfigError) as raised:
        load_settings(document, ENV)
    assert raised.value.problems == ["providers[0].client_id: must be a string"]


# --- the parser itself -------------------------------------------------------------------------------------


def shipped_yaml() -> list[Path]:
    return sorted([*(REPO / "config").glob("*.yaml"), *(REPO / "deploy").rglob("config.yaml")])


@pytest.mark.parametrize("path", shipped_yaml(), ids=lambda p: str(p.relative_to(REPO)))
def test_parse_yaml_reads_what_safe_load_reads(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert parse_yaml(source) == yaml.safe_load(source)


def test_parse_yaml_keeps_words_through_anchors_merges_and_env_expansion() -> None:
    document = parse_yaml("base: &b {k: off}\nm: {<<: *b, n: 12}\nl: [SE, NO, '${X}']")
    assert isinstance(document, YamlMapping) and isinstance(document["l"], YamlSequence)
    assert document["m"].plain_words == {"k": "off", "n": "12"}
    assert document["l"].plain_words == {1: "NO"}
    found = problems(text(top='rules: [{require: {country: [SE, NO, "${SESSION_SECRET}"]}}]'))
    assert found == [f'rules[0].require.country: YAML read NO as false; quote it: [SE, "NO", {"s" * 40}]']


@pytest.mark.parametrize("bad", ["a: [b", "a: !!python/object:os.system {}", "a: b\n c: d"])
def test_parse_yaml_raises_yaml_errors_and_stays_safe(bad: str) -> None:
    with pytest.raises(yaml.YAMLError):
        parse_yaml(bad)


# --- config/example.yaml: every commented example works when uncommented ------------------------------------

_ALL_KEYS = frozenset().union(*SECTIONS.values())
_EXAMPLE_LINE = re.compile(r"^(\s*)# (?:- )?([a-z_]+):")


def uncomment_examples(source: str) -> tuple[str, list[str]]:
    """Uncomment every commented example: a `# key: ...` line (key a config key) and the commented lines right
    below it whose `#` is in the same column. Returns the text and the lines uncommented (as they were)."""
    lines = source.splitlines(keepends=True)
    uncommented: list[str] = []
    i = 0
    while i < len(lines):
        match = _EXAMPLE_LINE.match(lines[i])
        if not match or match.group(2) not in _ALL_KEYS:
            i += 1
            continue
        column = len(match.group(1))
        while i < len(lines) and lines[i][:column].strip() == "" and lines[i][column : column + 2] == "# ":
            uncommented.append(lines[i].strip())
            lines[i] = lines[i][:column] + lines[i][column + 2 :]
            i += 1
    return "".join(lines), uncommented


def example_files(directory: Path) -> dict[str, str]:
    for name in ("client-key.pem", "idura-client-key.pem", "enc-key.pem"):
        (directory / name).write_bytes(keys.generate_rsa_pem())
    (directory / "assertion-key.pem").write_bytes(keys.generate_ec_pem())
    return {"GW_SESSION_SECRET": "s" * 40, "GW_CLIENT_SECRET": "c" * 32, "GW_CIBA_SECRET": "b" * 32}


def test_every_commented_example_in_example_yaml_loads_when_uncommented(tmp_path: Path) -> None:
    source, uncommented = uncomment_examples((REPO / "config" / "example.yaml").read_text(encoding="utf-8"))
    for expected in (
        "# direct_login_redirect:",
        "# client_secret:",
        "# encryption_key_file:",
        "# ui_locales:",
        "# - name: ciba",
        "# - path_prefix: /admin/",
        "# cookie_domain:",
    ):
        assert any(line.startswith(expected) for line in uncommented), (expected, uncommented)
    document: Any = parse_yaml(source)
    settings = load_settings(document, example_files(tmp_path), base_dir=tmp_path)
    assert [p.name for p in settings.providers] == ["bankid-no", "se-bankid", "ciba"]
    assert settings.providers[0].ui_locales == ("nb", "en")
    assert settings.rules[0].require == {"country": ("SE", "NO")}
    assert settings.rules[1].host == "payroll.example.com"
    assert settings.session.cookie_domain == "example.com"


def test_the_country_example_uncommented_loads_and_bare_it_is_refused(tmp_path: Path) -> None:
    original = (REPO / "config" / "example.yaml").read_text(encoding="utf-8")
    env = example_files(tmp_path)
    lines = original.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == "# - path_prefix: /admin/")
    for i in (start, start + 1):
        lines[i] = lines[i].replace("# ", "", 1)
    uncommented = "".join(lines)
    assert load_settings(parse_yaml(uncommented), env, base_dir=tmp_path).rules[0].require == {"country": ("SE", "NO")}
    bare = uncommented.replace('[SE, "NO"]', "[SE, NO]")
    assert bare != uncommented
    with pytest.raises(ConfigError) as raised:
        load_settings(parse_yaml(bare), env, base_dir=tmp_path)
    assert raised.value.problems == ['rules[0].require.country: YAML read NO as false; quote it: [SE, "NO"]']


def test_yaml_safe_load_is_left_as_it_was() -> None:
    """The word-keeping constructors belong to parse_yaml's own loader, not to PyYAML's SafeLoader."""
    parsed = yaml.safe_load("a: {b: [NO]}")
    assert type(parsed) is dict and type(parsed["a"]) is dict and type(parsed["a"]["b"]) is list
    assert type(parse_yaml("a: 1")) is YamlMapping
