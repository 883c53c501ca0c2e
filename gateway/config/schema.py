"""The keys the loader accepts, per section: the one schema that unknown keys are checked against and that
docs/configuration.md and the Helm chart's values.schema.json are tested against (tests/docs, tests/deploy)."""

from __future__ import annotations

from gateway.protocol.rate_limit import LIMIT_NAMES

TOP_KEYS = frozenset(
    {
        "listen",
        "public_url",
        "upstream",
        "providers",
        "session",
        "headers",
        "header_encoding",
        "assertion",
        "public_paths",
        "trusted_proxies",
        "metrics",
        "upstream_timeouts",
        "default_provider",
        "direct_login_redirect",
        "log_level",
        "allowed_redirect_domains",
        "rules",
        "shutdown_grace",
        "rate_limits",
        "forward_auth",
        "routes",
        "pairwise",
        "audit",
        "admin",
        "access_log",
    }
)
PROVIDER_KEYS = frozenset(
    {
        "name",
        "flow",
        "issuer",
        "client_id",
        "client_auth",
        "client_secret",
        "private_key_file",
        "private_key_id",
        "assertion_audience",
        "display_name",
        "scopes",
        "acr_values",
        "acr_levels",
        "min_level",
        "require_acr",
        "prompt",
        "login_hint",
        "ui_locales",
        "response_mode",
        "claims",
        "required_claims",
        "id_token_algorithms",
        "timeout",
        "headless_authorize_endpoint",
        "backchannel_authentication_endpoint",
        "grant_type",
        "poll_interval",
        "login_hint_format",
        "binding_message",
        "refresh_tokens",
        "par",
        "request_object",
        "userinfo",
        "max_token_bytes",
        "allowed_login_hints",
        "encryption_key_file",
        "previous_encryption_key_files",
    }
)
SESSION_KEYS = frozenset(
    {
        "secret",
        "previous_secrets",
        "lifetime",
        "idle_timeout",
        "cookie_name",
        "login_timeout",
        "cookie_domain",
        "store",
        "store_prefix",
        "store_timeout",
    }
)
ASSERTION_KEYS = frozenset({"header", "signing_key_file", "published_key_files", "audience", "ttl"})
RULE_KEYS = frozenset({"host", "path_prefix", "require"})
ROUTE_KEYS = frozenset(
    {
        "name",
        "match",
        "upstream",
        "strip_prefix",
        "headers",
        "assertion",
        "public_paths",
        "require",
        "providers",
        "sector",
        "upstream_timeouts",
    }
)
MATCH_KEYS = frozenset({"host", "path_prefix"})
ROUTE_ASSERTION_KEYS = frozenset({"audience", "ttl"})
PAIRWISE_KEYS = frozenset({"secret", "previous_secrets"})
AUDIT_KEYS = frozenset({"file", "secret", "include_national_id", "required"})
ADMIN_KEYS = frozenset({"token_file"})
METRICS_KEYS = frozenset({"listen"})
FORWARD_AUTH_KEYS = frozenset({"listen"})
UPSTREAM_TIMEOUT_KEYS = frozenset({"connect", "read"})
RATE_LIMIT_KEYS = frozenset(LIMIT_NAMES)

#: Where a section's keys sit in a document ("" is the top level; "[0]" stands for every list entry).
SECTIONS: dict[str, frozenset[str]] = {
    "": TOP_KEYS,
    "providers[0]": PROVIDER_KEYS,
    "session": SESSION_KEYS,
    "assertion": ASSERTION_KEYS,
    "rules[0]": RULE_KEYS,
    "routes[0]": ROUTE_KEYS,
    "routes[0].match": MATCH_KEYS,
    "routes[0].assertion": ROUTE_ASSERTION_KEYS,
    "routes[0].upstream_timeouts": UPSTREAM_TIMEOUT_KEYS,
    "pairwise": PAIRWISE_KEYS,
    "audit": AUDIT_KEYS,
    "admin": ADMIN_KEYS,
    "metrics": METRICS_KEYS,
    "forward_auth": FORWARD_AUTH_KEYS,
    "upstream_timeouts": UPSTREAM_TIMEOUT_KEYS,
    "rate_limits": RATE_LIMIT_KEYS,
}
