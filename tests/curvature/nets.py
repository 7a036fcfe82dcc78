"""Small float64 test problems with dense Hessians as ground truth."""
import functools

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def mlp_problem(seed=0, n=64, d_in=16, widths=(40, 40), d_out=4, act="tanh", loss="mse", scale=1.0):
    """A random MLP loss on random data: returns (loss_fn, params)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 2 + 2 * (len(widths) + 1))
    x = jax.random.normal(keys[0], (n, d_in), jnp.float64)
    if loss == "mse":
        y = jax.random.normal(keys[1], (n, d_out), jnp.float64)
    else:
        y = jax.nn.one_hot(jax.random.randint(keys[1], (n,), 0, d_out), d_out, dtype=jnp.float64)
    sizes = (d_in, *widths, d_out)
    params = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = scale * jax.random.normal(keys[2 + 2 * i], (a, b), jnp.float64) / jnp.sqrt(a)
        bias = 0.1 * jax.random.normal(keys[3 + 2 * i], (b,), jnp.float64)
        params.append({"w": w, "b": bias})
    f = {"tanh": jnp.tanh, "relu": jax.nn.relu}[act]

    def loss_fn(p):
        h = x
        for layer in p[:-1]:
            h = f(h @ layer["w"] + layer["b"])
        out = h @ p[-1]["w"] + p[-1]["b"]
        if loss == "mse":
            return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=1))
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(out), axis=1))

    return loss_fn, params


def dense_hessian(loss_fn, params):
    flat, unravel = ravel_pytree(params)
    return jax.jit(jax.hessian(lambda v: loss_fn(unravel(v))))(flat)


@functools.lru_cache(maxsize=None)
def cached_problem(**kwargs):
    loss_fn, params = mlp_problem(**kwargs)
    h = dense_hessian(loss_fn, params)
    evals, evecs = jnp.linalg.eigh(h)
    return loss_fn, params, h, evals, evecs


def designed_quadratic(eigenvalues, seed=0, cubic=0.0):
    """L(theta) = 0.5 theta^T A theta (+ cubic * sum(tanh(theta)^3)) with A = U diag(eigenvalues) U^T.

    The cubic term vanishes to second order at theta = 0, so the Hessian at
    params = 0 is exactly A; it makes the loss non-quadratic elsewhere.
    """
    lam = jnp.asarray(eigenvalues, jnp.float64)
    d = lam.shape[0]
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(seed), (d, d), jnp.float64))
    a = (q * lam) @ q.T

    def loss_fn(p):
        t = p["theta"]
        return 0.5 * t @ a @ t + cubic * jnp.sum(jnp.tanh(t) ** 3)

    return loss_fn, {"theta": jnp.zeros(d, jnp.float64)}, a
