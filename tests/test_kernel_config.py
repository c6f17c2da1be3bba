"""Config parsing, coercion and error messages."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from sandbox.config import (
    ConfigError,
    StudyConfig,
    build,
    expand,
    parse_grids,
    parse_sets,
    schema_rows,
)


class Demo(StudyConfig):
    n_prefs: int = Field(100, gt=0, description="preferences")
    temperature: float = Field(0.0, ge=0)
    learner: Literal["regret", "partial_return"] = "regret"
    noisy: bool = False
    lengths: list[int] = Field(default_factory=lambda: [3])


def test_set_values_are_coerced_to_declared_types():
    conf = build(Demo, parse_sets(["n_prefs=30", "temperature=0.5", "noisy=true", "lengths=[3,5]"]))
    assert conf.n_prefs == 30 and isinstance(conf.n_prefs, int)
    assert conf.temperature == 0.5
    assert conf.noisy is True
    assert conf.lengths == [3, 5]


def test_unknown_key_names_valid_keys_and_closest_match():
    with pytest.raises(ConfigError) as err:
        build(Demo, {"n_pref": "3"})
    msg = str(err.value)
    assert "'n_pref'" in msg
    assert "learner, lengths, n_prefs, noisy, temperature" in msg
    assert "did you mean 'n_prefs'" in msg


def test_bad_value_names_key_value_and_expectation():
    with pytest.raises(ConfigError) as err:
        build(Demo, {"learner": "bogus"})
    msg = str(err.value)
    assert "learner='bogus'" in msg and "'regret'" in msg and "'partial_return'" in msg
    with pytest.raises(ConfigError, match=r"n_prefs='-3'.*greater than 0"):
        build(Demo, {"n_prefs": "-3"})
    with pytest.raises(ConfigError, match=r"n_prefs='many'"):
        build(Demo, {"n_prefs": "many"})


def test_grid_expands_cartesian_product_in_order():
    grid = parse_grids(["n_prefs=30,100", "learner=regret,partial_return"])
    configs = expand(Demo, {"temperature": "1"}, grid)
    assert [(c.n_prefs, c.learner) for c in configs] == [
        (30, "regret"),
        (30, "partial_return"),
        (100, "regret"),
        (100, "partial_return"),
    ]
    assert all(c.temperature == 1.0 for c in configs)


def test_grid_validates_every_value_before_running():
    with pytest.raises(ConfigError, match="n_prefs='x'"):
        expand(Demo, {}, parse_grids(["n_prefs=30,x"]))


def test_malformed_assignments_are_usage_errors():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_sets(["n_prefs"])
    with pytest.raises(ConfigError, match="has no values"):
        parse_grids(["n_prefs="])


def test_configs_are_frozen_and_reject_extra_keys():
    conf = build(Demo, {})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        conf.n_prefs = 3  # type: ignore[misc]


def test_schema_rows_list_types_and_defaults():
    rows = {r["key"]: r for r in schema_rows(Demo)}
    assert rows["n_prefs"]["default"] == "100"
    assert "'regret'" in rows["learner"]["type"]
    assert rows["n_prefs"]["help"] == "preferences"


class WithNone(StudyConfig):
    conflict: Literal["none", "implicit", "explicit"] = "none"
    limit: int | None = 5


def test_none_is_a_choice_where_declared_and_none_where_optional():
    conf = build(WithNone, parse_sets(["conflict=none", "limit=none"]))
    assert conf.conflict == "none"
    assert conf.limit is None
    assert build(WithNone, parse_sets(["limit=null"])).limit is None
    with pytest.raises(ConfigError, match="n_prefs='none'"):
        build(Demo, parse_sets(["n_prefs=none"]))


def test_schema_and_errors_write_bounds_as_a_reader_would():
    rows = {r["key"]: r for r in schema_rows(Demo)}
    assert rows["n_prefs"]["type"] == "int (> 0)"
    assert rows["temperature"]["type"] == "float (>= 0)"
    with pytest.raises(ConfigError, match=r"expected float \(>= 0\)"):
        build(Demo, {"temperature": "-1"})
