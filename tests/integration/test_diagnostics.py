"""Diagnostics that name the cause (issue 13 item 5), each by starting the real gateway against the fault.

Start-up: a port taken by a test socket, a port out of range, a privileged port and an unreadable key file
without privileges, the demo's --gateway-port in use: `eid-gateway run` prints them like configuration
problems and exits 2, without a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import keys
from gateway.config import load_settings
from gateway.errors import IdpUnavailableError, TokenValidationError
from gateway.idp.oidc_client import OidcClient
from gateway.server import ListenerError, start_gateway
from tests.support.ports import free_port, free_port_run, wait_for_port

GATEWAY_BIN = Path(sys.executable).with_name("eid-gateway")
SECRET = "0123456789abcdef0123456789abcdef-session"
NOBODY = 65534


def config(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{port}",
        "public_url": f"http://127.0.0.1:{port}",
        "upstream": "http://127.0.0.1:8082",
        "providers": [
            {"name": "idp", "issuer": "https://idp.example.com", "client_id": "gw", "client_secret": "s3cret-value"}
        ],
        "session": {"secret": SECRET},
        **extra,
    }


def write_config(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def unprivileged() -> list[str]:
    """The command prefix that runs without privileges: nothing for an ordinary user; as root, setpriv drops
    every capability (no CAP_NET_BIND_SERVICE, no CAP_DAC_OVERRIDE), so root is refused like anyone else."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root: setpriv (util-linux) is needed to run the gateway without capabilities"
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all"]


def run(*args: str, prefix: list[str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), str(GATEWAY_BIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def problems_of(result: subprocess.CompletedProcess[str], path: Path) -> list[str]:
    """The problem lines of a refusal; asserts the form: exit 2, the header line, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    count = sum(1 for line in lines if line.startswith("  - "))
    assert lines[0] == f"eid-gateway: {path}: {count} problem(s) in the configuration:", result.stderr
    return [line[4:] for line in lines[1:]]


@pytest.fixture
def taken_port() -> Iterator[tuple[int, socket.socket]]:
    port = free_port()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield port, sock


# --- start-up failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_run_on_a_port_in_use_names_the_port_and_the_holder(
    tmp_path: Path, taken_port: tuple[int, socket.socket], workers: str
) -> None:
    port, _ = taken_port
    path = write_config(tmp_path, config(port))
    result = run("run", "--config", str(path), "--workers", workers)
    assert problems_of(result, path) == [
        f"listen: port {port} on 127.0.0.1 is in use (held by pid {os.getpid()}, {_comm()}); free it or choose "
        "another port with listen: (or --gateway-port for the demo)"
    ]


def _comm() -> str:
    return Path(f"/proc/{os.getpid()}/comm").read_text().strip()


def test_run_with_the_metrics_port_in_use(tmp_path: Path, taken_port: tuple[int, socket.socket]) -> None:
    metrics_port, _ = taken_port
    port = free_port()
    path = write_config(tmp_path, config(port, metrics={"listen": f"127.0.0.1:{metrics_port}"}))
    (problem,) = problems_of(run("run", "--config", str(path), "--workers", "1"), path)
    assert problem.startswith(f"metrics.listen: port {metrics_port} on 127.0.0.1 is in use (held by pid ")
    assert problem.endswith("; free it or choose another port with metrics.listen:")


def test_the_second_workers_metrics_port_in_use(tmp_path: Path) -> None:
    """With --workers 2, worker 1 serves metrics on metrics.listen + 1: that port is checked too."""
    base = free_port_run(2)
    port = free_port()
    path = write_config(tmp_path, config(port, metrics={"listen": f"127.0.0.1:{base}"}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", base + 1))
        sock.listen()
        (problem,) = problems_of(run("run", "--config", str(path), "--workers", "2"), path)
    assert problem.startswith(f"metrics.listen: port {base + 1} on 127.0.0.1 is in use")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("listen", "127.0.0.1:70000", "listen: port 70000 is out of range; choose a port from 1 to 65535"),
        ("listen", "127.0.0.1:0", "listen: port 0 is out of range; choose a port from 1 to 65535"),
        ("listen", "127.0.0.1:\uff18\uff10", "listen: must be host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"),
        (
            "listen",
            "bad_host:8080",
            "listen: host 'bad_host' is not an IP address or host name; e.g. 127.0.0.1, 0.0.0.0 or [::1]",
        ),
        ("metrics", {"listen": "127.0.0.1:65536"}, "metrics.listen: port 65536 is out of range; choose a port "
         "from 1 to 65535"),
        ("forward_auth", {"listen": "127.0.0.1:99999"}, "forward_auth.listen: port 99999 is out of range; choose "
         "a port from 1 to 65535"),
    ],
)
def test_out_of_range_ports_are_refused_by_check_config_and_run(
    tmp_path: Path, key: str, value: Any, message: str
) -> None:
    document = config(free_port())
    document[key] = value
    path = write_config(tmp_path, document)
    assert problems_of(run("check-config", "--config", str(path)), path) == [message]
    assert problems_of(run("run", "--config", str(path), "--workers", "1"), path) == [message]


def test_metrics_ports_beyond_65535_with_workers(tmp_path: Path) -> None:
    path = write_config(tmp_path, config(free_port(), metrics={"listen": "127.0.0.1:65535"}))
    assert run("check-config", "--config", str(path)).returncode == 0  # the file alone is fine
    assert problems_of(run("run", "--config", str(path), "--workers", "3"), path) == [
        "metrics.listen: port 65535 with --workers 3 needs ports 65535-65537 (one per worker), beyond 65535; "
        "choose a port at most 65533"
    ]


def _unprivileged_port_start() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())


def test_a_privileged_port_as_an_ordinary_user(tmp_path: Path) -> None:
    start = _unprivileged_port_start()
    assert start > 1, "this machine lets every user bind every port: nothing to test"
    port = next(p for p in range(start - 1, 0, -1) if _bindable(p))
    path = write_config(tmp_path, config(port))
    assert problems_of(run("run", "--config", str(path), "--workers", "1", prefix=unprivileged()), path) == [
        f"listen: port {port} on 127.0.0.1: permission denied (ports below {start} need root or "
        "CAP_NET_BIND_SERVICE); choose a port from 1024 up with listen:, or grant the capability"
    ]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_an_unreadable_key_file(tmp_path: Path) -> None:
    key = tmp_path / "assertion.pem"
    key.write_bytes(keys.generate_ec_pem())
    key.chmod(0o000)
    path = write_config(tmp_path, config(free_port(), assertion={"signing_key_file": "assertion.pem"}))
    result = run("run", "--config", str(path), "--workers", "1", prefix=unprivileged())
    assert problems_of(result, path) == [f"assertion.signing_key_file: cannot read {key}: Permission denied"]


def test_an_address_that_is_not_on_this_machine(tmp_path: Path) -> None:
    path = write_config(tmp_path, config(free_port()) | {"listen": "192.0.2.1:8080"})  # TEST-NET-1
    assert problems_of(run("run", "--config", str(path), "--workers", "1"), path) == [
        "listen: 192.0.2.1 is not an address of this machine; use 0.0.0.0, 127.0.0.1 or one of its addresses"
    ]


async def test_a_port_taken_after_the_check_is_a_listener_problem(
    tmp_path: Path, taken_port: tuple[int, socket.socket]
) -> None:
    """start_gateway itself (what each worker runs) turns a failed bind into the same problem."""
    port, _ = taken_port
    settings = load_settings(config(port), {}, base_dir=tmp_path)
    with pytest.raises(ListenerError) as info:
        await start_gateway(settings)
    (problem,) = info.value.problems
    assert problem.startswith(f"listen: port {port} on 127.0.0.1 is in use (held by pid {os.getpid()}")


def test_workers_that_cannot_bind_stop_instead_of_respawning(
    tmp_path: Path, taken_port: tuple[int, socket.socket]
) -> None:
    """The race run's check cannot close (a port taken after it): server.run itself with 2 workers on a taken
    port. Each worker logs worker_start_failed and exits 2; the parent stops and returns 2, no respawn loop."""
    port, _ = taken_port
    path = write_config(tmp_path, config(port))
    script = (
        "import sys\n"
        "from gateway import logs, server\n"
        "from gateway.config import load_file\n"
        "logs.configure('info')\n"
        f"sys.exit(server.run(load_file({str(path)!r}), workers=2))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    failed = [e for e in entries if e["event"] == "worker_start_failed"]
    assert failed, result.stderr
    assert failed[0]["problems"][0].startswith(f"listen: port {port} on 127.0.0.1 is in use")
    assert not [e for e in entries if e["event"] == "worker_died"], "a worker that cannot bind was respawned"
    assert "Traceback" not in result.stderr


def test_demo_with_its_gateway_port_in_use(taken_port: tuple[int, socket.socket]) -> None:
    port, _ = taken_port
    idp, upstream = free_port(), free_port()
    result = run("demo", "--gateway-port", str(port), "--idp-port", str(idp), "--upstream-port", str(upstream))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "eid-gateway demo: 1 problem(s) with its ports:",
        f"  - --gateway-port: port {port} on 127.0.0.1 is in use (held by pid {os.getpid()}, {_comm()}); free it "
        "or choose another port with --gateway-port",
    ]


# --- log lines that name the cause -------------------------------------------------------------------
#
# The gateway runs as a subprocess (`eid-gateway run`) against each fault; its JSON log lines are read from
# its standard error. The faults: a closed loopback port, a discovery document with another issuer, a
# self-signed TLS server, a server that never answers, a 500 with a body, a JWKS 404, an upstream that
# refuses. Token and UserInfo calls are made by the OidcClient itself (a login would need a provider).


def _self_signed(folder: Path, common_name: str) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@contextlib.asynccontextmanager
async def serve(app: web.Application, *, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    port = free_port()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def discovery_app(*, issuer: str | None = None, jwks_status: int = 200) -> web.Application:
    """A provider's discovery (with ``issuer``, default: its own origin) and a JWKS that answers ``jwks_status``."""

    async def discovery(request: web.Request) -> web.Response:
        own = f"{request.scheme}://{request.host}"
        return web.json_response(
            {
                "issuer": issuer or own,
                "authorization_endpoint": f"{own}/authorize",
                "token_endpoint": f"{own}/token",
                "jwks_uri": f"{own}/jwks?client=abc",
                "userinfo_endpoint": f"{own}/userinfo",
            }
        )

    async def jwks(_request: web.Request) -> web.Response:
        return web.Response(status=jwks_status, text="no keys here")

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    return app


class Gateway:
    """`eid-gateway run` as a subprocess, its stderr in a file, read as JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path, port: int) -> None:
        self.process, self.log, self.port = process, log, port

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    out.append(entry)
        return out

    async def wait_for(self, event: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for entry in self.lines():
                if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                    return entry
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {event} {fields} in the log:\n{self.log.read_text(errors='replace')}")


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, issuer: str, **extra: Any) -> AsyncIterator[Gateway]:
    port = free_port()
    document = config(port, **extra)
    document["providers"][0]["issuer"] = issuer
    document["providers"][0]["timeout"] = "2s"
    path = write_config(tmp_path, document)
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(GATEWAY_BIN), "run", "--config", str(path), "--workers", "1",
            stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
        )
    try:
        await wait_for_port(port, process, log, name="gateway")
        yield Gateway(process, log, port)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def assert_no_secrets(gw: Gateway, *secrets: str) -> None:
    text = gw.log.read_text(errors="replace")
    for secret in (SECRET, "s3cret-value", *secrets):
        assert secret not in text


async def test_unreachable_issuer_logs_the_url_and_refused(tmp_path: Path) -> None:
    closed = free_port()
    async with gateway(tmp_path, f"http://127.0.0.1:{closed}") as gw:
        entry = await gw.wait_for("idp_request_failed", endpoint="discovery")
        await gw.wait_for("provider_not_ready", reason="discovery_unreachable")
    assert entry["level"] == "warning"
    assert entry["provider"] == "idp"
    assert entry["url"] == f"http://127.0.0.1:{closed}/.well-known/openid-configuration"
    assert entry["cause"] == "refused"
    assert_no_secrets(gw)


async def test_wrong_issuer_logs_both_values(tmp_path: Path) -> None:
    app = discovery_app(issuer="https://someone-else.example.com")
    async with serve(app) as provider, gateway(tmp_path, provider) as gw:
        entry = await gw.wait_for("idp_request_failed", endpoint="discovery")
    assert entry["cause"] == "issuer_mismatch"
    assert (entry["expected"], entry["got"]) == (provider, "https://someone-else.example.com")
    assert entry["url"] == f"{provider}/.well-known/openid-configuration"


async def test_self_signed_tls_names_the_certificate(tmp_path: Path) -> None:
    context = _self_signed(tmp_path, "diag-test-idp")
    async with serve(discovery_app(), ssl_context=context) as provider, gateway(tmp_path, provider) as gw:
        entry = await gw.wait_for("idp_request_failed", endpoint="discovery")
    assert entry["cause"] == "tls"
    assert entry["url"] == f"{provider}/.well-known/openid-configuration"
    assert "self-signed certificate" in entry["detail"] or "self signed certificate" in entry["detail"]
    assert entry["certificate"] == "subject CN=diag-test-idp (self-signed)"


async def test_a_provider_that_never_answers_is_a_timeout(tmp_path: Path) -> None:
    hung: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)  # never answers

    port = free_port()
    server = await asyncio.start_server(accept, "127.0.0.1", port)
    try:
        async with gateway(tmp_path, f"http://127.0.0.1:{port}") as gw:
            entry = await gw.wait_for("idp_request_failed", endpoint="discovery")
    finally:
        for writer in hung:
            writer.close()
        server.close()
    assert entry["cause"] == "timeout"


async def test_an_http_error_logs_the_status_and_a_bounded_clean_body(tmp_path: Path) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxOTY4MDIwMjEyMzQifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=500, text=f"internal\r\n\terror token={token} person 196802021234 " + "x " * 300)

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", broken)
    async with serve(app) as provider, gateway(tmp_path, provider) as gw:
        entry = await gw.wait_for("idp_request_failed", endpoint="discovery")
    assert (entry["cause"], entry["status"]) == ("http_status", 500)
    assert len(entry["body"]) <= 200
    assert entry["body"].startswith("internal error token=<redacted> person 19680202**** x x")
    assert_no_secrets(gw, token, "196802021234")


async def test_a_jwks_failure_logs_its_url_without_the_query(tmp_path: Path) -> None:
    async with serve(discovery_app(jwks_status=404)) as provider, gateway(tmp_path, provider) as gw:
        entry = await gw.wait_for("idp_request_failed", endpoint="jwks")
    assert entry["url"] == f"{provider}/jwks"
    assert (entry["cause"], entry["status"], entry["body"]) == ("http_status", 404, "no keys here")


async def test_an_unresolvable_issuer_is_dns(tmp_path: Path) -> None:
    async with gateway(tmp_path, "https://idp.does-not-exist.invalid") as gw:
        entry = await gw.wait_for("idp_request_failed", endpoint="discovery")
    assert entry["cause"] == "dns"
    assert entry["url"] == "https://idp.does-not-exist.invalid/.well-known/openid-configuration"


async def test_an_upstream_that_refuses_logs_upstream_failed(tmp_path: Path) -> None:
    closed = free_port()
    async with serve(discovery_app()) as provider, gateway(
        tmp_path, provider, upstream=f"http://127.0.0.1:{closed}", public_paths=["/open/"]
    ) as gw:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{gw.port}/open/page?code=the-code-value-123456"
            async with http.get(url) as resp:
                assert resp.status == 502
        entry = await gw.wait_for("upstream_failed")
    assert entry["level"] == "warning"
    assert (entry["upstream"], entry["cause"]) == (f"http://127.0.0.1:{closed}", "refused")
    assert_no_secrets(gw, "the-code-value-123456")


async def test_token_and_userinfo_failures_name_the_cause(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """The token endpoint on a closed port; UserInfo answering 401 with a body that echoes the token."""
    closed = free_port()
    access_token = "at-" + "A1b2C3d4" * 5

    async def discovery(request: web.Request) -> web.Response:
        own = f"http://{request.host}"
        return web.json_response(
            {
                "issuer": own,
                "authorization_endpoint": f"{own}/authorize",
                "token_endpoint": f"http://127.0.0.1:{closed}/token",
                "jwks_uri": f"{own}/jwks",
                "userinfo_endpoint": f"{own}/userinfo?x=1",
            }
        )

    async def userinfo(request: web.Request) -> web.Response:
        return web.Response(status=401, text=f'{{"error":"invalid_token","seen":"{request.headers["Authorization"]}"}}')

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/userinfo", userinfo)
    async with serve(app) as provider:
        document = config(free_port())
        document["providers"][0]["issuer"] = provider
        settings = load_settings(document, {}, base_dir=tmp_path)
        caplog.set_level(logging.INFO, logger="eid_gateway")
        async with aiohttp.ClientSession() as http:
            client = OidcClient(settings.providers[0], http)
            with pytest.raises(IdpUnavailableError):
                await client.exchange_code(code="the-secret-code", redirect_uri="http://x/cb", code_verifier="v" * 43)
            with pytest.raises(TokenValidationError):
                await client.fetch_userinfo(access_token, subject="sub-1")
    failed = [r.fields for r in caplog.records if r.getMessage() == "idp_request_failed"]  # type: ignore[attr-defined]
    token, info = failed
    assert token == {
        "provider": "idp", "endpoint": "token", "url": f"http://127.0.0.1:{closed}/token", "cause": "refused"
    }
    assert info["endpoint"] == "userinfo" and info["url"] == f"{provider}/userinfo"
    assert (info["cause"], info["status"]) == ("http_status", 401)
    assert info["body"] == '{"error":"invalid_token","seen":"Bearer <redacted>"}'
    logged = " ".join(str(r.fields) for r in caplog.records)  # type: ignore[attr-defined]
    assert access_token not in logged and "the-secret-code" not in logged


def test_demo_with_one_port_for_two_servers() -> None:
    """Each port is free when checked, but the demo's own echo application takes it before the gateway."""
    port, idp = free_port(), free_port()
    result = run("demo", "--gateway-port", str(port), "--idp-port", str(idp), "--upstream-port", str(port))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert "eid-gateway demo: 1 problem(s) with its ports:" in lines
    assert any(
        line.startswith(f"  - listen: port {port} on 127.0.0.1 is in use (held by pid ") for line in lines
    ), result.stderr
