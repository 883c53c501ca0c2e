"""Authorization rules on the canonical claims (pure layer): which identities may use which host and path.

A rule applies to a host (or every host) and a path prefix; the most specific rule wins (a rule
naming the host beats one that does not, then the longest prefix). No rule: any authenticated
identity is allowed. A decision carries reasons (claim names only, never values) for logs/metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.protocol.claims import Identity


@dataclass(frozen=True, slots=True)
class StepUp:
    """A stronger login would satisfy the rule: at least ``min_level``, asked of ``provider`` (None: the
    session's own) with ``acr_values`` (None: the provider's values that reach the level)."""

    min_level: int
    provider: str | None = None
    acr_values: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    path_prefix: str = "/"
    host: str | None = None
    require: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: ``require.min_level`` (with ``provider`` / ``acr_values`` to ask for): the session's level must reach it.
    step_up: StepUp | None = None

    def matches(self, host: str, path: str) -> bool:
        if self.host is not None and self.host != host.lower():
            return False
        if self.path_prefix == "/":
            return True
        base = self.path_prefix.rstrip("/")
        return path == base or path.startswith(base + "/")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...] = ()
    #: Refused only for the level: a stronger login (of the same person) would be allowed.
    step_up: StepUp | None = None


def select_rule(rules: Sequence[Rule], host: str, path: str) -> Rule | None:
    candidates = [r for r in rules if r.matches(host, path)]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.host is not None, len(r.path_prefix)))


def decide(rules: Sequence[Rule], *, host: str, path: str, identity: Identity) -> Decision:
    rule = select_rule(rules, host, path)
    if rule is None:
        return Decision(allowed=True)
    failed = tuple(sorted(name for name, values in rule.require.items() if identity.get(name) not in values))
    if failed:  # a claim no login can change: no step-up, a plain refusal
        return Decision(allowed=False, reasons=tuple(f"{name}_not_allowed" for name in failed))
    if rule.step_up is not None:
        level = identity.get("level")
        if level is None or not level.isdigit() or int(level) < rule.step_up.min_level:
            return Decision(allowed=False, reasons=("level_too_low",), step_up=rule.step_up)
    return Decision(allowed=True)
