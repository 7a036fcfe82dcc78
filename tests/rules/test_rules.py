"""Every update rule in the registry: P_t and m_t reproduce its optax update, its threshold is
sharp on a quadratic (real transform, 0.99x converges, 1.01x diverges), its docstring examples
run, and bad hyper-parameters are one sentence."""
import dataclasses
import doctest
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eoslab.errors import ConfigError
from eoslab.rules import RULES, get_rule

LR = 0.01
#: hyper-parameter variants per rule (default: the rule's defaults only)
VARIANTS = {
    "heavy-ball": [{}, dict(beta=0.5)],
    "nesterov": [{}, dict(beta=0.5)],
    "adam": [{}, dict(beta1=0.0, beta2=0.9, eps=1e-3)],
    "adamw": [dict(weight_decay=0.1), dict(weight_decay=3.0, beta1=0.5)],
    "nadam": [{}, dict(beta1=0.5)],
    "frozen-adam": [dict(freeze_step=3)],
    "rmsprop": [{}, dict(momentum=0.9, eps=1e-4)],
    "frozen-rmsprop": [dict(freeze_step=3, momentum=0.5)],
    "adagrad": [dict(eps=1e-7)],
}
CASES = [(name, kw) for name, rule in RULES.items() if not rule.tuner for kw in VARIANTS.get(name, [{}])]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


@pytest.fixture(autouse=True)
def x64():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def _params(key):
    k1, k2 = jax.random.split(key)
    return {"w": jax.random.normal(k1, (3, 4), jnp.float64), "b": jax.random.normal(k2, (4,), jnp.float64)}


def _p_tree(rule, state, hp, like):
    P = rule.preconditioner(state, LR, hp)
    return jax.tree_util.tree_map(lambda x: jnp.full_like(x, 1 / LR), like) if P is None else P


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_preconditioner_and_momentum_reproduce_the_optax_update(name, kw):
    """theta_{t+1} - theta_t == -P_t^{-1} m_t + decoupled(theta_t) at every step, gradients of varying scale."""
    rule = get_rule(name)
    hp = rule.hyper(**kw)
    rule.check(LR, hp)
    tx = rule.transform(LR, hp)
    key = jax.random.PRNGKey(0)
    params = _params(key)
    state = tx.init(params)
    for t in range(8):
        key, sub = jax.random.split(key)
        g = jax.tree_util.tree_map(lambda p: p * 10.0 ** (t % 3 - 1), _params(sub))
        updates, state = tx.update(g, state, params)
        P = _p_tree(rule, state, hp, params)
        assert all(bool(jnp.all(p > 0)) for p in jax.tree_util.tree_leaves(P))
        expect = jax.tree_util.tree_map(lambda m, p: -m / p, rule.momentum(state, g, LR, hp), P)
        extra = rule.decoupled(params, LR, hp)
        if extra is not None:
            expect = jax.tree_util.tree_map(jnp.add, expect, extra)
        for a, b in zip(jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(expect)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
        params = optax.apply_updates(params, updates)


def _quadratic_run(rule, hp, factor: float, steps: int = 6000) -> float:
    """Growth |theta_T| / |theta_0| of the real transform on 0.5 theta^T H theta with lambda_1(P^{-1} H) =
    factor x threshold.  P is held fixed by the problem: after 400 steps at a zero gradient (bias corrections
    -> 1), eps dominates the root of the tiny second moments (eps = 1e6), so P = eps / eta to ~1e-12."""
    if "eps" in {f.name for f in dataclasses.fields(hp)}:
        hp = dataclasses.replace(hp, eps=1e6)
    tx = rule.transform(LR, hp)
    n = 8
    theta = 1e-15 * jax.random.normal(jax.random.PRNGKey(3), (n,), jnp.float64)
    state = tx.init(theta)
    zero = jnp.zeros(n, jnp.float64)
    for _ in range(400):
        _, state = tx.update(zero, state, zero)
    P = _p_tree(rule, state, hp, theta)
    thr = rule.threshold(LR, hp)
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(4), (n, n), jnp.float64))
    lams = jnp.concatenate([jnp.asarray([factor * thr]), jnp.linspace(0.1, 0.8, n - 1) * thr])
    sq = jnp.sqrt(P)
    H = sq[:, None] * (q * lams) @ q.T * sq[None, :]  # P^{-1} H = P^{-1/2} (Q L Q^T) P^{1/2}

    n0 = jnp.linalg.norm(theta)

    def step(carry, _):  # stops once grown 1e4x, before the moments grow enough to move P
        th, st = carry
        upd, new = tx.update(H @ th, st, th)
        done = jnp.linalg.norm(th) > 1e4 * n0
        keep = lambda old, nxt: jnp.where(done, old, nxt)
        return (keep(th, optax.apply_updates(th, upd)), jax.tree_util.tree_map(keep, st, new)), None

    (theta_end, state_end), _ = jax.lax.scan(step, (theta, state), None, length=steps)
    np.testing.assert_allclose(_p_tree(rule, state_end, hp, theta), P, rtol=1e-6)  # P stayed put
    return float(jnp.linalg.norm(theta_end) / n0)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_threshold_is_sharp_on_a_quadratic(name, kw):
    rule = get_rule(name)
    hp = rule.hyper(**kw)
    below, above = _quadratic_run(rule, hp, 0.99), _quadratic_run(rule, hp, 1.01)
    assert below < 1e-2, below
    assert not above <= 1e2, above  # grown by > 100x (or overflowed)


def test_thresholds_in_closed_form():
    def thr(name, **kw):
        rule = get_rule(name)
        return rule.threshold(0.1, rule.hyper(**kw))
    assert thr("gd") == 2.0 and get_rule("gd").raw_threshold(0.1, get_rule("gd").hyper()) == pytest.approx(20.0)
    assert thr("heavy-ball", beta=0.9) == pytest.approx(3.8)
    assert thr("nesterov", beta=0.9) == pytest.approx(3.8 / 2.8)
    assert thr("adam") == pytest.approx(38.0) and thr("adam", beta1=0.0) == pytest.approx(2.0)
    assert thr("nadam") == pytest.approx(3.8 / (2.8 * 0.1)) and thr("nadam", beta1=0.0) == pytest.approx(2.0)
    assert thr("adamw", weight_decay=0.5) == pytest.approx(1.95 * 19)
    assert thr("rmsprop") == 2.0 and thr("rmsprop", momentum=0.5) == pytest.approx(3.0)
    assert thr("rmsprop-eps-in-sqrt") == 2.0 and thr("rmsprop-eps-in-sqrt", momentum=0.5) == pytest.approx(3.0)
    assert thr("adagrad") == 2.0 and thr("armijo") == 2.0
    assert {n for n, r in RULES.items() if r.adaptive} == {"adam", "adamw", "nadam", "frozen-adam", "rmsprop",
                                                          "rmsprop-eps-in-sqrt", "frozen-rmsprop", "adagrad"}
    assert {n for n, r in RULES.items() if r.tuner} == {"armijo", "polyak", "parabolic", "edge"}
    with pytest.raises(ValueError, match="no fixed raw-sharpness threshold"):
        get_rule("adam").raw_threshold(0.1, get_rule("adam").hyper())


def test_preconditioner_is_found_by_state_type_wherever_the_chain_puts_it():
    rule = get_rule("adam")
    hp = rule.hyper()
    params = _params(jax.random.PRNGKey(0))
    plain = rule.transform(LR, hp)
    wrapped = optax.chain(optax.clip_by_global_norm(1e3), plain)  # the Adam state is now one level deeper
    s1, s2 = plain.init(params), wrapped.init(params)
    g = _params(jax.random.PRNGKey(1))
    _, s1 = plain.update(g, s1, params)
    _, s2 = wrapped.update(g, s2, params)
    for a, b in zip(jax.tree_util.tree_leaves(rule.preconditioner(s1, LR, hp)),
                    jax.tree_util.tree_leaves(rule.preconditioner(s2, LR, hp))):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="holds no ScaleByAdamState"):
        rule.preconditioner(optax.sgd(LR).init(params), LR, hp)


@pytest.mark.parametrize("module", ["eoslab.rules", "eoslab.rules.sgd", "eoslab.rules.adam", "eoslab.rules.rmsprop",
                                    "eoslab.rules.adagrad", "eoslab.rules.tuners"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name,kw,match", [
    ("adam", dict(beta1=1.0), r"optimizer.beta1=1.0 must lie in \[0, 1\)"),
    ("adam", dict(beta2=-0.1), r"optimizer.beta2=-0.1 must lie in \[0, 1\)"),
    ("rmsprop", dict(momentum=1.5), r"optimizer.momentum=1.5 must lie"),
    ("adam", dict(eps=-1e-8), "optimizer.eps=-1e-08 must be a finite number >= 0"),
    ("adamw", dict(weight_decay=-1.0), "optimizer.weight_decay=-1.0 must be a finite number >= 0"),
    ("adamw", dict(weight_decay=300.0), "times optimizer.lr=0.01 must be below 2"),
    ("frozen-adam", {}, "optimizer.freeze_step=0 must be an integer >= 1"),
    ("heavy-ball", dict(beta=-0.5), r"optimizer.beta=-0.5 must lie in \[0, 1\)"),
    ("armijo", dict(c=2.0), "optimizer.c=2.0 must"),
    ("polyak", dict(variant="min"), "optimizer.variant='min'"),
])
def test_bad_hyperparameters_are_one_sentence(name, kw, match):
    rule = get_rule(name)
    with pytest.raises(ConfigError, match=match) as e:
        rule.check(LR, rule.hyper(**kw))
    assert str(e.value).endswith(".") and "\n" not in str(e.value)


def test_unknown_hyperparameter_and_rule_are_one_sentence():
    with pytest.raises(ConfigError, match="optimizer.beta1 is not a hyper-parameter of rule 'gd'; it takes none"):
        get_rule("gd").hyper(beta1=0.9)
    with pytest.raises(ConfigError, match="optimizer.beta is not a hyper-parameter of rule 'adam'; it takes "
                                          "optimizer.beta1, optimizer.beta2, optimizer.eps"):
        get_rule("adam").hyper(beta=0.9)
    with pytest.raises(ConfigError, match="unknown update rule 'adamx'; choose one of"):
        get_rule("adamx")
    with pytest.raises(ConfigError, match="optimizer.lr=-1.0 must be a positive number"):
        get_rule("adam").check(-1.0, get_rule("adam").hyper())
