"""Trajectory alignment: the 1-D map, its curves, the exact reduced map, ensembles, reproduction."""
import json
import math
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.errors import ConfigError
from eoslab.experiments import alignment as al
from eoslab.losses import ScalarLoss
from eoslab.models.toy import LogCoshProduct, SingleNeuron, TwoLayerLinear, UVModel
from eoslab.store import RunStore

EPS = np.finfo(np.float64).eps
ROOT = Path(__file__).resolve().parents[2]

MAP_MODELS = [
    LogCoshProduct(),
    LogCoshProduct(loss_type="pseudo_huber"),
    SingleNeuron(activation="tanh"),
    SingleNeuron(activation="arctan"),
    SingleNeuron(activation="isru"),
    SingleNeuron(activation="erf"),
]


def _id(m):
    return f"{m.name}-{getattr(m, 'activation', m.loss_fn.name)}"


# --------------------------------------------------------------------------
# The 1-D map: flip bifurcation and period-2 orbit
# --------------------------------------------------------------------------


@pytest.mark.parametrize("model", MAP_MODELS, ids=_id)
def test_flip_bifurcation_is_where_the_map_derivative_crosses_minus_one(model):
    q_flip = al.flip_point(model)  # numerical: autodiff + bisection on dg/dp(0) + 1
    # analytic: r(0) = h'(0) = l''(0) (or sigma'(0)^2) = 1 for every loss/activation here
    assert q_flip == pytest.approx(al.bifurcation_q(model), abs=1e-12)
    assert q_flip == pytest.approx(1.0, abs=1e-12)
    # the second iterate's derivative at the fixed point is g'(0)^2 and crosses +1 there
    d2 = jax.grad(lambda p, q: al.map_1d(model, al.map_1d(model, p, q), q))
    zero = jnp.zeros(())
    below, above = float(d2(zero, q_flip * (1 - 1e-3))), float(d2(zero, q_flip * (1 + 1e-3)))
    assert below > 1.0 > above
    # below the flip iterates settle on a 2-cycle of amplitude p* > 0, above it they go to 0
    for q, expect_cycle in ((0.9 * q_flip, True), (1.1 * q_flip, False)):
        p = jax.jit(lambda p0: jax.lax.fori_loop(0, 3000, lambda i, p: al.map_1d(model, p, q), p0))(0.3)
        if expect_cycle:
            assert abs(float(p)) == pytest.approx(float(al.period_two_orbit(model, q)), rel=1e-9)
        else:
            assert abs(float(p)) < 1e-12


def _stability_edge(model):
    """``p_c > 0`` where ``h'`` changes sign (sigma sigma' peaks), by bisection; inf if never."""
    if not isinstance(model, SingleNeuron):
        return math.inf  # l' = tanh or p / sqrt(1 + p^2): h' = l'' > 0 everywhere
    s = model.sigma
    hp = lambda z: float(s.d1(z) ** 2 + s.f(z) * s.d2(z))  # noqa: E731
    lo, hi = 1e-3, 5.0
    assert hp(lo) > 0 > hp(hi)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if hp(mid) > 0 else (lo, mid)
    return lo


@pytest.mark.parametrize("model", MAP_MODELS, ids=_id)
def test_period_two_orbit_lies_on_the_curve_and_is_stable(model):
    # (g o g)'(p*) = g'(p*)^2 = (1 - 2 p h'(p) / h(p))^2 with q = r(p): in [0, 1) iff 0 < p h'/h < 1,
    # i.e. r' < 0 and h' > 0.  For the losses that is every q in (0, 1); for sigma sigma' only up
    # to the peak p_c of h, i.e. for q > r(p_c).
    p_c = _stability_edge(model)
    q_c = float(al.r_curve(model, p_c)) if math.isfinite(p_c) else 0.0
    qs = jnp.linspace(max(q_c + 0.01, 0.2), 0.98, 30)
    p_star = al.period_two_orbit(model, qs)
    # on the derived curve q = r(p) = h(p)/p
    np.testing.assert_allclose(al.r_curve(model, p_star), qs, rtol=1e-12)
    # and it is a genuine 2-cycle of the 1-D map: g(p*) = -p*, g(g(p*)) = p*
    g1 = al.map_1d(model, p_star, qs)
    np.testing.assert_allclose(g1, -p_star, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(al.map_1d(model, g1, qs), p_star, rtol=1e-9, atol=1e-12)
    dg = jax.vmap(jax.grad(al.map_1d, argnums=1), in_axes=(None, 0, 0))(model, p_star, qs)
    mult = np.asarray(dg) ** 2
    assert np.all((mult >= 0) & (mult < 1))  # stable, and a square: never -1
    if math.isfinite(p_c):  # just past the peak of sigma sigma' the 2-cycle is unstable
        q_past = q_c - 0.01
        p_past = al.period_two_orbit(model, q_past)
        assert float(jax.grad(al.map_1d, argnums=1)(model, p_past, q_past)) ** 2 > 1


def test_period_two_orbit_of_log_cosh_is_tanh_p_over_p():
    model = LogCoshProduct()
    p = np.linspace(0.05, 4.0, 50)
    q = np.tanh(p) / p
    np.testing.assert_allclose(al.period_two_orbit(model, q), p, rtol=1e-10)


# --------------------------------------------------------------------------
# Exact reduced dynamics and the corrected curve
# --------------------------------------------------------------------------


REDUCED_MODELS = [
    LogCoshProduct(),
    TwoLayerLinear(width=6, x=(1.0, -0.5, 2.0), y=0.7, init_scale=(1.0, 3.0)),
    TwoLayerLinear(width=3, x=(0.5, 0.5), y=-1.0, loss_type="pseudo_huber"),
    UVModel(width=20, x=1.3, y=1.0, loss_type="logcosh", init_scale=(0.5, 2.0)),
    SingleNeuron(activation="tanh", x=0.8, u_box=(-1.5, 1.5)),
    SingleNeuron(activation="erf", x=1.0),
]


@pytest.mark.parametrize("model", REDUCED_MODELS, ids=_id)
def test_gd_closes_exactly_on_p_q(model):
    eta = 0.13
    theta = model.init(7, 64)
    p, q = al.coordinates(model, theta, eta)
    theta1 = theta - eta * jax.vmap(model.grad)(theta)
    p1, q1 = al.coordinates(model, theta1, eta)
    p1r, q1r = al.reduced_step(model, p, q, eta)
    # both sides are O(1)-term sums computed in float64: a few hundred ulps of the largest term
    scale_p = np.abs(np.asarray(p)) + np.asarray(2.0 / q) + 1.0
    assert np.all(np.abs(np.asarray(p1 - p1r)) <= 1e3 * EPS * scale_p)
    np.testing.assert_allclose(q1r, q1, rtol=1e3 * EPS)


def _final_q(model, theta0, eta, steps):
    ens = al.run_single(model, theta0, eta, steps)
    assert abs(ens.p[-1, 0]) < 1e-6  # converged
    return float(ens.q[-1, 0])


def test_slow_manifold_predicts_the_final_q_to_second_order():
    # Q(0) = 1 + 3 eta^2 / 4 for log cosh(xy); the expansion's error is O(eta^4), so halving eta
    # must cut the error ~16x.  (r(0) = 1 alone is off by 3 eta^2 / 4, which only shrinks 4x.)
    model = LogCoshProduct()
    errs, offs = [], []
    for eta, steps in ((0.2, 3000), (0.1, 12000)):
        y = math.sqrt(4.0 / eta - 0.25)  # x^2 + y^2 = 4 / eta: q0 = 0.5
        q_final = _final_q(model, jnp.array([0.5, y]), eta, steps)
        errs.append(abs(q_final - float(al.curve_q(model, 0.0, eta, order=1))))
        offs.append(q_final - 1.0)
        assert float(al.curve_q(model, 0.0, eta, order=1)) == pytest.approx(1 + 0.75 * eta**2, rel=1e-7)
    assert offs[1] / offs[0] == pytest.approx(0.25, rel=0.05)  # the offset itself is O(eta^2)
    assert errs[1] / errs[0] < 1 / 8  # the corrected curve's error is O(eta^4)


def test_slow_manifold_predicts_the_single_neuron_final_q_to_second_order():
    # Q(0) = 1 + 3 eta / 8 for tanh; first-order expansion in eta: error O(eta^2)
    model = SingleNeuron(activation="tanh")
    errs = []
    for eta, steps in ((0.08, 2000), (0.04, 4000)):
        v = math.sqrt(2.0 / (eta * 0.8))  # q0 = 0.8
        q_final = _final_q(model, jnp.array([0.3, v]), eta, steps)
        errs.append(abs(q_final - float(al.curve_q(model, 0.0, eta, order=1))))
        assert float(al.curve_q(model, 0.0, eta, order=1)) == pytest.approx(1 + 0.375 * eta, rel=1e-7)
    assert errs[1] / errs[0] < 1 / 3  # ~1/4 for O(eta^2); 1/2 would mean only O(eta)


def test_must_show_log_cosh_eta_one_eighth():
    # the paper's setting: 128 inits in [-0.5, 1] x [4, 7], eta = 1/8, 200 steps
    model = LogCoshProduct()
    eta = 0.125
    ens = al.run_ensemble(model, model.init(0, 128), eta, 200)
    s = al.summarise(model, ens, burn_in=50, edge_p=1e-3, curve_tol=0.02, sharpness_tol=0.05)
    assert s["slow_manifold"]["fraction_within_tol"] >= 0.99
    assert s["r_curve"]["fraction_within_tol"] >= 0.99
    assert s["final_sharpness_ratio"]["fraction_within_tol"] >= 0.99
    # the corrected curve is closer: its median is O(eta^4), the paper's curve is off by ~3 eta^2 / 4
    assert s["slow_manifold"]["median"] < 0.1 * s["r_curve"]["median"]
    assert s["r_curve"]["median"] == pytest.approx(0.75 * eta**2, rel=0.2)


# --------------------------------------------------------------------------
# Ensembles
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, eta",
    [(LogCoshProduct(), 0.125), (TwoLayerLinear(width=8, init_scale=(3.0, 4.0)), 0.1),
     (SingleNeuron(v_box=(6.5, 9.0)), 0.06)],
    ids=lambda x: getattr(x, "name", str(x)),
)
def test_vmapped_ensemble_equals_per_initialisation_runs(model, eta):
    theta0 = model.init(11, 12)
    ens = al.run_ensemble(model, theta0, eta, 120)
    assert ens.loss.shape == (121, 12) and ens.theta_final.shape == (12, model.dim)
    for i in range(theta0.shape[0]):
        one = al.run_single(model, theta0[i], eta, 120)
        for name in ("loss", "sharpness", "p", "q"):
            a, b = getattr(ens, name)[:, i], getattr(one, name)[:, 0]
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(ens.theta_final[i], one.theta_final[0], rtol=1e-12, atol=1e-12)
    # step 0 is the initialisation
    np.testing.assert_allclose(ens.loss[0], np.asarray(model.loss(theta0)), rtol=1e-15)


def test_divergence_is_recorded_per_trajectory_not_raised():
    # uv model, square loss: lambda0 ~ 2 rho^2; eta = 1.2 converges for small rho and blows up
    # for rho^2 > 4 / (2 eta) (above 4 / eta the catapult cannot save it)
    model = UVModel(width=10, x=1.0, y=1.0, loss_type="square", init_scale=(0.3, 3.0))
    theta0 = model.init(3, 64)
    ens = al.run_ensemble(model, theta0, 1.2, 60, divergence_limit=1e6)
    div = ens.diverged
    assert div.any() and (~div).any()
    for i in np.flatnonzero(div):
        k = ens.diverged_step[i]
        assert k >= 1
        assert np.all(np.isfinite(ens.loss[:k, i])) and np.all(ens.loss[:k, i] <= 1e6)
        assert np.all(np.isnan(ens.loss[k:, i])) and np.all(np.isnan(ens.q[k:, i]))
    assert np.all(np.isfinite(ens.loss[:, ~div]))
    assert np.all(ens.diverged_step[~div] == -1)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_bad_step_sizes_and_inits_raise_config_error():
    model = LogCoshProduct()
    theta0 = model.init(0, 4)
    for eta in (0.0, -0.1, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ConfigError, match="eta"):
            al.run_ensemble(model, theta0, eta, 10)
    with pytest.raises(ConfigError, match="steps"):
        al.run_ensemble(model, theta0, 0.1, 0)
    with pytest.raises(ConfigError, match="non-finite"):
        al.run_ensemble(model, theta0.at[1, 0].set(jnp.nan), 0.1, 10)
    with pytest.raises(ConfigError, match="domain"):  # grad f = 0 at x = y = 0
        al.run_ensemble(model, theta0.at[2].set(0.0), 0.1, 10)
    with pytest.raises(ConfigError, match="domain"):  # single neuron: v = 0 makes q infinite
        sn = SingleNeuron()
        al.run_ensemble(sn, sn.init(0, 3).at[0, 1].set(0.0), 0.1, 10)
    with pytest.raises(ConfigError, match="last dimension"):
        al.run_ensemble(model, jnp.zeros((4, 3)), 0.1, 10)
    with pytest.raises(ConfigError, match="x64"):
        with jax.enable_x64(False):
            al.run_ensemble(model, np.asarray(theta0), 0.1, 10)


def test_losses_without_a_bifurcation_curve_raise_config_error():
    al.check_alignment(LogCoshProduct())
    al.check_alignment(SingleNeuron())
    with pytest.raises(ConfigError, match="constant"):  # square loss: r(p) = 1
        al.check_alignment(UVModel(loss_type="square"))
    odd = ScalarLoss("shifted", lambda p: jnp.log(jnp.cosh(p - 0.3)))
    with pytest.raises(ConfigError, match="even and convex"):
        al.check_alignment(LogCoshProduct(loss_type=odd))
    nonconvex = ScalarLoss("cos", lambda p: 1.0 - jnp.cos(p))
    with pytest.raises(ConfigError, match="even and convex"):
        al.check_alignment(TwoLayerLinear(loss_type=nonconvex))
    with pytest.raises(ConfigError, match="square loss and y = 0"):
        al.check_alignment(SingleNeuron(loss_type="logcosh"))
    with pytest.raises(ConfigError, match="square loss and y = 0"):
        al.check_alignment(SingleNeuron(y=0.5))
    with pytest.raises(ConfigError, match="order"):
        al.curve_q(LogCoshProduct(), 0.1, 0.1, order=2)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"colour": 1}, "unknown alignment config key"),
        ({"n_init": 0}, "n_init"),
        ({"curve_tol": -1.0}, "curve_tol"),
        ({"models": {"logcosh2": {"etas": [0.1, -0.2]}}}, "eta"),
        ({"models": {"logcosh2": {"steps": 10}}}, "burn_in"),
        ({"models": {"logcosh2": {"options": {"x_box": [1.0, 0.0]}}}}, "low <= high"),
        ({"models": {"extra": {"kind": "uv", "etas": [1.0]}}}, "misses"),
        ({"min_fraction": 1.5}, "min_fraction"),
    ],
)
def test_bad_configs_raise_config_error(override, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        al.reproduce(tmp_path / "out", config=override)
    assert not (tmp_path / "out").exists()  # nothing written


RECIPE = {  # configs/alignment.toml: the defaults of the reproduction
    "seed": 0, "n_init": 2000, "burn_in": 50, "edge_p": 1e-3, "curve_tol": 0.02, "sharpness_tol": 0.05,
    "min_fraction": 0.99, "divergence_limit": 1e8, "plot_trajectories": 40, "quick": {"n_init": 128},
    "models": {
        "logcosh2": {"kind": "logcosh2", "etas": [0.125, 0.15, 0.2], "steps": 200,
                     "options": {"x_box": [-0.5, 1.0], "y_box": [4.0, 7.0], "loss_type": "logcosh"}},
        "two_layer_linear": {"kind": "two_layer_linear", "etas": [0.1, 0.125, 0.15], "steps": 300,
                             "options": {"x": [0.5, 0.5, 0.5, 0.5], "y": 1.0, "width": 32, "loss_type": "logcosh",
                                         "init_scale": [4.0, 5.5]}},
        "single_neuron": {"kind": "single_neuron", "etas": [0.05, 0.06, 0.08], "steps": 300,
                          "options": {"activation": "tanh", "x": 1.0, "y": 0.0, "loss_type": "square",
                                      "u_box": [-1.0, 1.0], "v_box": [6.5, 9.0]}},
        "uv": {"kind": "uv", "etas": [1.5, 2.0, 2.5], "steps": 300,
               "options": {"width": 100, "x": 1.0, "y": 1.0, "loss_type": "logcosh", "init_scale": [1.0, 1.0]}},
    },
}


def test_config_is_the_recipe_file():
    with open(ROOT / "configs" / "alignment.toml", "rb") as fh:
        assert tomllib.load(fh) == al.default_config() == RECIPE
    assert al.load_config() == RECIPE
    assert al.load_config(quick=True) == {**RECIPE, "n_init": 128}


def test_set_overrides_apply_as_in_eoslab_run():
    cfg = al.load_config({"n_init": 9}, overrides=["burn_in=10", "models.uv.etas=[1.0]",
                                                   "models.uv.options.width=8"])
    assert cfg["n_init"] == 9 and cfg["burn_in"] == 10 and cfg["models"]["uv"]["etas"] == [1.0]
    assert cfg["models"]["uv"]["options"]["width"] == 8 and cfg["models"]["uv"]["options"]["x"] == 1.0
    with pytest.raises(ConfigError, match="unknown alignment config key 'colour'"):
        al.load_config(overrides=["colour=1"])
    with pytest.raises(ConfigError, match="n_init=2.5 has the wrong type"):
        al.load_config(overrides=["n_init=2.5"])
    with pytest.raises(ConfigError, match="divergence_limit"):
        al.load_config(overrides=["divergence_limit=inf"])
    with pytest.raises(ConfigError, match="quick.steps"):
        al.load_config({"quick": {"steps": 3}}, quick=True)


# --------------------------------------------------------------------------
# Reproduction
# --------------------------------------------------------------------------

TINY = {
    "n_init": 24,
    "plot_trajectories": 5,
    "models": {
        "logcosh2": {"etas": [0.125], "steps": 80},
        "two_layer_linear": {"etas": [0.125], "steps": 80, "options": {
            "x": [0.5, 0.5, 0.5, 0.5], "y": 1.0, "width": 8, "loss_type": "logcosh", "init_scale": [4.0, 5.5]}},
        "single_neuron": {"etas": [0.06], "steps": 80},
        "uv": {"etas": [2.0], "steps": 80},
    },
}


def test_reproduce_writes_claims_figures_and_runs(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    claims = al.reproduce(tmp_path / "out", quick=True, store=store, config=TINY)
    data = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert len(data) == len(claims) == 4 * 4  # 4 models x 1 eta x 4 claims: --quick runs every claim
    for row in data:
        assert {"claim", "quantity", "value", "holds"} <= set(row)
        assert isinstance(row["holds"], bool)  # every claim is testable here
        assert row["quick"] is True
    md = (tmp_path / "out" / "claims.md").read_text()
    assert md.splitlines()[0] == "# Trajectory alignment (Song & Yun 2023) (--quick: shortened runs)"
    assert md.count("\n| ") == 1 + len(data)  # header + one row per claim
    for name in TINY["models"]:
        for ext in ("png", "pdf"):
            assert (tmp_path / "out" / f"alignment_{name}.{ext}").stat().st_size > 1000
    runs = store.list_runs()
    assert len(runs) == 4 and all(r.status == "completed" for r in runs)
    metrics = store.get_metrics(runs[0].id)
    assert {"median_sharpness", "median_abs_p", "median_curve_distance"} <= set(metrics)
    steps, values = metrics["median_sharpness"]
    assert steps[0] == 0 and steps[-1] == 80 and np.all(np.isfinite(values))
    store.close()


def test_without_a_store_the_runs_go_to_the_store_in_out_dir(tmp_path):
    al.reproduce(tmp_path, quick=True, config=TINY)
    with RunStore.in_dir(tmp_path) as store:
        assert len(store.list_runs(status="completed")) == 4  # 4 models x 1 eta


@pytest.mark.slow
def test_quick_reproduction_shows_alignment_on_log_cosh(tmp_path):
    claims = al.reproduce(tmp_path, quick=True)
    rows = [c for c in claims if "logcosh2, eta=0.125" in c.claim]
    assert len(rows) == 4 and all(c.holds for c in rows)
    assert all(c.value["n_points"] > 0 for c in rows[:2])


# --------------------------------------------------------------------------
# Claim rules on synthetic series
# --------------------------------------------------------------------------


def test_final_sharpness_uses_both_phases_of_the_period_two_oscillation():
    eta = 0.1
    steps = np.arange(100)[:, None]
    # at the edge, oscillating by +-1% about 2/eta: both phases within 5%
    at_edge = (2 / eta) * (1 + 0.01 * np.where(steps % 2 == 0, 1.0, -1.0)) * np.ones((1, 3))
    assert al.final_within(at_edge, eta, 0.05).all()
    # one phase at 2/eta, the other 20% below: the last step alone would pass, both phases do not
    swing = (2 / eta) * np.where(steps % 2 == 1, 1.0, 0.8) * np.ones((1, 3))
    assert abs(swing[-1, 0] * eta / 2 - 1) <= 0.05
    assert not al.final_within(swing, eta, 0.05).any()
    fs = al.final_sharpness_ratio(swing, eta, 0.05)
    assert fs["median"] == pytest.approx(0.9) and fs["min"] == pytest.approx(0.8) and fs["max"] == pytest.approx(1.0)
    assert fs["fraction_within_tol"] == 0.0
    with_nan = at_edge.copy()
    with_nan[-2:, 1] = np.nan  # a diverged trajectory is not at the edge
    assert al.final_within(with_nan, eta, 0.05).tolist() == [True, False, True]


def _summary(fraction_curve, fraction_sharp, eos):
    curve = {"median": 0.01, "p99": 0.03, "max": 0.05, "fraction_within_tol": fraction_curve,
             "per_init_median": 0.01, "per_init_max": 0.02, "n_points": 500, "p99_abs_p": 0.4}
    return {"eta": 0.125, "n_init": 10, "n_diverged": 0, "slow_manifold": dict(curve), "r_curve": dict(curve),
            "final_sharpness_ratio": {"median": 1.0, "min": 0.99, "max": 1.01,
                                      "fraction_within_tol": fraction_sharp, "predicted": 0.99},
            "eos_fraction": eos, "crossed_edge_fraction": 1.0}


def test_claim_rules_pass_and_fail():
    cfg = al.load_config()
    model = LogCoshProduct()
    passing = al.claims_for("logcosh2", model, _summary(0.995, 1.0, 0.999), cfg)
    assert [c.holds for c in passing] == [True, True, True, True]
    failing = al.claims_for("logcosh2", model, _summary(0.9, 0.95, 0.5), cfg)
    assert [c.holds for c in failing] == [False, False, False, False]
    empty = _summary(1.0, 1.0, 1.0)
    empty["r_curve"]["n_points"] = 0  # no edge point at all: alignment cannot hold
    assert al.claims_for("logcosh2", model, empty, cfg)[0].holds is False
    # closed-form sharpness: exact, no eigenvalue certificate attached
    assert all(c.accuracy is None for c in passing)


def test_a_rerun_replaces_the_earlier_run_of_the_same_model_and_eta(tmp_path):
    from eoslab.store import RunStore
    cfg = {"experiment": "alignment", "model": "uv", "eta": 2.0}
    with RunStore.in_dir(tmp_path) as store:
        old = store.start_run(cfg, name="a", seed=0, group="alignment")
        other = store.start_run(dict(cfg, eta=2.5), name="b", seed=0, group="alignment")
        new = store.start_run(cfg, name="a", seed=0, group="alignment")
        other_seed = store.start_run(cfg, name="a", seed=1, group="alignment")
        assert store.delete_earlier(new) == [old]
        assert [r.id for r in store.list_runs()] == [other, new, other_seed]
