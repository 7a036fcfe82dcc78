"""Hessian-vector products and the linear operators built on them.

Curvature functions take a scalar ``loss_fn(params)`` and a params pytree
(flax, equinox, haiku or plain dicts).  The Hessian-vector product is computed
forward-over-reverse, H v = d/dt grad L(theta + t v) |_{t=0}, i.e. ``jvp`` of
``grad`` (Pearlmutter 1994), which costs a small multiple of one gradient.

The Krylov solvers work on flat vectors; :func:`flat_operator` linearises the
gradient once (``jax.linearize``) so that every further product re-uses the
stored forward pass, and applies an optional diagonal preconditioner P in the
symmetric form P^{-1/2} H P^{-1/2}, whose eigenvalues are those of P^{-1} H.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from eoslab.errors import InputError

PyTree = Any


def is_concrete(x) -> bool:
    """Whether ``x`` holds a value that can be checked now (not a jax tracer)."""
    return not isinstance(x, jax.core.Tracer)


def check_same_structure(params: PyTree, other: PyTree, what: str) -> None:
    """Raise :class:`InputError` unless ``other`` has the tree structure and leaf shapes of ``params``."""
    ps, os_ = jax.tree_util.tree_structure(params), jax.tree_util.tree_structure(other)
    if ps != os_:
        raise InputError(
            f"{what} does not have the same pytree structure as params ({os_} vs {ps}); "
            f"build it with jax.tree_util.tree_map over params.")
    for path_leaf, o in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(other)):
        path, p = path_leaf
        if jnp.shape(p) != jnp.shape(o):
            raise InputError(
                f"{what} leaf {jax.tree_util.keystr(path)} has shape {jnp.shape(o)} but params has "
                f"{jnp.shape(p)}; give it the same shapes as params.")


def check_finite(tree: PyTree, what: str) -> None:
    """Raise :class:`InputError` if a concrete (non-traced) leaf holds NaN or inf."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if is_concrete(leaf) and jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            if not bool(np.all(np.isfinite(np.asarray(leaf)))):  # numpy: jnp would be staged inside a jit trace
                raise InputError(
                    f"{what} leaf {jax.tree_util.keystr(path)} contains NaN or inf; curvature is only "
                    f"defined at finite parameters, so check the run for divergence first.")


def check_scalar_loss(loss_fn: Callable, params: PyTree) -> None:
    """Raise :class:`InputError` unless ``loss_fn(params)`` is a real scalar."""
    out = jax.eval_shape(loss_fn, params)
    if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        shape = getattr(out, "shape", type(out).__name__)
        raise InputError(
            f"loss_fn must return a real scalar but returned {shape}; reduce it with a mean or sum "
            f"over examples.")


def hvp(loss_fn: Callable, params: PyTree, v: PyTree) -> PyTree:
    """Hessian-vector product H(params) v, forward-over-reverse, on pytrees."""
    check_same_structure(params, v, "v")
    check_scalar_loss(loss_fn, params)
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


class ValueGradHVP(NamedTuple):
    value: jax.Array
    grad: PyTree
    directional_derivative: jax.Array  # g . v
    hvp: PyTree  # H v


def value_grad_hvp(loss_fn: Callable, params: PyTree, v: PyTree) -> ValueGradHVP:
    """Loss, gradient, g.v and H v from one linearisation of ``value_and_grad``.

    A training step that needs both the gradient and a curvature probe gets
    them for about the price of one Hessian-vector product.
    """
    check_same_structure(params, v, "v")
    check_scalar_loss(loss_fn, params)
    (value, grad), (dvalue, hv) = jax.jvp(jax.value_and_grad(loss_fn), (params,), (v,))
    return ValueGradHVP(value, grad, dvalue, hv)


def check_precond(params: PyTree, precond: PyTree) -> None:
    check_same_structure(params, precond, "precond")
    for path, leaf in jax.tree_util.tree_leaves_with_path(precond):
        if is_concrete(leaf) and not bool(np.all(np.asarray(leaf) > 0)):
            raise InputError(
                f"precond leaf {jax.tree_util.keystr(path)} has entries <= 0 (or NaN); a diagonal "
                f"preconditioner must be strictly positive, e.g. add eps to sqrt(v).")


def check_inputs(loss_fn: Callable, params: PyTree, precond: PyTree | None = None) -> None:
    """Every check a public curvature function makes before tracing: finite params, scalar loss, valid P."""
    check_finite(params, "params")
    check_scalar_loss(loss_fn, params)
    if precond is not None:
        check_precond(params, precond)


class FlatOperator(NamedTuple):
    """A symmetric linear operator on flat vectors of length ``dim``."""
    matvec: Callable[[jax.Array], jax.Array]
    unravel: Callable[[jax.Array], PyTree]
    dim: int
    dtype: Any
    value: jax.Array  # loss at params (a by-product of the linearisation)
    grad: jax.Array  # flat gradient at params (a by-product of the linearisation)
    inv_sqrt_precond: jax.Array | None  # flat P^{-1/2}, or None


def flat_operator(loss_fn: Callable, params: PyTree, precond: PyTree | None = None) -> FlatOperator:
    """The Hessian (or P^{-1/2} H P^{-1/2}) of ``loss_fn`` at ``params`` as a flat matvec.

    ``value_and_grad`` is linearised once, so each product costs one tangent
    evaluation of the stored computation rather than a fresh forward pass, and
    the loss and gradient come for free (a training step can reuse them).
    """
    check_scalar_loss(loss_fn, params)
    flat, unravel = ravel_pytree(params)
    (value, grad), lin = jax.linearize(jax.value_and_grad(loss_fn), params)
    flat_grad = ravel_pytree(grad)[0]

    def h(v):
        return ravel_pytree(lin(unravel(v.astype(flat.dtype)))[1])[0]

    if precond is None:
        return FlatOperator(h, unravel, flat.shape[0], flat.dtype, value, flat_grad, None)
    check_precond(params, precond)
    s = jax.lax.rsqrt(ravel_pytree(precond)[0].astype(flat.dtype))

    def hp(v):
        return s * h(s * v)

    return FlatOperator(hp, unravel, flat.shape[0], flat.dtype, value, flat_grad, s)
