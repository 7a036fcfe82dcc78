"""The PyTorch monitor in a plain torch loop: against the dense Hessian, P_t from Adam's state, eval mode, the store."""
import numpy as np
import pytest
import torch
from torch.func import functional_call

import eoslab.torch as et
from eoslab.store import RunStore
from tests.torch_engine.test_eigen import dense, float64  # noqa: F401  (the float64 fixture)


def problem(extra=()):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), *extra, torch.nn.Linear(8, 2))
    x, y = torch.randn(40, 5), torch.randn(40, 2)
    loss_fn = lambda p: 0.5 * ((functional_call(model, p, (x,)) - y) ** 2).sum(-1).mean()  # noqa: E731
    return model, loss_fn


def train(model, loss_fn, opt, mon, steps):
    outs = {}
    for t in range(1, steps + 1):
        opt.zero_grad()
        loss_fn(dict(model.named_parameters())).backward()
        opt.step()
        out = mon.update(t)
        if out is not None:
            outs[t] = out
    return outs


def test_adam_loop_against_dense_hessians_and_the_store(tmp_path):
    model, loss_fn = problem()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    mon = et.Monitor(model, loss_fn, optimizer=opt, every=5, tol=1e-9, max_hvps=60, store=tmp_path, verbose=False)
    outs = train(model, loss_fn, opt, mon, 10)
    mon.close()
    params = {n: p.detach() for n, p in model.named_parameters()}
    np.testing.assert_allclose(outs[10]["sharpness"], dense(loss_fn, params).numpy()[-1], rtol=1e-6)
    P = dict(zip(params, et.optimizers.preconditioner(opt)))
    lam_p = dense(loss_fn, params, P).numpy()[-1]
    np.testing.assert_allclose(outs[10]["effective_sharpness"], lam_p, rtol=1e-6)
    np.testing.assert_allclose(outs[10]["edge_ratio"], lam_p / 38.0, rtol=1e-6)
    assert outs[10]["converged"]
    with RunStore.in_dir(tmp_path) as store:
        (run,) = store.list_runs()
        assert run.status == "completed" and run.config["optimizer"]["name"] == "adam"
        np.testing.assert_array_equal(store.get_metrics(run.id)["edge_ratio"][0], [5, 10])


def test_sgd_edge_ratio_is_sharpness_over_two_over_eta():
    model, loss_fn = problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    mon = et.Monitor(model, loss_fn, optimizer=opt, every=3, tol=1e-9, max_hvps=60, verbose=False)
    out = train(model, loss_fn, opt, mon, 3)[3]
    assert out["threshold"] == pytest.approx(10.0)
    assert out["edge_ratio"] == pytest.approx(out["sharpness"] / 10.0)


def test_eval_mode_by_default_and_dropout_refused_in_train_mode():
    model, loss_fn = problem(extra=(torch.nn.Dropout(0.5),))
    model.train()
    mon = et.Monitor(model, loss_fn, every=1, tol=1e-9, max_hvps=60, verbose=False)
    a, b = mon.update(0), mon.update(1)  # deterministic: dropout is off while measuring
    assert a["sharpness"] == pytest.approx(b["sharpness"], rel=1e-6)
    assert model.training  # the mode is restored
    with pytest.raises(ValueError, match="train_mode=True with dropout"):
        et.Monitor(model, loss_fn, train_mode=True)


def test_batchnorm_running_statistics_are_left_untouched():
    model, loss_fn = problem(extra=(torch.nn.BatchNorm1d(8),))
    before = {n: b.clone() for n, b in model.named_buffers()}
    et.Monitor(model, loss_fn, every=1, train_mode=True, verbose=False).update(0)
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n])
