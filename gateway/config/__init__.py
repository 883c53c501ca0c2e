"""Configuration: frozen settings types, loading from YAML, and validation that reports every problem.

One module per section (providers, session, assertion and headers, rules, rate limits, listeners), the
accepted keys of each in ``schema``, typed reading in ``reader``, and the whole in ``settings``.
"""

from gateway.config.assertion import DEFAULT_HEADERS, HEADER_ENCODINGS, AssertionSettings
from gateway.config.providers import CLIENT_AUTH_METHODS, FLOWS, POLL_FLOWS, RESPONSE_MODES, ProviderSettings
from gateway.config.rate_limits import DEFAULT_RATE_LIMITS
from gateway.config.session import SessionSettings
from gateway.config.settings import Settings, load_file, load_settings
from gateway.routes import UpstreamTimeouts

__all__ = [
    "CLIENT_AUTH_METHODS",
    "DEFAULT_HEADERS",
    "DEFAULT_RATE_LIMITS",
    "FLOWS",
    "HEADER_ENCODINGS",
    "POLL_FLOWS",
    "RESPONSE_MODES",
    "AssertionSettings",
    "ProviderSettings",
    "SessionSettings",
    "Settings",
    "UpstreamTimeouts",
    "load_file",
    "load_settings",
]
