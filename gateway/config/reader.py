"""Reading a parsed configuration document (leaf layer): typed access to its values, ``${VAR}``
expansion, durations, host:port and URLs, with every wrong value recorded as a problem that names the key
and the fix (settings.py turns them into one ConfigError)."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from gateway.config.yaml_loader import keep_words, plain_word, quote_list, quote_scalar

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)?\Z")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_LOOPBACK_HOSTS = ("localhost",)


class Problems:
    """Collects every problem so that the user fixes the whole file in one go."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")

    def unknown_keys(self, path: str, given: Mapping[str, Any], known: Collection[str]) -> None:
        for key in given:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "remove it"
                self.add(f"{path}{key}" if path else str(key), f"unknown key; {hint}")


def expand_env(value: Any, environ: Mapping[str, str], path: str, problems: Problems) -> Any:
    """Expand ${VAR} in every string of the parsed document; a missing variable is a problem."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                problems.add(path, f"environment variable {name} is not set; export it or write the value")
                return ""
            return environ[name]

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, list):
        return keep_words(value, [expand_env(v, environ, f"{path}[{i}]", problems) for i, v in enumerate(value)])
    if isinstance(value, dict):
        return keep_words(
            value, {k: expand_env(v, environ, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
        )
    return value


def parse_duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if 0 <= value < float("inf") else None
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return int(match.group(1)) * _UNITS[match.group(2)]
    return None


def parse_host_port(value: Any) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` with the port as ASCII digits 0-65535 (listeners.py refuses 0 and
    says which part is wrong); None for anything else, including Unicode digits and whitespace."""
    if not isinstance(value, str) or ":" not in value:
        return None
    host, _, port = value.rpartition(":")
    if host.startswith("[") != host.endswith("]") or (host.startswith("[") and ":" not in host):
        return None
    host = host[1:-1] if host.startswith("[") else host
    if not host or not host.isprintable() or any(c.isspace() for c in host):
        return None
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        return None
    return host, int(port)


def is_loopback(host: str) -> bool:
    # RFC 6761 §6.3: localhost and every name below it resolve to loopback (browsers never ask DNS).
    if host in _LOOPBACK_HOSTS or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Reader:
    """Typed access to one mapping of the document, recording a problem for each wrong value."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: Problems) -> None:
        self.data, self.path, self.problems = data, path, problems

    def key(self, name: str) -> str:
        return f"{self.path}{name}"

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.data.get(name, default)
        if value is None or value == "":
            if required:
                self.problems.add(self.key(name), "is required")
            return None if value is None else default
        if not isinstance(value, str):
            word = plain_word(self.data, name)
            if word is not None:  # YAML 1.1 read a bare word as a boolean or number: say so, show the quoted form
                self.problems.add(self.key(name), quote_scalar(word, value))
            else:
                self.problems.add(self.key(name), "must be a string")
            return default
        return value

    def strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            trap = quote_list(value) if isinstance(value, list) else None
            if trap is not None:  # e.g. ui_locales: [nb, no] read as ['nb', False]
                self.problems.add(self.key(name), trap)
            else:
                self.problems.add(self.key(name), "must be a list of strings, e.g. [a, b]")
            return default
        return tuple(value)

    def duration(self, name: str, default: float) -> float:
        if name not in self.data:
            return default
        parsed = parse_duration(self.data[name])
        if parsed is None:
            self.problems.add(self.key(name), "must be a duration such as 30s, 15m, 8h or a number of seconds")
            return default
        return parsed

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.data.get(name, default)
        if value not in options:
            self.problems.add(self.key(name), f"must be one of {', '.join(options)}")
            return default
        return str(value)

    def switch(self, name: str, words: tuple[str, ...], default: str) -> str:
        """A setting spelled as a word (``par: off``, ``userinfo: on``). YAML 1.1 loaders such as PyYAML read
        a bare on/off/yes/no as a boolean, so true stands for "on" and false for "off" where those are words."""
        value = self.data.get(name, default)
        if isinstance(value, bool):
            word = "on" if value else "off"
            if word in words:
                return word
        elif isinstance(value, str) and value in words:
            return value
        self.problems.add(self.key(name), f"must be one of {', '.join(words)}")
        return default

    def integer(self, name: str, default: int) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(self.key(name), "must be a whole number")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            self.problems.add(self.key(name), "must be true or false")
            return default
        return value

    def mapping(self, name: str) -> Mapping[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problems.add(self.key(name), "must be a mapping of key: value")
            return None
        return value


def check_url(problems: Problems, path: str, url: str | None, *, allow_http_loopback: bool = True) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(path, "must be an absolute http(s) URL, e.g. https://login.example.com")
        return
    if parts.query or parts.fragment:
        problems.add(path, "must not have a query or fragment")
    if parts.scheme == "http" and not (allow_http_loopback and is_loopback(parts.hostname)):
        problems.add(path, "must use https (http is accepted for loopback hosts only, for development)")
