r"""The ensemble scanner: every member's steps are one ``lax.scan``, the members one ``vmap``.

An ensemble is a set of independent runs of the same update rule: members
that differ in their initial parameters, step size or seed.  Its state is one
pytree ``carry`` whose leaves hold the members on their leading axis, and a
step is written for *one* member,

    step(member_carry, t) -> (member_carry, outs),

a pure function of the member's state and the step index ``t``.  Then

    scan_members(step, carry, ts) = vmap_m( scan_t(step, carry_m, ts) )

runs ``len(ts)`` steps of every member at once and returns the final carry
(members leading) and the stacked outputs ``[members, len(ts), ...]``.  The
``vmap`` is outside the ``scan``, so a member is a scan of its own and a
compiled chunk of steps is one call for the whole ensemble.

Divergence (or an early stop) is a per-member event, never an error: a member
that diverged keeps its last finite state while the others go on,

    keep_where(alive, new, old) = alive ? new : old        (leaf by leaf),

with ``alive`` a boolean that broadcasts against every leaf (inside ``step``:
one member's scalar).

Example: gradient descent on ``x^2 / 2`` from two points with two step sizes;
the member with ``eta = 3`` diverges and is frozen once ``|x| > 10``:

>>> import jax.numpy as jnp
>>> def step(c, t):
...     x, eta = c
...     new = x - eta * x
...     return keep_where(jnp.abs(new) <= 10.0, (new, eta), (x, eta)), x
>>> (x, _), xs = scan_members(step, (jnp.array([1.0, 1.0]), jnp.array([0.5, 3.0])), jnp.arange(4))
>>> xs.shape
(2, 4)
>>> [float(v) for v in x]
[0.0625, -8.0]
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["keep_where", "scan_members"]


def scan_members(step: Callable[[Any, Any], tuple[Any, Any]], carry: Any, ts) -> tuple[Any, Any]:
    """``len(ts)`` steps of every member: ``jax.vmap`` over members of a ``jax.lax.scan`` over ``ts``.

    Args:
      step: ``step(member_carry, t) -> (member_carry, outs)`` for one member.
      carry: the members' states, members on the leading axis of every leaf.
      ts: the step indices fed to ``step`` (the same for every member).

    Returns:
      ``(carry, outs)``: the final states (members leading) and ``outs``
      stacked as ``[members, len(ts), ...]``.
    """
    return jax.vmap(lambda member: jax.lax.scan(step, member, ts))(carry)


def keep_where(mask, new: Any, old: Any) -> Any:
    """``new`` where ``mask`` holds, else ``old``, leaf by leaf (``jnp.where``): the freeze of stopped members."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(mask, a, b), new, old)
