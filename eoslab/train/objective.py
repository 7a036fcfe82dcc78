"""The training problem of a config: data, model, and the losses built on them.

``full_loss`` is the loss on the whole training set (or a fixed subset): when
``chunk_size`` is set the forward pass runs over chunks of examples with
``lax.map`` and rematerialisation (``jax.checkpoint``), so the full-batch
gradient and Hessian-vector products need the memory of one chunk, not of the
whole set.  (For ``resnet-bn`` the batch statistics are then per chunk.)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.data import Dataset, load_dataset
from eoslab.losses import accuracy, get_loss
from eoslab.models import Model, make_model
from eoslab.train.config import RunConfig


def chunked_apply(apply: Callable, params, x: jax.Array, chunk_size: int) -> jax.Array:
    """``apply(params, x)`` computed over chunks of ``chunk_size`` examples (0: at once)."""
    n = x.shape[0]
    if chunk_size <= 0 or chunk_size >= n:
        return apply(params, x)
    num = -(-n // chunk_size)
    pad = num * chunk_size - n
    xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    chunks = xp.reshape(num, chunk_size, *x.shape[1:])
    out = jax.lax.map(jax.checkpoint(lambda xc: apply(params, xc)), chunks)
    return out.reshape(num * chunk_size, -1)[:n]


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """Everything a run trains and measures; built once from a config."""
    config: RunConfig
    dataset: Dataset
    model: Model
    loss: Callable  # loss(outputs, targets) -> scalar
    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    x_sharp: jax.Array  # the examples the sharpness is measured on
    y_sharp: jax.Array

    def outputs(self, params, x):
        return chunked_apply(self.model.apply, params, x, self.config.train.chunk_size)

    def train_loss(self, params):
        return self.loss(self.outputs(params, self.x_train), self.y_train)

    @property
    def sharpness_on_train_loss(self) -> bool:
        """Whether the sharpness is measured on the whole training set (so ``sharpness_loss`` is ``train_loss``)."""
        return self.x_sharp.shape[0] == self.x_train.shape[0]

    def sharpness_loss(self, params):
        return self.loss(self.outputs(params, self.x_sharp), self.y_sharp)

    def batch_loss(self, params, idx):
        return self.loss(self.model.apply(params, self.x_train[idx]), self.y_train[idx])

    def evaluate(self, params) -> dict[str, jax.Array]:
        """Train and test loss and accuracy."""
        out = {}
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            f = self.outputs(params, x)
            out[f"{split}_loss"] = self.loss(f, y)
            out[f"{split}_accuracy"] = accuracy(f, y)
        return out


def load_data(data) -> Dataset:
    """The dataset of a ``[data]`` config section (raises DataError on a missing or bad file)."""
    return load_dataset(data.name, data_dir=data.data_dir or None, n_train=data.n_train or None,
                        n_test=data.n_test or None, **({"image": True} if data.image else {}))


def build_problem(cfg: RunConfig) -> Problem:
    """Load the data and build the model of ``cfg`` (raises InputError on bad input)."""
    dtype = jnp.float64 if cfg.train.dtype == "float64" else jnp.float32
    if dtype == jnp.float64:
        jax.config.update("jax_enable_x64", True)
    ds = load_data(cfg.data)
    m = cfg.model
    family = m.name.split("-")[0]
    kwargs: dict[str, Any] = dict(init=m.init, param=m.param, zero_last=m.zero_last, dtype=dtype,
                                  bias=None if m.bias == "auto" else m.bias)
    if family in ("fc", "deep"):
        kwargs["widths"] = tuple(m.widths)
    if ds.x_train.ndim == 2 and family in ("cnn", "resnet"):
        from eoslab.errors import ConfigError
        raise ConfigError(f"model {m.name!r} needs images but dataset {cfg.data.name!r} gives flat vectors; "
                          f"use an fc-* model or an image dataset.")
    model = make_model(m.name, input_shape=ds.input_shape, num_outputs=ds.num_outputs, **kwargs)
    cast = lambda a: jnp.asarray(np.asarray(a), dtype)
    n_sharp = cfg.probes.sharpness_subset or ds.n_train
    if n_sharp > ds.n_train:
        from eoslab.errors import ConfigError
        raise ConfigError(f"probes.sharpness_subset={n_sharp} exceeds the {ds.n_train} training examples; "
                          f"use at most {ds.n_train} (0 means all).")
    if cfg.optimizer.batch_size > ds.n_train:
        from eoslab.errors import ConfigError
        raise ConfigError(f"optimizer.batch_size={cfg.optimizer.batch_size} exceeds the {ds.n_train} training "
                          f"examples; use at most {ds.n_train} (0 means full batch).")
    x, y = cast(ds.x_train), cast(ds.y_train)
    return Problem(cfg, ds, model, get_loss(cfg.loss.name), x, y, cast(ds.x_test), cast(ds.y_test),
                   x[:n_sharp], y[:n_sharp])
