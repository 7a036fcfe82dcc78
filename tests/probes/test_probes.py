"""The probe protocol: the registry, the config switch, a probe outside the trainer, and a new probe plugged in."""
import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import eoslab.probes as probes_mod
from eoslab.errors import ConfigError
from eoslab.probes import OPTIONAL, PROBES, EvalView, Probe, ProbeContext, Sharpness, build_probes
from eoslab.train import Trainer, config_from_dict
from eoslab.train.loop import run_loop
from eoslab.train.sinks import MemorySink

RAW = {
    "name": "probes",
    "data": {"name": "digits", "n_train": 96, "n_test": 32},
    "model": {"name": "fc-tanh", "widths": [8]},
    "optimizer": {"name": "gd", "lr": [0.05, 0.2]},
    "train": {"steps": 6, "eval_every": 3, "dtype": "float64"},
    "probes": {"sharpness_k": 2, "tol": 1e-9, "max_hvps": 60},
}


def config(**sections):
    raw = copy.deepcopy(RAW)
    for section, values in sections.items():
        raw[section].update(values)
    return config_from_dict(raw)


def run(trainer):
    carry = trainer.init_carry()
    sink = MemorySink(trainer.num_members)
    carry, facts = run_loop(trainer, carry, 0, sink)
    return [sink.metrics(i) for i in range(trainer.num_members)], carry, facts


def test_registry_names_are_unique_and_optional_ones_are_listed():
    names = [p.name for p in PROBES]
    assert len(names) == len(set(names))
    assert OPTIONAL == tuple(p.name for p in PROBES if p.optional) and "gradient_norm" in OPTIONAL


@pytest.mark.parametrize("overrides,expected", [
    ({}, ["sharpness"]),
    ({"probes": {"sharpness_k": 0}}, []),
    ({"optimizer": {"name": "adam", "lr": [1e-3]}}, ["sharpness", "preconditioned_sharpness"]),
    ({"optimizer": {"name": "armijo", "lr": [1.0]}, "probes": {"step_curvature": True}}, ["sharpness", "tuner",
                                                                                          "step_curvature"]),
    ({"optimizer": {"name": "edge", "lr": [1.0]}, "probes": {"step_curvature": True}}, ["sharpness", "tuner"]),
    ({"probes": {"line_points": 3, "enable": ["gradient_norm"]}}, ["sharpness", "loss_barrier", "gradient_norm"]),
])
def test_the_config_decides_which_probes_run(overrides, expected):
    # CDAT measures the step curvature itself (the tuner probe reports it): no second HVP per step
    tr = Trainer(config(**overrides))
    assert [p.name for p in tr.probes] == expected


def test_an_unknown_optional_probe_is_one_sentence():
    with pytest.raises(ConfigError, match=r"probes.enable names 'hessian_trace'.*choose from gradient_norm"):
        config(probes={"enable": ["hessian_trace"]})


def test_gradient_norm_probe_against_plain_gd():
    """gradient_norm at step t is |grad L(theta_t)| of a GD run replayed by hand (full batch, float64)."""
    tr = Trainer(config(probes={"sharpness_k": 0, "enable": ["gradient_norm"]}))
    rows, _, _ = run(tr)
    prob = tr.problem
    for i, eta in enumerate(tr.cfg.lrs):
        theta, want = prob.model.init(jax.random.PRNGKey(tr.cfg.seed)), []
        for _ in range(tr.cfg.train.steps):
            g = jax.grad(prob.train_loss)(theta)
            want.append(float(jnp.linalg.norm(ravel_pytree(g)[0])))
            theta = jax.tree_util.tree_map(lambda p, gi: p - eta * gi, theta, g)
        steps, got = rows[i]["gradient_norm"]
        np.testing.assert_array_equal(steps, np.arange(tr.cfg.train.steps))
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_sharpness_probe_outside_the_trainer_matches_the_dense_hessian():
    """A probe needs only a ProbeContext: measure parameters that no trainer produced."""
    tr = Trainer(config())  # used only for its problem (data, model, loss)
    prob = tr.problem
    ctx = ProbeContext(sharpness_loss=prob.sharpness_loss, train_loss=prob.train_loss, rule=tr.rule, hp=tr.hp,
                       probes=tr.cfg.probes, dim=tr.context.dim)
    probe = Sharpness.from_config(ctx)
    params = prob.model.init(jax.random.PRNGKey(7))
    state = probe.init(params, jax.random.PRNGKey(1), {})
    at_eval = jax.jit(lambda s, p: probe.at_eval(s, EvalView(0, p, (), 0.1, 7, prob.train_loss, True)))
    metrics, state = at_eval(state, params)
    flat, unravel = ravel_pytree(params)
    dense = np.linalg.eigvalsh(np.asarray(jax.hessian(lambda v: prob.sharpness_loss(unravel(v)))(flat)))[::-1]
    np.testing.assert_allclose([metrics["sharpness"], metrics["sharpness_2"]], dense[:2], rtol=1e-7)
    assert float(metrics["sharpness_converged"]) == 1.0


def test_a_new_probe_is_one_class_and_one_registry_line(monkeypatch):
    """A probe written outside eoslab, put in the registry: its state and metrics flow through the loop."""

    class StepCount(Probe):
        name = "step_count"
        every_step = True

        @classmethod
        def enabled(cls, ctx):
            return True

        def init(self, params, key, earlier):
            return jnp.zeros((), jnp.int32)

        def at_step(self, state, view):
            return {"steps_seen": state + 1, "loss_again": view.loss}, state + 1

        def at_eval(self, state, view):
            return {"count_at_eval": state}, state

    monkeypatch.setattr(probes_mod, "PROBES", probes_mod.PROBES + (StepCount,))
    tr = Trainer(config(probes={"sharpness_k": 0}, optimizer={"lr": [0.05, 1e4]},
                        train={"steps": 6, "eval_every": 3, "dtype": "float64", "diverge_above": 1e3}))
    assert [p.name for p in tr.probes] == ["step_count"]
    rows, carry, _ = run(tr)
    np.testing.assert_array_equal(rows[0]["steps_seen"][1], np.arange(1, 7))
    np.testing.assert_array_equal(rows[0]["count_at_eval"][1], [0, 3, 6])
    np.testing.assert_array_equal(rows[0]["loss_again"][1], rows[0]["loss"][1])
    # the huge step diverges: its probe state freezes at the divergence, like its parameters
    div = int(carry.diverged_step[1])
    assert div >= 0 and int(carry.probes[0][1]) == div


def test_every_probe_finishes_rows_it_does_not_own_untouched():
    """finish adds derived metrics only when the probe's own metric is in the rows (else leaves them alone)."""
    tr = Trainer(config(optimizer={"name": "adam", "lr": [1e-3]}, probes={"step_curvature": True, "line_points": 2,
                                                                          "enable": ["gradient_norm"]}))
    facts = tr.facts(tr.init_carry())
    for probe in tr.probes:
        rows = {"loss": (np.arange(3), np.ones(3))}
        probe.finish(rows, facts[0])
        assert list(rows) == ["loss"]
