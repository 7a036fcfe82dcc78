"""Stochastic estimators of the Hessian trace.

* Hutchinson (1989): tr(H) = E[z^T H z] for z with i.i.d. Rademacher entries;
  the sample mean of m probes has variance 2 (||H||_F^2 - sum_i H_ii^2) / m.
* Hutch++ (Meyer, Musco, Musco, Woodruff 2021): with m products, sketch
  Q = orth(H S) from m/3 random vectors S, take tr(Q^T H Q) exactly and apply
  Hutchinson to the deflated (I - QQ^T) H (I - QQ^T) with the remaining m/3
  vectors; error O(1/m) instead of O(1/sqrt(m)) for matrices with decaying
  spectra, such as neural-network Hessians.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eoslab.curvature.operators import check_inputs, flat_operator
from eoslab.errors import InputError

PyTree = Any


class TraceEstimate(NamedTuple):
    value: jax.Array
    stderr: jax.Array  # standard error of the stochastic part (sample std / sqrt(probes))
    num_hvps: int


def _rademacher(key, shape, dtype):
    return jax.random.rademacher(key, shape, dtype=dtype)


def _apply_rows(matvec, vs):
    """H applied to each row of ``vs`` (sequentially, to bound memory)."""
    return jax.lax.map(matvec, vs)


def hutchinson_trace(loss_fn: Callable, params: PyTree, num_hvps: int = 100, *,
                     key: jax.Array | None = None, precond: PyTree | None = None) -> TraceEstimate:
    """Hutchinson's estimate of tr(H) (or tr(P^{-1} H)) from ``num_hvps`` Rademacher probes, one HVP each.

    tr(H) = E[zᵀHz] for z with independent ±1 entries; the estimate is the
    mean of ``num_hvps`` samples and its standard error their standard
    deviation over √num_hvps (Hutchinson 1989).  ``num_hvps`` is the same
    budget as :func:`hutchpp_trace`'s.
    """
    if num_hvps < 2:
        raise InputError(f"num_hvps={num_hvps} is too small; use at least 2 probes.")
    check_inputs(loss_fn, params, precond)
    key = jax.random.PRNGKey(0) if key is None else key
    value, stderr = _hutchinson(loss_fn, params, precond, key, num_hvps)
    return TraceEstimate(value, stderr, num_hvps)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _hutchinson(loss_fn, params, precond, key, num_hvps):
    op = flat_operator(loss_fn, params, precond)
    z = _rademacher(key, (num_hvps, op.dim), op.dtype)
    quad = jnp.sum(z * _apply_rows(op.matvec, z), axis=1)
    return jnp.mean(quad), jnp.std(quad, ddof=1) / jnp.sqrt(num_hvps)


def hutchpp_trace(loss_fn: Callable, params: PyTree, num_hvps: int = 99, *,
                  key: jax.Array | None = None, precond: PyTree | None = None) -> TraceEstimate:
    """Hutch++ estimate of tr(H) (or tr(P^{-1} H)) with ``num_hvps`` Hessian-vector products."""
    if num_hvps < 6:
        raise InputError(f"num_hvps={num_hvps} is too small for Hutch++; use at least 6.")
    check_inputs(loss_fn, params, precond)
    dim = ravel_pytree(params)[0].shape[0]
    s = min(num_hvps // 3, dim)
    g = num_hvps - 2 * s
    key = jax.random.PRNGKey(0) if key is None else key
    value, stderr = _hutchpp(loss_fn, params, precond, key, s, g)
    return TraceEstimate(value, stderr, 2 * s + g)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _hutchpp(loss_fn, params, precond, key, s, g):
    op = flat_operator(loss_fn, params, precond)
    k1, k2 = jax.random.split(key)
    sketch = _rademacher(k1, (s, op.dim), op.dtype)
    q, _ = jnp.linalg.qr(_apply_rows(op.matvec, sketch).T)  # (n, s)
    top = jnp.sum(q.T * _apply_rows(op.matvec, q.T))
    z = _rademacher(k2, (g, op.dim), op.dtype)
    z = z - (z @ q) @ q.T
    quad = jnp.sum(z * _apply_rows(op.matvec, z), axis=1)
    return top + jnp.mean(quad), jnp.std(quad, ddof=1) / jnp.sqrt(g)
