"""Step-size tuners as update rules of the trainer: the trajectory is the tuner's own
optax loop, the recorded step sizes and curvatures match independent computations,
and bad tuner settings are one sentence naming the config key (exit 2 from the CLI)."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eoslab.errors import ConfigError
from eoslab.train import Trainer, config_from_dict, train
from tests.train.conftest import TINY, write_toml

jax.config.update("jax_enable_x64", True)


def _cfg(name, lr, steps=30, eval_every=10, **opt):
    raw = {**TINY, "optimizer": {"name": name, "lr": lr, **opt},
           "train": {"steps": steps, "eval_every": eval_every, "dtype": "float64"},
           "probes": {"sharpness_k": 1, "tol": 1e-6, "max_hvps": 60, "step_curvature": True}}
    return config_from_dict(raw)


def _manual_losses(cfg, tuner, steps):
    """The same run as a plain optax loop: chain(scale(-1), tuner) on the full training loss."""
    from eoslab import tuners
    trainer = Trainer(cfg)
    prob = trainer.problem
    params = prob.model.init(jax.random.PRNGKey(cfg.seed))
    tx = optax.chain(optax.scale(-1.0), tuner(tuners))
    state = tx.init(params)
    losses, etas = [], []
    for _ in range(steps):
        loss, g = jax.value_and_grad(prob.train_loss)(params)
        u, state = tx.update(g, state, params, value=loss, grad=g, value_fn=prob.train_loss)
        etas.append(float(tuners.tuner_info(state).step_size))
        params = optax.apply_updates(params, u)
        losses.append(float(loss))
    return np.asarray(losses), np.asarray(etas)


@pytest.mark.parametrize("name,opt,make", [
    ("armijo", dict(c=0.3, init="grow"),
     lambda t: t.armijo(c=0.3, max_step=2.0, init="grow", decrease_factor=0.5, max_backtracks=30,
                        increase_factor=1.5)),
    ("polyak", dict(c=0.5), lambda t: t.polyak(c=0.5, max_step=2.0)),
    ("edge", dict(sigma=1.5), lambda t: t.edge(sigma=1.5, max_step=2.0)),
])
def test_trainer_follows_the_tuners_own_optax_loop(tmp_path, name, opt, make):
    cfg = _cfg(name, [2.0], steps=30, **opt)
    res = train(cfg, results_dir=tmp_path, progress=False)
    ref_loss, ref_eta = _manual_losses(cfg, make, 30)
    np.testing.assert_allclose(res.series(0, "loss")[1], ref_loss, rtol=1e-9)
    # direction -g: eta_t = |dtheta| / |g| is the tuner's own step
    np.testing.assert_allclose(res.series(0, "step_size")[1], ref_eta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.series(0, "tuner_step")[1], ref_eta, rtol=1e-12, atol=1e-14)


def test_eval_step_size_is_the_step_taken_next(tmp_path):
    res = train(_cfg("polyak", [1.0], steps=30), results_dir=tmp_path, progress=False)
    steps, eta = res.series(0, "step_size")
    ev_steps, tuned = res.series(0, "tuned_step_size")
    np.testing.assert_array_equal(ev_steps, [0, 10, 20, 30])
    # the probe at theta_t computes the step the tuner then takes from theta_t
    np.testing.assert_allclose(tuned[:3], eta[[0, 10, 20]], rtol=1e-10)
    _, lam = res.series(0, "sharpness")
    np.testing.assert_allclose(res.series(0, "effective_sharpness")[1], tuned * lam, rtol=1e-12)
    np.testing.assert_allclose(res.series(0, "edge_ratio")[1], tuned * lam / 2, rtol=1e-12)


def _dense_hessian_quadratic_form(prob, params, u):
    from jax.flatten_util import ravel_pytree
    flat, unravel = ravel_pytree(params)
    H = jax.hessian(lambda x: prob.train_loss(unravel(x)))(flat)
    uf = ravel_pytree(u)[0]
    return float(uf @ H @ uf / (uf @ uf))


def test_step_curvature_against_the_dense_hessian(tmp_path):
    # GD, step 0: eta * g'Hg/|g|^2 at the initial parameters, from the dense Hessian
    raw = {**TINY, "model": {"name": "fc-tanh", "widths": [4]},
           "optimizer": {"name": "gd", "lr": [0.3]}, "train": {"steps": 1, "eval_every": 1, "dtype": "float64"},
           "probes": {"sharpness_k": 0, "step_curvature": True}}
    cfg = config_from_dict(raw)
    res = train(cfg, results_dir=tmp_path, progress=False)
    prob = Trainer(cfg).problem
    params = prob.model.init(jax.random.PRNGKey(cfg.seed))
    g = jax.grad(prob.train_loss)(params)
    expected = 0.3 * _dense_hessian_quadratic_form(prob, params, g)
    np.testing.assert_allclose(res.series(0, "step_curvature")[1], [expected], rtol=1e-10)


def test_cdat_sits_at_sigma_along_its_own_step(tmp_path):
    # CDAT's definition: eta_t * u.Hu/|u|^2 = sigma exactly along u = -g (while -g.u > 0)
    res = train(_cfg("edge", [100.0], steps=20, sigma=2.0), results_dir=tmp_path, progress=False)
    np.testing.assert_allclose(res.series(0, "step_curvature")[1], 2.0, rtol=1e-9)
    assert np.all(res.series(0, "tuner_grads")[1] == 1)  # one HVP per step


def test_armijo_accepts_only_sufficient_decrease(tmp_path):
    cfg = _cfg("armijo", [5.0], steps=25, c=0.5)
    res = train(cfg, results_dir=tmp_path, progress=False)
    ok = res.series(0, "tuner_success")[1].astype(bool)
    loss = res.series(0, "loss")[1]
    assert ok.all()
    assert np.all(np.diff(loss) < 0)  # sufficient decrease implies a monotone loss
    evals = res.series(0, "tuner_values")[1]
    assert evals.min() >= 1 and evals.max() <= 31


def test_minibatch_tuner_sees_the_minibatch_loss(tmp_path):
    # Polyak with f* = 0 on the minibatch: eta = loss_B / (c |g_B|^2) (capped), loss_B the recorded loss
    raw = {**TINY, "optimizer": {"name": "polyak", "lr": [50.0], "batch_size": 32},
           "train": {"steps": 5, "eval_every": 5, "dtype": "float64"}, "probes": {"sharpness_k": 0}}
    cfg = config_from_dict(raw)
    res = train(cfg, results_dir=tmp_path, progress=False)
    trainer = Trainer(cfg)
    params = trainer.problem.model.init(jax.random.PRNGKey(cfg.seed))
    fn = trainer.step_loss_fn(jnp.asarray(0))
    loss, g = jax.value_and_grad(fn)(params)
    gg = sum(float(jnp.vdot(a, a)) for a in jax.tree_util.tree_leaves(g))
    np.testing.assert_allclose(res.series(0, "loss")[1][0], float(loss), rtol=1e-12)
    np.testing.assert_allclose(res.series(0, "step_size")[1][0], min(float(loss) / gg, 50.0), rtol=1e-10)


@pytest.mark.parametrize("opt,key", [
    (dict(name="armijo", c=1.5), "optimizer.c=1.5"),
    (dict(name="armijo", decrease_factor=1.0), "optimizer.decrease_factor=1.0"),
    (dict(name="armijo", init="sometimes"), "optimizer.init="),
    (dict(name="parabolic", mu=0.0), "optimizer.mu=0.0"),
    (dict(name="edge", sigma=-1.0), "optimizer.sigma=-1.0"),
    (dict(name="polyak", c=0.0), "optimizer.c=0.0"),
    (dict(name="polyak", variant="min"), "optimizer.variant="),
])
def test_bad_tuner_settings_name_the_config_key(opt, key):
    raw = {**TINY, "optimizer": {"lr": [1.0], **opt}}
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw)
    assert str(e.value).startswith(key), str(e.value)
    assert isinstance(e.value, ValueError)


def test_cli_exits_2_on_a_bad_tuner(tmp_path):
    raw = {**TINY, "optimizer": {"name": "parabolic", "lr": [3.16], "mu": -1.0}}
    path = write_toml(tmp_path / "bad.toml", raw)
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "eoslab.cli", "run", path, "--results", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "optimizer.mu=-1.0" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
