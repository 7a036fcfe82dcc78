"""Initialisations (pytorch, he, lecun, kalra, zero_last) and parameterisations (ntk, mup)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.models import make_model

from .test_base import small

N_IN, WIDTH, K = 400, 1000, 100  # hidden kernel: 400k draws, last kernel: 100k draws


def check_moments(w, var, *, uniform):
    """Mean, variance (and kurtosis) of iid draws within 5 standard errors."""
    w = np.asarray(w, np.float64).ravel()
    n = w.size
    # std of the sample variance: sqrt((m4 - var^2) / n), m4 = 1.8 var^2 (uniform), 3 var^2 (normal)
    rel = math.sqrt((0.8 if uniform else 2.0) / n)
    assert abs(w.mean()) < 5 * math.sqrt(var / n)
    assert abs(w.var() / var - 1) < 5 * rel, (w.var(), var)
    if n > 50_000:  # kurtosis 1.8 (uniform) vs 3 (normal); its std is < sqrt(24 / n) = 0.02
        kurt = np.mean(w**4) / w.var() ** 2
        assert abs(kurt - (1.8 if uniform else 3.0)) < 0.1


def wide(init, dtype=jnp.float32, **kw):
    model = make_model("fc-relu", input_shape=(N_IN,), num_outputs=K, widths=(WIDTH,), init=init, dtype=dtype, **kw)
    return model.init(jax.random.PRNGKey(1))


def test_pytorch_default_dense():
    p = wide("pytorch")
    for layer, fan_in in (("dense_0", N_IN), ("dense_1", WIDTH)):
        bound = 1 / math.sqrt(fan_in)
        for leaf in (p[layer]["kernel"], p[layer]["bias"]):
            assert np.max(np.abs(leaf)) <= bound and np.max(np.abs(leaf)) > 0.98 * bound
        check_moments(p[layer]["kernel"], 1 / (3 * fan_in), uniform=True)
    check_moments(p["dense_0"]["bias"], 1 / (3 * N_IN), uniform=True)


def test_pytorch_default_conv():
    p = make_model("cnn-relu", input_shape=(8, 8, 3), num_outputs=10).init(jax.random.PRNGKey(2))
    kernel, bias = p["conv_1"]["kernel"], p["conv_1"]["bias"]
    fan_in = 3 * 3 * 32
    assert kernel.shape == (3, 3, 32, 32)
    assert np.max(np.abs(kernel)) <= 1 / math.sqrt(fan_in) and np.max(np.abs(bias)) <= 1 / math.sqrt(fan_in)
    check_moments(kernel, 1 / (3 * fan_in), uniform=True)
    assert np.max(np.abs(p["conv_0"]["kernel"])) > 0.95 / math.sqrt(27)  # first conv: fan-in 27


@pytest.mark.parametrize("init,hidden,last", [("he", 2.0, 2.0), ("lecun", 1.0, 1.0), ("kalra", 2.0, 1.0)])
def test_gaussian_inits(init, hidden, last):
    p = wide(init)
    check_moments(p["dense_0"]["kernel"], hidden / N_IN, uniform=False)
    check_moments(p["dense_1"]["kernel"], last / WIDTH, uniform=False)
    assert not np.any(p["dense_0"]["bias"]) and not np.any(p["dense_1"]["bias"])


@pytest.mark.parametrize("name", ["fc-tanh", "cnn-relu", "resnet", "resnet-bn", "deep-linear"])
def test_zero_last_gives_zero_outputs(name):
    model = small(name, zero_last=True)
    params = model.init(0)
    out = model.apply(params, jax.random.normal(jax.random.PRNGKey(0), (4, *model.input_shape)))
    assert np.all(np.asarray(out) == 0)
    last = params["head"] if "head" in params else params[f"dense_{len(params) - 1}"]
    assert all(not np.any(leaf) for leaf in jax.tree_util.tree_leaves(last))
    nonzero = [np.any(leaf) for k, v in params.items() if v is not last for leaf in jax.tree_util.tree_leaves(v)]
    assert any(nonzero)


# ---- parameterisations ------------------------------------------------------

SIZES = (6, 9, 7)  # input, hidden, hidden; then 4 outputs


def fc(param, init="pytorch", **kw):
    return make_model("fc-tanh", input_shape=(SIZES[0],), num_outputs=4, widths=SIZES[1:], init=init,
                      param=param, dtype=jnp.float64, **kw)


def fan_ins(params):
    return {layer: params[layer]["kernel"].shape[0] for layer in params}


X = np.random.default_rng(0).normal(size=(5, SIZES[0]))


@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_ntk_forward_equals_standard_with_rescaled_weights(beta):
    std, ntk = fc("standard"), fc("ntk", bias_scale=beta)
    p = std.init(jax.random.PRNGKey(3))
    mapped = {layer: {"kernel": v["kernel"] * math.sqrt(v["kernel"].shape[0]), "bias": v["bias"] / beta}
              for layer, v in p.items()}
    np.testing.assert_allclose(ntk.apply(mapped, X), std.apply(p, X), rtol=1e-12, atol=1e-12)
    # and ntk's own init is exactly that map of the standard draw: same function at init
    q = ntk.init(jax.random.PRNGKey(3))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), q, mapped)
    np.testing.assert_allclose(ntk.apply(q, X), std.apply(p, X), rtol=1e-12, atol=1e-12)


def test_ntk_weights_have_unit_fan_in_scale():
    p = wide("lecun", param="ntk")
    check_moments(p["dense_0"]["kernel"], 1.0, uniform=False)
    check_moments(p["dense_1"]["kernel"], 1.0, uniform=False)
    q = wide("pytorch", param="ntk")
    assert 0.98 < np.max(np.abs(q["dense_0"]["kernel"])) <= 1.0


def test_mup_is_standard_with_output_scaled_by_one_over_sqrt_fan_in():
    std, mup = fc("standard"), fc("mup")
    p = std.init(jax.random.PRNGKey(4))
    q = mup.init(jax.random.PRNGKey(4))
    m_in, m_hid, n_out = SIZES[1], SIZES[2], SIZES[2]
    # abc form: stored = effective / multiplier (input: sqrt(m); hidden biases: sqrt(m); output: standard)
    expected = {
        "dense_0": {"kernel": p["dense_0"]["kernel"] / math.sqrt(m_in), "bias": p["dense_0"]["bias"] / math.sqrt(m_in)},
        "dense_1": {"kernel": p["dense_1"]["kernel"], "bias": p["dense_1"]["bias"] / math.sqrt(m_hid)},
        "dense_2": p["dense_2"],
    }
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), q, expected)
    shrunk = {**p, "dense_2": {"kernel": p["dense_2"]["kernel"] / math.sqrt(n_out), "bias": p["dense_2"]["bias"]}}
    np.testing.assert_allclose(mup.apply(q, X), std.apply(shrunk, X), rtol=1e-12, atol=1e-12)


def test_mup_without_hidden_layers_is_standard():
    std = make_model("fc-tanh", input_shape=(5,), num_outputs=3, widths=(), param="standard")
    mup = make_model("fc-tanh", input_shape=(5,), num_outputs=3, widths=(), param="mup")
    p = std.init(0)
    np.testing.assert_array_equal(mup.init(0)["dense_0"]["kernel"], p["dense_0"]["kernel"])
    np.testing.assert_array_equal(mup.apply(p, X[:, :5]), std.apply(p, X[:, :5]))


def first_layer_change(param, width):
    """RMS change of the first hidden pre-activation after one SGD step (lr 1) on f_0(x)."""
    model = make_model("fc-tanh", input_shape=(8,), num_outputs=1, widths=(width,), init="lecun",
                       param=param, bias=False)
    x = jnp.ones((1, 8)) / math.sqrt(8)

    def h1(p):
        _, state = model.module.apply({"params": p}, x, capture_intermediates=True)
        return state["intermediates"]["dense_0"]["__call__"][0]

    @jax.jit
    def change(params):
        grad = jax.grad(lambda p: model.apply(p, x)[0, 0])(params)
        stepped = jax.tree_util.tree_map(lambda p, g: p - g, params, grad)
        return jnp.sqrt(jnp.mean(jnp.square(h1(stepped) - h1(params))))

    return float(change(model.init(jax.random.PRNGKey(5))))


def test_mup_features_move_by_a_width_independent_amount():
    # maximal update: Delta h = Theta(1) in muP, Theta(1/sqrt(n)) in NTK (Yang & Hu 2021)
    mup = first_layer_change("mup", 2048) / first_layer_change("mup", 128)
    ntk = first_layer_change("ntk", 2048) / first_layer_change("ntk", 128)
    assert 0.6 < mup < 1.6, mup
    assert 0.15 < ntk < 0.4, ntk  # 1/sqrt(16) = 0.25


def test_deep_linear_supports_ntk_and_mup():
    for param in ("ntk", "mup"):
        model = make_model("deep-linear", input_shape=(3,), num_outputs=2, widths=(4, 4), param=param)
        assert model.apply(model.init(0), jnp.ones((2, 3))).shape == (2, 2)


def test_float64_draws_are_float64():
    p = wide("he", dtype=jnp.float64)
    assert p["dense_0"]["kernel"].dtype == jnp.float64
    check_moments(p["dense_0"]["kernel"], 2 / N_IN, uniform=False)


def test_init_is_reproducible_and_key_dependent():
    model = small("fc-tanh")
    a, b, c = model.init(jax.random.PRNGKey(0)), model.init(jax.random.PRNGKey(0)), model.init(jax.random.PRNGKey(1))
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    assert not np.allclose(a["dense_0"]["kernel"], c["dense_0"]["kernel"])
    assert not np.allclose(a["dense_0"]["kernel"].ravel()[:35], a["dense_1"]["kernel"].ravel()[:35])
