"""The deployment docs quote the shipped deploy files verbatim (`<!-- file: path -->` before a code block);
this keeps the quotes and the tested files identical."""

from __future__ import annotations

import pytest

from tests.docs.pages import REPO, Block, blocks, markdown_files

QUOTES = [b for path in markdown_files() for b in blocks(path) if b.mark == "file" and b.arg]


def test_docs_quote_the_deploy_files() -> None:
    assert {b.arg for b in QUOTES} >= {
        "deploy/nginx/auth_request.conf",
        "deploy/overlays/ingress-nginx/ingress.yaml",
        "deploy/overlays/traefik/middleware.yaml",
        "deploy/overlays/envoy/envoy.yaml",
        "deploy/overlays/sidecar/deployment-patch.yaml",
        "deploy/caddy/Caddyfile",
    }


@pytest.mark.parametrize("block", QUOTES, ids=[str(b.arg) for b in QUOTES])
def test_quote_is_the_file(block: Block) -> None:
    assert block.body == (REPO / str(block.arg)).read_text(encoding="utf-8").rstrip("\n")
