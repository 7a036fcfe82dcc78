"""Model wrapper, registry, shapes, parameter counts, dtypes and input errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.errors import ConfigError, InputError
from eoslab.models import ACTIVATIONS, available_models, make_model

IMAGE = (8, 8, 3)
FLAT = (12,)


def small(name, **kw):
    if name.startswith(("cnn", "resnet")):
        kw.setdefault("input_shape", IMAGE)
        if name.startswith("resnet"):
            kw.setdefault("width", 4)
        if name.startswith("cnn"):
            kw.setdefault("channels", (4, 4))
    else:
        kw.setdefault("input_shape", FLAT)
        kw.setdefault("widths", (7, 5))
    kw.setdefault("num_outputs", 3)
    return make_model(name, **kw)


def test_registry_lists_every_family_and_activation():
    names = available_models()
    for act in ("tanh", "relu", "elu", "gelu", "softplus", "hardtanh"):
        assert f"fc-{act}" in names and f"cnn-{act}" in names
    assert {"resnet", "resnet-bn", "deep-linear"} <= set(names)
    assert len(names) == 2 * len(ACTIVATIONS) + 3


@pytest.mark.parametrize("name", available_models())
def test_output_shape_and_plain_dict_params(name):
    model = small(name)
    params = model.init(jax.random.PRNGKey(0))
    assert type(params) is dict and "batch_stats" not in params and "params" not in params
    x = jax.random.normal(jax.random.PRNGKey(1), (6, *model.input_shape))
    out = model.apply(params, x)
    assert out.shape == (6, 3)
    assert out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    assert model.num_params(params) == sum(p.size for p in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize("widths", [(), (5,), (4, 4, 4, 4, 4)])
def test_fc_any_depth(widths):
    model = make_model("fc-relu", input_shape=(3, 2), num_outputs=2, widths=widths)
    params = model.init(0)
    assert len(params) == len(widths) + 1
    assert model.apply(params, jnp.ones((4, 3, 2))).shape == (4, 2)


def test_activations_differ():
    x = jax.random.normal(jax.random.PRNGKey(1), (6, *FLAT))
    outs = {}
    for act in ACTIVATIONS:
        model = small(f"fc-{act}")
        outs[act] = np.asarray(model.apply(model.init(jax.random.PRNGKey(0)), x))  # same params for all
    acts = list(outs)
    for i, a in enumerate(acts):
        for b in acts[i + 1:]:
            assert not np.allclose(outs[a], outs[b]), (a, b)


def test_gelu_is_exact_erf_gelu():
    z = jnp.linspace(-3, 3, 13)
    from scipy.special import erf

    expected = 0.5 * np.asarray(z) * (1 + erf(np.asarray(z) / np.sqrt(2)))
    np.testing.assert_allclose(ACTIVATIONS["gelu"](z), expected, rtol=1e-6, atol=1e-7)


def test_fc_param_count():
    model = make_model("fc-tanh", input_shape=(64,), num_outputs=10, widths=(200, 200))
    assert model.num_params(model.param_shapes()) == 64 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10
    model = make_model("fc-tanh", input_shape=(64,), num_outputs=10, widths=(200, 200), bias=False)
    assert model.num_params(model.param_shapes()) == 64 * 200 + 200 * 200 + 200 * 10


def test_cnn_param_count():
    # Cohen et al.'s CNN on 32x32x3 images, 10 classes
    model = make_model("cnn-relu", input_shape=(32, 32, 3), num_outputs=10)
    conv = 3 * 3 * 3 * 32 + 32 + 3 * 3 * 32 * 32 + 32
    assert model.num_params(model.param_shapes()) == conv + 8 * 8 * 32 * 10 + 10
    model = make_model("cnn-relu", input_shape=(32, 32, 3), num_outputs=10, bias=False)
    assert model.num_params(model.param_shapes()) == 3 * 3 * 3 * 32 + 3 * 3 * 32 * 32 + 8 * 8 * 32 * 10


def resnet_count(c, w, k, blocks, bn, bias):
    """Hand count: 3x3 convs, 1x1 shortcuts, 2 params per BN channel, linear head."""
    conv_b = bias and not bn
    conv = lambda cin, cout, ks: ks * ks * cin * cout + (cout if conv_b else 0) + (2 * cout if bn else 0)
    total = conv(c, w, 3)
    cin = w
    for stage in range(3):
        cout = w * 2**stage
        for b in range(blocks):
            total += conv(cin, cout, 3) + conv(cout, cout, 3)
            if cin != cout:
                total += conv(cin, cout, 1)
            cin = cout
    return total + cin * k + (k if bias else 0)


@pytest.mark.parametrize("name,blocks,bias", [("resnet", 1, True), ("resnet-bn", 1, True),
                                               ("resnet", 2, False), ("resnet-bn", 2, False)])
def test_resnet_param_count(name, blocks, bias):
    model = make_model(name, input_shape=(8, 8, 3), num_outputs=10, width=4, blocks=blocks, bias=bias)
    assert model.num_params(model.param_shapes()) == resnet_count(3, 4, 10, blocks, name == "resnet-bn", bias)
    if blocks == 1 and bias:  # the formula itself, checked by hand once
        assert resnet_count(3, 4, 10, 1, name == "resnet-bn", True) == {"resnet": 5130, "resnet-bn": 5214}[name]


def test_resnet_default_is_small():
    model = make_model("resnet", input_shape=(32, 32, 3), num_outputs=10)
    assert model.num_params(model.param_shapes()) == resnet_count(3, 16, 10, 1, False, True) < 100_000


@pytest.mark.parametrize("name", available_models())
def test_bias_false_has_no_bias_leaves(name):
    params = small(name, bias=False).param_shapes()
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    assert paths and not any("bias" in p for p in paths)
    with_bias = [jax.tree_util.keystr(p) for p, _ in
                 jax.tree_util.tree_leaves_with_path(small(name, bias=True).param_shapes())]
    assert any("bias" in p for p in with_bias)


def test_deep_linear_has_no_bias_by_default():
    params = make_model("deep-linear", input_shape=(4,), num_outputs=2, widths=(3,)).init(0)
    assert set(params["dense_0"]) == {"kernel"}


def test_cnn_pooling_options_and_2d_inputs():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8))
    mx = make_model("cnn-relu", input_shape=(8, 8), num_outputs=2, channels=(4, 4))
    av = make_model("cnn-relu", input_shape=(8, 8), num_outputs=2, channels=(4, 4), pool="avg")
    params = mx.init(0)
    assert params["conv_0"]["kernel"].shape == (3, 3, 1, 4)
    a, b = mx.apply(params, x), av.apply(params, x)
    assert a.shape == b.shape == (3, 2) and not np.allclose(a, b)


@pytest.mark.parametrize("name", ["fc-tanh", "cnn-elu", "resnet", "resnet-bn", "deep-linear"])
def test_float64_params_and_outputs(name):
    # shapes and dtypes only (no compilation); float64 numerics: test_init, test_linear
    model = small(name, dtype=jnp.float64)
    shapes = model.param_shapes()
    assert all(p.dtype == jnp.float64 for p in jax.tree_util.tree_leaves(shapes))
    out = jax.eval_shape(model.apply, shapes, jax.ShapeDtypeStruct((2, *model.input_shape), jnp.float32))
    assert out.dtype == jnp.float64 and out.shape == (2, 3)


def test_float64_without_x64_is_a_config_error():
    with jax.enable_x64(False):
        with pytest.raises(ConfigError, match="jax_enable_x64"):
            make_model("fc-tanh", input_shape=(3,), num_outputs=1, dtype=jnp.float64)


def test_vmap_over_params():
    model = make_model("fc-tanh", input_shape=FLAT, num_outputs=3, widths=())
    params = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(0), 4))
    out = jax.vmap(model.apply, in_axes=(0, None))(params, jnp.ones((5, *FLAT)))
    assert out.shape == (4, 5, 3)
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: make_model("fc-tahn", input_shape=(3,), num_outputs=1), r"unknown model 'fc-tahn'.*fc-tanh"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=1, init="xavier"), r"unknown init 'xavier'.*pytorch, he, lecun, kalra"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=1, param="mu"), r"unknown param 'mu'.*standard, ntk, mup"),
        (lambda: make_model("cnn-relu", input_shape=(8, 8, 1), num_outputs=1, param="ntk"), r"not supported by cnn-relu.*standard"),
        (lambda: make_model("resnet", input_shape=(8, 8, 1), num_outputs=1, param="mup"), r"not supported by resnet"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=1, pool="max"), r"unknown option\(s\) pool for fc-tanh.*bias_scale"),
        (lambda: make_model("cnn-relu", input_shape=(8, 8, 1), num_outputs=1, widths=(3,)), r"cnn-relu does not take widths"),
        (lambda: make_model("cnn-relu", input_shape=(8, 8, 1), num_outputs=1, pool="sum"), r"unknown pool 'sum'.*max, avg"),
        (lambda: make_model("cnn-relu", input_shape=(64,), num_outputs=1), r"needs image inputs.*height, width"),
        (lambda: make_model("cnn-relu", input_shape=(2, 2, 1), num_outputs=1), r"at least 4x4"),
        (lambda: make_model("resnet", input_shape=(8, 8, 1), num_outputs=1, activation="swish"), r"unknown activation 'swish'"),
        (lambda: make_model("resnet", input_shape=(8, 8, 1), num_outputs=1, blocks=0), r"blocks must be a positive integer"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=1, widths=(3, 0)), r"widths must be a sequence of positive integers"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=0), r"num_outputs must be a positive integer"),
        (lambda: make_model("fc-tanh", input_shape=(), num_outputs=1), r"input_shape must be"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=1, dtype=jnp.float16), r"unsupported model dtype"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=1, bias_scale=2.0), r"bias_scale.*param='ntk'"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=1, param="ntk", bias_scale=0), r"bias_scale .* must be a positive number"),
        (lambda: make_model("deep-linear", input_shape=(3,), num_outputs=1, dtype=None), r"unsupported model dtype None"),
        (lambda: make_model("fc-tanh", input_shape=(3,), num_outputs=1, bias="yes"), r"bias and zero_last must be true or false"),
    ],
)
def test_bad_options_raise_one_sentence_config_errors(call, match):
    with pytest.raises(ConfigError, match=match) as info:
        call()
    message = str(info.value).replace("e.g. ", "")
    assert isinstance(info.value, ValueError)
    assert message.count(". ") == 0 and message.endswith(".") and ";" in message


def test_wrong_input_shape_is_an_input_error():
    model = small("fc-tanh")
    with pytest.raises(InputError, match=r"expects inputs of shape \[N, 12\]"):
        model.apply(model.init(0), jnp.ones((2, 11)))
