"""The gradient-norm probe: |g_t|, the norm of the gradient each step descends.

``gradient_norm`` = |nabla L_B(theta_t)| with L_B the loss of step t (the
minibatch's in SGD, the training loss in full batch), at every step, from the
gradient the step already computed (no extra cost).  Under GD at the edge of
stability it oscillates with the loss (Cohen et al. 2021, fig. 1).  Off by
default; on with ``probes.enable = ["gradient_norm"]``.
"""
from __future__ import annotations

import jax.numpy as jnp

from eoslab.probes.base import Probe, StepView
from eoslab.pytree import tree_sq_norm


class GradientNorm(Probe):
    """|g_t| at every step (see the module docstring)."""

    name = "gradient_norm"
    every_step = True
    optional = True

    def at_step(self, state, view: StepView):
        return {"gradient_norm": jnp.sqrt(tree_sq_norm(view.grads))}, state
