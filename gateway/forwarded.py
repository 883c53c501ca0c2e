"""Who is the client, and which scheme and host did it use (pure layer).

X-Forwarded-* headers are believed only when the TCP peer is in ``trusted_proxies`` (empty by
default), and then only up to the right-most address that is not itself trusted (attacks.md T06-T08).
``forwarded_for`` is the whole field: every X-Forwarded-For line, joined in order (RFC 9110 §5.3), so the
line a proxy such as HAProxy appends after the client's own is read (issue 15, item 3).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientView:
    address: str
    proto: str
    host: str
    via_trusted_proxy: bool
    peer: str = ""  # the TCP peer itself (the proxy, when one is trusted)
    #: The X-Forwarded-For the gateway writes upstream: the believed client, the trusted hops after it,
    #: then the peer; nothing left of the client (that part is whatever the client wrote).
    chain: str = ""


@functools.lru_cache(maxsize=4096)
def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    """Memoised: the same few proxy addresses ask on every request (``trusted`` is the settings' tuple)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_view(
    *,
    peer: str,
    scheme: str,
    host: str,
    forwarded_for: str | None,
    forwarded_proto: str | None,
    forwarded_host: str | None,
    trusted: Sequence[Network],
) -> ClientView:
    trusted = tuple(trusted)  # hashable for the memo (a no-op for the settings' tuple)
    if not trusted or not _trusted(peer, trusted):
        return ClientView(address=peer, proto=scheme, host=host, via_trusted_proxy=False, chain=peer)
    address = peer
    believed: list[str] = []  # right to left
    for hop in reversed([h.strip() for h in (forwarded_for or "").split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        address = hop
        believed.append(hop)
        if not _trusted(hop, trusted):
            break
    proto = forwarded_proto.split(",")[0].strip().lower() if forwarded_proto else scheme
    if proto not in ("http", "https"):
        proto = scheme
    fhost = forwarded_host.split(",")[0].strip() if forwarded_host else host
    chain = ", ".join([*reversed(believed), peer])
    return ClientView(address=address, proto=proto, host=fhost or host, via_trusted_proxy=True, peer=peer, chain=chain)
