"""The audit trail (issue 14 item 1): who logged in, when, how strongly and from where, as JSON lines apart
from the access log, never sampled and never dropped.

Every record has the same keys: ``ts``, ``event``, ``person``, ``provider``, ``acr``, ``session``, ``client``,
``request_id``, ``route``, ``reason`` (null where an event has none), ``user_agent``, and with ``audit.file: -``
also ``"stream": "audit"``. ``person`` is a keyed hash (HMAC-SHA-256 under ``audit.secret``) of the national
ID, else of the provider and ``sub``, so one person's events can be joined without the number being stored;
``session`` likewise of the session id. The clear number is written (as ``national_id``) only with
``audit.include_national_id: true``, a data-protection decision of the operator.

Each record is one ``write`` on a file opened with O_APPEND, so workers sharing the file never interleave
within a line. A write that fails is counted (gateway_audit_write_failures_total) and logged; with
``audit.required: true`` the caller refuses the login (503) rather than let it happen unaudited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway import logs
from gateway.config.audit import AuditSettings
from gateway.protocol.claims import Identity
from gateway.protocol.pairwise import person_key

#: The keys of every record, in this order (public contract).
FIELDS = ("ts", "event", "person", "provider", "acr", "session", "client", "request_id", "route", "reason")
MAX_USER_AGENT = 256
_STDOUT = "-"


@dataclass(frozen=True, slots=True)
class Context:
    """Where an event came from: the client as the gateway believes it (after trusted_proxies)."""

    client: str | None = None
    request_id: str | None = None
    user_agent: str | None = None
    route: str | None = None


def keyed_hash(secret: bytes, purpose: bytes, value: str) -> str:
    mac = hmac.new(secret, purpose + b"\x00" + value.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii").rstrip("=").lower()


def _printable(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = "".join(c if c.isprintable() else "?" for c in value[:limit])
    return cleaned


class AuditLog:
    """Writes audit records; ``record`` returns False when the record could not be written."""

    def __init__(
        self,
        settings: AuditSettings | None,
        *,
        on_failure: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._secret = settings.secret.encode() if settings else b""
        self._on_failure = on_failure
        self._clock = clock
        self._fd: int | None = None
        if settings is not None:
            self.reopen()

    @property
    def enabled(self) -> bool:
        return self.settings is not None

    @property
    def required(self) -> bool:
        return self.settings is not None and self.settings.required

    def reopen(self) -> None:
        """Open (again) ``audit.file``: after a rotation, SIGHUP makes new records go to the new file."""
        if self.settings is None or self.settings.file == _STDOUT:
            return
        old = self._fd
        try:
            self._fd = os.open(self.settings.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._fd = None
            self._failed(exc)
        if old is not None:
            os.close(old)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def person(self, identity: Identity) -> str:
        return keyed_hash(self._secret, b"person", person_key(identity))

    def session(self, sid: str) -> str:
        return keyed_hash(self._secret, b"session", sid)

    def record(
        self,
        event: str,
        context: Context,
        *,
        provider: str | None = None,
        identity: Identity | None = None,
        sid: str | None = None,
        reason: str | None = None,
        person: Identity | None = None,
    ) -> bool:
        """Write one record; True when written (or when auditing is off). ``person``: someone named by an
        administrator, of whom only the person hash is recorded (no provider, no acr)."""
        settings = self.settings
        if settings is None:
            return True
        record: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now := self._clock()))
            + f".{int(now * 1000) % 1000:03d}Z",
            "event": event,
            "person": self.person(identity) if identity is not None else self.person(person) if person else None,
            "provider": provider or (identity.idp if identity is not None else None),
            "acr": identity.get("acr") if identity is not None else None,
            "session": self.session(sid) if sid is not None else None,
            "client": context.client,
            "request_id": context.request_id,
            "route": context.route,
            "reason": reason,
            "user_agent": _printable(context.user_agent, MAX_USER_AGENT),
        }
        named = identity if identity is not None else person
        if settings.include_national_id and named is not None:
            record["national_id"] = named.get("ssn")
        if settings.file == _STDOUT:
            record["stream"] = "audit"
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        return self._write(line)

    def _write(self, line: bytes) -> bool:
        fd = 1 if self.settings is not None and self.settings.file == _STDOUT else self._fd
        if fd is None:
            self.reopen()  # a file that could not be opened is tried again on every record
            fd = self._fd
            if fd is None:
                return False
        try:
            written = os.write(fd, line)
        except OSError as exc:
            self._failed(exc)
            return False
        if written != len(line):
            self._failed(OSError(f"short write ({written} of {len(line)} bytes)"))
            return False
        return True

    def _failed(self, exc: OSError) -> None:
        self._on_failure()
        where = self.settings.file if self.settings else ""
        logs.event("audit_write_failed", logging.ERROR, file=where, error=exc.strerror or str(exc))
