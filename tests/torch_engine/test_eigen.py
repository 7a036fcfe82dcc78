"""eoslab.torch against dense PyTorch Hessians (float64) and against the JAX engine on copied weights."""
import numpy as np
import pytest
import torch
from torch.func import functional_call

import eoslab.torch as et
from eoslab.torch.products import unflatten


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def mlp_problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    x, y = torch.randn(40, 5), torch.randn(40, 2)
    params = {k: v.detach() for k, v in model.named_parameters()}
    return model, x, y, params, (lambda p: 0.5 * ((functional_call(model, p, (x,)) - y) ** 2).sum(-1).mean())


def dense(loss_fn, params, precond=None):
    flat = torch.cat([t.reshape(-1) for t in params.values()])
    h = torch.autograd.functional.hessian(lambda v: loss_fn(unflatten(v, params)), flat)
    if precond is not None:
        r = torch.cat([precond[k].reshape(-1) for k in params]).rsqrt()
        h = r[:, None] * h * r[None, :]
    return torch.linalg.eigvalsh(h)  # ascending


def certified(res, exact, tol):
    assert res.converged
    scale = float(np.max(np.abs(exact)))
    assert np.all(res.errors.numpy() <= tol * scale)
    assert np.all(np.abs(res.eigenvalues.numpy() - exact) <= res.residuals.numpy() * (1 + 1e-8) + 1e-12)


def test_top_k_and_smallest_against_the_dense_hessian():
    _, _, _, params, loss_fn = mlp_problem()
    ev = dense(loss_fn, params).numpy()
    top = et.top_eigenpairs(loss_fn, params, k=3, tol=1e-8)
    np.testing.assert_allclose(top.eigenvalues.numpy(), ev[::-1][:3], rtol=1e-6)
    certified(top, ev[::-1][:3], 1e-8)
    low = et.top_eigenpairs(loss_fn, params, k=2, which="smallest", tol=1e-8)
    np.testing.assert_allclose(low.eigenvalues.numpy(), ev[:2], rtol=1e-6)
    assert low.eigenvalues[0] < 0  # a saddle direction, found as the most negative
    # the eigenvectors are unit vectors with H y = theta y
    y = top.eigenvectors[0]
    hy = et.hvp(loss_fn, params, y)
    flat = lambda d: torch.cat([t.reshape(-1) for t in d.values()])
    np.testing.assert_allclose(flat(hy).numpy(), (top.eigenvalues[0] * flat(y)).numpy(), atol=1e-6)


def test_preconditioned_against_the_dense_symmetric_operator():
    _, _, _, params, loss_fn = mlp_problem(1)
    gen = torch.Generator().manual_seed(3)
    precond = {k: 0.5 + torch.rand(v.shape, generator=gen) for k, v in params.items()}
    ev = dense(loss_fn, params, precond).numpy()
    res = et.top_eigenpairs(loss_fn, params, k=2, tol=1e-8, precond=precond)
    np.testing.assert_allclose(res.eigenvalues.numpy(), ev[::-1][:2], rtol=1e-6)
    certified(res, ev[::-1][:2], 1e-8)


def test_a_small_cnn_and_every_product_mode():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                torch.nn.Linear(3 * 4 * 4, 2))
    x, y = torch.randn(16, 1, 6, 6), torch.randn(16, 2)
    params = {k: v.detach() for k, v in model.named_parameters()}
    loss_fn = lambda p: 0.5 * ((functional_call(model, p, (x,)) - y) ** 2).sum(-1).mean()  # noqa: E731
    ev = dense(loss_fn, params).numpy()
    for mode in ("graph", "forward", "double"):
        res = et.top_eigenpairs(loss_fn, params, k=2, tol=1e-8, mode=mode)
        np.testing.assert_allclose(res.eigenvalues.numpy(), ev[::-1][:2], rtol=1e-6)


def test_against_the_jax_engine_on_the_same_weights():
    import jax
    import jax.numpy as jnp

    from eoslab.curvature import top_eigenpairs
    _, x, y, params, loss_fn = mlp_problem(4)
    jp = {k: jnp.asarray(v.numpy()) for k, v in params.items()}
    xj, yj = jnp.asarray(x.numpy()), jnp.asarray(y.numpy())

    def jloss(p):  # the same network: torch Linear is x W^T + b
        h = jnp.tanh(xj @ p["0.weight"].T + p["0.bias"])
        return 0.5 * jnp.mean(jnp.sum((h @ p["2.weight"].T + p["2.bias"] - yj) ** 2, -1))

    assert jax.numpy.asarray(0.0).dtype == jnp.float64  # the suite runs JAX in float64
    want = np.asarray(top_eigenpairs(jloss, jp, 3, tol=1e-9).eigenvalues)
    got = et.top_eigenpairs(loss_fn, params, k=3, tol=1e-9).eigenvalues.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_breakdown_trap_h_equals_identity():
    """H = I: the Krylov space of one vector is invariant; three pairs still come back, all 1."""
    params = {"w": torch.randn(20)}
    res = et.top_eigenpairs(lambda p: 0.5 * (p["w"] ** 2).sum(), params, k=3, tol=1e-10)
    np.testing.assert_allclose(res.eigenvalues.numpy(), [1.0, 1.0, 1.0], rtol=1e-12)
    assert res.converged


def test_a_budget_capped_solve_is_not_converged():
    _, _, _, params, loss_fn = mlp_problem()
    res = et.top_eigenpairs(loss_fn, params, k=2, tol=1e-12, max_hvps=3)
    assert not res.converged and res.num_hvps == 3


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 0}, "k=0 must be an integer between 1"),
    ({"which": "top"}, "which='top' must be"),
    ({"tol": 0.0}, "tol=0.0 must be > 0"),
    ({"max_hvps": 1, "k": 2}, "max_hvps=1 must be at least k=2"),
    ({"precond": {"w": -torch.ones(3)}}, "precond must be positive"),
    ({"precond": {"v": torch.ones(3)}}, "precond must be a dict with the names and shapes"),
])
def test_bad_input_is_one_sentence(kwargs, match):
    params = {"w": torch.randn(3)}
    with pytest.raises(ValueError, match=match):
        et.top_eigenpairs(lambda p: (p["w"] ** 4).sum(), params, **kwargs)
