"""Reading the documentation as Markdown: which files, their fenced blocks, links and heading anchors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import markdown
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


#: Every Markdown file a reader follows links in: the site's pages and the two top-level files.
def markdown_files() -> list[Path]:
    return [REPO / "README.md", REPO / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


_FENCE = re.compile(r"^(?P<marker>`{3,}|~{3,})(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=marker)[ \t]*$", re.M | re.S)
_MARK = re.compile(r"<!-- (?P<mark>[a-z-]+)(?:: (?P<arg>\S+))? -->\n\Z")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its info string, body, the HTML comment mark right above it, and its line."""

    file: Path
    line: int
    info: str
    body: str
    mark: str | None
    arg: str | None

    @property
    def where(self) -> str:
        return f"{rel(self.file)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()]
        mark = _MARK.search(before)
        found.append(
            Block(
                file=path,
                line=before.count("\n") + 1,
                info=match.group("info").strip(),
                body=match.group("body").rstrip("\n"),
                mark=mark.group("mark") if mark else None,
                arg=mark.group("arg") if mark else None,
            )
        )
    return found


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code spans, where a link is a link."""
    text = _FENCE.sub("", text)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.S)


_LINK = re.compile(r"\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)\)")


def links(path: Path) -> list[str]:
    return [m.group("target") for m in _LINK.finditer(prose(path.read_text(encoding="utf-8")))]


@cache
def _mkdocs_markdown_extensions() -> tuple[list[str | dict[str, object]], dict[str, dict[str, object]]]:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    names: list[str | dict[str, object]] = []
    options: dict[str, dict[str, object]] = {}
    for entry in config["markdown_extensions"]:
        name, settings = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        if name == "pymdownx.snippets":  # includes are not headings of the including file
            continue
        names.append(name)
        options[name] = settings or {}
    return names, options


def site_anchors(path: Path) -> set[str]:
    """The ids MkDocs gives the headings: Python-Markdown's toc with the site's own extensions."""
    names, options = _mkdocs_markdown_extensions()
    html = markdown.Markdown(extensions=names, extension_configs=options).convert(path.read_text(encoding="utf-8"))
    return set(re.findall(r'<h[1-6][^>]* id="([^"]+)"', html))


def github_anchors(path: Path) -> set[str]:
    """The ids GitHub gives the same headings when the file is read in the repository."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"^#{1,6} +(.*?) *#* *$", line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors
