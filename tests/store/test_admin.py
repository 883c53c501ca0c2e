"""Session administration (issue 14 item 4) on two real gateway replicas: `eid-gateway sessions list|revoke`
against replica A's internal listener; with Redis the revocation takes effect on replica B too, within a
second; with the cookie store only on the replica asked (documented). Every call is audited; a wrong token,
the public listener, and a malformed body are refused."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.store.support import ASA, KARI, SVEN, Replicas, login, replicas

TOKEN = secrets.token_urlsafe(32)
CLI = str(Path(sys.executable).with_name("eid-gateway"))


def customize(tmp_path: Path) -> Any:
    def apply(config: dict[str, Any]) -> None:
        (tmp_path / "admin.token").write_text(TOKEN + "\n")
        config["admin"] = {"token_file": str(tmp_path / "admin.token")}
        config["audit"] = {"file": str(tmp_path / "audit.jsonl"), "secret": "s" * 40}

    return apply


def cli(pair: Replicas, *args: str) -> subprocess.CompletedProcess[str]:
    config = pair.a.log_path.parent / "gateway.yaml"
    return subprocess.run([CLI, "sessions", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=30)


async def admin(pair: Replicas, action: str, body: Any, *, token: str = TOKEN, url: str | None = None) -> Any:
    base = url or pair.a.metrics_url(0).removesuffix("/metrics")
    async with aiohttp.ClientSession() as http, http.post(
        f"{base}/_auth/admin/sessions/{action}", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize("store", ["redis", "cookie"])
async def test_list_and_revoke_a_persons_sessions(tmp_path: Path, store: str) -> None:
    async with replicas(tmp_path, store, idle_timeout="10m", lifetime="1h", customize=customize(tmp_path)) as pair:
        phone, laptop, other = await login(pair, KARI), await login(pair, KARI), await login(pair, SVEN)
        listed = cli(pair, "list", "--person", KARI.ssn)
        if store == "cookie":
            assert listed.returncode == 1 and "not_listable" in listed.stderr
        else:
            assert listed.returncode == 0, listed.stderr
            sessions = json.loads(listed.stdout)["sessions"]
            assert len(sessions) == 2 and {s["provider"] for s in sessions} == {"dev"}
            assert all(s["acr"] == "urn:eid:dev:loa3" and s["last_seen"] >= s["started"] for s in sessions)
            assert KARI.ssn not in listed.stdout
        revoked = cli(pair, "revoke", "--person", KARI.ssn)
        assert revoked.returncode == 0, revoked.stderr
        answer = json.loads(revoked.stdout)
        started = time.monotonic()
        if store == "redis":
            assert answer == {"ended": 2, "store": "redis", "scope": "every replica"}
            # Replica B was not asked: the shared store ends the sessions there too, at once.
            assert not await phone.works(pair.b.url) and not await laptop.works(pair.b.url)
            assert time.monotonic() - started < 1.0
        else:
            assert answer["scope"] == "this process" and answer["ended"] == 0
            assert not await phone.works(pair.a.url) and not await laptop.works(pair.a.url)
            assert await phone.works(pair.b.url)  # the documented limit: B never heard of it
        assert await other.works(pair.a.url) and await other.works(pair.b.url)
        assert await (await login(pair, KARI)).works(pair.a.url)  # a new login is not revoked
    trail = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    events = [r["event"] for r in trail if r["event"].startswith("admin_")]
    assert events == (["admin_sessions_listed", "admin_revoked"] if store == "redis" else ["admin_revoked"])
    assert all(KARI.ssn not in json.dumps(r) for r in trail)


async def test_revoke_one_session_by_reference(tmp_path: Path) -> None:
    async with replicas(tmp_path, "redis", idle_timeout="10m", lifetime="1h", customize=customize(tmp_path)) as pair:
        first, second = await login(pair, ASA), await login(pair, ASA)
        status, body = await admin(pair, "list", {"person": ASA.ssn})
        assert status == 200 and len(body["sessions"]) == 2
        await asyncio.sleep(0)
        target = body["sessions"][0]["session"]
        assert len(target) == 64
        done = cli(pair, "revoke", "--session", target)
        assert done.returncode == 0 and json.loads(done.stdout)["ended"] == 1, done.stderr
        alive = [await first.works(pair.b.url), await second.works(pair.b.url)]
        assert sorted(alive) == [False, True]
        status, body = await admin(pair, "list", {"person": ASA.ssn})
        assert len(body["sessions"]) == 1 and body["sessions"][0]["session"] != target
        status, body = await admin(pair, "revoke", {"session": "0" * 64})
        assert status == 200 and body["ended"] == 0


async def test_bad_callers_are_refused_and_audited(tmp_path: Path) -> None:
    async with replicas(tmp_path, "redis", idle_timeout="10m", lifetime="1h", customize=customize(tmp_path)) as pair:
        browser = await login(pair, SVEN)
        for token in ("wrong-" + TOKEN, ""):
            status, body = await admin(pair, "revoke", {"person": SVEN.ssn}, token=token)
            assert status == 401 and body == {"error": "unauthorized"}
        assert await browser.works(pair.a.url)
        # The public listener has no admin API: an unknown gateway route, whatever the token.
        status, _ = await admin(pair, "revoke", {"person": SVEN.ssn}, url=pair.a.url)
        assert status == 404
        assert await browser.works(pair.a.url)
        for bad in ({"person": "123"}, {"person": SVEN.ssn, "provider": "dev", "sub": "x"}, ["x"], {}):
            status, body = await admin(pair, "revoke", bad)
            assert status == 400, bad
        assert await browser.works(pair.a.url)
        metrics = await pair.a.metrics(0)
        assert 'gateway_admin_requests_total{result="refused"} 2.0' in metrics
    trail = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    refused = [r for r in trail if r["event"] == "admin_refused"]
    assert len(refused) == 2 and all(r["client"] == "127.0.0.1" and r["reason"] == "bad_token" for r in refused)


def test_admin_needs_the_internal_listener_and_a_token_file(tmp_path: Path) -> None:
    from gateway.config import load_settings
    from gateway.errors import ConfigError

    document = {
        "public_url": "https://app.example.com", "upstream": "http://127.0.0.1:1",
        "providers": [{"name": "p", "issuer": "https://op.example.com", "client_id": "c", "client_secret": "s"}],
        "session": {"secret": "x" * 40}, "admin": {"token_file": "missing.token"},
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(yaml.safe_load(yaml.safe_dump(document)), {}, base_dir=tmp_path)
    problems = caught.value.problems
    assert any(p.startswith("admin: is served on the internal listener only; set metrics.listen") for p in problems)
    assert any(p.startswith(f"admin.token_file: file {tmp_path}/missing.token does not exist") for p in problems)
