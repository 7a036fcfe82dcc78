"""P_t and m_t read from torch.optim states reproduce each optimizer's own step (float64, to 1e-10)."""
import numpy as np
import pytest
import torch

from eoslab.torch.optimizers import momentum, preconditioner, rule_of
from tests.torch_engine.test_eigen import float64  # noqa: F401  (the float64 fixture)

CASES = [
    (torch.optim.SGD, {"lr": 0.1}, "gd", 2.0),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, "heavy-ball", 3.8),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}, "nesterov", None),
    (torch.optim.Adam, {"lr": 1e-2}, "adam", 38.0),
    (torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}, "adamw", (2 - 1e-3) * 19),
    (torch.optim.RMSprop, {"lr": 1e-2}, "rmsprop", 2.0),
    (torch.optim.RMSprop, {"lr": 1e-2, "momentum": 0.5}, "rmsprop", 3.0),
    (torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01}, "adagrad", 2.0),
]


@pytest.mark.parametrize("cls,kw,rule,thr", CASES)
def test_p_and_m_reproduce_the_optimizers_step(cls, kw, rule, thr):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(6))
    b = torch.nn.Parameter(torch.randn(2))
    opt = cls([w, b], **kw)
    loss = lambda: ((w[:2] * b).sum() - 1) ** 2 + (w ** 4).sum() / 4  # noqa: E731
    for _ in range(4):  # past the first step, so the state is not trivial
        opt.zero_grad()
        loss().backward()
        opt.step()
    before = [w.detach().clone(), b.detach().clone()]
    opt.zero_grad()
    loss().backward()
    grads = [w.grad.clone(), b.grad.clone()]
    opt.step()
    tr = rule_of(opt)
    assert tr.rule.name == rule
    if thr is not None:
        assert tr.threshold() == pytest.approx(thr)
    P, m = preconditioner(opt, tr), momentum(opt, grads, tr)
    for p0, p1, pp, mm in zip(before, [w.detach(), b.detach()], P, m):
        want = -mm / pp
        if tr.kind == "adamw":
            want = want - tr.lr * float(tr.group["weight_decay"]) * p0
        np.testing.assert_allclose((p1 - p0).numpy(), want.numpy(), rtol=1e-10, atol=1e-14)
        assert bool((pp > 0).all())


@pytest.mark.parametrize("make,match", [
    (lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=1e-4), "weight_decay=0.0001 is not supported"),
    (lambda ps: torch.optim.Adam(ps, lr=0.1, amsgrad=True), "amsgrad=True is not supported"),
    (lambda ps: torch.optim.RMSprop(ps, lr=0.1, centered=True), "centered=True is not supported"),
    (lambda ps: torch.optim.Adamax(ps, lr=0.1), "torch.optim.Adamax is not supported"),
])
def test_unsupported_optimizers_are_one_sentence(make, match):
    with pytest.raises(ValueError, match=match):
        rule_of(make([torch.nn.Parameter(torch.randn(3))]))


def test_reading_p_before_the_first_step_is_one_sentence():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.randn(3))], lr=0.1)
    with pytest.raises(ValueError, match="no state yet"):
        preconditioner(opt)
