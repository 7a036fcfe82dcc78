"""Deep linear networks are the product of their weight matrices."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.models import end_to_end_matrix, make_model

X = np.random.default_rng(1).normal(size=(6, 5))


def test_deep_linear_is_the_product_of_its_kernels():
    model = make_model("deep-linear", input_shape=(5,), num_outputs=2, widths=(4, 3), dtype=jnp.float64)
    p = model.init(jax.random.PRNGKey(0))
    product = np.asarray(p["dense_0"]["kernel"]) @ np.asarray(p["dense_1"]["kernel"]) @ np.asarray(p["dense_2"]["kernel"])
    np.testing.assert_allclose(model.apply(p, X), X @ product, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(end_to_end_matrix(model, p), product, rtol=1e-12, atol=1e-12)


def test_deep_linear_ntk_matrix_includes_multipliers_and_biases_are_affine():
    model = make_model("deep-linear", input_shape=(5,), num_outputs=2, widths=(4,), param="ntk", bias=True,
                       dtype=jnp.float64)
    p = model.init(jax.random.PRNGKey(1))
    w0, w1 = (np.asarray(p[f"dense_{i}"]["kernel"]) for i in range(2))
    b0, b1 = (np.asarray(p[f"dense_{i}"]["bias"]) for i in range(2))
    m = w0 @ w1 / math.sqrt(5 * 4)
    np.testing.assert_allclose(end_to_end_matrix(model, p), m, rtol=1e-12, atol=1e-12)
    expected = (X @ w0 / math.sqrt(5) + b0) @ w1 / math.sqrt(4) + b1
    np.testing.assert_allclose(model.apply(p, X), expected, rtol=1e-12, atol=1e-12)
