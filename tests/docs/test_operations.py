"""docs/operations.md lists every metric the gateway exports, and no metric it does not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gateway import metrics
from tests.docs.pages import DOCS

PAGE = DOCS / "operations.md"


def exported() -> set[str]:
    """Names as Prometheus serves them: counters get `_total`."""
    tree = ast.parse(Path(metrics.__file__).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            kind = node.func.id
            if kind in ("Counter", "Gauge", "Histogram") and isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value) + ("_total" if kind == "Counter" else ""))
    return names


def documented() -> set[str]:
    """First cells of the metrics table; `a_started_total` / `_completed_total` names two metrics."""
    section = PAGE.read_text(encoding="utf-8").split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for row in re.findall(r"^\| (`gateway_[^|]*)\|", section, re.M):
        spans = re.findall(r"`([^`]+)`", row)
        first = spans[0]
        names.add(first)
        for suffix in spans[1:]:
            parts = first.split("_")
            names.add("_".join(parts[: len(parts) - suffix.count("_")]) + suffix)
    return names


def test_every_metric_is_documented() -> None:
    assert exported() - documented() == set()


def test_every_documented_metric_exists() -> None:
    assert documented() - exported() == set()
    assert len(exported()) >= 20
