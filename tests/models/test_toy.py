"""Toy models: closed-form gradients and sharpness against dense autodiff, inits, validation."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.curvature import top_eigenpairs
from eoslab.errors import ConfigError
from eoslab.losses import SCALAR_LOSSES, ScalarLoss
from eoslab.models.activations import SMOOTH_ACTIVATIONS
from eoslab.models.toy import LogCoshProduct, SingleNeuron, TwoLayerLinear, UVModel, make_toy

EPS = np.finfo(np.float64).eps

MODELS = [
    LogCoshProduct(),
    LogCoshProduct(loss_type="pseudo_huber", x_box=(-2.0, 2.0), y_box=(-3.0, 3.0)),
    TwoLayerLinear(init_scale=(0.5, 3.0)),
    TwoLayerLinear(width=1, x=(2.0,), y=-0.5),  # no complement, no flat directions
    TwoLayerLinear(width=3, x=(1.0, -2.0, 0.5), y=2.0, loss_type="square", init_scale=(0.2, 2.0)),
    SingleNeuron(),
    SingleNeuron(activation="erf", x=-1.3, y=0.3, loss_type="logcosh", u_box=(-2.0, 2.0), v_box=(-3.0, 3.0)),
    SingleNeuron(activation="arctan", loss_type="pseudo_huber", y=1.0),
    SingleNeuron(activation="isru", x=0.7, u_box=(-3.0, 3.0)),
    UVModel(width=5, loss_type="logcosh", y=0.7, x=-1.5, init_scale=(0.5, 2.0)),
    UVModel(width=1),
    UVModel(width=7, x=2.0, y=-1.0),
]


def _ids(m):
    return f"{m.name}-{m.loss_fn.name}-{getattr(m, 'activation', '')}"


@pytest.mark.parametrize("model", MODELS, ids=_ids)
def test_closed_form_sharpness_equals_dense_hessian_top_eigenvalue(model):
    theta = model.init(jax.random.PRNGKey(3), 32)
    # far from and near the minimum: also points with large |p| and with p ~ 0
    theta = jnp.concatenate([theta, 1.7 * theta, 0.3 * theta])
    closed = np.asarray(jax.jit(jax.vmap(model.sharpness))(theta))
    dense = np.asarray(jax.jit(jax.vmap(model.sharpness_dense))(theta))
    # eigh is backward stable: |lambda_computed - lambda| <= c * dim * eps * ||H||_2 (c = 50 allowed)
    hess = np.asarray(jax.jit(jax.vmap(model.hessian))(theta))
    tol = 50 * model.dim * EPS * np.linalg.norm(hess, ord=2, axis=(-2, -1))
    assert np.all(np.abs(closed - dense) <= tol), np.max(np.abs(closed - dense) / tol)
    # the closed form also accepts batches [..., dim]
    np.testing.assert_allclose(np.asarray(model.sharpness(theta)), closed, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("model", MODELS, ids=_ids)
def test_closed_form_gradient_equals_autodiff(model):
    theta = model.init(jax.random.PRNGKey(4), 32)
    g_closed = np.asarray(jax.jit(jax.vmap(model.grad))(theta))
    g_auto = np.asarray(jax.jit(jax.vmap(jax.grad(model.loss)))(theta))
    scale = np.max(np.abs(g_auto), axis=-1, keepdims=True) + 1.0
    assert np.all(np.abs(g_closed - g_auto) <= 64 * EPS * scale * model.dim)
    gf2 = np.asarray(model.grad_f_sq(theta))
    gf2_auto = np.sum(np.asarray(jax.jit(jax.vmap(jax.grad(model.f)))(theta)) ** 2, axis=-1)
    np.testing.assert_allclose(gf2, gf2_auto, rtol=1e-13)


def test_model_functions_are_the_documented_formulas():
    rng = np.random.default_rng(0)
    lc = LogCoshProduct()
    th = np.array([0.3, 5.0])
    assert float(lc.loss(th)) == pytest.approx(math.log(math.cosh(1.5)), rel=1e-14)

    tl = TwoLayerLinear(width=3, x=(1.0, 2.0), y=0.5)
    u, v = rng.normal(size=(3, 2)), rng.normal(size=3)
    th = tl.pack(u, v)
    assert float(tl.f(th)) == pytest.approx(v @ u @ np.array([1.0, 2.0]), rel=1e-14)
    uu, vv = tl.unpack(th)
    np.testing.assert_array_equal(np.asarray(uu), u)
    np.testing.assert_array_equal(np.asarray(vv), v)

    sn = SingleNeuron(x=0.5, y=0.0)
    assert float(sn.f(np.array([0.8, 3.0]))) == pytest.approx(3.0 * math.tanh(0.4), rel=1e-14)
    assert float(sn.loss(np.array([0.8, 3.0]))) == pytest.approx(0.5 * (3.0 * math.tanh(0.4)) ** 2, rel=1e-14)

    uv = UVModel(width=4, x=2.0, y=1.0)
    uvec, vvec = rng.normal(size=4), rng.normal(size=4)
    f = 2.0 * uvec @ vvec / 2.0
    th = np.concatenate([uvec, vvec])
    assert float(uv.f(th)) == pytest.approx(f, rel=1e-14)
    assert float(uv.loss(th)) == pytest.approx(0.5 * (f - 1.0) ** 2, rel=1e-13)


def test_scalar_losses_and_activations_have_consistent_derivatives():
    p = jnp.linspace(-6.0, 6.0, 101)
    for loss in SCALAR_LOSSES.values():
        auto = ScalarLoss("auto", loss.value)  # derivatives by autodiff
        np.testing.assert_allclose(loss.grad(p), auto.grad(p), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(loss.hess(p), auto.hess(p), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(loss(p), loss(-p), rtol=0, atol=0)  # even
        assert float(loss.hess(jnp.zeros(()))) == 1.0
    # log cosh is evaluated stably far out: log cosh(p) = |p| - log 2 + O(exp(-2|p|))
    big = jnp.array([800.0, -800.0])
    np.testing.assert_allclose(SCALAR_LOSSES["logcosh"](big), 800.0 - math.log(2.0), rtol=1e-15)
    for act in SMOOTH_ACTIVATIONS.values():
        d1 = jax.vmap(jax.grad(act.f))(p)
        d2 = jax.vmap(jax.grad(jax.grad(act.f)))(p)
        np.testing.assert_allclose(act.d1(p), d1, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(act.d2(p), d2, rtol=1e-11, atol=1e-13)
        assert float(act.f(jnp.zeros(()))) == 0.0 and float(act.d1(jnp.zeros(()))) == 1.0


def test_init_boxes_and_dtype():
    lc = LogCoshProduct()
    th = np.asarray(lc.init(0, 5000))
    assert th.shape == (5000, 2) and th.dtype == np.float64
    assert th[:, 0].min() >= -0.5 and th[:, 0].max() <= 1.0
    assert th[:, 1].min() >= 4.0 and th[:, 1].max() <= 7.0
    # uniform on the box: the means are within 5 standard errors of the box centres
    for col, (lo, hi) in enumerate([(-0.5, 1.0), (4.0, 7.0)]):
        se = (hi - lo) / math.sqrt(12 * 5000)
        assert abs(th[:, col].mean() - (lo + hi) / 2) < 5 * se
    sn = SingleNeuron(u_box=(-1.0, 1.0), v_box=(6.5, 9.0))
    th = np.asarray(sn.init(jax.random.PRNGKey(1), 100))
    assert th[:, 1].min() >= 6.5 and th[:, 1].max() <= 9.0
    # same key, same draws
    np.testing.assert_array_equal(np.asarray(sn.init(1, 100)), th)


def test_two_layer_linear_init_is_balanced():
    # U_ij = rho g / sqrt(m), v_i = rho g' / sqrt(m): E|Ux|^2 = rho^2 |x|^2 and E|v|^2 = rho^2
    model = TwoLayerLinear(width=16, x=(1.0, 2.0, 2.0), init_scale=(2.0, 2.0))
    n = 4000
    th = model.init(5, n)
    u, v = model.unpack(th)
    ux2 = np.sum(np.asarray(u @ jnp.asarray(model.x)) ** 2, axis=-1)
    v2 = np.sum(np.asarray(v) ** 2, axis=-1)
    # both are rho^2 c chi^2_m / m: relative std sqrt(2 / m) per draw
    se = math.sqrt(2 / 16) / math.sqrt(n)
    assert abs(ux2.mean() / (4.0 * 9.0) - 1) < 5 * se
    assert abs(v2.mean() / 4.0 - 1) < 5 * se


def test_uv_init_is_standard_normal_by_default():
    model = UVModel(width=50)
    th = np.asarray(model.init(2, 200)).ravel()
    se = math.sqrt(2 / th.size)
    assert abs(th.var() - 1) < 5 * se and abs(th.mean()) < 5 / math.sqrt(th.size)


def test_float64_is_required():
    model = LogCoshProduct()
    with jax.enable_x64(False):
        with pytest.raises(ConfigError, match="x64"):
            model.init(0, 4)
        with pytest.raises(ConfigError, match="x64"):
            model.sharpness(np.array([0.1, 5.0]))


@pytest.mark.parametrize(
    "kind, kwargs, match",
    [
        ("logcosh2", {"x_box": (1.0, -1.0)}, "low <= high"),
        ("logcosh2", {"y_box": (0.0, float("inf"))}, "finite"),
        ("logcosh2", {"loss_type": "hinge"}, "unknown toy loss"),
        ("two_layer_linear", {"x": (0.0, 0.0)}, "nonzero"),
        ("two_layer_linear", {"width": 0}, "positive integer"),
        ("two_layer_linear", {"y": float("nan")}, "finite"),
        ("single_neuron", {"activation": "relu"}, "unknown single-neuron activation"),
        ("single_neuron", {"x": 0.0}, "nonzero"),
        ("uv", {"width": 2.5}, "positive integer"),
        ("uv", {"init_scale": (1.0,)}, "pair"),
        ("mlp", {}, "unknown toy model"),
        ("uv", {"depth": 3}, "unknown option"),
    ],
)
def test_bad_model_options_raise_config_error(kind, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_toy(kind, **kwargs)


def test_bad_parameters_raise_config_error():
    model = TwoLayerLinear()
    with pytest.raises(ConfigError, match="last dimension"):
        model.sharpness(np.zeros(3))
    with pytest.raises(ConfigError, match="non-finite"):
        model.check_params(np.full((2, model.dim), np.nan))
    with pytest.raises(ConfigError, match="positive integer"):
        model.init(0, 0)


@pytest.mark.parametrize("model", [LogCoshProduct(), TwoLayerLinear(width=3), SingleNeuron(), UVModel(width=4)],
                         ids=_ids)
def test_toy_models_follow_the_model_protocol(model):
    # init from an integer seed or a key; without n one initialisation [dim], the first of init(key, 1)
    one = model.init(5)
    assert one.shape == (model.dim,) and one.dtype == model.dtype == np.float64
    np.testing.assert_array_equal(one, model.init(jax.random.PRNGKey(5), 1)[0])
    assert model.num_params(one) == model.dim
    shapes = model.param_shapes()
    assert shapes.shape == (model.dim,) and shapes.dtype == np.float64
    # loss is a scalar loss_fn(params) for the curvature code: its top eigenvalue is the closed form
    top = top_eigenpairs(model.loss, one, 1)
    assert float(top.eigenvalues[0]) == pytest.approx(float(model.sharpness(one)), rel=1e-8, abs=1e-10)
