"""Every relative link in README.md, CHANGELOG.md and docs/*.md leads somewhere: the file exists, and a
#anchor names a heading there, with the id MkDocs gives it (the site) and the one GitHub gives it (the
repository view), so a link works in both."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.docs.pages import REPO, github_anchors, links, markdown_files, rel, site_anchors

LINKS = [(path, target) for path in markdown_files() for target in links(path)]


def _problem(source: Path, target: str) -> str | None:
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None  # external: not checked here (no network in the suite)
    file = (source.parent / unquote(parts.path)).resolve() if parts.path else source
    if not file.exists():
        return f"{target}: {file} does not exist"
    if not file.is_relative_to(REPO):
        return f"{target}: points outside the repository"
    if parts.fragment:
        if file.suffix != ".md":
            return f"{target}: an anchor into a file that is not Markdown"
        for kind, anchors in (("the site", site_anchors(file)), ("GitHub", github_anchors(file))):
            if parts.fragment not in anchors:
                return f"{target}: no heading with id #{parts.fragment} in {rel(file)} on {kind}"
    return None


@pytest.mark.parametrize(("source", "target"), LINKS, ids=[f"{rel(s)}->{t}" for s, t in LINKS])
def test_relative_link_resolves(source: Path, target: str) -> None:
    assert _problem(source, target) is None, _problem(source, target)


def test_the_pages_link_to_each_other() -> None:
    """A sanity check on the link reader itself: README links into docs/, and there are many links."""
    readme = [t for s, t in LINKS if s.name == "README.md"]
    assert any(t.startswith("docs/") for t in readme)
    assert len(LINKS) > 60


def test_the_checker_catches_broken_links() -> None:
    """Missing files and missing anchors are reported; a good link is not."""
    readme = REPO / "README.md"
    assert _problem(readme, "docs/no-such-page.md") is not None
    assert _problem(readme, "docs/limitations.md#no-such-heading") is not None
    assert _problem(readme, "docs/limitations.md#providers") is None
