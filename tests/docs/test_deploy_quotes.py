"""README quotes the shipped deploy files verbatim; this keeps the quotes and the tested files identical."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUOTE = re.compile(r"<!-- file: (?P<path>\S+) -->\n```\w*\n(?P<body>.*?)\n```", re.S)
QUOTES = QUOTE.findall((REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_quotes_the_deploy_files() -> None:
    assert {path for path, _ in QUOTES} >= {
        "deploy/nginx/auth_request.conf",
        "deploy/overlays/ingress-nginx/ingress.yaml",
        "deploy/overlays/traefik/middleware.yaml",
        "deploy/overlays/envoy/envoy.yaml",
        "deploy/overlays/sidecar/deployment-patch.yaml",
    }


@pytest.mark.parametrize(("path", "body"), QUOTES, ids=[p for p, _ in QUOTES])
def test_quote_is_the_file(path: str, body: str) -> None:
    assert body == (REPO / path).read_text(encoding="utf-8").rstrip("\n")
