"""Who is the client: X-Forwarded-* is believed only from trusted peers (attacks.md T06-T08)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from multidict import CIMultiDict

from gateway.forwarded import ClientView, Network, client_view
from gateway.protocol.field_lines import joined

TRUSTED: tuple[Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("192.168.1.5/32"),
    ipaddress.ip_network("fd00::/8"),
)


def view(
    peer: str,
    xff: str | None = None,
    proto: str | None = None,
    host: str | None = None,
    trusted: Sequence[Network] = TRUSTED,
    scheme: str = "http",
) -> ClientView:
    return client_view(
        peer=peer,
        scheme=scheme,
        host="gw.internal:8080",
        forwarded_for=xff,
        forwarded_proto=proto,
        forwarded_host=host,
        trusted=trusted,
    )


# --- untrusted peers: every X-Forwarded-* header is ignored ------------------------------------------


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        ("203.0.113.7", TRUSTED),
        ("10.0.0.1", ()),  # nothing is trusted by default
        ("127.0.0.1", ()),
        ("127.0.0.1", TRUSTED),  # loopback is not implicitly trusted
        ("192.168.1.6", TRUSTED),
        ("11.0.0.1", TRUSTED),
        ("2001:db8::1", TRUSTED),
        ("", TRUSTED),
        ("not-an-ip", TRUSTED),
        ("10.0.0.1:1234", TRUSTED),
    ],
)
def test_untrusted_peer_ignores_forwarded_headers(peer: str, trusted: Sequence[Network]) -> None:
    assert view(peer, xff="1.2.3.4", proto="https", host="evil.example", trusted=trusted) == ClientView(
        address=peer, proto="http", host="gw.internal:8080", via_trusted_proxy=False, chain=peer
    )


# --- trusted peers: the right-most untrusted hop is the client ---------------------------------------


@pytest.mark.parametrize(
    ("peer", "xff", "address"),
    [
        ("10.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the left part is client-written
        ("10.0.0.1", "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6,198.51.100.1,10.0.0.2,10.9.9.9", "198.51.100.1"),
        ("10.0.0.1", " 198.51.100.1 ,  10.0.0.2 ", "198.51.100.1"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),  # every hop trusted: the left-most
        ("10.0.0.1", "", "10.0.0.1"),
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", ",,", "10.0.0.1"),
        ("192.168.1.5", "198.51.100.1", "198.51.100.1"),
        ("fd00::1", "2001:db8::9", "2001:db8::9"),
        ("fd00::1", "2001:db8::9, fd00::2", "2001:db8::9"),
        ("10.0.0.1", "6.6.6.6, ::ffff:10.0.0.2", "::ffff:10.0.0.2"),  # an IPv6 spelling is not in 10/8
    ],
)
def test_trusted_peer_takes_right_most_untrusted_hop(peer: str, xff: str | None, address: str) -> None:
    result = view(peer, xff=xff)
    assert result.address == address
    assert result.via_trusted_proxy is True


@pytest.mark.parametrize(
    ("xff", "address"),
    [
        ("6.6.6.6, garbage", "10.0.0.1"),
        ("6.6.6.6, garbage, 10.0.0.2", "10.0.0.2"),
        ("198.51.100.1, unknown", "10.0.0.1"),
        ("6.6.6.6, 198.51.100.1:443", "10.0.0.1"),  # ports are not addresses
        ("6.6.6.6, [2001:db8::1]", "10.0.0.1"),
        ("6.6.6.6, 198.51.100.1\r\nX-Auth-Ssn: 1", "10.0.0.1"),
        ("6.6.6.6, _hidden", "10.0.0.1"),
        ("6.6.6.6, 1.2.3.4.5", "10.0.0.1"),
        ("6.6.6.6, 010.000.000.001", "10.0.0.1"),
        ("garbage, 198.51.100.1", "198.51.100.1"),  # garbage left of the client is never reached
    ],
)
def test_garbage_in_the_chain_stops_the_walk(xff: str, address: str) -> None:
    """Garbage never becomes the address, and nothing left of it is believed."""
    assert view("10.0.0.1", xff=xff).address == address


@pytest.mark.parametrize(
    ("proto", "expected"),
    [
        ("https", "https"),
        ("http", "http"),
        ("HTTPS", "https"),
        (" https ", "https"),
        ("https, http", "https"),
        ("ftp", "http"),
        ("javascript", "http"),
        ("https://evil", "http"),
        ("", "http"),
        (None, "http"),
        ("wss", "http"),
    ],
)
def test_trusted_proto_only_http_or_https(proto: str | None, expected: str) -> None:
    assert view("10.0.0.1", proto=proto).proto == expected


def test_trusted_proto_falls_back_to_the_connection_scheme() -> None:
    assert view("10.0.0.1", proto="gopher", scheme="https").proto == "https"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("app.example.test", "app.example.test"),
        ("app.example.test, evil.example", "app.example.test"),
        (" app.example.test ", "app.example.test"),
        ("", "gw.internal:8080"),
        (None, "gw.internal:8080"),
        (",", "gw.internal:8080"),
    ],
)
def test_trusted_host(host: str | None, expected: str) -> None:
    assert view("10.0.0.1", host=host).host == expected


def test_full_trusted_view() -> None:
    assert view("10.0.0.1", xff="6.6.6.6, 198.51.100.1", proto="https", host="app.example.test") == ClientView(
        address="198.51.100.1", proto="https", host="app.example.test", via_trusted_proxy=True, peer="10.0.0.1",
        chain="198.51.100.1, 10.0.0.1",
    )


# --- the chain written upstream: only what the gateway believes -------------------------------------


@pytest.mark.parametrize(
    ("xff", "chain"),
    [
        ("6.6.6.6, 198.51.100.1", "198.51.100.1, 10.0.0.1"),  # the client-written left part is dropped
        ("6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1, 10.0.0.2, 10.0.0.1"),  # trusted hops are kept
        ("10.0.0.3, 10.0.0.2", "10.0.0.3, 10.0.0.2, 10.0.0.1"),
        ("6.6.6.6, garbage", "10.0.0.1"),
        ("6.6.6.6, garbage, 10.0.0.2", "10.0.0.2, 10.0.0.1"),
        ("", "10.0.0.1"),
        (None, "10.0.0.1"),
    ],
)
def test_chain_holds_only_believed_hops(xff: str | None, chain: str) -> None:
    result = view("10.0.0.1", xff=xff)
    assert result.chain == chain
    assert result.chain.split(", ")[0] == result.address


def test_haproxy_appended_line_is_read() -> None:
    """HAProxy's option forwardfor adds its own X-Forwarded-For line after the one the client sent; the
    runtime joins the lines in order (RFC 9110 §5.3), so the proxy's line is the right-most hop."""
    lines = CIMultiDict([("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.7")])
    result = view("10.0.0.1", xff=joined(lines, "X-Forwarded-For"))
    assert result.address == "198.51.100.7"
    assert "203.0.113.9" not in result.chain
    # The first line alone (the old reading) is the client's own claim.
    assert view("10.0.0.1", xff=lines["X-Forwarded-For"]).address == "203.0.113.9"
