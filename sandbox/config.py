"""Study configs: pydantic models, ``key=value`` overrides, grids, and readable errors.

Every study declares a ``Config`` model (subclass :class:`StudyConfig`). The command line
hands us strings; we coerce them to the declared types here, at the edge, so a study's
``run`` only ever sees a validated config. Errors name the offending key or value and
what would be valid, and nothing runs until the whole config is valid.
"""

from __future__ import annotations

import difflib
import itertools
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class StudyConfig(BaseModel):
    """Base of every study config: unknown keys are errors, values are validated on set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


class ConfigError(ValueError):
    """A config key or value the study does not accept (a usage error: CLI exit code 2)."""


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The most similar valid name, for 'did you mean' hints."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def _unknown_key_message(key: str, config_cls: type[BaseModel]) -> str:
    valid = sorted(config_cls.model_fields)
    hint = closest(key, valid)
    msg = f"unknown config key {key!r}; valid keys: {', '.join(valid)}"
    if hint:
        msg += f" (did you mean {hint!r}?)"
    return msg


_BOUNDS = (
    ("ge", ">="),
    ("gt", ">"),
    ("le", "<="),
    ("lt", "<"),
    ("min_length", "length >="),
    ("max_length", "length <="),
)


def _constraint_text(meta: Any) -> str:
    """``Ge(ge=0)`` -> ``>= 0``: constraints as a reader writes them."""
    for attr, sign in _BOUNDS:
        if hasattr(meta, attr) and getattr(meta, attr) is not None:
            return f"{sign} {getattr(meta, attr)}"
    return str(meta)


def _expected(config_cls: type[BaseModel], key: str) -> str:
    """A human description of what a field accepts."""
    field = config_cls.model_fields[key]
    ann = field.annotation
    if typing.get_origin(ann) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(ann))
    text = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
    constraints = [_constraint_text(m) for m in field.metadata]
    if constraints:
        text += " (" + ", ".join(constraints) + ")"
    return text


def parse_value(raw: str) -> Any:
    """Turn a command-line string into a JSON-ish value when it clearly is one.

    Lists and objects may be given as JSON (``[3,5]``); everything else stays a string
    and pydantic coerces it to the declared type (``"3"`` -> 3, ``"true"`` -> True).
    ``none``/``null`` become None only for keys that accept None (see :func:`build`), so a
    choice literally named ``"none"`` stays a string.
    """
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def split_assignment(item: str) -> tuple[str, str]:
    """``"key=value"`` -> (key, value), with a clear error for a missing ``=``."""
    if "=" not in item:
        raise ConfigError(f"expected key=value, got {item!r}")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"expected key=value, got {item!r} (empty key)")
    return key, value


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` arguments -> {key: value}."""
    out: dict[str, Any] = {}
    for item in items:
        key, value = split_assignment(item)
        out[key] = parse_value(value)
    return out


def parse_grids(items: Sequence[str]) -> dict[str, list[Any]]:
    """``--grid key=v1,v2`` arguments -> {key: [v1, v2]}; a JSON list is also accepted."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, value = split_assignment(item)
        text = value.strip()
        if text.startswith("["):
            try:
                values = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"grid {key!r}: {value!r} is not a JSON list ({err})") from err
            if not isinstance(values, list):
                raise ConfigError(f"grid {key!r}: expected a list, got {value!r}")
        else:
            values = [parse_value(v) for v in text.split(",") if v.strip() != ""]
        if not values:
            raise ConfigError(f"grid {key!r} has no values; write --grid {key}=v1,v2")
        out[key] = values
    return out


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` is literally one of the choices or None is allowed, by annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    return value is None and annotation is type(None)


def _none_if_allowed(config_cls: type[BaseModel], key: str, value: Any) -> Any:
    """The command line's ``none``/``null`` -> None for keys whose type admits None."""
    if not (isinstance(value, str) and value.strip().lower() in ("none", "null")):
        return value
    ann = config_cls.model_fields[key].annotation
    if _accepts(ann, value.strip()):  # a choice literally named "none"
        return value.strip()
    return None if _accepts(ann, None) else value


def check_keys(config_cls: type[BaseModel], keys: Iterable[str]) -> None:
    """Reject any key the config does not declare, naming the valid keys."""
    for key in keys:
        if key not in config_cls.model_fields:
            raise ConfigError(_unknown_key_message(key, config_cls))


def build(config_cls: type[BaseModel], values: Mapping[str, Any]) -> BaseModel:
    """Validate ``values`` into ``config_cls`` or raise a :class:`ConfigError` naming the key."""
    check_keys(config_cls, values)
    values = {k: _none_if_allowed(config_cls, k, v) for k, v in values.items()}
    try:
        return config_cls(**values)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "(config)"
            top = str(e["loc"][0]) if e["loc"] else ""
            given = values.get(top, e.get("input"))
            expected = _expected(config_cls, top) if top in config_cls.model_fields else ""
            msg = f"{loc}={given!r}: {e['msg']}"
            if expected:
                msg += f"; expected {expected}"
            problems.append(msg)
        raise ConfigError("invalid config value(s): " + "; ".join(problems)) from None


def expand(
    config_cls: type[BaseModel],
    base: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
) -> list[BaseModel]:
    """The cartesian product of ``grid`` over ``base``, each validated.

    Every combination is validated before anything runs, so a bad value late in a grid
    fails the command up front rather than after hours of work.
    """
    check_keys(config_cls, base)
    check_keys(config_cls, grid)
    keys = list(grid)
    configs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = {**base, **dict(zip(keys, combo, strict=True))}
        configs.append(build(config_cls, values))
    return configs


def schema_rows(config_cls: type[BaseModel]) -> list[dict[str, str]]:
    """One row per key (name, type, default, description) for ``sandbox show``."""
    rows = []
    for name, field in config_cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        rows.append(
            {
                "key": name,
                "type": _expected(config_cls, name),
                "default": repr(default),
                "help": field.description or "",
            }
        )
    return rows
