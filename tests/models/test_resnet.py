"""ResNets: batch norm uses the statistics of the batch passed to apply."""
import jax
import jax.numpy as jnp
import numpy as np

from eoslab.models import make_model
from eoslab.models.resnet import BatchNorm


def batches():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 3))
    return x, x.at[1:].multiply(3.0).at[1:].add(1.0)  # same first example, other examples changed


def test_batch_norm_output_depends_on_the_batch():
    x, y = batches()
    model = make_model("resnet-bn", input_shape=(8, 8, 3), num_outputs=3, width=4)
    p = model.init(0)
    a, b = model.apply(p, x), model.apply(p, y)
    assert not np.allclose(a[0], b[0], atol=1e-4)
    np.testing.assert_array_equal(model.apply(p, x), a)  # deterministic in (params, x)


def test_resnet_without_bn_is_per_example():
    x, y = batches()
    model = make_model("resnet", input_shape=(8, 8, 3), num_outputs=3, width=4)
    p = model.init(0)
    a, b = model.apply(p, x), model.apply(p, y)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[1], b[1])


def test_batch_norm_normalises_over_batch_and_space():
    x = 5.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(1), (6, 4, 4, 2), jnp.float64)
    bn = BatchNorm(dtype=jnp.float64)
    params = bn.init(jax.random.PRNGKey(0), x)["params"]
    assert set(params) == {"scale", "shift"}
    y = bn.apply({"params": params}, x)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1.0, rtol=1e-4)
    z = bn.apply({"params": {"scale": jnp.array([2.0, 1.0]), "shift": jnp.array([0.0, -1.0])}}, x)
    np.testing.assert_allclose(z, y * jnp.array([2.0, 1.0]) + jnp.array([0.0, -1.0]), rtol=1e-12, atol=1e-12)


def test_resnet_options():
    x, _ = batches()
    base = make_model("resnet", input_shape=(8, 8, 3), num_outputs=3, width=4)
    tanh = make_model("resnet", input_shape=(8, 8, 3), num_outputs=3, width=4, activation="tanh")
    p = base.init(0)
    assert not np.allclose(base.apply(p, x), tanh.apply(p, x))
    deep = make_model("resnet-bn", input_shape=(8, 8, 3), num_outputs=3, width=4, blocks=2)
    q = deep.init(0)
    assert "stage2_block1" in q and "conv_shortcut" not in q["stage2_block1"]
    assert q["stage2_block0"]["conv_shortcut"]["kernel"].shape == (1, 1, 8, 16)
