"""``session.store`` URLs (pure layer): which session store, and how to reach it.

* ``cookie`` (the default): sessions are sealed cookies.
* ``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix:///path/redis.sock?db=N``.
* ``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]`` (``rediss+sentinel`` for TLS).
* ``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster`` for TLS).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

STORE_KINDS = ("cookie", "redis", "sentinel", "cluster")


@dataclass(frozen=True, slots=True)
class StoreAddress:
    kind: str
    url: str = ""  # redis/cluster: a URL redis-py understands
    hosts: tuple[tuple[str, int], ...] = ()  # sentinels, or cluster seed nodes
    service: str = ""  # sentinel: the monitored master's name
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def redacted(self) -> str:
        """For logs: never the password."""
        if self.kind == "cookie":
            return "cookie"
        parts = urlsplit(self.url)
        where = ",".join(f"{h}:{p}" for h, p in self.hosts) or parts.hostname or parts.path
        return f"{self.kind}://{where}/{self.service + '/' if self.service else ''}{self.db}"


def _hosts(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for part in netloc.split(","):
        if part.startswith("["):  # [IPv6]:port
            host, _, tail = part[1:].partition("]")
            port = tail.removeprefix(":") or str(default_port)
        else:
            host, sep, port = part.rpartition(":")
            if not sep:
                host, port = part, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"'{part}' is not host:port")
        hosts.append((host, int(port)))
    return tuple(hosts)


def parse_store_url(value: str) -> StoreAddress:
    """Raises ValueError with a message that says what a valid value looks like."""
    if value == "cookie":
        return StoreAddress("cookie")
    scheme, _, rest = value.partition("://")
    if not rest:
        raise ValueError("must be 'cookie' or a URL such as redis://127.0.0.1:6379/0")
    if scheme in ("redis", "rediss", "unix"):
        parts = urlsplit(value)
        if scheme != "unix" and not parts.hostname:
            raise ValueError("needs a host, e.g. redis://127.0.0.1:6379/0")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError("has an invalid port") from exc
        db_text = parts.path.strip("/") if scheme != "unix" else ""
        if db_text and not db_text.isdigit():
            raise ValueError("the path must be a database number, e.g. /0")
        return StoreAddress("redis", url=value, db=int(db_text or 0), tls=scheme == "rediss")
    if scheme not in ("redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"):
        raise ValueError(
            f"unknown scheme '{scheme}'; use cookie, redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
        )
    tls = scheme.startswith("rediss")
    userinfo, at, location = rest.rpartition("@")
    if not at:
        userinfo, location = "", rest
    username, _, password = userinfo.partition(":")
    netloc, _, path = location.partition("/")
    segments = [s for s in path.split("/") if s]
    if scheme.endswith("sentinel"):
        hosts = _hosts(netloc, 26379)
        if not segments:
            raise ValueError("needs the master's service name, e.g. redis+sentinel://10.0.0.1:26379/mymaster/0")
        if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
            raise ValueError("path must be /service_name or /service_name/db")
        return StoreAddress(
            "sentinel",
            hosts=hosts,
            service=unquote(segments[0]),
            db=int(segments[1]) if len(segments) == 2 else 0,
            username=unquote(username) or None,
            password=unquote(password) or None,
            tls=tls,
        )
    hosts = _hosts(netloc, 6379)
    if segments:
        raise ValueError("a Redis Cluster has only database 0: remove the path")
    return StoreAddress(
        "cluster",
        hosts=hosts,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=tls,
    )
