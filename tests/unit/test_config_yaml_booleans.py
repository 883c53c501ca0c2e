"""YAML 1.1 reads bare NO/YES/ON/OFF as booleans: for a Nordic product, `country: [SE, NO]` is the trap."""

from __future__ import annotations

import pytest
import yaml

from gateway.config import load_settings
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
