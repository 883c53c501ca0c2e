"""The ``admin`` section: session administration on the internal (metrics) listener (gateway/admin.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.reader import Problems, Reader
from gateway.config.schema import ADMIN_KEYS


@dataclass(frozen=True, slots=True)
class AdminSettings:
    #: A file holding the bearer token (at least 32 characters; read at start-up, like a key file).
    token_file: str


def load_admin(
    raw: Mapping[str, Any] | None, problems: Problems, base: Path, metrics_listen: tuple[str, int] | None
) -> AdminSettings | None:
    if raw is None:
        return None
    problems.unknown_keys("admin.", raw, ADMIN_KEYS)
    r = Reader(raw, "admin.", problems)
    token_file = r.string("token_file", required=True)
    if metrics_listen is None:
        problems.add("admin", "is served on the internal listener only; set metrics.listen, e.g. 127.0.0.1:9090")
    if token_file is None:
        return None
    path = base / token_file
    if not path.is_file():
        problems.add(
            "admin.token_file",
            f"file {path} does not exist; create one holding 32 or more random characters, e.g. with: "
            f"python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {token_file}",
        )
    return AdminSettings(token_file=str(path))
