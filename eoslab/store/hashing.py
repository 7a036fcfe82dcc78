"""Config identity: canonical JSON and its hash.

Canonical JSON (:func:`canonical_json`): sorted keys and no whitespace, floats
written by ``repr`` (so ``0.1`` and ``0.10`` are the same value), numpy
scalars and arrays converted to Python, tuples to lists.  Types are *kept*:
``1`` and ``1.0`` (and ``True`` and ``1``) hash differently, as they are
different TOML values and a validator may treat them differently.
:func:`config_hash` is the first 16 hex digits of its sha256: the run
store finds a run again (resume, deduplication) by it and its seed.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from eoslab.errors import ConfigError


def _normalise(value: Any, where: str) -> Any:
    """Turn a config value into plain JSON types (dict, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.generic):
        return _normalise(value.item(), where)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    f"config key {key!r} at {where or 'top level'} is a "
                    f"{type(key).__name__}; use string keys only."
                )
            out[key] = _normalise(item, f"{where}.{key}" if where else key)
        return out
    if isinstance(value, (list, tuple)):
        return [_normalise(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        return _normalise(np.asarray(value).tolist(), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ConfigError(
        f"config value at {where or 'top level'} has type "
        f"{type(value).__name__}, which cannot be stored; use numbers, strings, "
        "booleans, lists or dicts."
    )


def _normalise_config(config: Any) -> dict:
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"a run config must be a dict, got {type(config).__name__}; pass the "
            "config as a dict of settings."
        )
    return _normalise(config, "")


def canonical_json(config: Mapping) -> str:
    """The canonical JSON text of ``config``: sorted keys, no spaces, floats by ``repr``."""
    return json.dumps(
        _normalise_config(config), sort_keys=True, separators=(",", ":"),
        ensure_ascii=False, allow_nan=True,
    )


def config_hash(config: Mapping) -> str:
    """First 16 hex digits of the sha256 of :func:`canonical_json` of ``config``.

    Independent of key order; ``0.1 == 0.10``; numpy scalars hash as the
    Python value; ``1`` and ``1.0`` hash differently (types are kept).
    """
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:16]
