"""scripts/docs.sh builds the site with `mkdocs build --strict`: no warnings (a link to a missing page or
anchor is one), every page in the navigation, and nothing loaded from another origin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.docs.pages import DOCS, REPO


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "MKDOCS": str(Path(sys.executable).parent / "mkdocs")}
    result = subprocess.run(
        [str(REPO / "scripts/docs.sh"), "--site-dir", str(site)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert sorted(p.name for p in site.glob("*.html") if p.name != "404.html") == [
        p.replace(".md", ".html") for p in pages
    ]
    for page in site.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        loaded = re.findall(r'<(?:link|script|img)[^>]+(?:href|src)="(https?:)?//[^"]*"', html)
        assert loaded == [], f"{page.name} loads from another origin"
    assert "7c716fc" in (site / "changelog.html").read_text(encoding="utf-8"), "CHANGELOG.md is included"


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = {next(iter(entry.values())) for entry in config["nav"]}
    assert listed == {p.name for p in DOCS.glob("*.md")}
    assert config["theme"]["font"] is False
