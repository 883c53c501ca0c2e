"""A gateway replica dies under load: two gateway processes with the same config (same session secret,
same assertion key), on different ports, in front of one upstream. Sessions made through replica A keep
working on replica B after A is SIGKILLed, as a load balancer would send them there.

SIGTERM during load (no in-flight request lost while draining) is tests/integration/test_workers.py
(test_sigterm_with_two_workers_loses_no_inflight_request and ..._one_worker_drains_the_same_way)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.devidp import TestPerson
from gateway.keys import generate_ec_pem
from gateway.protocol import jws
from tests.faults.support import STORES, Plan, Store, jar_session, login, person, running, session_store, write_key
from tests.support.echo import EchoUpstream
from tests.support.ports import free_port
from tests.support.process import GatewayProcess, fresh_session, gateway_process, metric

PEOPLE = [person(p) for p in ("se-asa", "se-sven", "no-kari", "no-ola")]
BEFORE_KILL = 5  # answers from replica A each client has had before the kill
AFTER_KILL = 25  # requests each client sends to replica B after the kill


@dataclass
class Replicas:
    a: GatewayProcess
    b: GatewayProcess
    echo: EchoUpstream
    sessions: Store


@asynccontextmanager
async def two_replicas(tmp_path: Path, store: str) -> AsyncIterator[Replicas]:
    async with AsyncExitStack() as stack:
        echo = await stack.enter_async_context(EchoUpstream())
        plan = Plan(tmp_path, upstream_url=echo.url)
        sessions = await stack.enter_async_context(session_store(store, tmp_path))
        plan.config["session"].update(sessions.keys)
        (tmp_path / "assertion.pem").write_bytes(generate_ec_pem())
        plan.config["assertion"]["signing_key_file"] = str(tmp_path / "assertion.pem")
        await stack.enter_async_context(running(plan.idp(write_key(tmp_path / "idp-key.pem"))))
        # Replica B: the same document except its own listener and metrics port (public_url stays: both
        # stand for one public origin behind a load balancer; logins go through A here).
        config_b = copy.deepcopy(plan.config)
        port_b = free_port()
        config_b["listen"] = f"127.0.0.1:{port_b}"
        config_b["metrics"]["listen"] = f"127.0.0.1:{free_port()}"
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = await stack.enter_async_context(gateway_process(plan.config, tmp_path / "a", workers=1))
        b = await stack.enter_async_context(gateway_process(config_b, tmp_path / "b", workers=1))
        yield Replicas(a=a, b=b, echo=echo, sessions=sessions)


@dataclass
class Client:
    who: TestPerson
    http: aiohttp.ClientSession
    from_a: list[Any] = field(default_factory=list)  # (status, echo) or an exception
    from_b: list[Any] = field(default_factory=list)


async def keep_sending(client: Client, target: dict[str, str]) -> None:
    """Sequential requests with this client's session to whichever replica ``target`` names now, until
    AFTER_KILL of them went to replica B."""
    i = 0
    while len(client.from_b) < AFTER_KILL:
        i += 1
        name = target["name"]
        url = f"{target[name]}/load/{client.who.id}/{i}"
        try:
            async with client.http.get(url, headers={"Accept": "application/json"}, allow_redirects=False) as resp:
                outcome: Any = (resp.status, await resp.json(content_type=None))
        except aiohttp.ClientError as exc:
            outcome = exc
        (client.from_a if name == "a" else client.from_b).append(outcome)
        if name == "a" and len(client.from_a) > 2000:
            raise AssertionError("replica A was never killed")


@pytest.mark.parametrize("store", STORES)
async def test_replica_killed_under_load_sessions_continue_on_the_other_replica(tmp_path: Path, store: str) -> None:
    async with two_replicas(tmp_path, store) as gw, AsyncExitStack() as stack:
        clients = []
        for who in PEOPLE:
            http = await stack.enter_async_context(jar_session())
            await login(http, f"{gw.a.url}/private/start", who)
            clients.append(Client(who, http))
        await gw.sessions.assert_holds_sessions()

        target = {"name": "a", "a": gw.a.url, "b": gw.b.url}
        load = [asyncio.create_task(keep_sending(c, target)) for c in clients]
        try:
            async with asyncio.timeout(20):
                while not all(sum(1 for o in c.from_a if isinstance(o, tuple)) >= BEFORE_KILL for c in clients):
                    assert not any(t.done() for t in load), [t.exception() for t in load if t.done()]
                    await asyncio.sleep(0.01)
            gw.a.kill_group()  # SIGKILL replica A while requests are under way
            gw.a.proc.wait(timeout=5)
            target["name"] = "b"  # the load balancer sends everything to B from now on
            async with asyncio.timeout(30):
                await asyncio.gather(*load)
        finally:
            for task in load:
                task.cancel()

        for c in clients:
            # Before the kill A served the session; a request cut by the kill may fail (nothing else).
            answered = [o for o in c.from_a if isinstance(o, tuple)]
            assert all(status == 200 for status, _ in answered), [s for s, _ in answered]
            assert len(c.from_a) - len(answered) <= 1, c.from_a[-3:]
            # After it every request of the same session to B succeeds, with that person's identity.
            failed = [o[0] if isinstance(o, tuple) else o for o in c.from_b if not isinstance(o, tuple) or o[0] != 200]
            assert not failed, f"{c.who.id}: {len(failed)} of {AFTER_KILL} requests to replica B failed: {failed[:5]}"
            for _, echoed in c.from_b:
                assert echoed["path"].startswith(f"/load/{c.who.id}/"), echoed
                assert echoed["headers"]["X-Auth-Ssn"] == c.who.ssn, echoed["headers"]

        # The upstream heard each of B's requests, with an assertion B signed for the right person.
        async with fresh_session() as http, http.get(f"{gw.b.url}/_auth/jwks.json") as resp:
            keys = jws.parse_jwks(await resp.json())
        load_seen = [r for r in gw.echo.requests if r.path.startswith("/load/")]
        assert len(load_seen) >= len(clients) * (BEFORE_KILL + AFTER_KILL)
        by_id = {c.who.id: c.who for c in clients}
        for recorded in load_seen:
            claims = jws.verify(recorded.headers["X-Auth-Assertion"], keys, algorithms={"ES256"})
            assert claims["ssn"] == by_id[recorded.path.split("/")[2]].ssn
        text_b = await gw.b.metrics(0)
        assert metric(text_b, "gateway_requests_total", outcome="proxied") == len(clients) * AFTER_KILL
        try:
            started_on_b = metric(text_b, "gateway_logins_started_total", provider="dev")
        except AssertionError:  # no sample: never counted
            started_on_b = 0
        assert started_on_b == 0, "replica B sent a session to log in again"
        assert "Traceback" not in gw.b.log(), gw.b.log()
