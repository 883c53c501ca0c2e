"""The ``rules`` section: which claims a request to a host and path prefix needs. The same checks read a
route's ``match.path_prefix`` and ``require`` (routes.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.config.reader import Problems, Reader
from gateway.config.schema import RULE_KEYS
from gateway.config.yaml_loader import quote_list
from gateway.policy import Rule, StepUp
from gateway.protocol.claims import CANONICAL_CLAIMS
from gateway.protocol.redirect_target import parse_redirect_domain


def read_path_prefix(r: Reader, name: str = "path_prefix") -> str:
    prefix = r.string(name, "/") or "/"
    if not prefix.startswith("/") or any(c in prefix for c in "?#%\\*") or "//" in prefix or "/../" in prefix + "/":
        r.problems.add(r.key(name), "must be a plain path such as /admin/")
    return prefix


def read_require(raw: Mapping[str, Any] | None, path: str, problems: Problems) -> dict[str, tuple[str, ...]]:
    """``path`` is the key of the mapping itself, e.g. ``rules[0].require``."""
    require: dict[str, tuple[str, ...]] = {}
    for claim, values in (raw or {}).items():
        if claim in STEP_UP_KEYS:
            continue  # read_step_up
        if claim not in CANONICAL_CLAIMS:
            problems.add(f"{path}.{claim}", f"unknown canonical claim; use one of {', '.join(CANONICAL_CLAIMS)}")
        elif isinstance(values, list) and (trap := quote_list(values)) is not None:
            problems.add(f"{path}.{claim}", trap)  # the words YAML read, and the list quoted
        elif isinstance(values, list) and any(isinstance(v, bool) for v in values):
            problems.add(
                f"{path}.{claim}",
                'YAML read a bare NO, YES, ON or OFF as true/false; quote it, e.g. [SE, "NO"]',
            )
        elif not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            problems.add(f"{path}.{claim}", 'must be a non-empty list of allowed values, e.g. [SE, "NO"]')
        else:
            require[claim] = tuple(values)
    return require


#: Keys of ``require`` that ask for a login's strength rather than a claim's value (issue 16 item 2).
STEP_UP_KEYS = ("min_level", "provider", "acr_values")


def read_step_up(raw: Mapping[str, Any] | None, path: str, problems: Problems) -> StepUp | None:
    raw = raw or {}
    if not any(key in raw for key in STEP_UP_KEYS):
        return None
    level = raw.get("min_level")
    if type(level) is not int or not 0 <= level <= 100:
        problems.add(f"{path}.min_level", "must be a whole number from 0 to 100 (provider and acr_values need it)")
        return None
    provider = raw.get("provider")
    if provider is not None and not isinstance(provider, str):
        problems.add(f"{path}.provider", "must be a provider's name")
        provider = None
    acr_values = raw.get("acr_values")
    if acr_values is not None and (
        not isinstance(acr_values, list) or not acr_values or not all(isinstance(v, str) for v in acr_values)
    ):
        problems.add(f"{path}.acr_values", "must be a non-empty list of acr values the provider lists")
        acr_values = None
    return StepUp(min_level=level, provider=provider, acr_values=tuple(acr_values) if acr_values else None)


def check_step_up(step_up: StepUp | None, path: str, providers: Sequence[Any], problems: Problems) -> None:
    """``providers``: ProviderSettings. A named provider must exist, use the redirect flow (a step-up is a
    redirect to it) and have acr_levels; named acr_values must be ones it lists."""
    if step_up is None or step_up.provider is None:
        return
    provider = next((p for p in providers if p.name == step_up.provider), None)
    if provider is None:
        problems.add(f"{path}.provider", f"names no provider; use one of {', '.join(p.name for p in providers)}")
    elif provider.is_poll_flow:
        problems.add(
            f"{path}.provider",
            f"{provider.name} uses the {provider.flow} flow; a step-up needs a redirect-flow provider",
        )
    elif not provider.acr_levels:
        problems.add(f"{path}.provider", f"{provider.name} has no acr_levels, so no level can be asked of it")
    elif step_up.acr_values is not None:
        for value in step_up.acr_values:
            if value not in provider.acr_values:
                problems.add(f"{path}.acr_values", f"{value!r} is not in {provider.name}'s acr_values")


def load_rules(raw: Any, problems: Problems) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("rules", "must be a list of {host, path_prefix, require}")
        return ()
    rules: list[Rule] = []
    for i, item in enumerate(raw):
        path = f"rules[{i}]."
        if not isinstance(item, dict):
            problems.add(f"rules[{i}]", "must be a mapping with path_prefix, host and require")
            continue
        problems.unknown_keys(path, item, RULE_KEYS)
        r = Reader(item, path, problems)
        prefix = read_path_prefix(r)
        host = r.string("host")
        if host is not None and parse_redirect_domain(host) is None:
            problems.add(r.key("host"), "must be a host name such as app.example.com")
        require = read_require(r.mapping("require"), f"{path}require", problems)
        step_up = read_step_up(r.mapping("require"), f"{path}require", problems)
        rules.append(Rule(path_prefix=prefix, host=host.lower() if host else None, require=require, step_up=step_up))
    return tuple(rules)
