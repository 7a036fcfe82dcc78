"""The GPU path of eoslab.torch: the same answers when the tensors live on CUDA (skipped on machines without one)."""
import numpy as np
import pytest
import torch

import eoslab.torch as et
from tests.torch_engine.test_eigen import float64, mlp_problem  # noqa: F401  (the float64 fixture)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_top_eigenpairs_and_the_monitor_on_cuda_match_the_cpu():
    model, x, y, params, loss_fn = mlp_problem(5)
    cpu = et.top_eigenpairs(loss_fn, params, k=2, tol=1e-9, which="largest")
    model = model.cuda()
    xc, yc = x.cuda(), y.cuda()
    from torch.func import functional_call
    loss_c = lambda p: 0.5 * ((functional_call(model, p, (xc,)) - yc) ** 2).sum(-1).mean()  # noqa: E731
    gpu = et.top_eigenpairs(loss_c, {k: v.cuda() for k, v in params.items()}, k=2, tol=1e-9)
    assert gpu.eigenvalues.device.type == "cuda" and gpu.converged
    np.testing.assert_allclose(gpu.eigenvalues.cpu().numpy(), cpu.eigenvalues.numpy(), rtol=1e-6)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    mon = et.Monitor(model, loss_c, optimizer=opt, every=1, tol=1e-9, max_hvps=80, verbose=False)
    opt.zero_grad()
    loss_c(dict(model.named_parameters())).backward()
    opt.step()
    out = mon.update(1)
    assert out["converged"] and np.isfinite(out["effective_sharpness"])
