"""Warm-started tracking along a gradient-descent trajectory."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.curvature import SharpnessTracker, top_eigenpairs
from tests.curvature.nets import dense_hessian, mlp_problem


@pytest.fixture(scope="module")
def trajectory():
    loss_fn, params = mlp_problem(widths=(24,), d_in=8, d_out=3, n=48, seed=4)
    grad = jax.jit(jax.grad(loss_fn))
    path = [params]
    for _ in range(12):
        g = grad(path[-1])
        path.append(jax.tree_util.tree_map(lambda p, gg: p - 0.2 * gg, path[-1], g))
    return loss_fn, path


def test_tracks_dense_top_eigenvalues_cheaply(trajectory):
    loss_fn, path = trajectory
    tracker = SharpnessTracker(k=2, tol=1e-8, max_hvps=30)
    res, state = tracker.init(loss_fn, path[0])
    cold_hvps = int(res.num_hvps)
    warm_hvps = []
    for params in path[1:]:
        res, state = tracker.update(loss_fn, params, state)
        truth = np.sort(np.linalg.eigvalsh(np.asarray(dense_hessian(loss_fn, params))))[::-1][:2]
        np.testing.assert_allclose(res.eigenvalues, truth, rtol=1e-8)
        assert bool(res.converged)
        warm_hvps.append(int(res.num_hvps))
    assert np.median(warm_hvps) < cold_hvps


def test_budget_bounds_cost_and_unconverged_is_reported(trajectory):
    loss_fn, path = trajectory
    _, state = SharpnessTracker(k=1, tol=1e-12).init(loss_fn, path[0])
    tight = SharpnessTracker(k=1, tol=1e-12, max_hvps=2)
    res, _ = tight.update(loss_fn, path[5], state)
    assert int(res.num_hvps) == 2 and not bool(res.converged)
    # with room, the same warm start converges to the dense value
    res, _ = SharpnessTracker(k=1, tol=1e-12, max_hvps=200).update(loss_fn, path[5], state)
    truth = np.linalg.eigvalsh(np.asarray(dense_hessian(loss_fn, path[5])))[-1]
    assert bool(res.converged)
    np.testing.assert_allclose(res.eigenvalues[0], truth, rtol=1e-10)


def test_refresh_runs_a_cold_check_and_keeps_the_larger_top_value(trajectory):
    loss_fn, path = trajectory
    tracker = SharpnessTracker(k=1, tol=1e-6, max_hvps=40, cold_max_hvps=200)
    _, state = tracker.init(loss_fn, path[0])
    params = path[6]
    h = np.asarray(dense_hessian(loss_fn, params))
    evals, evecs = np.linalg.eigh(h)
    # a lost track: the state holds an exact lower eigenvector (eigenvalue 3rd from the top) and no guard
    lost = state._replace(vectors=jnp.asarray(evecs[:, -3][None]), eigenvalues=jnp.asarray(evals[-3:-2]),
                          guard=jnp.zeros_like(state.guard))
    hot, hot_state = tracker.update(loss_fn, params, lost)  # the every-step path: no cold branch
    assert abs(float(hot.eigenvalues[0]) - evals[-3]) < 1e-6 * evals[-1]  # it reports what it converged to ...
    checked, checked_state = tracker.update(loss_fn, params, lost, refresh=True)
    np.testing.assert_allclose(checked.eigenvalues[0], evals[-1], rtol=1e-6)  # ... a refresh finds the top
    assert bool(checked.converged) and not bool(checked_state.suspect)
    assert int(checked.num_hvps) > int(hot.num_hvps)  # the cold check is paid for


def test_a_jump_marks_the_state_suspect_and_the_next_refresh_enabled_update_verifies(trajectory):
    loss_fn, path = trajectory
    tracker = SharpnessTracker(k=1, tol=1e-6, max_hvps=40, jump=0.1)
    _, state = tracker.init(loss_fn, path[5])
    res, state = tracker.update(loss_fn, path[6], state)
    assert not bool(state.suspect)  # past the first steps, one GD step moves the top value by about 1%
    jumped = state._replace(eigenvalues=state.eigenvalues * 2)  # as if the sharpness had halved in one step
    _, after = tracker.update(loss_fn, path[7], jumped)
    assert bool(after.suspect)
    # refresh=False (a traced False) still verifies a suspect state: it costs a cold solve, then clears it
    res, cleared = tracker.update(loss_fn, path[8], after, refresh=jnp.asarray(False))
    plain, _ = tracker.update(loss_fn, path[8], state)
    assert int(res.num_hvps) > int(plain.num_hvps) and not bool(cleared.suspect)


def test_preconditioned_tracking(trajectory):
    loss_fn, path = trajectory
    p = jax.tree_util.tree_map(lambda a: 0.5 + a**2, path[0])
    tracker = SharpnessTracker(k=1, tol=1e-9)
    _, state = tracker.init(loss_fn, path[0], precond=p)
    res, state = tracker.update(loss_fn, path[1], state, precond=p)
    ref = top_eigenpairs(loss_fn, path[1], 1, precond=p, tol=1e-12)
    np.testing.assert_allclose(res.eigenvalues, ref.eigenvalues, rtol=1e-8)


def test_tracker_inside_scan_and_vmap(trajectory):
    loss_fn, path = trajectory
    tracker = SharpnessTracker(k=1, tol=1e-8, max_hvps=40)
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *path[1:6])

    def run(start_scale):
        p0 = jax.tree_util.tree_map(lambda a: start_scale * a, path[0])
        _, state = tracker.init(loss_fn, p0)

        def step(state, params):
            params = jax.tree_util.tree_map(lambda a: start_scale * a, params)
            res, state = tracker.update(loss_fn, params, state)
            return state, res.eigenvalues[0]

        return jax.lax.scan(step, state, stacked)[1]

    out = jax.jit(jax.vmap(run))(jnp.array([1.0, 0.9]))
    for i, scale in enumerate([1.0, 0.9]):
        for t in range(5):
            params = jax.tree_util.tree_map(lambda a: scale * a, path[1 + t])
            truth = np.linalg.eigvalsh(np.asarray(dense_hessian(loss_fn, params)))[-1]
            np.testing.assert_allclose(out[i, t], truth, rtol=1e-7)


def test_update_with_grad_returns_the_loss_and_gradient(trajectory):
    loss_fn, path = trajectory
    tracker = SharpnessTracker(k=1)
    _, state = tracker.init(loss_fn, path[0])
    res, state2, value, grad = tracker.update_with_grad(loss_fn, path[3], state)
    ref, _ = tracker.update(loss_fn, path[3], state)
    np.testing.assert_allclose(value, loss_fn(path[3]), rtol=1e-12)
    g = jax.grad(loss_fn)(path[3])
    for a, b in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(g)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(res.eigenvalues, ref.eigenvalues)
