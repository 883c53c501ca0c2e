"""The request id (pure layer): one value that follows a request from the ingress to the application and
into the gateway's records. ``X-Request-Id`` from a trusted proxy is kept when it is one well-formed value;
otherwise (absent, from an untrusted client, repeated, or malformed) the gateway makes its own."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

HEADER = "X-Request-Id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(given: Sequence[str], *, from_trusted_proxy: bool) -> str:
    if from_trusted_proxy and len(given) == 1 and _WELL_FORMED.fullmatch(given[0].strip()):
        return given[0].strip()
    return uuid.uuid4().hex
