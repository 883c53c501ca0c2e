"""The ``rules`` section: which claims a request to a host and path prefix needs."""

from __future__ import annotations

from typing import Any

from gateway.config.reader import Problems, Reader
from gateway.config.schema import RULE_KEYS
from gateway.config.yaml_loader import quote_list
from gateway.policy import Rule
from gateway.protocol.claims import CANONICAL_CLAIMS
from gateway.protocol.redirect_target import parse_redirect_domain


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
        prefix = r.string("path_prefix", "/") or "/"
        if not prefix.startswith("/") or any(c in prefix for c in "?#%\\*") or "//" in prefix or "/../" in prefix + "/":
            problems.add(r.key("path_prefix"), "must be a plain path such as /admin/")
        host = r.string("host")
        if host is not None and parse_redirect_domain(host) is None:
            problems.add(r.key("host"), "must be a host name such as app.example.com")
        require: dict[str, tuple[str, ...]] = {}
        for claim, values in (r.mapping("require") or {}).items():
            if claim not in CANONICAL_CLAIMS:
                problems.add(
                    f"{path}require.{claim}", f"unknown canonical claim; use one of {', '.join(CANONICAL_CLAIMS)}"
                )
            elif isinstance(values, list) and (trap := quote_list(values)) is not None:
                problems.add(f"{path}require.{claim}", trap)  # the words YAML read, and the list quoted
            elif isinstance(values, list) and any(isinstance(v, bool) for v in values):
                problems.add(
                    f"{path}require.{claim}",
                    'YAML read a bare NO, YES, ON or OFF as true/false; quote it, e.g. [SE, "NO"]',
                )
            elif not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                problems.add(f"{path}require.{claim}", 'must be a non-empty list of allowed values, e.g. [SE, "NO"]')
            else:
                require[claim] = tuple(values)
        rules.append(Rule(path_prefix=prefix, host=host.lower() if host else None, require=require))
    return tuple(rules)
