"""Pytree algebra and lookup: the vector operations on parameter pytrees that the package shares.

Parameters, gradients, update directions and optimizer states are pytrees
(flax, equinox, haiku or plain dicts).  The inner product and norms below are
sums over the leaves; scaling keeps each leaf's dtype, so a float64 traced
scalar does not promote float32 parameters.  :func:`find_node` finds a state
node by its type anywhere in a (chained, nested, ``inject_hyperparams``)
optax state.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def scalar_dtype(tree: PyTree):
    """The real floating dtype of scalars computed from ``tree``: that of its leaves (float32 if none)."""
    leaves = [jnp.asarray(x) for x in jax.tree_util.tree_leaves(tree)]
    inexact = [x.dtype for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    if not inexact:
        return jnp.dtype(jnp.float32)
    return jnp.finfo(jnp.result_type(*inexact)).dtype  # real part of a complex dtype


def tree_vdot(x: PyTree, y: PyTree) -> jax.Array:
    """Real inner product sum_leaves <x, y> of two pytrees with the same structure."""
    dots = jax.tree_util.tree_map(lambda a, b: jnp.vdot(a, b).real, x, y)
    return functools.reduce(jnp.add, jax.tree_util.tree_leaves(dots), jnp.asarray(0.0, scalar_dtype(x)))


def tree_sq_norm(x: PyTree) -> jax.Array:
    """Squared Euclidean norm |x|^2 of a pytree."""
    return tree_vdot(x, x)


def tree_scale(s: jax.Array, x: PyTree) -> PyTree:
    """s * x, each leaf keeping its dtype."""
    return jax.tree_util.tree_map(lambda a: (s * a).astype(jnp.result_type(a)), x)


def tree_add_scaled(x: PyTree, s: jax.Array, y: PyTree) -> PyTree:
    """x + s * y, each leaf keeping the dtype of x."""
    return jax.tree_util.tree_map(lambda a, b: (a + s * b).astype(jnp.result_type(a)), x, y)


def tree_cast_like(x: PyTree, like: PyTree) -> PyTree:
    """x with each leaf cast to the dtype of the matching leaf of ``like``."""
    return jax.tree_util.tree_map(lambda a, b: jnp.asarray(a).astype(jnp.result_type(b)), x, like)


def find_node(tree: PyTree, kind: type | tuple[type, ...]):
    """The first node of type ``kind`` in ``tree`` (depth first), or None."""
    for node in jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, kind)):
        if isinstance(node, kind):
            return node
    return None
