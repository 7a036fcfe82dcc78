"""The loss-barrier probe: the highest training loss on the segment from theta_0 to theta_T.

``line_max_loss`` = max over s = 1/n, 2/n, ..., 1 of L((1 - s) theta_0 + s
theta_T), n = ``probes.line_points``, once after the last step: the loss
barrier of Kalra & Barkeshli 2023.  Its state is theta_0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from eoslab.probes.base import EvalView, Probe


class LossBarrier(Probe):
    """max_s L((1 - s) theta_0 + s theta_T) (see the module docstring)."""

    name = "loss_barrier"

    @classmethod
    def enabled(cls, ctx):
        return ctx.probes.line_points > 0

    def init(self, params, key, earlier):
        return params  # theta_0

    def at_end(self, state, view: EvalView):
        dtype = jax.tree_util.tree_leaves(view.params)[0].dtype
        n = self.ctx.probes.line_points
        s_grid = jnp.arange(1, n + 1, dtype=dtype) / n
        at = lambda s: self.ctx.train_loss(jax.tree_util.tree_map(lambda a, b: a + s * (b - a), state, view.params))
        losses = jax.lax.map(at, s_grid)
        return {"line_max_loss": jnp.max(jnp.where(jnp.isnan(losses), jnp.inf, losses))}
