"""Step-size tuners as optax transforms: Armijo, Polyak, parabolic (PAL) and curvature-aware (CDAT).

Each tuner scales the incoming direction u with optax's line-search calling
convention ``update(u, state, params, value=..., grad=..., value_fn=...)``
(see :mod:`eoslab.tuners.base`) and records what it did in ``state.info``
(a :class:`TunerInfo`, found anywhere in a chained state by :func:`tuner_info`)::

    opt = optax.chain(optax.scale(-1.0), eoslab.tuners.armijo(c=1e-4))

:mod:`eoslab.tuners.profile` measures the loss along an update direction on a
grid of steps and fits a parabola (PAL's analysis): :func:`line_profile`
(the fit and the minimiser: :mod:`eoslab.tuners.line_fit`; the figure:
:mod:`eoslab.tuners.profile_plot`).
"""
from eoslab.tuners.armijo import ArmijoState, armijo
from eoslab.tuners.base import TunerInfo, tuner_info
from eoslab.tuners.edge import EdgeState, edge
from eoslab.tuners.line_fit import ParabolaFit, line_minimum, parabola_fit
from eoslab.tuners.parabolic import ParabolicState, parabolic
from eoslab.tuners.polyak import PolyakState, polyak
from eoslab.tuners.profile import LineProfile, line_profile
from eoslab.tuners.profile_plot import plot_line_profiles

__all__ = [
    "LineProfile", "ParabolaFit", "line_minimum", "line_profile", "parabola_fit", "plot_line_profiles",
    "ArmijoState", "EdgeState", "ParabolicState", "PolyakState", "TunerInfo", "armijo", "edge",
    "parabolic", "polyak", "tuner_info",
]
