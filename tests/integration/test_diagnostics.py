"""Diagnostics that name the cause (issue 13 item 5), each by starting the real gateway against the fault.

Start-up: a port taken by a test socket, a port out of range, a privileged port and an unreadable key file
without privileges, the demo's --gateway-port in use: `eid-gateway run` prints them like configuration
problems and exits 2, without a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import keys
from gateway.config import load_settings
from gateway.server import ListenerError, start_gateway
from tests.support.ports import free_port, free_port_run

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
