from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from aiohttp import web

from gateway.devidp.__main__ import is_loopback_host, main

ARGS = ["--client-id", "gateway", "--client-secret", "S", "--redirect-uri", "http://127.0.0.1:8080/cb"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1"])
def test_non_loopback_host_exits_2(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "run_app", lambda *a, **k: pytest.fail("must not start"))
    with pytest.raises(SystemExit) as exc:
        main(["--host", host, *ARGS])
    assert exc.value.code == 2


def test_non_loopback_issuer_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "run_app", lambda *a, **k: pytest.fail("must not start"))
    with pytest.raises(SystemExit) as exc:
        main(["--issuer", "https://auth.example.com", *ARGS])
    assert exc.value.code == 2


def test_loopback_host_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(web, "run_app", lambda app, **kwargs: calls.append(kwargs))
    main(["--host", "127.0.0.1", "--port", "8081", *ARGS])
    assert calls == [{"host": "127.0.0.1", "port": 8081}]


def test_loopback_detection() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("[::1]")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("10.1.2.3")


def test_module_entry_point_refuses_public_bind() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.devidp", "--host", "0.0.0.0", *ARGS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "loopback" in result.stderr
