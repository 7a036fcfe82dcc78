"""The PyTorch tracker along a GD run: each update certified against the dense Hessian, cheaper than cold solves."""
import numpy as np
import torch
from torch.func import functional_call, grad

import eoslab.torch as et
from tests.torch_engine.test_eigen import dense, float64, mlp_problem  # noqa: F401  (the float64 fixture)


def test_tracking_along_gd_matches_dense_and_costs_fewer_products_than_cold():
    _, _, _, params, loss_fn = mlp_problem(5)
    tracker = et.SharpnessTracker(k=2, tol=1e-8, max_hvps=30)
    res, state = tracker.init(loss_fn, params)
    warm, cold = [], []
    g = grad(loss_fn)
    for step in range(6):
        params = {k: v - 0.2 * g(params)[k] for k, v in params.items()}
        res, state = tracker.update(loss_fn, params, state, refresh=(step == 3))
        ev = dense(loss_fn, params).numpy()[::-1][:2]
        np.testing.assert_allclose(res.eigenvalues.numpy(), ev, rtol=1e-6)
        assert res.converged
        if step != 3:
            warm.append(res.num_hvps)
            cold.append(et.top_eigenpairs(loss_fn, params, k=2, tol=1e-8).num_hvps)
    assert np.mean(warm) < np.mean(cold)  # warm starts pay off (exact product counts)
