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
class Rule:
    path_prefix: str = "/"
    host: str | None = None
    require: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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
    return Decision(allowed=not failed, reasons=tuple(f"{name}_not_allowed" for name in failed))
