"""The JAX monitor and the PyTorch monitor side by side: the same network, the same weights, the same Adam run.

Both loops start from one set of weights (copied from torch into JAX) and take the same full-batch Adam steps
(optax.adam under inject_hyperparams, torch.optim.Adam; both put eps outside the square root and bias-correct), so
their weights and Adam moments agree to float64 rounding. Their two monitors must then report the same sharpness,
effective sharpness lambda_1(P^-1 H), threshold and edge ratio, and both must match the dense Hessian.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from torch.func import functional_call

import eoslab.torch as et
from eoslab.monitor import Monitor
from tests.torch_engine.test_eigen import dense, float64  # noqa: F401  (the float64 fixture)


def test_jax_and_torch_monitors_agree_on_identical_adam_runs():
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x, y = torch.randn(60, 5), torch.randn(60, 3)
    tloss = lambda p: 0.5 * ((functional_call(model, p, (x,)) - y) ** 2).sum(-1).mean()  # noqa: E731
    xj, yj = jnp.asarray(x.numpy()), jnp.asarray(y.numpy())

    def jloss(p):  # the same network: torch's Linear is x W^T + b
        h = jnp.tanh(xj @ p["0.weight"].T + p["0.bias"])
        return 0.5 * jnp.mean(jnp.sum((h @ p["2.weight"].T + p["2.bias"] - yj) ** 2, -1))

    lr, steps, every = 0.02, 30, 10
    jparams = {k: jnp.asarray(v.detach().numpy()) for k, v in model.named_parameters()}
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
    jstate = tx.init(jparams)
    jmon = Monitor(jloss, optimizer=tx, every=every, tol=1e-9, verbose=False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    tmon = et.Monitor(model, tloss, optimizer=opt, every=every, tol=1e-9, max_hvps=80, verbose=False)

    @jax.jit
    def jstep(p, s):
        u, s = tx.update(jax.grad(jloss)(p), s, p)
        return optax.apply_updates(p, u), s

    pairs = []
    for t in range(1, steps + 1):
        jparams, jstate = jstep(jparams, jstate)
        opt.zero_grad()
        tloss(dict(model.named_parameters())).backward()
        opt.step()
        a, b = jmon.update(t, jparams, jstate), tmon.update(t)
        assert (a is None) == (b is None)
        if a is not None:
            pairs.append((a, b))
    assert len(pairs) == steps // every
    # the two runs stayed on the same trajectory
    for k, v in model.named_parameters():
        np.testing.assert_allclose(np.asarray(jparams[k]), v.detach().numpy(), rtol=1e-9, atol=1e-12)
    for a, b in pairs:
        for key in ("sharpness", "effective_sharpness", "threshold", "edge_ratio"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), key
        assert a["converged"] and b["converged"]
    # and the last measurement of each is the dense answer
    params = {n: p.detach() for n, p in model.named_parameters()}
    P = dict(zip(params, et.optimizers.preconditioner(opt)))
    a, b = pairs[-1]
    assert a["sharpness"] == pytest.approx(float(dense(tloss, params)[-1]), rel=1e-6)
    assert b["effective_sharpness"] == pytest.approx(float(dense(tloss, params, P)[-1]), rel=1e-6)
    assert a["threshold"] == pytest.approx(38.0)  # (2 + 2 beta1) / (1 - beta1) with beta1 = 0.9
    jmon.close()
    tmon.close()
