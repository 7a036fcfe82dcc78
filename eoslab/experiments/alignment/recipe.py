"""The alignment recipe: ``configs/alignment.toml``, overridden and validated.

The recipe is read with the shared TOML loader (:func:`eoslab.train.config.read_toml`),
then a mapping of overrides is merged in (``reproduce(config=...)``: tables
merge key by key, a model's ``options`` table is replaced whole), then
``key=value`` overrides are applied as ``eoslab run --set`` does
(:func:`eoslab.train.config.apply_overrides`), and with ``quick`` its
``[quick]`` table.  Every bad key or value is one :class:`ConfigError`
sentence naming it, raised before anything runs.
"""
from __future__ import annotations

import copy
import math
from typing import Mapping

from eoslab.errors import ConfigError
from eoslab.experiments.alignment.simulation import check_eta
from eoslab.models.toy import make_toy
from eoslab.train.config import apply_overrides, coerce, read_toml, unknown_key
from eoslab.train.recipes import recipe_path

_TOP_KEYS = {
    "seed": int, "n_init": int, "burn_in": int, "edge_p": float, "curve_tol": float,
    "sharpness_tol": float, "min_fraction": float, "divergence_limit": float,
    "plot_trajectories": int, "quick": dict, "models": dict,
}
_QUICK_KEYS = {"n_init", "models"}
_MODEL_KEYS = {"kind", "etas", "steps", "options"}
_WHAT = "alignment config"


def default_config() -> dict:
    """The recipe ``configs/alignment.toml`` as read (a fresh dict)."""
    return read_toml(recipe_path("alignment"), "alignment recipe", "restore configs/alignment.toml")


def _merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict) and k != "options":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(config: Mapping | None = None, *, quick: bool = False, overrides: list[str] | None = None) -> dict:
    """The recipe merged with ``config``, then ``overrides`` (``key=value``), then ``quick`` settings; validated."""
    cfg = apply_overrides(_merge(default_config(), config or {}), list(overrides or []))
    for key in cfg:
        if key not in _TOP_KEYS:
            raise unknown_key(key, _TOP_KEYS, _WHAT)
    for key, typ in _TOP_KEYS.items():
        if typ is dict:
            if not isinstance(cfg[key], dict):
                raise ConfigError(f"{key}={cfg[key]!r} has the wrong type; expected a table.")
            continue
        cfg[key] = coerce(cfg[key], typ, key)
        if typ is float and not math.isfinite(cfg[key]):
            raise ConfigError(f"{_WHAT} {key!r} must be finite, got {cfg[key]!r}.")
    if quick:
        for key in cfg["quick"]:
            if key not in _QUICK_KEYS:
                raise unknown_key(f"quick.{key}", _QUICK_KEYS, _WHAT)
        cfg = _merge(cfg, cfg["quick"])
    _check_values(cfg)
    return cfg


def _check_values(cfg: dict) -> None:
    for key in ("n_init", "plot_trajectories"):
        if cfg[key] < 1:
            raise ConfigError(f"{_WHAT} {key!r} must be >= 1, got {cfg[key]}.")
    if cfg["burn_in"] < 0:
        raise ConfigError(f"{_WHAT} 'burn_in' must be >= 0, got {cfg['burn_in']}.")
    for key in ("edge_p", "curve_tol", "sharpness_tol", "divergence_limit"):
        if cfg[key] <= 0:
            raise ConfigError(f"{_WHAT} {key!r} must be > 0, got {cfg[key]}.")
    if not 0 < cfg["min_fraction"] <= 1:
        raise ConfigError(f"{_WHAT} 'min_fraction' must be in (0, 1], got {cfg['min_fraction']}.")
    if not cfg["models"]:
        raise ConfigError(f"{_WHAT} 'models' is empty; list at least one toy model.")
    for name, spec in cfg["models"].items():
        _check_model(name, spec, cfg["burn_in"])


def _check_model(name: str, spec, burn_in: int) -> None:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"alignment model {name!r} must be a table with kind, etas, steps, options.")
    bad = sorted(set(spec) - _MODEL_KEYS)
    missing = sorted(_MODEL_KEYS - set(spec) - {"options"})
    if bad or missing:
        raise ConfigError(
            f"alignment model {name!r} has unknown key(s) {bad} or misses {missing}; "
            f"use exactly {sorted(_MODEL_KEYS)}."
        )
    etas = spec["etas"]
    if not isinstance(etas, (list, tuple)) or not etas:
        raise ConfigError(f"alignment model {name!r}: 'etas' must be a non-empty list of step sizes.")
    for eta in etas:
        check_eta(eta)
    if isinstance(spec["steps"], bool) or not isinstance(spec["steps"], int) or spec["steps"] <= burn_in:
        raise ConfigError(
            f"alignment model {name!r}: 'steps' must be an integer above burn_in = {burn_in}, "
            f"got {spec['steps']!r}."
        )
    make_toy(spec["kind"], **dict(spec.get("options", {})))  # validates the options
