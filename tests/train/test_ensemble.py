"""The ensemble scanner: a vmap over members of a scan over steps, and the freeze of stopped members."""
import doctest

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.train import ensemble
from eoslab.train.ensemble import keep_where, scan_members


def test_docstring_example():
    assert doctest.testmod(ensemble, raise_on_error=False).failed == 0


def test_members_are_independent_scans():
    def step(c, t):
        x, a = c
        return (a * x + t, a), {"x": x, "t": t}

    carry = (jnp.arange(3.0), jnp.array([0.5, 1.0, 2.0]))
    ts = jnp.arange(5)
    (x, a), outs = scan_members(step, carry, ts)
    assert outs["x"].shape == (3, 5) and outs["t"].shape == (3, 5)
    for m in range(3):
        (xm, _), om = jax.lax.scan(step, (carry[0][m], carry[1][m]), ts)
        assert float(xm) == float(x[m])
        np.testing.assert_array_equal(om["x"], outs["x"][m])
    np.testing.assert_array_equal(a, carry[1])


def test_keep_where_freezes_leaf_by_leaf():
    new = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([[1, 1], [2, 2]])}
    old = {"a": jnp.array([9.0, 8.0]), "b": jnp.array([[9, 9], [8, 8]])}
    mask = jnp.array([True, False])
    out = keep_where(mask, new["a"], old["a"])
    np.testing.assert_array_equal(out, [1.0, 8.0])
    out = keep_where(mask[:, None], new, old)
    np.testing.assert_array_equal(out["b"], [[1, 1], [8, 8]])
