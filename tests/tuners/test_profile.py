"""Line-loss profiles (PAL's empirical analysis) against closed forms and numpy.

Ground truth: on f(w) = 0.5 w'Aw - b'w the line loss along the unit direction
u is exactly (u'Au / 2) s^2 + (g.u) s + f(w), so the fit is exact (R^2 = 1) and
the three-point refinement lands on the closed-form minimiser -g.u / u'Au.
Off quadratics, numpy evaluates the loss and np.polyfit gives the reference
least-squares parabola and R^2.

The loss functions are module-level and most grids have N points, so that the
compiled profile is reused across tests (compilation dominates the runtime).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eoslab.errors import InputError
from eoslab.tuners.line_fit import line_minimum, parabola_fit
from eoslab.tuners.profile import LineProfile, default_steps, line_losses, line_profile, unstack_profiles
from eoslab.tuners.profile_plot import plot_line_profiles

N = 21  # grid size shared by the tests


def _params():
    return {"w": jnp.array([0.3, -0.7, 1.1]), "m": jnp.array([[0.2, -0.4], [0.9, 0.05]])}


def _direction(seed):
    flat, unravel = ravel_pytree(_params())
    return unravel(jnp.asarray(np.random.default_rng(seed).normal(size=flat.shape)))


class Quadratic:
    """f(w) = 0.5 w'Aw - b'w on the 7 parameters of _params(), and a descent direction d (not -g)."""

    def __init__(self, seed=0):
        self.params = _params()
        flat, unravel = ravel_pytree(self.params)
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(flat.size, flat.size)))
        self.a_mat = (q * np.linspace(0.5, 3.0, flat.size)) @ q.T
        self.b_vec = rng.normal(size=flat.size)
        self.x0 = np.asarray(flat)
        self.g = self.a_mat @ self.x0 - self.b_vec
        self.d = -self.g + 0.3 * rng.normal(size=flat.size)
        self.direction = unravel(jnp.asarray(self.d))
        a_j, b_j = jnp.asarray(self.a_mat), jnp.asarray(self.b_vec)

        def f(p):
            x = ravel_pytree(p)[0]
            return 0.5 * x @ a_j @ x - b_j @ x

        self.f = f

    def line(self):
        """(a, b, c) of the exact line loss along u = d/|d|, and its minimiser."""
        u = self.d / np.linalg.norm(self.d)
        a = 0.5 * u @ self.a_mat @ u
        b = self.g @ u
        c = 0.5 * self.x0 @ self.a_mat @ self.x0 - self.b_vec @ self.x0
        return a, b, c, -b / (2 * a)


@functools.lru_cache(maxsize=None)
def quadratic():
    return Quadratic()


def _r2_numpy(s, l):
    coef = np.polyfit(s, l, 2)
    res = l - np.polyval(coef, s)
    return coef, 1.0 - np.sum(res**2) / np.sum((l - l.mean()) ** 2)


def _np_cosine_loss(x):  # independent numpy twin of _cosine_loss
    return np.sum(np.cos(5.0 * x)) + 0.25 * np.sum(x**4)


def _cosine_loss(p):
    x = ravel_pytree(p)[0]
    return jnp.sum(jnp.cos(5.0 * x)) + 0.25 * jnp.sum(x**4)


def _linear_loss(p):
    return jnp.sum(ravel_pytree(p)[0])


def _log_loss(p):  # l = z^2 - log z, z = 1 + sum(w): NaN where z < 0
    z = 1.0 + jnp.sum(ravel_pytree(p)[0])
    return z**2 - jnp.log(z)


# --------------------------------------------------------------------------
# exact quadratic: closed forms
# --------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["uniform", "non-uniform"])
def test_quadratic_line_is_an_exact_parabola(grid):
    q = quadratic()
    a, b, c, s_star = q.line()
    s_max = 2.7 * s_star
    if grid == "uniform":
        prof = line_profile(q.f, q.params, q.direction, num=N, s_max=s_max)
    else:
        t = np.linspace(-1.0, 1.0, N)
        prof = line_profile(q.f, q.params, q.direction, steps=s_max * t * np.abs(t) + 0.1 * s_max * t)
    fit = prof.fit["loss"]
    assert abs(float(fit.r2) - 1.0) <= 1e-12
    np.testing.assert_allclose([fit.a, fit.b, fit.c], [a, b, c], rtol=1e-10, atol=1e-12)
    s = np.asarray(prof.steps)
    assert s[0] < s_star < s[-1] and np.min(np.abs(s - s_star)) > 1e-3  # interior, between grid points
    np.testing.assert_allclose(prof.argmin["loss"], s_star, rtol=0, atol=1e-10)
    np.testing.assert_allclose(prof.min_loss["loss"], c - b**2 / (4 * a), rtol=1e-12)
    np.testing.assert_allclose(fit.argmin, s_star, rtol=1e-10)  # PAL's vertex is exact here too
    np.testing.assert_allclose(prof.direction_norm, np.linalg.norm(q.d), rtol=1e-12)
    np.testing.assert_allclose(prof.losses["loss"], a * s**2 + b * s + c, rtol=1e-12, atol=1e-12)


def test_fit_window_keeps_the_exact_fit_on_a_quadratic():
    q = quadratic()
    a, b, c, _ = q.line()
    prof = line_profile(q.f, q.params, q.direction, num=N, s_max=2.0, fit_window=0.5)
    fit = prof.fit["loss"]
    np.testing.assert_allclose([fit.a, fit.b, fit.c], [a, b, c], rtol=1e-10)
    assert abs(float(fit.r2) - 1.0) <= 1e-12
    assert float(prof.fit_window) == 0.5


def test_default_grid_is_symmetric_and_contains_zero():
    q = quadratic()
    prof = line_profile(q.f, q.params, q.direction, num=N, s_max=0.8)
    np.testing.assert_allclose(prof.steps, np.linspace(-0.8, 0.8, N), rtol=1e-15, atol=1e-16)
    np.testing.assert_array_equal(prof.steps, -prof.steps[::-1])  # exactly symmetric
    assert float(prof.steps[N // 2]) == 0.0
    assert float(prof.losses["loss"][N // 2]) == float(q.f(q.params))
    assert np.isinf(prof.fit_window) and float(prof.unit_length) == 1.0
    np.testing.assert_array_equal(default_steps(N, 0.8), prof.steps)


# --------------------------------------------------------------------------
# non-parabolic lines: R^2 < 1, equal to numpy's
# --------------------------------------------------------------------------


@pytest.mark.parametrize("window, r2_below", [(None, 0.7), (0.75, 0.99)])
def test_non_parabolic_line_r2_matches_numpy(window, r2_below):
    params, direction = _params(), _direction(3)
    x0, d = np.asarray(ravel_pytree(params)[0]), np.asarray(ravel_pytree(direction)[0])
    u = d / np.linalg.norm(d)
    prof = line_profile(_cosine_loss, params, direction, num=N, s_max=1.5, fit_window=window)
    s = np.asarray(prof.steps)
    l_np = np.array([_np_cosine_loss(x0 + si * u) for si in s])
    np.testing.assert_allclose(prof.losses["loss"], l_np, rtol=1e-12)
    keep = np.ones_like(s, bool) if window is None else np.abs(s) <= window
    coef, r2 = _r2_numpy(s[keep], l_np[keep])
    fit = prof.fit["loss"]
    assert float(fit.r2) < r2_below
    np.testing.assert_allclose(fit.r2, r2, rtol=1e-10)
    np.testing.assert_allclose([fit.a, fit.b, fit.c], coef, rtol=1e-9, atol=1e-12)
    # the exact minimiser: at or below the least measured loss, between the neighbours of its grid point
    i = int(np.argmin(l_np))
    assert float(prof.min_loss["loss"]) <= float(jnp.min(prof.losses["loss"]))
    assert s[max(i - 1, 0)] <= float(prof.argmin["loss"]) <= s[min(i + 1, len(s) - 1)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parabola_fit_is_vectorised_least_squares(seed):
    rng = np.random.default_rng(seed)
    s = np.sort(rng.uniform(-2, 3, size=17))
    l = rng.normal(size=(4, 17)) + 2.0 * s**2 + 100.0  # a large offset costs no accuracy
    out = parabola_fit(jnp.asarray(s), jnp.asarray(l), window=1.5)
    keep = np.abs(s) <= 1.5
    for k in range(4):
        coef, r2 = _r2_numpy(s[keep], l[k, keep])
        np.testing.assert_allclose([out.a[k], out.b[k], out.c[k]], coef, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(out.r2[k], r2, rtol=1e-10)


def test_line_minimum_refines_exactly_on_any_parabola():
    s = np.array([-1.0, -0.2, 0.1, 0.35, 0.9, 2.0, 4.0])  # non-uniform
    a, b, c = np.array([1.3, 0.7]), np.array([-0.8, -2.4]), np.array([0.5, -1.0])
    l = a[:, None] * s**2 + b[:, None] * s + c[:, None]
    argmin, min_loss = line_minimum(jnp.asarray(s), jnp.asarray(l))
    np.testing.assert_allclose(argmin, -b / (2 * a), rtol=1e-12)
    np.testing.assert_allclose(min_loss, c - b**2 / (4 * a), rtol=1e-12)


def test_minimum_at_the_grid_end_is_not_refined():
    prof = line_profile(_linear_loss, _params(), _direction(4), num=N)
    l, s = np.asarray(prof.losses["loss"]), np.asarray(prof.steps)
    k = 0 if l[0] < l[-1] else -1
    assert float(prof.argmin["loss"]) == s[k] and float(prof.min_loss["loss"]) == l[k]
    assert abs(float(prof.fit["loss"].a)) < 1e-12 and abs(float(prof.fit["loss"].r2) - 1.0) < 1e-12


def test_diverged_points_are_left_out_not_an_error():
    params, direction = _params(), _direction(5)
    x0, d = np.asarray(ravel_pytree(params)[0]), np.asarray(ravel_pytree(direction)[0])
    z0, dz = 1.0 + x0.sum(), (d / np.linalg.norm(d)).sum()
    prof = line_profile(_log_loss, params, direction, num=N, s_max=2.0 * abs(z0 / dz))
    s, l = np.asarray(prof.steps), np.asarray(prof.losses["loss"])
    finite = np.isfinite(l)
    assert 3 <= finite.sum() < len(s)
    coef, r2 = _r2_numpy(s[finite], l[finite])
    fit = prof.fit["loss"]
    np.testing.assert_allclose(fit.r2, r2, rtol=1e-10)
    np.testing.assert_allclose([fit.a, fit.b, fit.c], coef, rtol=1e-9)
    # l = z^2 - log z is least at z = 1/sqrt(2): the minimiser is within one grid spacing of it
    assert abs(z0 + float(prof.argmin["loss"]) * dz - 2**-0.5) < (s[1] - s[0]) * abs(dz)
    nan_prof = line_profile(lambda p: jnp.nan * _linear_loss(p), params, direction, num=N)
    assert np.isnan(nan_prof.argmin["loss"]) and np.isinf(nan_prof.min_loss["loss"])


# --------------------------------------------------------------------------
# normalisation, several losses, jit and vmap
# --------------------------------------------------------------------------


def test_normalise_false_measures_along_the_raw_direction():
    q = quadratic()
    norm = float(np.linalg.norm(q.d))
    t = jnp.linspace(-0.5, 1.0, N)
    raw = line_profile(q.f, q.params, q.direction, steps=t, normalise=False)
    unit = line_profile(q.f, q.params, q.direction, steps=t * norm)
    np.testing.assert_allclose(raw.losses["loss"], unit.losses["loss"], rtol=1e-12)
    np.testing.assert_allclose(unit.argmin["loss"], norm * raw.argmin["loss"], rtol=1e-12)
    np.testing.assert_allclose(raw.fit["loss"].a, norm**2 * unit.fit["loss"].a, rtol=1e-10)
    np.testing.assert_allclose(raw.fit["loss"].b, norm * unit.fit["loss"].b, rtol=1e-10)
    np.testing.assert_allclose(raw.fit["loss"].c, unit.fit["loss"].c, rtol=1e-10)
    np.testing.assert_allclose(raw.r2["loss"], unit.r2["loss"], rtol=1e-12)
    np.testing.assert_allclose([raw.unit_length, unit.unit_length], [norm, 1.0], rtol=1e-12)
    np.testing.assert_allclose([raw.direction_norm, unit.direction_norm], [norm, norm], rtol=1e-12)


def _mlp_loss(x, y):
    def loss_fn(p):
        out = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"]
        return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=1))
    return loss_fn


@pytest.fixture(scope="module")
def mlp():
    """A one-hidden-layer tanh MLP: the full-batch loss (32 examples) and a minibatch loss (6 of them)."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 4)), rng.normal(size=(32, 2))
    params = {"w1": jnp.asarray(rng.normal(size=(4, 8)) / 2), "b1": jnp.asarray(0.1 * rng.normal(size=8)),
              "w2": jnp.asarray(rng.normal(size=(8, 2)) / np.sqrt(8))}
    fns = {"batch": _mlp_loss(x[:6], y[:6]), "full": _mlp_loss(x, y)}
    grad = jax.jit(jax.grad(fns["full"]))(params)
    return fns, params, jax.tree_util.tree_map(lambda g: -g, grad)


def _mlp_profile(fns, p, d, s_max=0.5):
    return line_profile(fns, p, d, num=N, s_max=s_max, fit_window=0.3)


def _directions(direction):
    """Three directions, e.g. the updates at three training steps."""
    return [jax.tree_util.tree_map(lambda x, k=k: (1.0 + 0.5 * k) * x + 0.01 * k, direction) for k in range(3)]


@pytest.fixture(scope="module")
def batched(mlp):
    """One jitted, vmapped call profiling three directions."""
    fns, params, direction = mlp
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *_directions(direction))
    return jax.jit(jax.vmap(functools.partial(_mlp_profile, fns), in_axes=(None, 0)))(params, stacked)


def _assert_profiles_close(p, q, rtol=1e-12):
    assert jax.tree_util.tree_structure(p) == jax.tree_util.tree_structure(q)
    for x, y in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(q)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-14)


def test_several_losses_in_one_call_equal_separate_calls(mlp):
    fns, params, direction = mlp
    both = line_profile(fns, params, direction, num=N, s_max=0.5, fit_window=0.3)
    assert both.names == ("batch", "full")
    assert not np.allclose(both.losses["batch"], both.losses["full"])
    for name, fn in fns.items():
        alone = line_profile(fn, params, direction, num=N, s_max=0.5, fit_window=0.3)
        np.testing.assert_allclose(both.losses[name], alone.losses["loss"], rtol=1e-12)
        _assert_profiles_close(both.fit[name], alone.fit["loss"])
        np.testing.assert_allclose(both.argmin[name], alone.argmin["loss"], rtol=1e-12)
        np.testing.assert_allclose(both.min_loss[name], alone.min_loss["loss"], rtol=1e-12)
    raw = line_losses(fns, params, direction, both.steps)
    np.testing.assert_allclose(raw["full"], both.losses["full"], rtol=1e-12)
    chunked = line_losses(fns, params, direction, both.steps, batch_size=4)
    np.testing.assert_allclose(chunked["batch"], both.losses["batch"], rtol=1e-12)


def test_jit_and_vmap_match_per_item_calls(mlp, batched):
    fns, params, direction = mlp
    prof = functools.partial(_mlp_profile, fns)
    eager = prof(params, direction)
    # params closed over (concrete inside the trace), direction traced
    _assert_profiles_close(jax.jit(lambda d: prof(params, d))(direction), eager)
    singles = unstack_profiles(batched)
    assert len(singles) == 3 and batched.steps.shape == (3, N)
    for d, single in zip(_directions(direction), singles):
        _assert_profiles_close(single, prof(params, d))
    # the grid size as a traced hyper-parameter
    by_smax = jax.vmap(lambda sm: prof(params, direction, sm))(jnp.array([0.4, 0.8]))
    _assert_profiles_close(unstack_profiles(by_smax)[1], prof(params, direction, 0.8))


def test_float32_params_give_float32_profiles():
    q = quadratic()
    p32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), q.params)
    d32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), q.direction)
    prof = line_profile(lambda p: q.f(p).astype(jnp.float32), p32, d32, num=N, s_max=1.0)
    assert prof.steps.dtype == jnp.float32 and prof.losses["loss"].dtype == jnp.float32
    assert abs(float(prof.r2["loss"]) - 1.0) < 1e-5
    a, b, c, _ = q.line()
    np.testing.assert_allclose([prof.fit["loss"].a, prof.fit["loss"].b], [a, b], rtol=1e-4)


# --------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------


def test_plot_writes_png_with_the_expected_lines(batched, tmp_path):
    import matplotlib.figure
    import matplotlib.pyplot as plt

    path = tmp_path / "figs" / "lines.png"
    fig = plot_line_profiles(batched, taken=[0.1, None, 0.2], labels=["t=0", "t=10", "t=20"], path=path)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 2  # one panel per loss (batch, full)
    for ax in fig.axes:
        assert len(ax.lines) == 3 * 3 + 2  # measured, parabola, minimum per profile; two taken steps
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    # into a given axes: one profile, one loss
    fig2, ax = plt.subplots()
    single = unstack_profiles(batched)[0]
    out = plot_line_profiles([single], names=["full"], ax=ax)
    assert out is fig2 and len(ax.lines) == 3
    plt.close(fig2)
    with pytest.raises(InputError, match="one taken step"):
        plot_line_profiles(batched, taken=[0.1])
    with pytest.raises(InputError, match="no loss named"):
        plot_line_profiles(single, names=["test"])


# --------------------------------------------------------------------------
# bad input: one sentence naming the problem
# --------------------------------------------------------------------------

BAD = {
    "structure": (lambda q: dict(direction=[q.direction["w"], q.direction["m"]]), "same pytree structure"),
    "shape": (lambda q: dict(direction={"w": q.direction["w"], "m": q.direction["m"].ravel()}), "has shape"),
    "zero": (lambda q: dict(direction=jax.tree_util.tree_map(jnp.zeros_like, q.direction)), "direction is zero"),
    "nan direction": (lambda q: dict(direction={**q.direction, "w": q.direction["w"].at[0].set(jnp.nan)}),
                      "direction contains NaN"),
    "few num": (lambda q: dict(num=2), "num=2"),
    "few steps": (lambda q: dict(steps=jnp.array([0.0, 1.0])), "at least 3"),
    "2-D steps": (lambda q: dict(steps=jnp.ones((3, 3))), "1-D grid"),
    "non-finite steps": (lambda q: dict(steps=jnp.array([0.0, 0.5, jnp.inf])), "NaN or inf"),
    "unsorted steps": (lambda q: dict(steps=jnp.array([0.0, 1.0, 0.5])), "strictly increasing"),
    "s_max": (lambda q: dict(s_max=0.0), "s_max=0.0"),
    "window": (lambda q: dict(fit_window=0.01), "holds only 1 grid point"),
    "negative window": (lambda q: dict(fit_window=-1.0), "positive scalar"),
    "batch_size": (lambda q: dict(batch_size=0), "batch_size=0"),
    "non-scalar loss": (lambda q: dict(loss_fns=lambda p: p["w"]), "real scalar"),
    "empty dict": (lambda q: dict(loss_fns={}), "non-empty dict"),
    "nan params": (lambda q: dict(params={**q.params, "w": q.params["w"].at[1].set(jnp.nan)}), "NaN or inf"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_one_sentence(case):
    q = quadratic()
    make, fragment = BAD[case]
    kwargs = {"loss_fns": q.f, "params": q.params, "direction": q.direction, "num": N, **make(q)}
    with pytest.raises(InputError, match=fragment) as err:
        line_profile(kwargs.pop("loss_fns"), kwargs.pop("params"), kwargs.pop("direction"), **kwargs)
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith(".")


def test_zero_direction_under_jit_is_nan_not_an_error():
    q = quadratic()
    zeros = jax.tree_util.tree_map(jnp.zeros_like, q.direction)
    prof = jax.jit(lambda d: line_profile(q.f, q.params, d, num=N))(zeros)
    assert np.isnan(prof.argmin["loss"]) and float(prof.direction_norm) == 0.0


def test_parabola_fit_rejects_mismatched_shapes():
    with pytest.raises(InputError, match="do not match"):
        parabola_fit(jnp.linspace(-1, 1, 5), jnp.ones(6))
    with pytest.raises(InputError, match="at least 3"):
        parabola_fit(jnp.array([0.0, 1.0]), jnp.ones(2))
    with pytest.raises(InputError, match="holds only"):
        parabola_fit(jnp.linspace(-1, 1, 5), jnp.ones(5), window=0.1)
    assert isinstance(line_profile(_cosine_loss, _params(), _direction(0), num=N), LineProfile)
