"""Ensembles of GD trajectories of a toy model, recorded in the alignment coordinates.

Every initialisation is a member of one ensemble
(:func:`eoslab.train.ensemble.scan_members`: a ``vmap`` over members of a
``lax.scan`` over steps); a member that diverges (loss non-finite or above
the limit) is frozen from that step on and its step recorded, never raised.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import ConfigError
from eoslab.experiments.alignment.theory import coordinates
from eoslab.models.toy import require_x64
from eoslab.models.toy.base import check_count
from eoslab.train.ensemble import keep_where, scan_members


def check_eta(eta) -> float:
    """A step size as a positive finite float, else :class:`ConfigError`."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.floating, np.integer)):
        raise ConfigError(f"step size eta must be a number, got {eta!r}.")
    eta = float(eta)
    if not (math.isfinite(eta) and eta > 0):
        raise ConfigError(f"step size eta = {eta} must be positive and finite.")
    return eta


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """GD trajectories from many initialisations; arrays ``[steps + 1, n]`` (step 0 = init).

    ``diverged_step[i]`` is the first step whose loss was non-finite or above
    the limit (or -1); from it on that trajectory's records are NaN and its
    parameters stay frozen.
    """

    eta: float
    loss: np.ndarray
    sharpness: np.ndarray
    p: np.ndarray
    q: np.ndarray
    diverged_step: np.ndarray
    theta_final: np.ndarray

    @property
    def steps(self) -> int:
        return self.loss.shape[0] - 1

    @property
    def n(self) -> int:
        return self.loss.shape[1]

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_step >= 0


def _measure(model, theta, eta):
    p, q = coordinates(model, theta, eta)
    return model.loss(theta), model.sharpness(theta), p, q


def _gd_step(model, eta, limit, carry, t):
    """Measure, detect divergence, update: one step of one trajectory ``carry = (theta, alive, div_step)``.

    A trajectory whose loss is non-finite or above ``limit`` is frozen (:func:`keep_where`) from that
    step on, its records NaN and its divergence step recorded.
    """
    theta, alive, div_step = carry
    loss, sharp, p, q = _measure(model, theta, eta)
    bad = ~jnp.isfinite(loss) | (loss > limit) | ~jnp.all(jnp.isfinite(theta))
    div_step = jnp.where(alive & bad, t, div_step)
    alive = alive & ~bad
    theta_new = keep_where(alive, theta - eta * model.grad(theta), theta)
    nan = jnp.float64(jnp.nan)
    rec = keep_where(alive, (loss, sharp, p, q), (nan,) * 4)
    return (theta_new, alive, div_step), rec


@functools.partial(jax.jit, static_argnums=(0, 3))
def _simulate_ensemble(model, theta0, eta, steps, limit):
    """Records ``[members, steps + 1]`` (the last measured after the final step), divergence steps, final theta."""
    step = functools.partial(_gd_step, model, eta, limit)
    n = theta0.shape[0]
    carry = (theta0, jnp.ones((n,), bool), jnp.full((n,), -1, jnp.int32))
    carry, recs = scan_members(step, carry, jnp.arange(steps, dtype=jnp.int32))
    (theta, _, div), last = jax.vmap(step, in_axes=(0, None))(carry, jnp.int32(steps))
    recs = tuple(jnp.concatenate([r, l[:, None]], axis=1) for r, l in zip(recs, last))
    return recs, div, theta


@functools.partial(jax.jit, static_argnums=(0, 3))
def _simulate_single(model, theta0, eta, steps, limit):
    """One trajectory (a plain ``lax.scan``, the reference for the ensemble): records ``[steps + 1]``."""
    step = functools.partial(_gd_step, model, eta, limit)
    carry = (theta0, jnp.array(True), jnp.array(-1, jnp.int32))
    carry, recs = jax.lax.scan(step, carry, jnp.arange(steps, dtype=jnp.int32))
    (theta, _, div), last = step(carry, jnp.int32(steps))
    recs = tuple(jnp.concatenate([r, l[None]], axis=0) for r, l in zip(recs, last))
    return recs, div, theta


def _check_run_inputs(model, theta0, eta, steps, limit):
    require_x64()
    eta = check_eta(eta)
    steps = check_count("steps", steps)
    limit = float(limit)
    if not limit > 0:
        raise ConfigError(f"divergence_limit must be positive, got {limit}.")
    theta0 = model.check_params(theta0)
    _, q = coordinates(model, theta0, eta)
    bad = ~np.isfinite(np.asarray(q)) | (np.asarray(q) <= 0)
    if np.any(bad):
        raise ConfigError(
            f"{int(np.sum(bad))} initialisation(s) lie outside the {model.name} domain: "
            "grad f = 0 there (q = 2 / (eta |grad f|^2) is infinite); move them off that set."
        )
    return theta0, eta, steps, limit


def run_ensemble(model, theta0, eta, steps: int, *, divergence_limit: float = 1e8) -> Ensemble:
    """GD from every row of ``theta0`` ``[n, dim]`` at once (:func:`eoslab.train.ensemble.scan_members`).

    Records loss, sharpness (closed form), ``p`` and ``q`` at steps
    ``0..steps``.  Divergence is recorded, never raised.
    """
    theta0, eta, steps, limit = _check_run_inputs(model, theta0, eta, steps, divergence_limit)
    if theta0.ndim != 2:
        raise ConfigError(f"theta0 must be [n, {model.dim}] for an ensemble, got shape {list(theta0.shape)}.")
    recs, div, theta = _simulate_ensemble(model, theta0, jnp.float64(eta), steps, jnp.float64(limit))
    loss, sharp, p, q = (np.ascontiguousarray(np.asarray(r).T) for r in recs)  # [steps + 1, n]
    return Ensemble(eta, loss, sharp, p, q, np.asarray(div), np.asarray(theta))


def run_single(model, theta0, eta, steps: int, *, divergence_limit: float = 1e8) -> Ensemble:
    """GD from one initialisation ``[dim]`` (a jitted scan, no ``vmap``); arrays ``[steps + 1, 1]``."""
    theta0, eta, steps, limit = _check_run_inputs(model, theta0, eta, steps, divergence_limit)
    if theta0.ndim != 1:
        raise ConfigError(f"theta0 must be [{model.dim}] for a single run, got shape {list(theta0.shape)}.")
    recs, div, theta = _simulate_single(model, theta0, jnp.float64(eta), steps, jnp.float64(limit))
    loss, sharp, p, q = (np.asarray(r)[:, None] for r in recs)
    return Ensemble(eta, loss, sharp, p, q, np.asarray(div)[None], np.asarray(theta)[None])
