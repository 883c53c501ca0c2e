"""What a failed back-channel call logs (issue 13 item 5): the URL without its query, the cause in one word,
and the detail that lets an operator fix it without a packet capture.

Causes: ``dns`` (the host does not resolve), ``refused`` (nothing listens), ``connect`` (another socket
error, ``detail`` says which), ``timeout``, ``tls`` (``detail``: the verification error, ``certificate``: the
subject and issuer of the certificate the server sent), ``disconnected`` (the connection closed before a
whole answer), ``http_status`` (``status`` and ``body``: at most BODY_EXCERPT characters, one line, long
token-like strings cut out), ``malformed`` (not the JSON expected), ``too_large``.

Nothing here logs a code, token, cookie or password (attacks.md T50): URLs lose their query, fragment and
user info; bodies lose every long run of token characters; national ID numbers are masked by logs.event.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
import ssl
from typing import Any

import aiohttp
from cryptography import x509
from yarl import URL

BODY_EXCERPT = 200
#: How long the second look at a refused certificate may take (start-up diagnostics only).
CERTIFICATE_PROBE_TIMEOUT = 2.0
#: A run this long of base64url/JWT characters is taken for a token, code or secret and cut out.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-.~+/]{24,}=*")
_SPACE = re.compile(r"\s+")


def safe_url(url: str | URL) -> str:
    """scheme://host[:port]/path: no user info, query or fragment (they may carry secrets)."""
    try:
        parsed = URL(str(url))
    except (TypeError, ValueError):
        return "<unparsable URL>"
    if not parsed.is_absolute():
        return parsed.path
    port = f":{parsed.explicit_port}" if parsed.explicit_port is not None else ""
    return f"{parsed.scheme}://{parsed.raw_host}{port}{parsed.raw_path}"


def origin(url: str | URL) -> str:
    parsed = URL(str(url))
    port = f":{parsed.explicit_port}" if parsed.explicit_port is not None else ""
    return f"{parsed.scheme}://{parsed.raw_host}{port}"


def body_excerpt(body: bytes | str) -> str:
    """One line of at most BODY_EXCERPT characters, printable, with token-like runs replaced."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = text[: BODY_EXCERPT * 4]
    text = "".join(c if c.isprintable() else " " for c in text)
    text = _TOKEN_LIKE.sub("<redacted>", _SPACE.sub(" ", text).strip())
    return text if len(text) <= BODY_EXCERPT else text[: BODY_EXCERPT - 3] + "..."


def short(value: Any) -> str:
    """A value from a remote document (an issuer) for a log line: a string, one line, bounded."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= BODY_EXCERPT else text[: BODY_EXCERPT - 3] + "..."


def failure_cause(exc: BaseException) -> dict[str, Any]:
    """``cause`` and, where it helps, ``detail`` for an exception raised by a client request (aiohttp's,
    or the upstream pool's, which wraps the socket error it met)."""
    inner = exc.__cause__
    if not isinstance(exc, aiohttp.ClientError) and isinstance(exc, ConnectionError) and isinstance(inner, OSError):
        return failure_cause(inner)
    if isinstance(exc, ssl.SSLCertVerificationError) and not isinstance(exc, aiohttp.ClientError):
        return {"cause": "tls", "detail": short(getattr(exc, "verify_message", None) or str(exc))}
    if isinstance(exc, socket.gaierror):
        return {"cause": "dns", "detail": short(exc.strerror or str(exc))}
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
        message = getattr(error, "verify_message", None) or str(error)
        return {"cause": "tls", "detail": short(message)}
    if isinstance(exc, (aiohttp.ClientConnectorSSLError, aiohttp.ClientSSLError, ssl.SSLError)):
        return {"cause": "tls", "detail": short(str(getattr(exc, "os_error", exc)))}
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return {"cause": "dns", "detail": short(getattr(exc.os_error, "strerror", None) or str(exc.os_error))}
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):  # aiohttp's timeouts are TimeoutErrors too
        return {"cause": "timeout"}
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED or isinstance(exc.os_error, ConnectionRefusedError):
            return {"cause": "refused"}
        return {"cause": "connect", "detail": short(exc.os_error.strerror or str(exc.os_error))}
    if isinstance(exc, ConnectionRefusedError):
        return {"cause": "refused"}
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionError,
                        asyncio.IncompleteReadError)):
        return {"cause": "disconnected"}
    if isinstance(exc, OSError):
        return {"cause": "connect", "detail": short(exc.strerror or str(exc))}
    if isinstance(exc, ValueError):
        return {"cause": "malformed"}
    return {"cause": "error", "detail": type(exc).__name__}


def describe_certificate(der: bytes) -> str:
    certificate = x509.load_der_x509_certificate(der)
    subject, issuer = certificate.subject.rfc4514_string(), certificate.issuer.rfc4514_string()
    if subject == issuer:
        return short(f"subject {subject} (self-signed)")
    return short(f"subject {subject}, issuer {issuer}")


async def peer_certificate(url: str | URL) -> str | None:
    """Subject and issuer of the certificate ``url``'s server presents, read without verifying it (only to
    name it in the log line of a refused one); None when it cannot be had quickly."""
    parsed = URL(str(url))
    if parsed.scheme != "https" or not parsed.raw_host:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parsed.raw_host, parsed.port or 443, ssl=context,
                                    server_hostname=parsed.raw_host),
            CERTIFICATE_PROBE_TIMEOUT,
        )
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return describe_certificate(der) if der else None
    except ValueError:
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def failure_fields(exc: BaseException, url: str | URL) -> dict[str, Any]:
    """failure_cause, plus the certificate for a TLS verification failure. Never raises: a diagnostic
    must not turn one failure into another."""
    try:
        fields = failure_cause(exc)
        if fields["cause"] == "tls":
            certificate = await peer_certificate(url)
            if certificate:
                fields["certificate"] = certificate
    except Exception as unexpected:  # the log line is best effort; the request's own error stands
        return {"cause": "error", "detail": type(unexpected).__name__}
    return fields
