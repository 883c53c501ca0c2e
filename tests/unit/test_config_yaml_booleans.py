"""YAML 1.1 reads bare NO/YES/ON/OFF as booleans: for a Nordic product, `country: [SE, NO]` is the trap."""

from __future__ import annotations

import pytest
import yaml

from gateway.config import load_settings
from gateway.config.reader import Problems, Reader
from gateway.errors import ConfigError
from tests.unit.test_config_rate_limits import config


def test_a_bare_no_in_a_rule_names_the_yaml_trap() -> None:
    """`country: [SE, NO]` in YAML is ['SE', False]: the message says so and shows the quoted form."""
    document = yaml.safe_load("rules: [{path_prefix: /admin/, require: {country: [SE, NO]}}]")
    with pytest.raises(ConfigError) as raised:
        load_settings(config(**document), {})
    assert any('quote it, e.g. [SE, "NO"]' in p for p in raised.value.problems), raised.value.problems
    quoted = yaml.safe_load('rules: [{path_prefix: /admin/, require: {country: [SE, "NO"]}}]')
    assert load_settings(config(**quoted), {}).rules[0].require == {"country": ("SE", "NO")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("on", "on"), ("off", "off"), ("yes", "on"), ("no", "off"), ("true", "on"), ('"off"', "off"), ("auto", "auto")],
)
def test_a_switch_accepts_the_word_and_the_boolean_yaml_made_of_it(text: str, expected: str) -> None:
    problems = Problems()
    value = Reader(yaml.safe_load(f"k: {text}"), "", problems).switch("k", ("auto", "on", "off"), "auto")
    assert (value, problems.items) == (expected, [])


@pytest.mark.parametrize("text", ["maybe", "1", "[on]", "ON2"])
def test_a_switch_refuses_anything_else_and_names_the_words(text: str) -> None:
    problems = Problems()
    assert Reader(yaml.safe_load(f"k: {text}"), "p.", problems).switch("k", ("auto", "off"), "auto") == "auto"
    assert problems.items == ["p.k: must be one of auto, off"]


def test_true_is_not_a_word_a_switch_without_on_accepts() -> None:
    problems = Problems()
    Reader({"k": True}, "", problems).switch("k", ("auto", "required", "off"), "auto")
    assert problems.items == ["k: must be one of auto, required, off"]
