"""Gymnasium environments. ``import envs`` registers every id as ``sandbox/<Name>-v<N>``.

Each environment module is cheap to import (simulators are imported inside constructors)
and defines ``register_envs()``, which registers its ids with string entry points.
"""

from __future__ import annotations

import importlib

_ENV_MODULES = ("delivery", "control", "shopping", "coevolution", "w2s")


def _register_all() -> None:
    for name in _ENV_MODULES:
        try:
            module = importlib.import_module(f"envs.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"envs.{name}":  # not written yet; nothing to register
                continue
            raise
        module.register_envs()


def registered_ids() -> list[str]:
    """The ids this package registered with Gymnasium."""
    import gymnasium as gym

    return sorted(i for i in gym.registry if i.startswith("sandbox/"))


_register_all()
