"""Load through two gateway replicas sharing one Redis (issue 5's load script; not a test).

    .venv/bin/python bench/load.py [--clients 50] [--seconds 30] [--sessions 20] [--store redis|cookie]

Starts on loopback: a private redis-server (not the machine's 6379), the development IdP, a small
upstream, and two `eid-gateway run` processes (one worker each) with the same config and Redis. It logs
in --sessions people through the dev IdP (alternating replicas), then drives --clients concurrent
clients for --seconds: every request uses one of those sessions and goes to replica A or B in turn, so
every session is served by both. A request counts as an error unless it is a 200 from the upstream
with the identity header the gateway adds. Prints requests, errors, req/s and p50/p90/p99 latency.
Everything it started is stopped at the end. The load generator shares the machine's two cores with
the servers, so the figures are a floor, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GATEWAY = Path(PYTHON).with_name("eid-gateway")
PEOPLE = ("Åsa Öberg", "Sven Svensson", "Kari Nordmann", "Ola Nordmann")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}, "text": ""})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")  # type: ignore[index]

    def handle_data(self, data: str) -> None:
        if self.forms:
            self.forms[-1]["text"] = str(self.forms[-1]["text"]) + data


async def _follow(http: aiohttp.ClientSession, response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
    while response.status in (301, 302, 303, 307, 308):
        url = urljoin(str(response.url), response.headers["Location"])
        response = await http.get(url, headers={"Accept": "text/html"}, allow_redirects=False)
    return response


async def login(gateway_url: str, person: str) -> str:
    """Log one person in through the dev IdP; return the session cookie header value."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        page = await _follow(http, await http.get(f"{gateway_url}/app", headers={"Accept": "text/html"},
                                                  allow_redirects=False))
        parser = _Forms()
        parser.feed(await page.text())
        form = next(f for f in parser.forms if f"Log in as {person}" in str(f["text"]))
        answer = await http.post(urljoin(str(page.url), str(form["action"])), data=form["fields"],
                                 allow_redirects=False, headers={"Accept": "text/html"})
        final = await _follow(http, answer)
        if final.status != 200:
            raise RuntimeError(f"login failed: {final.status} {await final.text()}")
        cookies = {c.key: c.value for c in jar}
        return f"gw_session={cookies['gw_session']}"


async def upstream_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="ok" if request.headers.get("X-Auth-Ssn") else "anonymous")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@contextlib.contextmanager
def process(args: list[str], log: Path) -> object:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


async def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


async def drive(urls: list[str], cookies: list[str], *, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)

    async def client(index: int) -> None:
        n = index
        async with aiohttp.ClientSession(connector=connector, connector_owner=False,
                                         cookie_jar=aiohttp.DummyCookieJar()) as http:
            while time.monotonic() < stop:
                n += 1
                url, cookie = urls[n % len(urls)], cookies[(n // len(urls)) % len(cookies)]
                started = time.perf_counter()
                try:
                    async with http.get(f"{url}/app/item", headers={"Cookie": cookie}, allow_redirects=False) as r:
                        body = await r.read()
                    kind = None if r.status == 200 and body == b"ok" else f"http_{r.status}"
                except (aiohttp.ClientError, OSError) as exc:
                    kind = type(exc).__name__
                latencies.append(time.perf_counter() - started)
                if kind:
                    errors[kind] = errors.get(kind, 0) + 1

    began = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.monotonic() - began
    await connector.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,  # type: ignore[dict-item]
        "rps": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p90_ms": q[89] * 1000,
        "p99_ms": q[98] * 1000,
    }


@contextlib.asynccontextmanager
async def stack(args: argparse.Namespace, work: Path) -> AsyncIterator[list[str]]:
    redis_port, idp_port, up_port = free_port(), free_port(), free_port()
    gw_ports, metric_ports = [free_port(), free_port()], [free_port(), free_port()]
    secret = secrets.token_urlsafe(24)
    issuer = f"http://127.0.0.1:{idp_port}"
    runner = web.AppRunner(await upstream_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", up_port).start()
    with contextlib.ExitStack() as procs:
        if args.store == "redis":
            procs.enter_context(process([shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                                         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                         "--dir", str(work)], work / "redis.log"))
        # Both replicas share one public_url (as behind a Service): the IdP sends every callback there,
        # to replica A; each person is then served by both replicas in turn.
        public = f"http://127.0.0.1:{gw_ports[0]}"
        procs.enter_context(process([PYTHON, "-m", "gateway.devidp", "--port", str(idp_port), "--client-id", "gw",
                                     "--client-secret", secret, "--redirect-uri", f"{public}/_auth/callback/dev"],
                                    work / "idp.log"))
        await wait_http(f"{issuer}/.well-known/openid-configuration")
        urls = []
        for i, (port, metrics_port) in enumerate(zip(gw_ports, metric_ports, strict=True)):
            config = {
                "listen": f"127.0.0.1:{port}",
                "public_url": public,
                "upstream": f"http://127.0.0.1:{up_port}",
                "providers": [{"name": "dev", "issuer": issuer, "client_id": "gw", "client_secret": secret,
                               "scopes": ["openid", "profile"],
                               "claims": {"ssn": "ssn", "name": "name", "country": "country"}}],
                "session": {"secret": "s" * 40, "store": f"redis://127.0.0.1:{redis_port}/0"}
                if args.store == "redis" else {"secret": "s" * 40},
                "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
                "log_level": "warning",
                # One client address starting logins as fast as it can: the per-client limit would refuse them.
                "rate_limits": {"login_per_client": "off", "poll_start_per_client": "off"},
            }
            path = work / f"gateway-{i}.yaml"
            path.write_text(yaml.safe_dump(config))
            procs.enter_context(process([str(GATEWAY), "run", "--config", str(path), "--workers", "1"],
                                        work / f"gateway-{i}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            await wait_http(f"{url}/_auth/readyz")
        try:
            yield urls
        finally:
            await runner.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--store", choices=("redis", "cookie"), default="redis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eidgw-load-") as tmp:
        work = Path(tmp)
        async with stack(args, work) as urls:
            cookies = [await login(urls[0], PEOPLE[i % len(PEOPLE)]) for i in range(args.sessions)]
            result = await drive(urls, cookies, clients=args.clients, seconds=args.seconds)
            for i in range(2):
                log = (work / f"gateway-{i}.log").read_text(errors="replace")
                result[f"replica_{i}_tracebacks"] = log.count("Traceback")
    print(json.dumps({"store": args.store, "clients": args.clients, "seconds": args.seconds,
                      "sessions": args.sessions, **result}, indent=2, default=str))


if __name__ == "__main__":
    asyncio.run(main())
