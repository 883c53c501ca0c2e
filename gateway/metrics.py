"""Prometheus metrics on the gateway's own registry, served only on ``metrics.listen``.

Labels hold only bounded values chosen by the gateway (outcomes, provider names from the config,
reason words); never user data, tokens or raw paths (attacks.md T48).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REQUEST_OUTCOMES = ("proxied", "public", "redirected_to_login", "unauthenticated", "error", "auth_endpoint")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("gateway_requests", "Requests by outcome.", ["outcome"], registry=r)
        self.upstream_duration = Histogram(
            "gateway_upstream_duration_seconds",
            "Time to the upstream's response headers.",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.upstream_errors = Counter("gateway_upstream_errors", "Upstream failures by kind.", ["kind"], registry=r)
        self.logins_started = Counter("gateway_logins_started", "Logins started.", ["provider"], registry=r)
        self.logins_completed = Counter("gateway_logins_completed", "Logins completed.", ["provider"], registry=r)
        self.logins_failed = Counter(
            "gateway_logins_failed", "Logins that failed, by reason.", ["provider", "reason"], registry=r
        )
        self.idp_duration = Histogram(
            "gateway_idp_request_duration_seconds",
            "Calls to identity providers.",
            ["provider", "endpoint", "outcome"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.token_failures = Counter(
            "gateway_token_validation_failures",
            "ID token validation failures by reason.",
            ["provider", "reason"],
            registry=r,
        )
        self.jwks_refreshes = Counter(
            "gateway_jwks_refreshes", "JWKS fetches by outcome.", ["provider", "outcome"], registry=r
        )
        self.session_rejections = Counter(
            "gateway_session_rejections", "Session cookies refused, by reason.", ["reason"], registry=r
        )
        self.poll_started = Counter(
            "gateway_poll_transactions_started", "Headless/CIBA transactions started.", ["provider"], registry=r
        )
        self.poll_completed = Counter(
            "gateway_poll_transactions_completed", "Headless/CIBA transactions completed.", ["provider"], registry=r
        )
        self.poll_failed = Counter(
            "gateway_poll_transactions_failed", "Headless/CIBA transactions that ended without a session.",
            ["provider", "reason"], registry=r,
        )
        self.idp_polls = Counter("gateway_idp_polls", "Polls of the provider's token endpoint, by result.",
                                 ["provider", "result"], registry=r)
        self.poll_pending = Gauge("gateway_poll_transactions_pending",
                                  "Pending headless/CIBA transactions known to this process.", registry=r)
        self.poll_duration = Histogram(
            "gateway_poll_transaction_duration_seconds", "Time from start to a completed login.", ["provider"],
            registry=r, buckets=(1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300),
        )
        self.verify_decisions = Counter(
            "gateway_verify_decisions", "Forward-auth (/_auth/verify) answers by decision.", ["decision"], registry=r
        )
        self.store_operations = Counter(
            "gateway_session_store_operations",
            "Session store operations by operation and result (ok, error).",
            ["operation", "result"],
            registry=r,
        )
        self.store_up = Gauge(
            "gateway_session_store_up", "1 when the last session store operation succeeded, else 0.", registry=r
        )
        self.store_up.set(1)
        self.sessions_ended = Counter(
            "gateway_sessions_ended",
            "Sessions ended, by cause (logout, logout_everywhere, backchannel, refresh_refused).",
            ["cause"],
            registry=r,
        )
        self.backchannel_logouts = Counter(
            "gateway_backchannel_logouts", "Back-channel logout tokens, by provider and result.",
            ["provider", "result"], registry=r,
        )
        self.token_refreshes = Counter(
            "gateway_token_refreshes", "Refresh-token grants, by provider and result.", ["provider", "result"],
            registry=r,
        )
        self.malformed_requests = Counter(
            "gateway_malformed_requests",
            "Requests the HTTP parser refused with 400 before any handler ran, by reason (gateway/protocol_errors.py).",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited",
            "Starts refused by a rate limit (login_per_client, poll_start_per_client, ciba_per_person).",
            ["limit"],
            registry=r,
        )
        self.upstream_headers_refused = Counter(
            "gateway_upstream_headers_refused",
            "Upstream response headers not passed to the client, by kind (set_cookie: for a gateway cookie).",
            ["kind"],
            registry=r,
        )
        self.cookie_ambiguous = Counter(
            "gateway_cookie_ambiguous",
            "Requests that carried a gateway cookie more than once (cookie: session, login, poll); "
            "neither value was used.",
            ["cookie"],
            registry=r,
        )
        self.repeated_headers = Counter(
            "gateway_repeated_headers",
            "Requests refused with 400 because a single-valued header came on more than one line, by header.",
            ["header"],
            registry=r,
        )
        # Per route (issue 17): the label holds route names from the config only.
        self.route_requests = Counter(
            "gateway_route_requests",
            "Requests to a route, by outcome (the request outcomes; refused: a 4xx answered by the gateway).",
            ["route", "outcome"],
            registry=r,
        )
        self.route_duration = Histogram(
            "gateway_route_request_duration_seconds",
            "Time from a request's arrival to its answer's headers, by route.",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.route_refusals = Counter(
            "gateway_route_refusals",
            "Requests a route refused, by reason (forbidden: its require; provider_not_allowed: a session from "
            "a provider the route does not accept).",
            ["route", "reason"],
            registry=r,
        )
        self.config_reloads = Counter(
            "gateway_config_reload",
            "Configuration reloads (SIGHUP), by result (ok; invalid: the old configuration keeps serving).",
            ["result"],
            registry=r,
        )
        for result in ("ok", "invalid"):
            self.config_reloads.labels(result)
        self.audit_records = Counter(
            "gateway_audit_records", "Audit records written, by event.", ["event"], registry=r
        )
        self.step_ups = Counter(
            "gateway_step_ups",
            "Step-up logins (a rule's min_level), by provider and outcome (started, completed, other_person).",
            ["provider", "outcome"],
            registry=r,
        )
        self.log_lines_dropped = Counter(
            "gateway_log_lines_dropped",
            "Access log lines dropped because standard error was not read fast enough (never the audit trail).",
            registry=r,
        )
        self.admin_requests = Counter(
            "gateway_admin_requests",
            "Session administration calls, by result (ok, refused: a wrong or missing token, bad_request, "
            "not_listable, error).",
            ["result"],
            registry=r,
        )
        self.audit_write_failures = Counter(
            "gateway_audit_write_failures",
            "Audit records that could not be written (with audit.required, the login was refused).",
            registry=r,
        )
        self._route_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        # Pre-create the outcome series so dashboards see zeros rather than gaps.
        for outcome in REQUEST_OUTCOMES:
            self.requests.labels(outcome)
        for cookie in ("session", "login", "poll"):
            self.cookie_ambiguous.labels(cookie)

    def observe_route(self, route: str, outcome: str, status: int, seconds: float) -> None:
        if outcome == "error" and status < 500:
            outcome = "refused"
        children = self._route_children.get((route, outcome))
        if children is None:  # labels() takes a lock and builds a key: once per route and outcome, not per request
            children = (self.route_requests.labels(route, outcome), self.route_duration.labels(route))
            self._route_children[(route, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def create_metrics_app(metrics: Metrics, extra_routes: list[web.RouteDef] | None = None) -> web.Application:
    """``extra_routes``: what else the internal listener serves (session administration, gateway/admin.py)."""
    async def handle_metrics(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_routes(extra_routes or [])
    return app
