"""gateway/audit.py and gateway/protocol/request_id.py without a network: record shape, the stdout stream,
keyed hashes, and which request ids are believed."""

from __future__ import annotations

import json

import pytest

from gateway.audit import FIELDS, AuditLog, Context
from gateway.config.audit import AuditSettings
from gateway.protocol.claims import Identity
from gateway.protocol.request_id import request_id

ASA = Identity(values={"sub": "s-1", "idp": "dev", "ssn": "199003152387", "acr": "loa3"})


def test_stdout_records_carry_the_stream_field(capfd: pytest.CaptureFixture[str]) -> None:
    log = AuditLog(AuditSettings(file="-", secret="k" * 32), clock=lambda: 1_700_000_000.25)
    assert log.record("login_succeeded", Context(client="10.0.0.1", request_id="r1"), identity=ASA, sid="sid-1")
    (line,) = capfd.readouterr().out.splitlines()
    record = json.loads(line)
    assert list(record)[: len(FIELDS)] == list(FIELDS)
    assert record["stream"] == "audit" and record["ts"] == "2023-11-14T22:13:20.250Z"
    assert record["acr"] == "loa3" and record["provider"] == "dev" and record["client"] == "10.0.0.1"
    assert "199003152387" not in line


def test_hashes_depend_on_the_secret_and_join_one_person(tmp_path: object) -> None:
    one = AuditLog(AuditSettings(file="-", secret="k" * 32))
    other = AuditLog(AuditSettings(file="-", secret="j" * 32))
    same_person = Identity(values={"sub": "freja-9", "idp": "freja", "ssn": "199003152387"})
    assert one.person(ASA) == one.person(same_person) != other.person(ASA)
    assert one.session("a") != one.session("b") and one.session("a") != other.session("a")
    assert one.person(ASA) != one.session("nid:199003152387")  # purposes are kept apart


def test_auditing_off_writes_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    assert AuditLog(None).record("login_started", Context()) is True
    assert capfd.readouterr().out == ""


@pytest.mark.parametrize(
    ("given", "trusted", "kept"),
    [
        (["abc-123"], True, True),
        (["abc-123"], False, False),  # a client never chooses the id the trail is searched by
        (["a", "b"], True, False),  # two values: neither is picked
        (["has space"], True, False),
        (["x" * 129], True, False),
        ([], True, False),
    ],
)
def test_request_ids(given: list[str], trusted: bool, kept: bool) -> None:
    value = request_id(given, from_trusted_proxy=trusted)
    assert (value == given[0]) is kept if given else len(value) == 32


@pytest.mark.parametrize("content", ["short", "has a space in it and is long enough 0123456789", "\n", "tøken" * 10])
def test_a_weak_admin_token_file_is_a_config_problem(tmp_path: object, content: str) -> None:
    from pathlib import Path

    from gateway.runtime import read_admin_token

    path = Path(str(tmp_path)) / "admin.token"
    path.write_text(content, encoding="utf-8")
    problems: list[str] = []
    assert read_admin_token(str(path), problems) is None
    assert problems == [f"admin.token_file: {path} must hold one token of at least 32 printable ASCII characters"]
