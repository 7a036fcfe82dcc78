"""Grid specs: a TOML file that names a base config, the config keys to vary and the seeds.

    [sweep]
    name = "phases-digits"     # the runs' name and group ("sweep:NAME") in the store
    base = "phases"            # optional: a recipe in configs/ or a TOML path (relative to this file)
    seeds = [0, 1, 2]          # or an integer n (seeds 0 .. n-1); default: the base config's seed
    batch_size = 64            # at most this many runs in one vmapped batch

    [base]                     # optional: config keys on top of the base recipe
    train = { steps = 20, eval_every = 1 }

    [grid]                     # config keys (dotted) and their values
    "optimizer.lr" = { from = 0.5, to = 32, num = 25, spacing = "log" }   # c = 2^-1 ... 2^5
    "model.depth" = [2, 4, 8]  # pseudo-keys: model.widths = [model.width] * (model.depth - 1)
    "model.width" = [64, 256]

A grid value is a list or a range table: ``{from, to, num}`` (evenly spaced,
``spacing = "linear"`` by default or ``"log"`` for a geometric grid between
positive ends) or ``{from, to, step}`` (``from, from + step, ...`` up to and
including ``to``).  ``[grid.optimizer] lr = [...]`` (nested tables) is the
same as ``"optimizer.lr" = [...]``.  The points are the product of all axes
and the seeds; each is one run, a full :class:`~eoslab.train.RunConfig`
with one scalar step size.  Every point is validated before anything runs:
an unknown key, an empty range or an invalid value raises
:class:`~eoslab.errors.ConfigError` with one sentence naming it.

Batches.  Points that differ only in ``optimizer.lr`` (the step size, or c
with ``optimizer.lr_units = "1/lambda0"``) and ``seed`` have the same
*shape*: they train together as one ``vmap`` (:mod:`eoslab.sweep.batch`).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from eoslab.errors import ConfigError
from eoslab.store import config_hash
from eoslab.train.config import RunConfig, config_from_dict, read_toml

PSEUDO_KEYS = ("model.depth", "model.width")
RANGE_KEYS = {"from", "to", "num", "step", "spacing"}
SWEEP_KEYS = {"name", "base", "seeds", "batch_size"}
MAX_POINTS = 1_000_000


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a sweep: its full config (scalar lr, own seed) and its identity in the store."""
    config: RunConfig
    values: dict[str, Any]  # the grid values of this point (grid key -> value), seed included
    key: str  # config_hash of the member config: equal configs are the same point
    shape: str  # config_hash of the config without lr and seed: points of one shape share a batch

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def lr(self) -> float:
        return float(self.config.optimizer.lr)


@dataclasses.dataclass(frozen=True)
class GridSpec:
    name: str
    base: dict  # the raw base config (before the grid's values)
    axes: tuple[tuple[str, tuple], ...]  # (grid key, values) in file order
    seeds: tuple[int, ...]
    batch_size: int = 64
    source: str = ""

    @property
    def group(self) -> str:
        return f"sweep:{self.name}"

    @property
    def size(self) -> int:
        return math.prod(len(v) for _, v in self.axes) * len(self.seeds)

    def points(self) -> list[Point]:
        """Every point, validated, in grid order (seeds innermost)."""
        keys = [k for k, _ in self.axes]
        out, seen = [], {}
        for combo in itertools.product(*(v for _, v in self.axes)):
            values = dict(zip(keys, combo))
            raw = _apply(self.base, values)
            cfg0 = _validated(raw, values, self.source)
            if isinstance(cfg0.optimizer.lr, tuple) and len(cfg0.lrs) != 1:
                raise ConfigError(f"the base config of sweep {self.name!r} lists {len(cfg0.lrs)} step sizes; "
                                  f"put them in the grid as \"optimizer.lr\" = [...] instead.")
            for seed in self.seeds:
                cfg = dataclasses.replace(cfg0, name=self.name, seed=int(seed),
                                          optimizer=dataclasses.replace(cfg0.optimizer, lr=float(cfg0.lrs[0])))
                d = cfg.to_dict()
                key = config_hash(d)
                if key in seen:
                    raise ConfigError(f"sweep {self.name!r} lists the same run twice ({seen[key]} and "
                                      f"{dict(values, seed=seed)}); remove the repeated grid value.")
                seen[key] = dict(values, seed=seed)
                out.append(Point(cfg, dict(values, seed=int(seed)), key, shape_key(cfg)))
        return out


def shape_key(cfg: RunConfig) -> str:
    """The hash of ``cfg`` without its step size and seed: the runs one vmapped batch may hold."""
    d = cfg.to_dict()
    d["seed"] = None
    d["optimizer"]["lr"] = None
    return config_hash(d)


def _apply(base: dict, values: dict) -> dict:
    raw = copy.deepcopy(base)
    values = dict(values)
    depth, width = values.pop("model.depth", None), values.pop("model.width", None)
    if depth is not None or width is not None:
        for key, v in (("model.depth", depth), ("model.width", width)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"grid key {key!r} = {v!r} must be an integer >= 1 "
                                  f"(depth counts weight layers: model.widths = [width] * (depth - 1)).")
        widths = raw.get("model", {}).get("widths", [200, 200])
        depth = len(widths) + 1 if depth is None else depth
        width = (widths[0] if widths else 200) if width is None else width
        values["model.widths"] = [width] * (depth - 1)
    for key, value in values.items():
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return raw


def _validated(raw: dict, values: dict, source: str) -> RunConfig:
    try:
        return config_from_dict(raw)
    except ConfigError as e:
        where = f" in sweep {source}" if source else ""
        at = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ConfigError(f"{str(e).rstrip('.')} (grid point {at}{where}).") from None


def _range_values(key: str, spec: dict) -> tuple:
    unknown = sorted(set(spec) - RANGE_KEYS)
    if unknown:
        raise ConfigError(f"grid key {key!r}: unknown range field(s) {unknown}; a range is "
                          f"{{from, to, num[, spacing]}} or {{from, to, step}}.")
    if "from" not in spec or "to" not in spec or ("num" in spec) == ("step" in spec):
        raise ConfigError(f"grid key {key!r}: a range needs from, to and exactly one of num or step, "
                          f"e.g. {{ from = 0.5, to = 32, num = 13, spacing = \"log\" }}.")
    lo, hi = spec["from"], spec["to"]
    for name, v in (("from", lo), ("to", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"grid key {key!r}: range {name}={v!r} must be a finite number.")
    spacing = spec.get("spacing", "linear")
    if spacing not in ("linear", "log"):
        raise ConfigError(f"grid key {key!r}: spacing={spacing!r} must be \"linear\" or \"log\".")
    if "num" in spec:
        num = spec["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 0:
            raise ConfigError(f"grid key {key!r}: num={num!r} must be a non-negative integer.")
        if spacing == "log":
            if lo <= 0 or hi <= 0:
                raise ConfigError(f"grid key {key!r}: a log range needs positive ends, got from={lo!r}, to={hi!r}.")
            vals = np.geomspace(lo, hi, num) if num > 1 else np.asarray([lo][:num], float)
        else:
            vals = np.linspace(lo, hi, num) if num > 1 else np.asarray([lo][:num], float)
    else:
        step = spec["step"]
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
            raise ConfigError(f"grid key {key!r}: step={step!r} must be a positive number.")
        if spacing != "linear":
            raise ConfigError(f"grid key {key!r}: a range with step is linear; use num with spacing = \"log\".")
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1 if hi >= lo else 0
        vals = lo + step * np.arange(n)
    # integer ends (and step) that give integral values give ints: {from = 2, to = 8, num = 4} is 2, 4, 6, 8
    ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("from", "to", "step")
               if k in spec) and all(float(v).is_integer() for v in vals)
    return tuple(int(round(v)) for v in vals) if ints else tuple(float(f"{v:.12g}") for v in vals)


def _flatten_grid(grid: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in grid.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not (set(v) & RANGE_KEYS):
            out += _flatten_grid(v, key + ".")
        else:
            out.append((key, v))
    return out


def _axis(key: str, spec: Any) -> tuple:
    if isinstance(spec, dict):
        vals = _range_values(key, spec)
    elif isinstance(spec, list):
        vals = tuple(spec)
    else:
        raise ConfigError(f"grid key {key!r} = {spec!r} must be a list of values or a range table "
                          f"{{from, to, num}}; write [{spec!r}] for one value.")
    if not vals:
        raise ConfigError(f"grid key {key!r} has no values (an empty list or range); give at least one.")
    return vals


def _seeds(spec: Any, default: int) -> tuple[int, ...]:
    if spec is None:
        return (default,)
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            raise ConfigError(f"sweep.seeds={spec} must be at least 1 (the number of seeds) or a list of seeds.")
        return tuple(range(spec))
    if isinstance(spec, list) and spec and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                               for s in spec):
        if len(set(spec)) != len(spec):
            raise ConfigError(f"sweep.seeds={spec} repeats a seed; list each once.")
        return tuple(spec)
    raise ConfigError(f"sweep.seeds={spec!r} must be a positive integer n (seeds 0..n-1) or a non-empty "
                      f"list of non-negative integers.")


def _base_config(spec: Any, here: Path) -> dict:
    from eoslab.train.recipes import RECIPES_DIR
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"sweep.base={spec!r} must be a recipe name or the path of a TOML config.")
    candidates = [here / spec, RECIPES_DIR / spec, RECIPES_DIR / f"{spec}.toml"]
    for path in candidates:
        if path.is_file():
            return read_toml(path, "base config", "give an existing TOML config")
    raise ConfigError(f"sweep.base={spec!r} is neither a file next to the grid spec nor a recipe in "
                      f"{RECIPES_DIR}; give an existing TOML config.")


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def grid_from_dict(raw: dict, *, source: str = "", here: Path | None = None) -> GridSpec:
    """Build and check a :class:`GridSpec` from a parsed TOML dict (every point is validated)."""
    unknown = sorted(set(raw) - {"sweep", "base", "grid"})
    if unknown:
        raise ConfigError(f"unknown table(s) {unknown} in a grid spec; use [sweep], [base] and [grid].")
    sweep = raw.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError("[sweep] must be a table (name, base, seeds, batch_size).")
    bad = sorted(set(sweep) - SWEEP_KEYS)
    if bad:
        raise ConfigError(f"unknown key(s) {['sweep.' + b for b in bad]} in the grid spec; "
                          f"valid keys are {', '.join('sweep.' + k for k in sorted(SWEEP_KEYS))}.")
    name = sweep.get("name", "sweep")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"sweep.name={name!r} must be a non-empty string.")
    base = _base_config(sweep["base"], here or Path(".")) if "base" in sweep else {}
    over = raw.get("base", {})
    if not isinstance(over, dict):
        raise ConfigError("[base] must be a table of config keys.")
    base = _merge(base, over)
    batch_size = sweep.get("batch_size", 64)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"sweep.batch_size={batch_size!r} must be a positive integer.")
    grid = raw.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError("[grid] must be a table of config keys and their values.")
    axes = tuple((key, _axis(key, spec)) for key, spec in _flatten_grid(grid))
    keys = [k for k, _ in axes]
    if "seed" in keys:
        raise ConfigError("grid key 'seed' is not a grid axis; list the seeds as sweep.seeds.")
    default_seed = base.get("seed", 0)
    spec = GridSpec(name, base, axes, _seeds(sweep.get("seeds"), default_seed if isinstance(default_seed, int) else 0),
                    batch_size, source)
    if spec.size > MAX_POINTS:
        raise ConfigError(f"sweep {name!r} has {spec.size} points, more than {MAX_POINTS}; shrink the grid.")
    return spec


def load_grid(path: str | Path) -> GridSpec:
    """Read a grid spec from a TOML file (relative ``sweep.base`` paths are resolved next to it)."""
    path = Path(path)
    raw = read_toml(path, "grid spec", "pass the path of a TOML grid spec")
    return grid_from_dict(raw, source=str(path), here=path.parent)
