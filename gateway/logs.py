"""Structured logs: one JSON object per line, control characters escaped by JSON itself, national ID
numbers masked, and no tokens, codes or cookies ever passed in (attacks.md T50)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_LONG_DIGITS = re.compile(r"\d{6,}")
logger = logging.getLogger("eid_gateway")


def mask_national_id(value: str) -> str:
    """Keep the birth-date part of a national ID number, hide the rest: 19680202**** ."""
    return _LONG_DIGITS.sub(lambda m: m.group(0)[:-4] + "****" if len(m.group(0)) >= 10 else "******", value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=True, default=str)


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event; string fields that may hold national ID numbers are masked here."""
    if logger.isEnabledFor(level):
        clean = {k: mask_national_id(v) if isinstance(v, str) else v for k, v in fields.items()}
        logger.log(level, name, extra={"fields": clean})
