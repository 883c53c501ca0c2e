"""The ``audit`` section: where the audit trail goes and how people are named in it (gateway/audit.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.reader import Problems, Reader
from gateway.config.schema import AUDIT_KEYS

MIN_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class AuditSettings:
    #: A JSON-lines file (appended to; rotation is the operator's, SIGHUP reopens it) or ``-`` for stdout.
    file: str
    secret: str
    include_national_id: bool = False
    required: bool = False


def load_audit(raw: Mapping[str, Any] | None, problems: Problems, base: Path) -> AuditSettings | None:
    if raw is None:
        return None
    problems.unknown_keys("audit.", raw, AUDIT_KEYS)
    r = Reader(raw, "audit.", problems)
    file = r.string("file", required=True) or ""
    secret = r.string("secret", required=True) or ""
    if secret and len(secret.encode()) < MIN_SECRET_BYTES:
        problems.add(
            "audit.secret", "must be at least 32 characters of random data; generate one with: eid-gateway keygen"
        )
    include = r.boolean("include_national_id", False)
    required = r.boolean("required", False)
    if file and file != "-":
        path = base / file
        if path.is_dir():
            problems.add("audit.file", f"{path} is a directory; name a file in it, e.g. {path}/audit.jsonl")
        elif not path.parent.is_dir():
            problems.add("audit.file", f"folder {path.parent} does not exist; create it or use another path")
        file = str(path)
    if not file or not secret:
        return None
    return AuditSettings(file=file, secret=secret, include_national_id=include, required=required)
