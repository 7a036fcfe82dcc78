"""The ensemble scanner: members on the leading axis, each a ``lax.scan`` over steps, all ``vmap``-ed.

(placeholder: the full module with docs comes with the toy-model scanner.)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def scan_members(step, carry, ts):
    """``jax.vmap`` over members of ``jax.lax.scan(step, member_carry, ts)``: (carry, outs [members, steps, ...])."""
    return jax.vmap(lambda c: jax.lax.scan(step, c, ts))(carry)


def keep_where(mask, new, old):
    """``new`` where ``mask`` else ``old``, leaf by leaf (freezes diverged or stopped members)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(mask, a, b), new, old)
