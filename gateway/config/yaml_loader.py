"""Parsing the config file's YAML, keeping what YAML 1.1 does to bare words (leaf layer, pure).

PyYAML follows YAML 1.1: a bare ``NO``, ``no``, ``off``, ``yes`` or ``on`` is a boolean, ``12345`` a number
and ``0123`` the octal number 83. For a Nordic product that is a trap: ``country: [SE, NO]`` reads as
``['SE', False]``. ``parse_yaml`` loads exactly what ``yaml.safe_load`` loads (so a real boolean such as
``require_acr: yes`` keeps working), but its mappings and sequences are ``YamlMapping`` / ``YamlSequence``:
a dict and a list that also remember, for each value that was a plain (unquoted) scalar read as something
other than a string, the word written in the file. Where the loader expects a string, the readers
(gateway/config/reader.py and the sections) refuse such a value with ``quote_scalar`` / ``quote_list``,
which name the word and show the quoted form, e.g. ``YAML read NO as false; quote it: [SE, "NO"]``.

A document built another way (a plain dict in tests, ``yaml.safe_load``) has no words: the readers then give
their usual messages.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


class YamlMapping(dict[Any, Any]):
    """A YAML mapping as a dict; ``plain_words[key]`` is the source text of a value YAML did not read as a string."""

    plain_words: dict[Hashable, str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plain_words = {}


class YamlSequence(list[Any]):
    """A YAML sequence as a list; ``plain_words[index]`` is the source text of an item not read as a string."""

    plain_words: dict[int, str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.plain_words = {}


def _plain_word(node: Node) -> str | None:
    """The text of a plain scalar that YAML resolved to a boolean, number, date... (not a string, not null)."""
    if isinstance(node, ScalarNode) and node.style is None and node.tag not in (_STR_TAG, _NULL_TAG) and node.value:
        return str(node.value)
    return None


class _WordKeepingLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences record the words of plain scalars that did not become strings."""


def _construct_mapping(loader: _WordKeepingLoader, node: MappingNode) -> Iterator[YamlMapping]:
    data = YamlMapping()
    yield data  # as SafeConstructor.construct_yaml_map does: recursive documents (anchors) keep working
    data.update(loader.construct_mapping(node))  # flattens merge keys (<<) into node.value first
    for key_node, value_node in node.value:
        word = _plain_word(value_node)
        if word is not None:
            key = loader.construct_object(key_node)
            if isinstance(key, Hashable):
                data.plain_words[key] = word


def _construct_sequence(loader: _WordKeepingLoader, node: SequenceNode) -> Iterator[YamlSequence]:
    data = YamlSequence()
    yield data
    data.extend(loader.construct_sequence(node))
    for index, item_node in enumerate(node.value):
        word = _plain_word(item_node)
        if word is not None:
            data.plain_words[index] = word


_WordKeepingLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_WordKeepingLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def parse_yaml(text: str) -> Any:
    """Parse one YAML document as ``yaml.safe_load`` does, keeping the words (see the module); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_WordKeepingLoader)  # noqa: S506 - a SafeLoader subclass


def plain_word(container: Mapping[Any, Any] | Sequence[Any], key: Hashable) -> str | None:
    """The word written in the file for ``container[key]`` when YAML read it as a non-string, else None."""
    if isinstance(container, YamlMapping):
        return container.plain_words.get(key)
    if isinstance(container, YamlSequence) and isinstance(key, int):
        return container.plain_words.get(key)
    return None


def keep_words(original: Any, rebuilt: Any) -> Any:
    """``rebuilt`` (a copy of ``original`` with some strings changed, e.g. ${VAR} expanded) with original's words."""
    if isinstance(original, YamlMapping) and isinstance(rebuilt, dict):
        mapping = YamlMapping(rebuilt)
        mapping.plain_words.update(original.plain_words)
        return mapping
    if isinstance(original, YamlSequence) and isinstance(rebuilt, list):
        sequence = YamlSequence(rebuilt)
        sequence.plain_words.update(original.plain_words)
        return sequence
    return rebuilt


def _what(value: Any, word: str) -> str:
    """What YAML made of the word, as the message says it: false, true, the number 83, a date."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number" if repr(value) == word else f"the number {value!r}"
    if isinstance(value, datetime.datetime):
        return "a date and time"
    if isinstance(value, datetime.date):
        return "a date"
    return f"a {type(value).__name__}"


def _quoted(text: str) -> str:
    """A double-quoted YAML scalar (JSON's escapes are YAML's) that reads back as exactly ``text``."""
    return json.dumps(text, ensure_ascii=False)


def _flow_item(item: Any, word: str | None) -> str:
    """One item of a suggested flow list: the trap word quoted, a string bare if it reads back the same."""
    if word is not None:
        return _quoted(word)
    text = str(item)
    try:
        bare_reads_back = isinstance(item, str) and yaml.safe_load(f"[{text}]") == [text]
    except yaml.YAMLError:
        bare_reads_back = False
    return text if bare_reads_back else _quoted(text)


def quote_scalar(word: str, value: Any) -> str:
    """The message for a plain word YAML did not read as a string where one is expected."""
    return f"YAML read {word} as {_what(value, word)}; quote it: {_quoted(word)}"


def quote_list(items: Sequence[Any]) -> str | None:
    """The message for a list of strings in which YAML read some bare words as booleans or numbers, with the
    whole list written back with those words quoted; None when no item is such a word (or none can be known)."""
    words = {i: plain_word(items, i) for i in range(len(items)) if not isinstance(items[i], str)}
    known = {i: w for i, w in words.items() if w is not None}
    if not known:
        return None
    read = ", ".join(f"{w} as {_what(items[i], w)}" for i, w in known.items())
    suggestion = ", ".join(_flow_item(item, known.get(i)) for i, item in enumerate(items))
    return f"YAML read {read}; quote {'it' if len(known) == 1 else 'them'}: [{suggestion}]"
