"""Copy alerts.yaml's groups and dashboard.json into the Helm chart's templates, verbatim.

Helm reads no file outside the chart (nor one in templates/ through .Files), so the chart's
templates/prometheusrule.yaml and templates/dashboard-configmap.yaml each hold a copy in a Go raw string;
tests/deploy/test_monitoring.py fails when a copy differs. After editing either file here, run
``python deploy/monitoring/sync_chart.py`` (``--check``: only say whether the copies are current).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "helm/eid-gateway/templates"
_RAW = re.compile(r"(\{\{-? `\n)(.*)(` \| trim \| nindent \d+ \}\})", re.S)


def copies() -> dict[Path, str]:
    alerts = (HERE / "alerts.yaml").read_text(encoding="utf-8")
    groups = alerts[alerts.index("\ngroups:\n") + 1:]  # the header comment stays here
    dashboard = (HERE / "dashboard.json").read_text(encoding="utf-8")
    for text in (groups, dashboard):
        if "`" in text:
            raise SystemExit("a backquote would end the template's Go raw string")
    return {TEMPLATES / "prometheusrule.yaml": groups, TEMPLATES / "dashboard-configmap.yaml": dashboard}


def main(argv: list[str]) -> int:
    stale = []
    for template, content in copies().items():
        text = template.read_text(encoding="utf-8")
        match = _RAW.search(text)
        if match is None:
            raise SystemExit(f"{template}: no embedded copy")
        if match.group(2).strip() == content.strip():
            continue
        stale.append(template.name)
        if "--check" not in argv:
            body = content.rstrip("\n") + ("\n" if template.name == "prometheusrule.yaml" else "")
            template.write_text(text[: match.start(2)] + body + text[match.end(2):], encoding="utf-8")
    if stale:
        print(("stale: " if "--check" in argv else "updated: ") + ", ".join(stale))
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
