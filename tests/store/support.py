"""Support for the session store suite: a redis-server of our own, two gateway replicas (separate
``eid-gateway run`` processes with the same config except their listen and metrics ports) in front of one
echo upstream with the development IdP, and a client that carries the session cookie by hand.

Every process started here is stopped on the way out, whatever happened."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import redis
from yarl import URL

from gateway.devidp.persons import TestPerson, find_person
from gateway.protocol.jws import b64url_decode
from tests.support.echo import EchoUpstream
from tests.support.ports import free_port
from tests.support.process import GatewayProcess, fresh_session, gateway_process, metric
from tests.support.redis_server import RedisServer as SharedRedisServer
from tests.support.stack import base_config, browser_login, follow, parse_forms, start_dev_idp

REDIS_CLI = "/usr/bin/redis-cli"
PREFIX = "storetest:"
COOKIE = "gw_session"
LOGIN_COOKIE = "gw_session_login"
JSON = {"Accept": "application/json"}
#: The contract suite's session timing: short, so that sliding and absolute expiry take seconds.
IDLE_TIMEOUT = 3.0
LIFETIME = 10.0
HTML = {"Accept": "text/html"}


def person(person_id: str) -> TestPerson:
    found = find_person(person_id)
    assert found is not None, person_id
    return found


ASA, SVEN, KARI = person("se-asa"), person("se-sven"), person("no-kari")


# --- redis-server ------------------------------------------------------------------------------------


class RedisServer(SharedRedisServer):
    """The shared test redis-server, with what the outage tests need: SHUTDOWN SAVE, signals, a full dump.
    ``start`` again after ``shutdown_save`` (same port, directory and dump.rdb) reloads the data set."""

    async def start(self) -> None:  # type: ignore[override]
        await self.start_async(timeout=10.0)

    async def shutdown_save(self) -> None:
        """``redis-cli shutdown save``: the data set is written to dump.rdb, then the server exits."""
        assert self.process is not None
        subprocess.run([REDIS_CLI, "-p", str(self.port), "shutdown", "save"], capture_output=True, timeout=10)
        for _ in range(200):
            if self.process.poll() is not None:
                return
            await asyncio.sleep(0.025)
        raise AssertionError("redis-server did not exit after SHUTDOWN SAVE")

    def signal(self, number: int) -> None:
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(number)

    def everything(self) -> dict[bytes, tuple[bytes, list[bytes], int]]:
        """Every key: (type, its value or members, its PTTL in ms)."""
        found: dict[bytes, tuple[bytes, list[bytes], int]] = {}
        client = self.client()
        try:
            for key in client.scan_iter(count=1000):
                kind = bytes(client.type(key))  # type: ignore[arg-type]
                values: list[Any]
                if kind == b"string":
                    values = [client.get(key)]
                elif kind == b"set":
                    values = sorted(client.smembers(key))
                else:
                    values = [repr(client.dump(key)).encode()]
                found[key] = (kind, [bytes(v) for v in values if v is not None], int(client.pttl(key)))
        finally:
            client.close()
        return found


@asynccontextmanager
async def redis_server(directory: Path) -> AsyncIterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory)
    try:
        await server.start()
        yield server
    finally:
        server.stop()


@dataclass
class MachineRedis:
    """The machine's own Redis on 127.0.0.1:6379 (the one the issue's CI statement names). Shared with
    anything else on the machine, so the tests only add keys under PREFIX, all with TTLs, and delete nothing."""

    url: str = "redis://127.0.0.1:6379/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)

    def check(self) -> None:
        try:
            self.client().ping()
        except redis.RedisError as exc:
            raise AssertionError(f"no Redis answers on 127.0.0.1:6379 ({exc}); the machine should run one") from exc


# --- two replicas ----------------------------------------------------------------------------------------


@dataclass
class Replicas:
    store: str  # "cookie" or "redis"
    a: GatewayProcess
    b: GatewayProcess
    echo: EchoUpstream
    redis: RedisServer | MachineRedis | None
    config: dict[str, Any]

    @property
    def public_url(self) -> str:
        return str(self.config["public_url"])

    @property
    def both(self) -> tuple[GatewayProcess, GatewayProcess]:
        return self.a, self.b

    def logs(self) -> str:
        return f"--- replica A\n{self.a.log()}\n--- replica B\n{self.b.log()}"




@asynccontextmanager
async def replicas(
    tmp_path: Path,
    store: str,
    *,
    idle_timeout: str,
    lifetime: str,
    store_timeout: str = "500ms",
    customize: Callable[[dict[str, Any]], None] | None = None,
) -> AsyncIterator[Replicas]:
    """Replica A (whose URL is the public URL: logins come back to it) and replica B, one worker each.
    ``store``: cookie, redis (a redis-server of the test's own) or redis-6379 (the machine's Redis)."""
    async with AsyncExitStack() as stack:
        redis_srv: RedisServer | MachineRedis | None = None
        if store == "redis":
            redis_srv = await stack.enter_async_context(redis_server(tmp_path / "redis"))
        elif store == "redis-6379":
            redis_srv = MachineRedis()
            redis_srv.check()
            store = "redis"
        echo = await stack.enter_async_context(EchoUpstream())
        idp_port, port_a, port_b = free_port(), free_port(), free_port()
        issuer = f"http://127.0.0.1:{idp_port}"
        client_secret = secrets.token_urlsafe(24)
        config = base_config(
            gateway_port=port_a, metrics_port=free_port(), issuer=issuer, upstream=echo.url, client_secret=client_secret
        )
        config["log_level"] = "warning"
        config["shutdown_grace"] = "200ms"  # the drain notice is half of it: a quick stop after each module
        config["session"].update(idle_timeout=idle_timeout, lifetime=lifetime)
        if redis_srv is not None:
            config["session"].update(store=redis_srv.url, store_prefix=PREFIX, store_timeout=store_timeout)
        if customize is not None:
            customize(config)
        idp = await start_dev_idp(idp_port, issuer, public_url=config["public_url"], secret=client_secret)
        stack.push_async_callback(idp.cleanup)
        # Replica B: the same document except its own listener and metrics port. public_url stays A's: both
        # stand for one public origin behind a load balancer.
        config_b = copy.deepcopy(config)
        config_b["listen"] = f"127.0.0.1:{port_b}"
        config_b["metrics"]["listen"] = f"127.0.0.1:{free_port()}"
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
        contexts = [
            gateway_process(config, tmp_path / "a", workers=1),
            gateway_process(config_b, tmp_path / "b", workers=1),
        ]
        started = await asyncio.gather(*(c.__aenter__() for c in contexts), return_exceptions=True)
        entered = [c for c, result in zip(contexts, started, strict=True) if not isinstance(result, BaseException)]

        async def stop_gateways() -> None:  # both at once: each waits for its own drain
            await asyncio.gather(*(c.__aexit__(None, None, None) for c in entered), return_exceptions=True)

        stack.push_async_callback(stop_gateways)
        for result in started:
            if isinstance(result, BaseException):
                raise result
        a, b = started
        assert isinstance(a, GatewayProcess) and isinstance(b, GatewayProcess)
        yield Replicas(store=store, a=a, b=b, echo=echo, redis=redis_srv, config=config)


# --- a client that carries the session cookie by hand --------------------------------------------------


@dataclass
class Answer:
    status: int
    text: str
    headers: Any
    set_cookie: str | None  # the new session cookie value, "" when the gateway cleared it

    def json(self) -> Any:
        return json.loads(self.text)


async def request(
    base: str,
    path: str,
    *,
    cookie: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
) -> Answer:
    """One request with exactly the given cookies (no jar: nothing is dropped or expired client-side)."""
    sent = dict(JSON if headers is None else headers)
    jar = dict(cookies or {})
    if cookie is not None:
        jar[COOKIE] = cookie
    if jar:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    async with (
        fresh_session(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.request(method, base + path, headers=sent, allow_redirects=False) as resp,
    ):
        morsel = resp.cookies.get(COOKIE)
        return Answer(resp.status, await resp.text(), resp.headers, None if morsel is None else morsel.value)


@dataclass
class Browser:
    """A logged-in person's session cookie; follows the sliding expiry like a browser would (a new
    cookie value replaces the old), but never drops it on its own: only the gateway decides."""

    who: TestPerson
    cookie: str

    async def get(self, base: str, path: str = "/api/me") -> Answer:
        answer = await request(base, path, cookie=self.cookie)
        if answer.set_cookie:
            self.cookie = answer.set_cookie
        return answer

    async def works(self, base: str, path: str = "/api/me") -> bool:
        """True: proxied with this person's identity; False: refused as unauthenticated (401)."""
        answer = await self.get(base, path)
        if answer.status == 401:
            assert answer.json()["error"] == "unauthenticated", answer.text
            return False
        assert answer.status == 200, f"{answer.status}: {answer.text}"
        body = answer.json()
        assert body["path"] == path
        assert body["headers"]["X-Auth-Ssn"] == self.who.ssn
        return True

    def copy(self) -> Browser:
        return Browser(self.who, self.cookie)


def jar_session() -> aiohttp.ClientSession:
    return fresh_session(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(pair: Replicas, who: TestPerson) -> Browser:
    """Log in through replica A and the development IdP; the session cookie it set."""
    async with jar_session() as http:
        final = await browser_login(http, f"{pair.a.url}/private/start", person=who.name)
        text = await final.text()
        assert final.status == 200, f"{final.status}: {text}\n{pair.logs()}"
        assert (await final.json())["headers"]["X-Auth-Ssn"] == who.ssn
        cookie = http.cookie_jar.filter_cookies(URL(pair.a.url)).get(COOKIE)
        assert cookie is not None and cookie.value
        return Browser(who, cookie.value)


async def login_until_callback(http: aiohttp.ClientSession, pair: Replicas, who: TestPerson) -> str:
    """Start a login on replica A and pick ``who`` at the IdP; the callback URL, not yet opened."""
    start = await http.get(f"{pair.a.url}/private/replay", headers=HTML, allow_redirects=False)
    page = await follow(http, start)
    assert page.status == 200, await page.text()
    form = next(f for f in parse_forms(await page.text()) if f"Log in as {who.name}" in f["text"])
    answer = await http.post(
        urljoin(str(page.url), form["action"]), data=form["fields"], allow_redirects=False, headers=HTML
    )
    assert answer.status in (302, 303), f"{answer.status}: {await answer.text()}"
    callback = urljoin(str(answer.url), answer.headers["Location"])
    assert urlsplit(callback).path == "/_auth/callback/dev", callback
    return callback


def sample(text: str, name: str, **labels: str) -> float:
    """A metric sample, 0 when the series does not exist yet."""
    try:
        return metric(text, name, **labels)
    except AssertionError:
        return 0.0


def total(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    found = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        series, _, rest = head.partition("{")
        if series == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            found += float(value)
    return found


async def metrics(gw: GatewayProcess) -> str:
    return await gw.metrics(0)


async def eventually(check: Any, timeout: float, step: float = 0.1) -> Any:
    """Await ``check()`` until it returns something truthy; the last value (falsy after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(step)


def record_key(cookie: str) -> bytes:
    """The Redis key of a session: prefix + "s:" + SHA-256 of the id half of the cookie."""
    assert cookie.startswith("r1.")
    raw = b64url_decode(cookie[3:])
    assert len(raw) == 64
    return (PREFIX + "s:" + hashlib.sha256(raw[:32]).hexdigest()).encode()
