"""Tests of the step-size tuners, and the small problems they share.

Every problem is a scalar ``f(params)`` on a dict pytree of two arrays, so the
tuners are exercised on non-flat params; quadratics also expose their dense
matrix for closed-form answers.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

SHAPES = {"w": (3,), "v": (2, 2)}


def unflatten(x, shapes=SHAPES):
    """The dict pytree whose ravel (sorted keys, as ``ravel_pytree``) is the flat vector x."""
    out, i = {}, 0
    for k in sorted(shapes):
        shp = shapes[k]
        n = int(np.prod(shp))
        out[k] = jnp.reshape(x[i:i + n], shp)
        i += n
    return out


def flat(tree):
    return ravel_pytree(tree)[0]


def spd(rng, n, cond=10.0):
    """A random symmetric positive definite matrix with eigenvalues in [1, cond]."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * np.geomspace(1.0, cond, n)) @ q.T


def quadratic(seed, a=None, shapes=SHAPES, cond=10.0):
    """f(p) = 0.5 x'Ax - b'x with x = ravel(p); returns f, A, b and a random starting point."""
    rng = np.random.default_rng(seed)
    n = sum(int(np.prod(s)) for s in shapes.values())
    a = spd(rng, n, cond) if a is None else a
    b = rng.standard_normal(n)
    a_j, b_j = jnp.asarray(a), jnp.asarray(b)

    def f(p):
        x = flat(p)
        return 0.5 * x @ a_j @ x - b_j @ x

    return f, a, b, unflatten(jnp.asarray(rng.standard_normal(n)), shapes)


def mlp(seed, n=12, d_in=3, hidden=4):
    """A tiny tanh network with squared loss (non-negative, non-convex) and its initial params."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((n, d_in)))
    y = jnp.asarray(np.sin(rng.standard_normal(n)))
    params = {"w1": jnp.asarray(rng.standard_normal((d_in, hidden)) / np.sqrt(d_in)),
              "w2": jnp.asarray(rng.standard_normal(hidden) / np.sqrt(hidden))}

    def f(p):
        return 0.5 * jnp.mean((jnp.tanh(x @ p["w1"]) @ p["w2"] - y) ** 2)

    return f, params


def value_grad(f, params):
    return jax.value_and_grad(f)(params)


def neg(tree):
    return jax.tree_util.tree_map(jnp.negative, tree)


def apply(params, updates):
    return jax.tree_util.tree_map(jnp.add, params, updates)


def tuner_step(tuner, state, f, params, direction=None, **extra):
    """One update of a bare tuner along ``direction`` (default -g); returns (updates, state, value, grad)."""
    value, grad = value_grad(f, params)
    u = neg(grad) if direction is None else direction
    updates, state = tuner.update(u, state, params, value=value, grad=grad, value_fn=f, **extra)
    return updates, state, value, grad


def side_by_side(f, ours, theirs, params, steps, record):
    """``steps`` steps of two optax transforms on ``f`` from the same ``params``, in one ``lax.scan``.

    Each transform gets ``value``, ``grad`` and ``value_fn`` as optax's own line searches do;
    ``record(p_o, s_o, p_t, s_t, v_o)`` (params and states after the step, ``v_o`` the value of ours
    before it) is what the scan stacks over the steps.
    """
    def one(carry, _):
        p_o, s_o, p_t, s_t = carry
        v_o, g_o = jax.value_and_grad(f)(p_o)
        v_t, g_t = jax.value_and_grad(f)(p_t)
        u_o, s_o = ours.update(g_o, s_o, p_o, value=v_o, grad=g_o, value_fn=f)
        u_t, s_t = theirs.update(g_t, s_t, p_t, value=v_t, grad=g_t, value_fn=f)
        p_o, p_t = optax.apply_updates(p_o, u_o), optax.apply_updates(p_t, u_t)
        return (p_o, s_o, p_t, s_t), record(p_o, s_o, p_t, s_t, v_o)

    return jax.lax.scan(one, (params, ours.init(params), params, theirs.init(params)), None, length=steps)[1]
