"""Adaptive update rules in use: the frozen rules' threshold for lambda_1(P^-1 H) is sharp with a
non-uniform P, bad [optimizer] tables are one sentence (and exit 2 in the CLI), and the trainer's
effective-sharpness probe matches a cold solve.  (Every rule's P_t, m_t and threshold against its
optax update: tests/rules.)"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.errors import ConfigError
from eoslab.rules import get_rule

jax.config.update("jax_enable_x64", True)

LR = 0.01


def _quadratic_run(name, kw, factor, steps):
    """Warm up the rule on random gradients until its preconditioner is frozen, then place
    lambda_1(P^-1 H) at ``factor`` times the threshold and run the real optax transform."""
    import optax
    rule = get_rule(name)
    hp = rule.hyper(freeze_step=300, **kw)
    tx = rule.transform(LR, hp)
    n = 8
    key = jax.random.PRNGKey(3)
    theta = jax.random.normal(key, (n,), jnp.float64)
    state = tx.init(theta)
    scales = jnp.logspace(-2, 1, n)
    for t in range(hp.freeze_step):
        g = scales * jax.random.normal(jax.random.PRNGKey(100 + t), (n,), jnp.float64)
        _, state = tx.update(g, state, theta)  # parameters stay put: only the moments warm up
    P = rule.preconditioner(state, LR, hp)
    thr = rule.threshold(LR, hp)
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(4), (n, n), jnp.float64))
    lams = jnp.concatenate([jnp.asarray([factor * thr]), jnp.linspace(0.1, 0.8, n - 1) * thr])
    sq = jnp.sqrt(P)
    H = sq[:, None] * (q * lams) @ q.T * sq[None, :]  # P^{-1} H = P^{-1/2} (Q L Q^T) P^{1/2}
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(np.asarray(H / P[:, None])).real)[-1],
                               factor * thr, rtol=1e-8)

    def step(carry, _):
        th, st = carry
        upd, st = tx.update(H @ th, st, th)
        return (optax.apply_updates(th, upd), st), None

    (theta_end, state_end), _ = jax.lax.scan(step, (theta, state), None, length=steps)
    np.testing.assert_allclose(rule.preconditioner(state_end, LR, hp), P, rtol=1e-9)  # still frozen
    return float(jnp.linalg.norm(theta_end) / jnp.linalg.norm(theta))


@pytest.mark.parametrize("name,kw", [("frozen-adam", dict(beta1=0.9)), ("frozen-adam", dict(beta1=0.0)),
                                     ("frozen-rmsprop", dict(momentum=0.0)),
                                     ("frozen-rmsprop", dict(momentum=0.9))])
def test_threshold_is_sharp_on_a_quadratic(name, kw):
    below = _quadratic_run(name, kw, 0.99, 6000)
    above = _quadratic_run(name, kw, 1.01, 6000)
    assert below < 1e-2, below
    assert not above <= 1e2, above  # grown by > 100x (or overflowed)


@pytest.mark.parametrize("opt,match", [
    ({"name": "adamx"}, "unknown update rule 'adamx'"),
    ({"name": "adam", "beta1": 1.0}, r"optimizer.beta1=1.0 must lie in \[0, 1\)"),
    ({"name": "adam", "beta2": -0.1}, r"optimizer.beta2=-0.1 must lie in \[0, 1\)"),
    ({"name": "rmsprop", "momentum": 1.5}, r"optimizer.momentum=1.5 must lie"),
    ({"name": "adam", "eps": -1e-8}, "optimizer.eps=-1e-08 must be a finite number >= 0"),
    ({"name": "adamw", "weight_decay": -1.0}, "optimizer.weight_decay=-1.0 must be a finite number >= 0"),
    ({"name": "gd", "beta1": 0.9}, "optimizer.beta1 is not a hyper-parameter of rule 'gd'"),
    ({"name": "adam", "momentum": 0.9}, "optimizer.momentum is not a hyper-parameter of rule 'adam'; it takes "
                                        "optimizer.beta1, optimizer.beta2, optimizer.eps"),
    ({"name": "frozen-adam"}, "optimizer.freeze_step=0 must be an integer >= 1"),
    ({"name": "adam", "beta1": "big"}, "optimizer.beta1='big' has the wrong type"),
])
def test_bad_optimizer_config_is_one_sentence(opt, match):
    from eoslab.train import config_from_dict
    with pytest.raises(ConfigError, match=match) as e:
        config_from_dict({"optimizer": {"lr": 0.01, **opt}})
    msg = str(e.value)
    assert msg.endswith(".") and "\n" not in msg


def test_cli_exits_2_on_a_bad_rule(tmp_path):
    import subprocess
    import sys
    from tests.train.conftest import TINY, write_toml
    raw = {**TINY, "optimizer": {"name": "adam", "lr": [0.01], "beta1": 1.5}}
    path = write_toml(tmp_path / "bad.toml", raw)
    r = subprocess.run([sys.executable, "-m", "eoslab.cli", "run", path, "--results", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "optimizer.beta1=1.5 must lie in [0, 1)" in r.stderr


def test_trainer_effective_sharpness_against_a_cold_preconditioned_solve(tiny_adam):
    from eoslab.curvature import top_eigenpairs
    from eoslab.train import Trainer, config_from_dict
    cfg = config_from_dict(tiny_adam)
    trainer = Trainer(cfg)
    carry = trainer.init_carry()
    for start in (0, 20):
        carry, _ = trainer.run_chunk(carry, start, 20)
        ev, carry = trainer.evaluate(carry)
    for i, lr in enumerate(cfg.lrs):
        member = jax.tree_util.tree_map(lambda a: a[i], carry)
        P = trainer.rule.preconditioner(member.opt_state, lr, trainer.hp)
        cold = top_eigenpairs(trainer.problem.sharpness_loss, member.params, 1, precond=P, tol=1e-6)
        np.testing.assert_allclose(ev["effective_sharpness"][i], cold.eigenvalues[0], rtol=2e-4)
        raw = top_eigenpairs(trainer.problem.sharpness_loss, member.params, 1, tol=1e-6)
        np.testing.assert_allclose(ev["sharpness"][i], raw.eigenvalues[0], rtol=2e-4)


def test_train_records_effective_sharpness_and_edge_ratio(tmp_path, tiny_adam):
    from eoslab.train import config_from_dict, train
    tiny_adam["probes"]["every_step"] = True
    tiny_adam["optimizer"]["lr"] = [0.01]
    res = train(config_from_dict(tiny_adam), results_dir=tmp_path, progress=False)
    steps, eff = res.series(0, "effective_sharpness")
    np.testing.assert_array_equal(steps, np.arange(1, 41))  # no P before the first step
    np.testing.assert_allclose(res.series(0, "edge_ratio")[1], eff / 38.0, rtol=1e-12)
    np.testing.assert_allclose(res.series(0, "threshold")[1], 38.0)
    assert len(res.series(0, "sharpness")[1]) == 41
    assert res.thresholds == [pytest.approx(38.0)]


def test_sgd_family_logs_effective_sharpness_as_lr_times_sharpness(tmp_path, tiny_adam):
    from eoslab.train import config_from_dict, train
    tiny_adam["optimizer"] = {"name": "gd", "lr": [0.2]}
    tiny_adam["train"]["steps"] = 20
    res = train(config_from_dict(tiny_adam), results_dir=tmp_path, progress=False)
    s, lam = res.series(0, "sharpness")
    np.testing.assert_allclose(res.series(0, "effective_sharpness")[1], 0.2 * lam, rtol=1e-12)
    np.testing.assert_allclose(res.series(0, "edge_ratio")[1], lam / 10.0, rtol=1e-12)


@pytest.fixture
def tiny_adam():
    return {
        "name": "tiny-adam",
        "data": {"name": "digits", "n_train": 200},
        "model": {"name": "fc-tanh", "widths": [32]},
        "optimizer": {"name": "adam", "lr": [0.01, 0.003]},
        "train": {"steps": 40, "eval_every": 20},
        "probes": {"sharpness_k": 1, "tol": 1e-4, "max_hvps": 40},
    }
