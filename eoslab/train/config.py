"""Run configuration: nested dataclasses read from TOML and validated before anything runs.

A config file has the sections below; every key is optional except where
noted.  ``optimizer.lr`` may be a list: the run is then an *ensemble* over
step sizes, trained together as one ``vmap`` and stored as one run per step
size.  Unknown keys, wrong types and invalid values raise
:class:`~eoslab.errors.ConfigError` with one sentence naming the key.

    name = "eos-digits"
    seed = 0
    [data]      name, n_train, n_test, data_dir, image
    [model]     name, widths, bias, init, param, zero_last
    [loss]      name ("mse" | "mse-mean" | "ce")
    [optimizer] name, lr, lr_units, batch_size (0: full batch), and the rule's own
                hyper-parameters (eoslab.rules: e.g. beta for heavy-ball, beta1,
                beta2, eps for adam)
    [train]     steps, eval_every, stop_loss, stop_accuracy, diverge_above,
                chunk_size, checkpoint_every, dtype
    [probes]    sharpness_k, sharpness_subset, every_step, tol, max_hvps, eval_max_hvps,
                refresh_every, jump, step_curvature,
                line_points, enable
"""
from __future__ import annotations

import copy
import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any

from eoslab.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DataConfig:
    name: str = "digits"
    n_train: int = 0  # 0: all
    n_test: int = 0
    data_dir: str = ""  # "" : the EOSLAB_DATA environment variable
    image: bool = False  # digits as [8, 8, 1] images (for cnn-* models); other image datasets are images already


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "fc-tanh"
    widths: tuple[int, ...] = (200, 200)
    bias: bool | str = "auto"  # "auto": the family's default (on; off for deep-linear)
    init: str = "pytorch"
    param: str = "standard"
    zero_last: bool = False


@dataclasses.dataclass(frozen=True)
class LossConfig:
    name: str = "mse"


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The update rule: its name, step size(s) and batch size, and the rule's own hyper-parameters.

    In TOML every key sits in ``[optimizer]``; the keys besides ``name``, ``lr``, ``lr_units`` and
    ``batch_size`` are the rule's hyper-parameters (``hp``, the rule's ``Hyper`` dataclass in
    :mod:`eoslab.rules`), and a key the rule does not take is an error naming the ones it does.
    """
    name: str = "gd"
    lr: float | tuple[float, ...] = 0.1  # the step size eta, or c with lr_units = "1/lambda0"; for a tuner its cap
    lr_units: str = "absolute"  # "1/lambda0": lr is c and the step size is c / lambda_0 (sharpness at init)
    batch_size: int = 0  # 0: full batch
    hp: Any = None  # the rule's hyper-parameters (None: the rule's defaults)

    def __post_init__(self):
        if self.hp is None:
            object.__setattr__(self, "hp", self.rule.Hyper())

    @property
    def rule(self):
        """The update rule (:mod:`eoslab.rules`)."""
        from eoslab.rules import get_rule
        return get_rule(self.name)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    eval_every: int = 100
    stop_loss: float = 0.0  # stop a member once its train loss is below this (0: never)
    stop_accuracy: float = 0.0  # stop once train accuracy reaches this (0: never)
    diverge_above: float = 1e4  # loss above this (or NaN/inf) is divergence
    chunk_size: int = 0  # examples per chunk of the full-batch gradient (0: all at once)
    checkpoint_every: int = 0  # steps between checkpoints (0: none); a multiple of eval_every
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    sharpness_k: int = 1  # top-k eigenvalues (0: no sharpness)
    sharpness_subset: int = 0  # first n training examples (0: the full training set)
    every_step: bool = False  # track the sharpness at every step (warm-started)
    tol: float = 1e-4  # eigenvalue accuracy: a solve stops when its error estimate is <= tol * sharpness
    max_hvps: int = 20  # budget of one every-step (warm-started) sharpness update
    eval_max_hvps: int = 0  # budget of an eval-step (and initial) solve (0: min(dim, max(100, 20 k)))
    refresh_every: int = 500  # steps between cold checks of the tracked eigenvalue at eval steps (0: never)
    jump: float = 0.1  # a relative change of the tracked value above this triggers a cold check
    step_curvature: bool = False  # eta_t * u.Hu/|u|^2 along every step u (one HVP per step)
    line_points: int = 0  # loss barrier: max training loss at this many points on theta_0 -> theta_T (0: off)
    enable: tuple[str, ...] = ()  # optional probes to turn on by name (eoslab.probes.OPTIONAL), e.g. ["gradient_norm"]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    train: TrainConfig = TrainConfig()
    probes: ProbeConfig = ProbeConfig()

    @property
    def lrs(self) -> tuple[float, ...]:
        lr = self.optimizer.lr
        return tuple(lr) if isinstance(lr, tuple) else (lr,)

    def member(self, lr: float) -> "RunConfig":
        """The config of one ensemble member (a scalar step size)."""
        return dataclasses.replace(self, optimizer=dataclasses.replace(self.optimizer, lr=float(lr)))

    def to_dict(self) -> dict:
        """Plain values, as in a TOML file (the rule's hyper-parameters flat in ``optimizer``)."""
        out = _to_plain(dataclasses.asdict(self))
        out["optimizer"].update(out["optimizer"].pop("hp"))
        return out


def _to_plain(x):
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_plain(v) for v in x]
    return x


# ---- building from dicts, with validation ----------------------------------

def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def coerce(value, tp, key: str):
    """Check ``value`` against annotation ``tp`` (bool, int, float, str, tuples and unions of them) and convert
    lists to tuples; a mismatch is one ConfigError sentence naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        for alt in typing.get_args(tp):
            try:
                return coerce(value, alt, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}={value!r} has the wrong type; expected "
                          f"{' or '.join(_describe(a) for a in typing.get_args(tp))}.")
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected {_describe(tp)}.")
        return tuple(coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected true or false.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected an integer.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected a number.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected a string.")
        return value
    raise AssertionError(tp)


def _describe(tp) -> str:
    if typing.get_origin(tp) is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, _type_name(tp))


def unknown_key(key: str, valid, what: str = "config") -> ConfigError:
    """The error of a key that a table does not take: one sentence listing the ``valid`` ones."""
    return ConfigError(f"unknown {what} key {key!r}; valid keys here are {', '.join(sorted(valid))}.")


def _build(cls, raw: dict, prefix: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"[{prefix}] must be a table of keys, not {raw!r}.")
    if cls is OptimizerConfig:
        return _build_optimizer(raw, prefix)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            raise unknown_key(full, fields)
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, full)
        else:
            kwargs[key] = coerce(value, tp, full)
    return cls(**kwargs)


def _build_optimizer(raw: dict, prefix: str) -> OptimizerConfig:
    """``[optimizer]``: the keys every rule has, then the rule's hyper-parameters (its ``Hyper`` dataclass)."""
    from eoslab.rules import get_rule
    hints = typing.get_type_hints(OptimizerConfig)
    common = {f.name for f in dataclasses.fields(OptimizerConfig)} - {"hp"}
    kwargs = {k: coerce(v, hints[k], f"{prefix}.{k}") for k, v in raw.items() if k in common}
    rule = get_rule(kwargs.get("name", "gd"))
    rest = {k: v for k, v in raw.items() if k not in common}
    rule.check_keys(rest)  # a key the rule does not take: one sentence naming those it does
    return OptimizerConfig(**kwargs, hp=_build(rule.Hyper, rest, prefix))


def config_from_dict(raw: dict) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a plain dict (e.g. parsed TOML)."""
    cfg = _build(RunConfig, raw, "")
    validate(cfg)
    return cfg


def _parse_value(text: str):
    """A ``--set`` value: TOML syntax (numbers, booleans, lists, quoted strings) or a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides to a raw config dict (returns a copy)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not of the form key=value (e.g. optimizer.lr=0.2).")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key!r}: {p!r} is not a section.")
        node[parts[-1]] = _parse_value(text.strip())
    return out


def read_toml(path: str | Path, what: str, hint: str) -> dict:
    """The parsed TOML file ``path``; a missing file or bad syntax is a ConfigError naming ``what`` it is."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist; {hint}.")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {str(path)!r} is not valid TOML ({e}); fix the syntax.") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a TOML config file."""
    raw = read_toml(path, "config file", "pass the path of a TOML file (see configs/ for examples)")
    return config_from_dict(apply_overrides(raw, overrides or []))


def validate(cfg: RunConfig) -> None:
    """Semantic checks beyond types; each failure is one sentence naming the key."""
    from eoslab.data import check_dataset_name
    from eoslab.losses import LOSSES
    from eoslab.models import available_models

    check_dataset_name(cfg.data.name)
    if cfg.model.name not in available_models():
        raise ConfigError(f"unknown model model.name={cfg.model.name!r}; choose one of "
                          f"{', '.join(available_models())}.")
    if cfg.loss.name not in LOSSES:
        raise ConfigError(f"unknown loss loss.name={cfg.loss.name!r}; choose one of {', '.join(LOSSES)}.")
    rule = cfg.optimizer.rule
    if not cfg.lrs:
        raise ConfigError("optimizer.lr is an empty list; give at least one step size.")
    for lr in cfg.lrs:
        rule.check(lr, cfg.optimizer.hp)
    if len(set(cfg.lrs)) != len(cfg.lrs):
        raise ConfigError(f"optimizer.lr={list(cfg.lrs)} repeats a step size; list each once.")
    checks = [
        (cfg.optimizer.batch_size >= 0, "optimizer.batch_size", "must be >= 0 (0 means full batch)"),
        (cfg.optimizer.lr_units in ("absolute", "1/lambda0"), "optimizer.lr_units",
         "must be \"absolute\" or \"1/lambda0\" (lr is then c and the step size c / lambda_0)"),
        (cfg.probes.line_points >= 0, "probes.line_points", "must be >= 0 (0 turns the loss-barrier probe off)"),
        (cfg.train.steps >= 1, "train.steps", "must be >= 1"),
        (cfg.train.eval_every >= 1, "train.eval_every", "must be >= 1"),
        (cfg.train.chunk_size >= 0, "train.chunk_size", "must be >= 0 (0 means no chunking)"),
        (cfg.train.checkpoint_every >= 0, "train.checkpoint_every", "must be >= 0"),
        (cfg.train.checkpoint_every % cfg.train.eval_every == 0, "train.checkpoint_every",
         "must be a multiple of train.eval_every"),
        (cfg.train.diverge_above > 0, "train.diverge_above", "must be > 0"),
        (cfg.train.stop_loss >= 0, "train.stop_loss", "must be >= 0 (0 means never)"),
        (0 <= cfg.train.stop_accuracy <= 1, "train.stop_accuracy", "must lie in [0, 1]"),
        (cfg.train.dtype in ("float32", "float64"), "train.dtype", "must be 'float32' or 'float64'"),
        (cfg.probes.sharpness_k >= 0, "probes.sharpness_k", "must be >= 0 (0 turns sharpness off)"),
        (cfg.probes.sharpness_subset >= 0, "probes.sharpness_subset", "must be >= 0 (0 means all)"),
        (cfg.probes.tol > 0, "probes.tol", "must be > 0"),
        (cfg.probes.max_hvps >= max(1, cfg.probes.sharpness_k), "probes.max_hvps",
         "must be at least probes.sharpness_k"),
        (cfg.probes.eval_max_hvps == 0 or cfg.probes.eval_max_hvps >= max(1, cfg.probes.sharpness_k),
         "probes.eval_max_hvps", "must be 0 (the default budget) or at least probes.sharpness_k"),
        (cfg.probes.refresh_every >= 0, "probes.refresh_every", "must be >= 0 (0 turns scheduled cold checks off)"),
        (cfg.probes.jump > 0, "probes.jump", "must be > 0 (a relative change, e.g. 0.1)"),
        (cfg.data.n_train >= 0 and cfg.data.n_test >= 0, "data.n_train", "and data.n_test must be >= 0"),
        (all(w >= 1 for w in cfg.model.widths), "model.widths", "must all be >= 1"),
        (cfg.model.bias in (True, False, "auto"), "model.bias", "must be true, false or \"auto\""),
        (not cfg.data.image or cfg.data.name.split("-")[0] == "digits", "data.image",
         "applies to digits only (the other image datasets give images already)"),
    ]
    from eoslab.probes import OPTIONAL
    unknown = [name for name in cfg.probes.enable if name not in OPTIONAL]
    if unknown:
        raise ConfigError(f"probes.enable names {unknown[0]!r}, which is not an optional probe; choose from "
                          f"{', '.join(OPTIONAL)}.")
    for ok, key, msg in checks:
        if not ok:
            value = _lookup(cfg, key)
            raise ConfigError(f"{key}={value!r} {msg}.")


def _lookup(cfg, key):
    node = cfg
    for p in key.split("."):
        node = getattr(node, p)
    return node
