"""Error tree of the gateway (leaf layer: no imports from the rest of the package).

GatewayError                      status, code; rendered once by the error middleware
├── ConfigError                   start-up only; carries every problem found
├── BadRequestError               400: malformed path, header, callback parameters
├── NotFoundError                 404: an unknown /_auth/ route
├── MethodNotAllowedError         405
├── CrossSiteRequestError         403: a state-changing POST from another origin
├── AuthenticationError           401: login could not be completed
│   ├── CallbackError             the IdP answered with an error, or the callback is malformed
│   ├── StateMismatchError        state missing, wrong, replayed or from another browser
│   └── TokenValidationError      the ID token failed a check (reason names which one)
├── ForbiddenError                403: authenticated, but refused (claims failed a shape check)
│   ├── AccessDeniedError         a rule on the canonical claims refuses this identity here
│   ├── AssuranceTooLowError      the login's acr is below the provider's min_level
│   └── StepUpRefusedError        a step-up came back as another person
├── LogoutNotConfirmedError       503: the store could not confirm a logout (it must survive a failover)
├── SessionTooLargeError          500: the session does not fit in a cookie (cookie store): use Redis
├── AuditUnavailableError         503: audit.required and the audit record of a login could not be written
├── RateLimitedError              429: too many login starts from one address, or CIBA starts for one person
├── IdpUnavailableError           502: discovery, JWKS or token endpoint failed
└── UpstreamError                 502/504: the upstream failed or timed out
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    code = "internal_error"
    public_message = "The request could not be completed."

    def __init__(self, reason: str = "", *, public_message: str | None = None) -> None:
        # `reason` is a short machine word for logs and metric labels; it never carries user data.
        super().__init__(reason or self.code)
        self.reason = reason or self.code
        if public_message is not None:
            self.public_message = public_message


class ConfigError(GatewayError):
    code = "config_error"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration")
        self.problems = problems

    def __str__(self) -> str:
        return "invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems)


class BadRequestError(GatewayError):
    status = 400
    code = "bad_request"
    public_message = "The request was malformed."


class NotFoundError(GatewayError):
    status = 404
    code = "not_found"
    public_message = "Not found."


class MethodNotAllowedError(GatewayError):
    status = 405
    code = "method_not_allowed"
    public_message = "Method not allowed."


class CrossSiteRequestError(GatewayError):
    status = 403
    code = "cross_site_request"
    public_message = "This action must be started from this site."


class AuthenticationError(GatewayError):
    status = 401
    code = "authentication_failed"
    public_message = "The login could not be completed. Please try again."


class CallbackError(AuthenticationError):
    status = 400
    code = "callback_error"


class StateMismatchError(AuthenticationError):
    status = 400
    code = "state_mismatch"
    public_message = "This login link is no longer valid. Please start the login again."


class TokenValidationError(AuthenticationError):
    code = "token_invalid"


class ForbiddenError(GatewayError):
    status = 403
    code = "forbidden"
    public_message = "Your identity could not be accepted for this service."


class AssuranceTooLowError(ForbiddenError):
    code = "assurance_too_low"
    public_message = "This service needs a stronger login than the one made."


class StepUpRefusedError(ForbiddenError):
    code = "step_up_refused"
    public_message = (
        "The stronger login was made by another person than the one logged in. You are still logged in as before."
    )


class AccessDeniedError(ForbiddenError):
    code = "access_denied"
    public_message = "You are logged in, but this page is not available to you."


class IdpUnavailableError(GatewayError):
    status = 502
    code = "idp_unavailable"
    public_message = "The identity provider could not be reached. Please try again later."


class ProviderRefusedError(IdpUnavailableError):
    """502: the identity provider answered our back-channel request (a pushed authorization request, UserInfo)
    with a refusal; ``reason`` names its error code. Not the person's fault, and not fixed by retrying at once."""

    code = "provider_refused"
    public_message = "The identity provider refused to start the login. Please try again later or contact support."


class UpstreamError(GatewayError):
    status = 502
    code = "upstream_error"
    public_message = "The application behind the gateway is not responding."


class RateLimitedError(GatewayError):
    """429: a rate limit (gateway/protocol/rate_limit.py) refused this start; Retry-After says when to retry."""

    status = 429
    code = "rate_limited"
    public_message = "Too many attempts. Please wait a moment and try again."

    def __init__(self, reason: str, *, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class SessionTooLargeError(GatewayError):
    """500: a login whose session cannot be carried by a cookie; never a cookie the browser silently drops."""

    status = 500
    code = "session_too_large"
    public_message = "Sign-in could not be completed because of the service's configuration. Please contact support."


class AuditUnavailableError(GatewayError):
    """503: with ``audit.required: true``, a login whose audit record could not be written does not happen."""

    status = 503
    code = "audit_unavailable"
    public_message = "Sign-in is unavailable for a moment. Please try again later."


class LogoutNotConfirmedError(GatewayError):
    """503: the session store could not confirm the logout (down, or no replica acknowledged it, so a failover
    could undo it). The person is told so and keeps the way to try again; never a "logged out" page."""

    status = 503
    code = "logout_not_confirmed"
    public_message = "Your sign-out could not be confirmed. Please try again in a moment."
