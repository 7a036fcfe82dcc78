"""P_t, m_t and the threshold of a ``torch.optim`` optimizer, read from its param_groups and state.

PyTorch's own conventions (``torch.optim`` source, 2.x), every rule written
theta_{t+1} = theta_t - P_t^{-1} m_t (+ AdamW's decoupled decay), P_t
including the step size, read *after* the step that produced theta_{t+1}:

* ``SGD`` (dampening 0, no weight decay): P = I / lr; m = g, or the momentum
  buffer b_t = mu b + g (heavy ball, threshold 2 + 2 mu), or with
  ``nesterov`` g + mu b_t (threshold of :mod:`eoslab.rules` ``nesterov``);
* ``Adam`` / ``AdamW``: P = (1 - b1^t)(sqrt(v_t / (1 - b2^t)) + eps) / lr,
  m = exp_avg (eps outside the root, bias-corrected, as PyTorch);
  AdamW also takes -lr wd theta_t, threshold (2 - lr wd)(1 + b1) / (1 - b1);
* ``RMSprop`` (not centred): P = (sqrt(s_t) + eps) / lr, m = g, or with
  momentum mu the buffer times sqrt(s_t) + eps (threshold 2 + 2 mu);
* ``Adagrad``: P = (sqrt(sum_t) + eps) / clr, clr = lr / (1 + (t - 1) lr_decay), m = g.

Coupled weight decay (``weight_decay`` > 0 in SGD, Adam, RMSprop, Adagrad)
changes the loss the optimizer descends and is refused with one sentence, as
are centred RMSprop, ``amsgrad``, ``maximize`` and SGD's ``dampening``.
One param group is supported.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from eoslab.rules import get_rule

Params = dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class TorchRule:
    """The eoslab rule of a torch optimizer (for its threshold) and how to read P_t and m_t."""
    kind: str  # sgd, adam, adamw, rmsprop, adagrad
    rule: Any  # the eoslab rule with the same threshold
    hp: Any
    group: dict

    @property
    def lr(self) -> float:
        return float(self.group["lr"])

    def threshold(self) -> float:
        """The threshold of the effective sharpness lambda_1(P^{-1} H)."""
        return float(self.rule.threshold(self.lr, self.hp))


def _refuse(group: dict, key: str, why: str) -> None:
    value = group.get(key)
    if value not in (None, False, 0, 0.0):
        raise ValueError(f"{key}={value!r} is not supported: {why}.")


def rule_of(optimizer: torch.optim.Optimizer) -> TorchRule:
    """The :class:`TorchRule` of ``optimizer`` (see the module docstring)."""
    if len(optimizer.param_groups) != 1:
        raise ValueError(f"{len(optimizer.param_groups)} param groups: one is supported (one step size, one P_t).")
    g = optimizer.param_groups[0]
    name = type(optimizer).__name__
    _refuse(g, "maximize", "the rules are written for minimisation")
    if name == "SGD":
        _refuse(g, "weight_decay", "coupled weight decay changes the loss; add it to the loss instead")
        _refuse(g, "dampening", "the thresholds are for dampening 0")
        mu = float(g["momentum"])
        rule = get_rule("gd" if mu == 0 else ("nesterov" if g["nesterov"] else "heavy-ball"))
        return TorchRule("sgd", rule, rule.hyper(**({} if mu == 0 else {"beta": mu})), g)
    if name in ("Adam", "AdamW"):
        _refuse(g, "amsgrad", "P_t of AMSGrad is the running maximum, not v_t")
        b1, b2 = (float(b) for b in g["betas"])
        if name == "Adam" or float(g["weight_decay"]) == 0:
            _refuse(g, "weight_decay", "Adam's weight decay is coupled (it changes the loss); use AdamW")
            rule = get_rule("adam")
            return TorchRule("adam", rule, rule.hyper(beta1=b1, beta2=b2, eps=float(g["eps"])), g)
        rule = get_rule("adamw")
        return TorchRule("adamw", rule, rule.hyper(beta1=b1, beta2=b2, eps=float(g["eps"]),
                                                   weight_decay=float(g["weight_decay"])), g)
    if name == "RMSprop":
        _refuse(g, "centered", "centred RMSprop's P_t depends on the mean gradient")
        _refuse(g, "weight_decay", "coupled weight decay changes the loss; add it to the loss instead")
        rule = get_rule("rmsprop")
        return TorchRule("rmsprop", rule, rule.hyper(beta2=float(g["alpha"]), eps=float(g["eps"]),
                                                     momentum=float(g["momentum"])), g)
    if name == "Adagrad":
        _refuse(g, "weight_decay", "coupled weight decay changes the loss; add it to the loss instead")
        rule = get_rule("adagrad")
        return TorchRule("adagrad", rule, rule.hyper(eps=float(g["eps"])), g)
    raise ValueError(f"torch.optim.{name} is not supported; use SGD, Adam, AdamW, RMSprop or Adagrad, or give "
                     f"the monitor an explicit preconditioner and threshold.")


def _states(optimizer, tr: TorchRule) -> list[dict]:
    params = tr.group["params"]
    missing = [i for i, p in enumerate(params) if p not in optimizer.state or not optimizer.state[p]]
    if missing:
        raise ValueError("the optimizer has no state yet; read P_t after its first step.")
    return [optimizer.state[p] for p in params]


def _step(state: dict) -> float:
    return float(state["step"])


def preconditioner(optimizer, tr: TorchRule | None = None) -> list[torch.Tensor]:
    """P_t of each parameter of the group, in the group's order (positive; the step size included)."""
    tr = tr or rule_of(optimizer)
    g, lr = tr.group, tr.lr
    if tr.kind == "sgd":
        return [torch.full_like(p, 1.0 / lr) for p in g["params"]]
    out = []
    for p, s in zip(g["params"], _states(optimizer, tr)):
        if tr.kind in ("adam", "adamw"):
            b1, b2 = (float(b) for b in g["betas"])
            t = _step(s)
            v_hat = s["exp_avg_sq"] / (1 - b2 ** t)
            out.append((1 - b1 ** t) * (v_hat.sqrt() + g["eps"]) / lr)
        elif tr.kind == "rmsprop":
            out.append((s["square_avg"].sqrt() + g["eps"]) / lr)
        else:  # adagrad
            clr = lr / (1 + (_step(s) - 1) * float(g["lr_decay"]))
            out.append((s["sum"].sqrt() + g["eps"]) / clr)
    return out


def momentum(optimizer, grads: list[torch.Tensor], tr: TorchRule | None = None) -> list[torch.Tensor]:
    """m_t of each parameter, from the state after the step and that step's gradients ``grads``."""
    tr = tr or rule_of(optimizer)
    g = tr.group
    if tr.kind == "sgd":
        mu = float(g["momentum"])
        if mu == 0:
            return list(grads)
        bufs = [s["momentum_buffer"] for s in _states(optimizer, tr)]
        return [gr + mu * b for gr, b in zip(grads, bufs)] if g["nesterov"] else bufs
    states = _states(optimizer, tr)
    if tr.kind in ("adam", "adamw"):
        return [s["exp_avg"] for s in states]
    if tr.kind == "rmsprop" and float(g["momentum"]) > 0:
        return [s["momentum_buffer"] * (s["square_avg"].sqrt() + g["eps"]) for s in states]
    return list(grads)
