r"""The theory of trajectory alignment: the 1-D map, its bifurcation curve, the exact reduced map, the slow manifold.

Derivation
==========

1-D map.  Take a scalar model ``f(theta)`` and the loss ``L = l(f - y)``
with ``l`` even and convex, ``p = f - y``.  A GD step
``theta' = theta - eta l'(p) grad f`` changes ``f`` by
``-eta l'(p) |grad f|^2 + O(eta^2)``.  With

    q = 2 / (eta |grad_theta f|^2)

the linearised step is the 1-D map (``q`` frozen)

    g_q(p) = p - (2 / q) l'(p).

*Fixed point and flip bifurcation.*  ``p = 0`` is a fixed point with
``g_q'(0) = 1 - 2 l''(0) / q``.  It is stable for ``q > r(0) = l''(0)`` and
``g_q'(0)`` crosses ``-1`` at ``q = r(0)`` (for the losses here ``l''(0) = 1``,
i.e. the sharpness ``l''(0)|grad f|^2 = 2/(eta q)`` crosses ``2/eta``): a
period-doubling (flip) bifurcation; equivalently the derivative of the second
iterate at the fixed point, ``(g_q o g_q)'(0) = g_q'(0)^2``, crosses ``+1``.

*Period-2 orbit.*  ``l'`` is odd, so ``g_q`` is odd and has the symmetric
2-cycle ``p -> -p -> p`` where ``g_q(p) = -p``, i.e. ``2p = (2/q) l'(p)``:

    q = r(p) := l'(p) / p            (log cosh: q = tanh(p) / p).

It exists for ``q < r(0)`` when ``r`` decreases from ``r(0)`` to 0 on
``p > 0``, and it is stable: ``(g o g)'(p) = g'(p) g'(-p) = (1 - 2 p l''(p) / l'(p))^2 < 1``
iff ``0 < p l''/l' < 1``, i.e. ``l'' > 0`` and ``r' < 0`` -- a supercritical
flip.  (The multiplier of the 2-cycle is a square, so it never crosses -1:
no further period doubling along the branch; the cycle can only lose
stability through +1, where ``h' = 0`` -- see the single neuron below.)
The square loss has ``r = 1``: no curve at all (the map is linear and GD
diverges or catapults), so alignment needs a loss with ``r`` decreasing;
:func:`check_alignment` raises :class:`~eoslab.errors.ConfigError` otherwise.

Reparameterisations (the coordinates in which each toy model aligns)
--------------------------------------------------------------------

* ``logcosh2``, ``two_layer_linear``, ``uv``: ``p = f - y``,
  ``q = 2 / (eta |grad f|^2)`` as above; ``|grad f|^2 = x^2 + y^2`` for
  ``L(x, y) = log cosh(xy)``, ``|x|^2 |v|^2 + |U x|^2`` for ``f = v^T U x`` and
  ``x^2 (|u|^2 + |v|^2) / n`` for the uv model.  For the two-layer linear
  network this is, as we recall it, the paper's canonical reparameterisation
  (Song & Yun, Sec. 3: ``p`` the residual, ``q`` the ratio of ``2/eta`` to the
  sharpness at the valley); we could not consult the text while writing this
  and derived it as above, so read it as "the natural one", not a quotation.
* ``single_neuron`` ``f = v sigma(u x)``, square loss, ``y = 0``:
  ``p = u x`` (the pre-activation) and ``q = 2 / (eta x^2 v^2)``.  GD on ``u``
  is then *exactly* ``p' = p - (2/q) sigma(p) sigma'(p)``, the 1-D map with
  ``l'`` replaced by ``h = sigma sigma'``, so the curve is
  ``q = sigma(p) sigma'(p) / p`` (``tanh(p) sech^2(p) / p`` for tanh), with the
  flip at ``q = sigma'(0)^2 = 1``.  This is again our reconstruction of the
  paper's single-neuron coordinates (``q`` is ``2/eta`` over the sharpness
  ``x^2 v^2`` of the valley ``u = 0``).  The 2-cycle is stable only while
  ``h' > 0`` (``|p| < 0.658``, ``q > 0.585`` for tanh).

Exact reduced dynamics
----------------------

For all four toy models GD closes *exactly* on ``(p, q)`` (tested against the
full GD in the tests; :func:`reduced_step`):

* bilinear models (``a = U x``; ``c = |x|^2`` for ``v^T U x``, ``c = x^2/n``
  for uv, ``c = 1, y = 0`` for ``log cosh(xy)``), ``t = l'(p)``, ``f = p + y``,
  ``s = |grad f|^2 = 2/(eta q)``: from ``a' = a - eta t c v`` and
  ``v' = v - eta t a``,

      f' = f - eta t s + eta^2 t^2 c f
      s' = s (1 + eta^2 t^2 c) - 4 eta t c f,

  i.e. ``p' = p - (2/q) t + eta^2 t^2 c f`` and
  ``q' = q / (1 + eta^2 t^2 c - 2 eta^2 q t c f)``;
* single neuron (square loss, ``y = 0``): ``p' = p - (2/q) sigma(p) sigma'(p)``,
  ``v' = v (1 - eta sigma(p)^2)`` so ``q' = q / (1 - eta sigma(p)^2)^2``.

Corrected curve: the slow manifold (why it fits better than ``r(p)``)
--------------------------------------------------------------------

``q`` is not frozen: on the 2-cycle ``|grad f|^2`` shrinks every step, by a
relative ``eta^2 t^2 c`` (bilinear; the ``eta^2 t^2 c f`` term in ``p'`` is the
exact, not linearised, change of ``f``) or ``2 eta sigma^2`` (single neuron).
The trajectories therefore do not sit on ``r(p)`` but on the attracting
invariant curve ``q = Q(p)`` of the exact map (the slow manifold), and they
ride it to ``p = 0`` and the final ``q* = Q(0) > r(0)``.  Write
``Q = r + eps Q1`` and ask that the curve be invariant under one step:
``(p, Q(p)) -> (p1, q1)`` with ``q1 = Q(p1)``, ``p1 = -p + eps delta``.  To
first order (``r' = dr/dp``, ``h = l'`` or ``sigma sigma'``):

* bilinear, ``eps = eta^2``: ``Q1 = E + O`` with the even and odd parts

      E(p) = -(c r h^2 / 2) (1 + r / (p r')),
      O(p) = -c h y (2 r^2 + r' h) / (2 (1 + p r' / r));

* single neuron, ``eps = eta``: ``Q1 = -r^2 sigma(p)^2 / (p r')``.

At ``p -> 0`` (``h = a p + b p^3 + ...``): ``Q(0) = r(0) - eps c a^4 / (4 b)``
(bilinear) and ``r(0) - eps / (2 b)`` (single neuron), e.g.
``Q(0) = 1 + 3 eta^2 c / 4`` for log cosh and ``1 + 3 eta / 8`` for tanh: the
final sharpness is predicted to be ``(2/eta) / Q(0)``, slightly *below*
``2/eta``.  Measured on ``log cosh(xy)`` with ``eta = 1/8``, the trajectory
points sit a median ``0.012 = 3 eta^2 / 4`` above ``r(p)`` and ``2e-4`` from
``Q``.  The expansion needs the drift to be slow against the attraction of
the 2-cycle, ``1 - (1 - 2 p h'/h)^2``; it degrades at large ``|p|`` (small
``q``), where that attraction vanishes, most for ``y != 0`` (the ``O`` term).
Both curves are reported: ``r(p)`` (the paper's diagram, the ``eta -> 0``
limit) and ``Q(p)``; the claims table says which holds.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from eoslab.errors import ConfigError
from eoslab.models.toy import LogCoshProduct, SingleNeuron, TwoLayerLinear, UVModel, require_x64


_BILINEAR = (LogCoshProduct, TwoLayerLinear, UVModel)


def _bilinear_constants(model) -> tuple[float, float]:
    """``(c, y)`` of the reduced bilinear map."""
    if isinstance(model, LogCoshProduct):
        return 1.0, 0.0
    return model.x_sq, model.target


def coordinates(model, theta, eta):
    """``(p, q)``: the alignment coordinates of ``theta`` (module docstring)."""
    theta = model.as_theta(theta)
    if isinstance(model, SingleNeuron):
        u, v = theta[..., 0], theta[..., 1]
        return u * model.x, 2.0 / (eta * model.x**2 * v * v)
    return model.residual(theta), 2.0 / (eta * model.grad_f_sq(theta))


def _h(model, p):
    """``h(p)`` and ``h'(p)``: ``l'`` (bilinear) or ``sigma sigma'`` (single neuron)."""
    if isinstance(model, SingleNeuron):
        s = model.sigma
        f, d1, d2 = s.f(p), s.d1(p), s.d2(p)
        return f * d1, d1 * d1 + f * d2
    return model.loss_fn.grad(p), model.loss_fn.hess(p)


_P_MIN = 1e-4  # below this |p|, curves are evaluated at +-_P_MIN (they are smooth; error O(_P_MIN^2))


def _safe_p(p):
    p = jnp.asarray(p, jnp.float64)
    return jnp.where(jnp.abs(p) < _P_MIN, jnp.where(p >= 0, _P_MIN, -_P_MIN), p)


def map_1d(model, p, q):
    """The frozen-``q`` 1-D map ``p - (2/q) h(p)``."""
    require_x64()
    p = jnp.asarray(p, jnp.float64)
    return p - (2.0 / q) * _h(model, p)[0]


def r_curve(model, p):
    """The paper's bifurcation curve ``q = r(p) = h(p) / p`` (``h = l'`` or ``sigma sigma'``)."""
    require_x64()
    p = _safe_p(p)
    return _h(model, p)[0] / p


def bifurcation_q(model) -> float:
    """``r(0) = h'(0)``, the ``q`` of the flip bifurcation of the 1-D map."""
    require_x64()
    return float(_h(model, jnp.zeros((), jnp.float64))[1])


def curve_q(model, p, eta, *, order: int = 1):
    """The curve ``q(p)`` on which trajectories align: ``order=0`` is ``r(p)``,
    ``order=1`` the first-order slow manifold ``Q(p)`` (module docstring)."""
    if order not in (0, 1):
        raise ConfigError(f"curve order must be 0 (r(p)) or 1 (slow manifold), got {order!r}.")
    require_x64()
    p = _safe_p(p)
    h, hp = _h(model, p)
    r = h / p
    if order == 0:
        return r
    rp = (p * hp - h) / (p * p)
    if isinstance(model, SingleNeuron):
        sig = model.sigma.f(p)
        return r + eta * (-(r * r) * sig * sig / (p * rp))
    c, y = _bilinear_constants(model)
    even = -(c * r * h * h / 2.0) * (1.0 + r / (p * rp))
    odd = -c * h * y * (2.0 * r * r + rp * h) / (2.0 * (1.0 + p * rp / r))
    return r + eta * eta * (even + odd)


def curve_distance(model, p, q, eta, *, order: int = 1):
    """``|q - curve_q(p)|``, the alignment distance in ``q``."""
    return jnp.abs(jnp.asarray(q, jnp.float64) - curve_q(model, p, eta, order=order))


def reduced_step(model, p, q, eta):
    """One *exact* GD step in ``(p, q)`` coordinates (module docstring)."""
    require_x64()
    p, q = jnp.asarray(p, jnp.float64), jnp.asarray(q, jnp.float64)
    if isinstance(model, SingleNeuron):
        _require_single_neuron_setting(model)
        sig = model.sigma.f(p)
        return p - (2.0 / q) * sig * model.sigma.d1(p), q / (1.0 - eta * sig * sig) ** 2
    c, y = _bilinear_constants(model)
    t = model.loss_fn.grad(p)
    f = p + y
    p_new = p - (2.0 / q) * t + eta * eta * t * t * c * f
    q_new = q / (1.0 + eta * eta * t * t * c - 2.0 * eta * eta * q * t * c * f)
    return p_new, q_new


def _require_single_neuron_setting(model) -> None:
    lf = model.loss_fn
    grid = jnp.linspace(-3.0, 3.0, 61)
    is_square = bool(jnp.allclose(lf.grad(grid), grid, rtol=1e-12, atol=1e-12))
    if not is_square or model.y != 0.0:
        raise ConfigError(
            "the single-neuron alignment coordinates need the square loss and y = 0 "
            f"(got loss {lf.name!r}, y = {model.y}); build SingleNeuron(loss_type='square', y=0.0)."
        )


def check_alignment(model) -> None:
    """Raise :class:`ConfigError` unless the derivation applies to ``model``.

    Needs ``h`` odd (``l`` even, or ``sigma`` odd), ``h' > 0`` at 0 and
    ``r(p) = h(p) / p`` strictly decreasing on ``(0, 6]`` (hence ``l`` convex
    near the curve and a supercritical flip), checked on a grid.
    """
    require_x64()
    if not isinstance(model, (*_BILINEAR, SingleNeuron)):
        raise ConfigError(f"{type(model).__name__} is not a toy model; use eoslab.models.toy.")
    grid = jnp.linspace(1e-3, 6.0, 600)
    if isinstance(model, SingleNeuron):
        _require_single_neuron_setting(model)
        what = f"activation {model.activation!r}"
        s = model.sigma
        if not bool(jnp.allclose(s.f(-grid), -s.f(grid), rtol=1e-10, atol=1e-12)):
            raise ConfigError(f"{what} is not odd, so the 1-D map has no symmetric 2-cycle; use an odd activation.")
    else:
        lf = model.loss_fn
        what = f"loss {lf.name!r}"
        even = bool(jnp.allclose(lf(-grid), lf(grid), rtol=1e-10, atol=1e-12))
        convex = bool(jnp.all(lf.hess(jnp.concatenate([-grid, grid])) >= -1e-12))
        if not (even and convex):
            raise ConfigError(
                f"{what} is not even and convex, which the period-2 derivation needs; use logcosh or pseudo_huber."
            )
    h0 = bifurcation_q(model)
    r = r_curve(model, grid)
    if not (h0 > 0 and bool(jnp.all(jnp.diff(r) < 0))):
        raise ConfigError(
            f"{what} has r(p) = h(p)/p {'constant' if bool(jnp.allclose(r, r[0])) else 'not decreasing'}, "
            "so the 1-D map has no stable period-2 curve to align on; use a loss like logcosh."
        )


def period_two_orbit(model, q, *, iters: int = 200):
    """``p* > 0`` with ``r(p*) = q`` (the symmetric 2-cycle of the 1-D map), by bisection.

    ``q`` must lie in ``(r(p_max), r(0))`` with ``p_max = 50``.
    """
    require_x64()
    q = jnp.asarray(q, jnp.float64)
    lo = jnp.full_like(q, 1e-8)
    hi = jnp.full_like(q, 50.0)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = r_curve(model, mid) > q  # r decreasing: the root is to the right
        lo = jnp.where(above, mid, lo)
        hi = jnp.where(above, hi, mid)
    return 0.5 * (lo + hi)


def flip_point(model, *, lo: float = 0.05, hi: float = 20.0, iters: int = 200) -> float:
    """The ``q`` where ``d g_q / dp`` at the fixed point 0 crosses -1, found numerically
    (autodiff + bisection) -- to compare with :func:`bifurcation_q`."""
    require_x64()
    dg0 = jax.jit(jax.grad(lambda p, q: map_1d(model, p, q)))
    zero = jnp.zeros((), jnp.float64)

    def excess(q):  # dg/dp(0) + 1: negative for q < q_flip, positive above
        return float(dg0(zero, jnp.float64(q))) + 1.0

    a, b = lo, hi
    if not (excess(a) < 0 < excess(b)):
        raise ConfigError(f"no flip of the 1-D map in q in [{lo}, {hi}]; widen the bracket.")
    for _ in range(iters):
        m = 0.5 * (a + b)
        if excess(m) < 0:
            a = m
        else:
            b = m
    return 0.5 * (a + b)
