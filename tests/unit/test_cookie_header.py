"""One strict RFC 6265 reader of every Cookie line (gateway/protocol/cookie_header.py): a gateway cookie is
absent, one exact value, or ambiguous; stripping for the upstream removes every spelling of it (issue 15,
item 2)."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from multidict import CIMultiDict

from gateway.protocol.cookie_header import CookieLookup, parse_cookie_lines
from gateway.protocol.field_lines import joined, repeated
from gateway.proxy import gateway_cookie_names, strip_cookies

S = "gw_session"
OWN = frozenset({"gw_session", "gw_session_login", "gw_session_tx"})
DROP = gateway_cookie_names(OWN)
A, B = "v1.AAAA-_aa", "v1.BBBB-_bb"


def lookup(*lines: str, name: str = S) -> CookieLookup:
    return parse_cookie_lines(lines).lookup(name)


# --- absent / one / ambiguous ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        (f"{S}={A}",),
        (f"theme=dark; {S}={A}",),
        (f"{S}={A}; theme=dark",),
        ("theme=dark", f"{S}={A}"),  # the cookie on a second line
        (f"__Host-{S}=x; {S}={A}",),  # another spelling is not this name
        (f"GW_SESSION=x; {S}={A}",),  # names are case-sensitive (RFC 6265 §5.3)
        (f"my_{S}=1; {S}={A}; {S}x=2",),
    ],
)
def test_one_exact_value(lines: tuple[str, ...]) -> None:
    assert lookup(*lines) == CookieLookup("one", A)


@pytest.mark.parametrize(
    "lines",
    [
        (f"{S}={A}; {S}={B}",),
        (f"{S}={B}; {S}={A}",),  # either order
        (f"{S}={A}; {S}={A}",),  # identical values are still two credentials
        (f"{S}={A}", f"{S}={B}"),  # two Cookie lines
        (f"{S}={A}", f"theme=dark; {S}={A}"),
        (f"{S}={A}; {S}=garbage",),  # valid + garbage, both orders
        (f"{S}=garbage; {S}={A}",),
        (f"{S}={A}; {S}=",),  # an empty one counts
        (f"{S}=; {S}={A}",),
        (f"{S}={A};{S}={B}",),  # no SP: the second is not exact, but a lenient parser reads it
        (f"{S}={A}; {S} ={B}",),  # space before "="
        (f"{S}={A}; {S}=a b",),  # a value a strict parser refuses still names the cookie
        (f"{S}={A}; {S}",),  # no "=" at all
        (f'{S}={A}; {S}="{B}"',),
        (f"{S}={A};  {S}={B}",),
        (f"{S}={A}; \t{S}={B}",),
    ],
)
def test_ambiguous(lines: tuple[str, ...]) -> None:
    assert lookup(*lines).ambiguous
    assert lookup(*lines).value is None


@pytest.mark.parametrize(
    "lines",
    [
        (),
        ("",),
        ("theme=dark",),
        (f"{S}x={A}",),
        (f"x{S}={A}",),
        (f"__Secure-{S}={A}",),
        (f"{S} ={A}",),  # not an exact pair: not the gateway's cookie
        (f"{S}= {A}",),
        (f"{S}={A} ",),  # trailing space inside the line (the field's own OWS is the parser's)
        (f"theme=dark;{S}={A}",),  # the separator must be "; "
        (f"theme=dark;  {S}={A}",),
        (f"theme=dark;\t{S}={A}",),
        (f" {S}={A}",),
        (f"{S}=a b",),
        (f"{S}=a,b",),
        (f"{S}=a\\b",),
        (f'{S}="abc',),
        (f'{S}=abc"',),
        (f'{S}="a"b"',),
        (f"{S}=a\x7fb",),
        (f"{S}=å",),
        (f"{S}",),
    ],
)
def test_not_an_exact_pair_is_not_the_gateway_cookie(lines: tuple[str, ...]) -> None:
    assert lookup(*lines).presence == "absent"


def test_empty_and_quoted_values_are_exact() -> None:
    assert lookup(f"{S}=") == CookieLookup("one", "")
    # Quotes are part of the value (RFC 6265 §4.1.1): never the gateway's own form, so the store refuses it.
    assert lookup(f'{S}="{A}"') == CookieLookup("one", f'"{A}"')
    assert lookup(f"{S}=a=b") == CookieLookup("one", "a=b")  # "=" is a cookie-octet


def test_trailing_and_doubled_separators_do_not_hide_a_pair() -> None:
    assert lookup(f"theme=dark; {S}={A};") == CookieLookup("one", A)
    assert lookup(f"{S}={A};; theme=dark").presence == "one"


@pytest.mark.parametrize("prefix", ["__Host-", "__Secure-"])
def test_prefixed_names(prefix: str) -> None:
    name = prefix + S
    assert lookup(f"{name}={A}", name=name) == CookieLookup("one", A)
    assert lookup(f"{name}={A}; {name}={B}", name=name).ambiguous
    assert lookup(f"{name}={A}", f"{name}={A}", name=name).ambiguous
    # The other spellings are never read as the configured one (and are stripped, below).
    assert lookup(f"{S}={B}; {name}={A}", name=name) == CookieLookup("one", A)


def test_values_lists_every_exact_value() -> None:
    header = parse_cookie_lines([f"{S}={A}; {S}=a b", f"{S}={B}"])
    assert header.values(S) == (A, B)
    assert header.values("other") == ()


# --- what the upstream gets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["theme=dark"], "theme=dark"),
        ([f"theme=dark; {S}={A}; lang=sv"], "theme=dark; lang=sv"),
        ([f"{S}={A}; {S}={B}"], None),  # duplicates all go
        ([f"{S}={A}; theme=dark; {S}=junk"], "theme=dark"),
        ([f"{S}={A}", "theme=dark", f"{S}={B}"], "theme=dark"),  # two lines become one
        (["a=1", "b=2"], "a=1; b=2"),
        ([f"gw_session_login=x; gw_session_tx=y; theme=dark; {S}={A}"], "theme=dark"),
        ([f"__Host-{S}=1; __Secure-{S}=2; __host-{S}=3; GW_SESSION=4; {S}=5; a=b"], "a=b"),
        (["__Secure-gw_session_tx=1; __HOST-GW_SESSION_LOGIN=2; a=b"], "a=b"),
        ([f"{S} =1; {S}; {S}=a b;{S}=c; a=b"], "a=b"),  # malformed spellings too
        ([f"my_{S}=1; {S}=x; {S}x=2"], f"my_{S}=1; {S}x=2"),  # other names pass
        (['q="quoted value"; a=b c;x=1'], 'q="quoted value"; a=b c; x=1'),  # others pass as sent
        ([f"{S}={A}"], None),
        ([""], None),
        ([], None),
    ],
)
def test_strip_removes_every_spelling_and_keeps_the_rest(lines: list[str], expected: str | None) -> None:
    assert strip_cookies(lines, DROP) == expected


def test_strip_never_lets_a_lenient_parser_find_a_gateway_cookie() -> None:
    lines = [f"{S}={A}; theme=dark", f"{S} = {B}; __Secure-{S}=x; lang=sv"]
    forwarded = strip_cookies(lines, DROP)
    assert forwarded == "theme=dark; lang=sv"
    jar: SimpleCookie = SimpleCookie()
    jar.load(forwarded)
    assert {name.lower().removeprefix("__secure-").removeprefix("__host-") for name in jar} == {"theme", "lang"}


# --- repeated field lines (RFC 9110 §5.3) -----------------------------------------------------------


def test_field_lines_join_in_order_and_repeats_are_found() -> None:
    headers = CIMultiDict([("X-Forwarded-For", "203.0.113.9"), ("Host", "a"), ("x-forwarded-for", "127.0.0.2")])
    assert joined(headers, "X-Forwarded-For") == "203.0.113.9, 127.0.0.2"
    assert joined(headers, "Accept-Language") is None
    assert repeated(headers, ("Host", "X-Forwarded-For")) == "X-Forwarded-For"
    headers.add("HOST", "b")
    assert repeated(headers, ("Host", "X-Forwarded-For")) == "Host"
    assert repeated(headers, ("Origin",)) is None
