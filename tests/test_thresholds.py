"""Each threshold separates convergence from divergence on a quadratic, using optax's own updates."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eoslab import thresholds
from eoslab.errors import ConfigError

ETA = 0.1


def _rule(name, beta):
    if name == "gd":
        return optax.sgd(ETA)
    if name == "heavy-ball":
        return optax.sgd(ETA, momentum=beta)
    if name == "nesterov":
        return optax.sgd(ETA, momentum=beta, nesterov=True)
    if name == "ema-momentum":
        return optax.chain(optax.ema(beta, debias=False), optax.scale(-ETA))
    raise AssertionError(name)


def _final_norm(name, beta, lam_top, steps=3000):
    lam = jnp.array([lam_top, 0.3 * lam_top, 0.01 * lam_top], jnp.float64)
    loss = lambda t: 0.5 * jnp.sum(lam * t**2)
    opt = _rule(name, beta)
    theta = jnp.ones(3, jnp.float64)
    state = opt.init(theta)

    def step(carry, _):
        theta, state = carry
        upd, state = opt.update(jax.grad(loss)(theta), state, theta)
        return (optax.apply_updates(theta, upd), state), None

    (theta, _), _ = jax.lax.scan(step, (theta, state), None, length=steps)
    return float(jnp.abs(theta[0]))


@pytest.mark.parametrize("name,beta", [("gd", 0.0), ("heavy-ball", 0.9), ("heavy-ball", 0.5),
                                       ("nesterov", 0.9), ("nesterov", 0.5), ("ema-momentum", 0.9),
                                       ("ema-momentum", 0.0)])
def test_threshold_separates_convergence_and_divergence(name, beta):
    thr = thresholds.threshold(name, ETA, beta)
    assert _final_norm(name, beta, 0.99 * thr) < 1e-3
    assert _final_norm(name, beta, 1.01 * thr) > 1e3


def test_closed_forms():
    assert thresholds.gd_threshold(0.1) == pytest.approx(20.0)
    assert thresholds.heavy_ball_threshold(0.1, 0.9) == pytest.approx(38.0)
    assert thresholds.nesterov_threshold(0.1, 0.9) == pytest.approx(38.0 / 2.8)
    assert thresholds.ema_momentum_threshold(0.1, 0.9) == pytest.approx(380.0)
    assert thresholds.ema_momentum_threshold(0.1, 0.0) == pytest.approx(thresholds.gd_threshold(0.1))
    assert thresholds.edge_ratio(19.0, 20.0) == pytest.approx(0.95)


@pytest.mark.parametrize("eta,beta", [(0.0, 0.5), (-1.0, 0.0), (0.1, 1.0), (0.1, -0.1)])
def test_bad_hyperparameters(eta, beta):
    with pytest.raises(ConfigError):
        thresholds.heavy_ball_threshold(eta, beta)


def test_unknown_rule():
    with pytest.raises(ConfigError, match="unknown update rule 'adamw'"):
        thresholds.threshold("adamw", 0.1)
