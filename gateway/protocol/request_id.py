"""The request id (pure layer): one value that follows a request from the ingress to the application and
into the gateway's records. ``X-Request-Id`` from a trusted proxy is kept when it is one well-formed value;
otherwise (absent, from an untrusted client, or malformed) the gateway makes its own, and the client's copy
never reaches the upstream. Repeated by a trusted proxy it is a 400 (field_lines.TRUSTED_SINGLETONS)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

HEADER = "X-Request-Id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(given: Sequence[str], *, from_trusted_proxy: bool) -> str:
    if from_trusted_proxy and len(given) == 1 and _WELL_FORMED.fullmatch(given[0].strip()):
        return given[0].strip()
    return secrets.token_hex(16)
