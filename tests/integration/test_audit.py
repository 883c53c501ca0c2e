"""The audit trail (issue 14 item 1) through real logins: the development IdP, the real gateway, a recording
upstream. Each record has the contract's keys; the person is a keyed hash that joins one person's events
without the number; the clear number appears only when configured; a record that cannot be written is loud,
and with audit.required the login does not happen."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import reload
from gateway.audit import FIELDS
from gateway.runtime import RUNTIME
from tests.support.stack import browser_login, running_stack

ASA_SSN = "199003152387"
SECRET = "a" * 40


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def expected_person(ssn: str) -> str:
    """Computed here from the documented definition, not by the gateway's code."""
    mac = hmac.new(SECRET.encode(), b"person\x00nid:" + ssn.encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode().rstrip("=").lower()


def audited(path: Path, **extra: Any) -> Any:
    def customize(config: dict[str, Any]) -> None:
        config["audit"] = {"file": str(path), "secret": SECRET, **extra}

    return customize


async def test_a_login_and_logout_are_audited_without_the_national_id(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    async with running_stack(customize=audited(trail)) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        final = await browser_login(http, f"{stack.url}/private", person="Åsa Öberg")
        assert final.status == 200
        async with http.post(
            f"{stack.url}/_auth/logout", allow_redirects=False, headers={"Origin": stack.url, "User-Agent": "UA/1"}
        ) as resp:
            assert resp.status == 303
    lines = records(trail)
    assert [r["event"] for r in lines] == ["login_started", "login_succeeded", "logout"]
    for record in lines:
        assert list(record)[: len(FIELDS)] == list(FIELDS)
        assert record["client"] == "127.0.0.1" and len(record["request_id"]) == 32
        assert "stream" not in record and "national_id" not in record
    started, succeeded, logout = lines
    assert started["provider"] == "dev" and started["person"] is None and started["route"] == "default"
    assert succeeded["person"] == expected_person(ASA_SSN) == logout["person"]
    assert succeeded["acr"] == "urn:eid:dev:loa3" and succeeded["session"] == logout["session"]
    assert succeeded["session"] and len(succeeded["session"]) == 52
    assert logout["user_agent"] == "UA/1" and logout["reason"] is None
    assert ASA_SSN not in trail.read_text() and "Åsa" not in trail.read_text()
    assert os.stat(trail).st_mode & 0o777 == 0o600


async def test_the_clear_number_only_when_configured(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    async with (
        running_stack(customize=audited(trail, include_national_id=True)) as stack,
        aiohttp.ClientSession(cookie_jar=jar()) as http,
    ):
        assert (await browser_login(http, f"{stack.url}/private", person="Sven Svensson")).status == 200
    succeeded = next(r for r in records(trail) if r["event"] == "login_succeeded")
    assert succeeded["national_id"] == "196802020575"
    assert succeeded["person"] == expected_person("196802020575")


async def test_a_refused_login_is_audited_with_its_reason(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    async with running_stack(customize=audited(trail)) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        final = await browser_login(http, f"{stack.url}/private", cancel=True)
        assert final.status in (400, 401)
        async with http.get(f"{stack.url}/_auth/callback/dev?state=forged&code=x", allow_redirects=False) as resp:
            assert resp.status == 400
    refused = [r for r in records(trail) if r["event"] == "login_refused"]
    # The person said no at the provider; then a callback with a state this browser never got.
    assert [(r["reason"], r["route"]) for r in refused] == [("access_denied", "default"), ("state_mismatch", None)]
    assert all(r["person"] is None and r["provider"] == "dev" and r["session"] is None for r in refused)


async def test_spoofed_request_ids_from_clients_are_not_believed(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    headers = {"X-Request-Id": "chosen-by-the-client", "User-Agent": "evil\u202eUA\u200bx"}
    async with running_stack(customize=audited(trail)) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        login = await http.get(f"{stack.url}/_auth/login?rd=/x", allow_redirects=False, headers=headers)
        assert login.status == 302
    (started,) = records(trail)
    assert started["request_id"] != "chosen-by-the-client"
    assert started["user_agent"] == "evil?UA?x"  # format and control characters never reach the trail


@pytest.mark.parametrize("required", [False, True])
async def test_an_unwritable_audit_file_is_loud_and_required_fails_closed(tmp_path: Path, required: bool) -> None:
    # /dev/full accepts the open and refuses every write (ENOSPC): a disk that filled up.
    customize = audited(Path("/dev/full"), required=required)
    async with running_stack(customize=customize) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        async with http.get(f"{stack.url}/_auth/login?rd=/private", allow_redirects=False) as start:
            if required:
                assert start.status == 503  # the login is not started unaudited
                assert "Sign-in is unavailable" in await start.text()
            else:
                assert start.status == 302
        if not required:
            final = await browser_login(http, f"{stack.url}/private")
            assert final.status == 200  # not required: the login happens, each failure is counted
        else:
            assert not any(c.key == "gw_session" and c.value for c in http.cookie_jar)
            assert stack.echo.requests == []
        assert stack.gateway.metrics_url is not None
        async with http.get(stack.gateway.metrics_url) as resp:
            text = await resp.text()
    failures = next(line for line in text.splitlines() if line.startswith("gateway_audit_write_failures_total "))
    assert float(failures.split()[1]) >= (1 if required else 2)


async def test_a_failed_record_of_a_completed_login_gives_no_session(tmp_path: Path) -> None:
    """audit.required: the success record is written before the session exists; if it fails, none is made."""
    trail = tmp_path / "audit.jsonl"
    async with (
        running_stack(customize=audited(trail, required=True)) as stack,
        aiohttp.ClientSession(cookie_jar=jar()) as http,
    ):
        rt = stack.gateway.app[RUNTIME]
        original = rt.audit._write
        calls = 0

        def fail_the_second(line: bytes) -> bool:
            nonlocal calls
            calls += 1
            if calls >= 2:  # login_started is written, login_succeeded is not
                rt.audit._failed(OSError(28, "No space left on device"))
                return False
            return original(line)

        rt.audit._write = fail_the_second  # type: ignore[method-assign]
        final = await browser_login(http, f"{stack.url}/private")
        assert final.status == 503
        assert not any(c.key == "gw_session" and c.value for c in http.cookie_jar)
        assert stack.echo.requests == []


async def test_sighup_reopens_the_audit_file_after_a_rotation(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    async with running_stack(customize=audited(trail)) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        async with http.get(f"{stack.url}/_auth/login?rd=/a", allow_redirects=False) as resp:
            assert resp.status == 302
        trail.rename(tmp_path / "audit.jsonl.1")
        config = tmp_path / "same.yaml"
        config.write_text(json.dumps(stack.config))
        rt = stack.gateway.app[RUNTIME]
        reload.on_sighup(rt, config)  # what the SIGHUP handler of `eid-gateway run` calls
        async with http.get(f"{stack.url}/_auth/login?rd=/b", allow_redirects=False) as resp:
            assert resp.status == 302
    assert [r["event"] for r in records(tmp_path / "audit.jsonl.1")] == ["login_started"]
    assert [r["event"] for r in records(trail)] == ["config_reloaded", "login_started"]
