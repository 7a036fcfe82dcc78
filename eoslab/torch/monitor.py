"""``eoslab.torch.Monitor``: sharpness, lambda_1(P^{-1} H), edge ratio and events inside a PyTorch loop.

The PyTorch twin of :class:`eoslab.Monitor`.  Every ``every`` steps it reads
the model's parameters, solves for the top Hessian eigenvalues of
``loss_fn`` with the warm-started tracker (:mod:`eoslab.torch.tracker`), and,
with an optimizer, reads P_t exactly from its state
(:mod:`eoslab.torch.optimizers`) and solves for lambda_1(P^{-1} H) against
the optimizer's threshold.  Events, the run store and TensorBoard are those
of the JAX monitor (:mod:`eoslab.monitor.recording`).

**Train-mode layers.**  The Hessian is that of a deterministic loss: the
monitor switches the model to ``eval()`` while it measures (dropout off,
BatchNorm with its running statistics, which the measurement does not
update) and restores the mode after.  ``train_mode=True`` measures in train
mode instead: refused with one sentence for a model with dropout (a random
loss has no Hessian); allowed with BatchNorm, whose Hessian then includes the
batch statistics' dependence on the parameters, with the running statistics
left untouched (they are saved and restored around the measurement).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch

from eoslab.monitor.events import EventRules
from eoslab.monitor.recording import Recorded, Recorder
from eoslab.probes.base import member_facts
from eoslab.torch.optimizers import TorchRule, preconditioner, rule_of
from eoslab.torch.tracker import SharpnessTracker

_DROPOUT = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout)


class Monitor(Recorded):
    """Measure a PyTorch training loop every ``every`` steps (see the module docstring).

    ``loss_fn(params)`` is the loss of a dict of named tensors, built with
    ``torch.func.functional_call(model, params, ...)``.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable, *, optimizer: torch.optim.Optimizer | None = None,
                 every: int = 10, k: int = 1, tol: float = 1e-3, max_hvps: int = 20, train_mode: bool = False,
                 store=None, tensorboard=None, name: str = "monitor", events: EventRules | None = None,
                 verbose: bool = True, seed: int = 0):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} must be an integer >= 1 (measure every that many steps).")
        if train_mode and any(isinstance(m, _DROPOUT) for m in model.modules()):
            raise ValueError("train_mode=True with dropout: a random loss has no Hessian; measure in eval mode "
                             "(the default).")
        self.model, self.loss, self.optimizer, self.every, self.train_mode = model, loss_fn, optimizer, every, train_mode
        self.rule: TorchRule | None = rule_of(optimizer) if optimizer is not None else None
        self.tracker = SharpnessTracker(k=k, tol=tol, max_hvps=max_hvps)
        self.ptracker = SharpnessTracker(k=1, tol=tol, max_hvps=max_hvps) if self.rule is not None else None
        self.seed, self._state, self._pstate = seed, None, None
        self._rec = Recorder(store=store, tensorboard=tensorboard, name=name, seed=seed, events=events,
                             verbose=verbose, describe=self.describe)

    def describe(self) -> dict:
        opt = {} if self.rule is None else {"name": self.rule.rule.name, "lr": self.rule.lr, "torch": self.rule.kind}
        return {"name": self._rec.name, "monitor": {"every": self.every, "k": self.tracker.k, "tol": self.tracker.tol,
                                                    "train_mode": self.train_mode, "framework": "torch"},
                "optimizer": opt}

    @contextlib.contextmanager
    def _measuring(self):
        was = self.model.training
        # a train-mode forward updates running statistics: keep them to restore (eval mode leaves them alone)
        buffers = {n: b.clone() for n, b in self.model.named_buffers()} if self.train_mode else {}
        self.model.train(self.train_mode)
        try:
            yield
        finally:
            self.model.train(was)
            with torch.no_grad():
                for n, b in self.model.named_buffers():
                    if n in buffers:
                        b.copy_(buffers[n])

    def update(self, step: int) -> dict | None:
        """Measure at ``step`` if it is a multiple of ``every`` (else None): plain floats and ``events``."""
        step = int(step)
        if step % self.every:
            return None
        params = {n: p.detach() for n, p in self.model.named_parameters()}
        with self._measuring():
            loss = float(self.loss(params))
            if self._state is None:
                res, self._state = self.tracker.init(self.loss, params, seed=self.seed)
            else:
                res, self._state = self.tracker.update(self.loss, params, self._state)
            out = {"loss": loss, "sharpness_hvps": float(res.num_hvps)}
            for i, v in enumerate(res.eigenvalues.tolist()):
                out["sharpness" if i == 0 else f"sharpness_{i + 1}"] = v
            out.update(sharpness_error=float(res.errors.max()), sharpness_residual=float(res.residuals.max()),
                       converged=bool(res.converged))
            if self.rule is not None:
                self._effective(out, params)
        out["error"] = out["sharpness_error"]
        return self._rec.record(step, out)

    def _effective(self, out: dict, params) -> None:
        facts = member_facts(self.rule.rule, self.rule.hp, self.rule.lr)
        thr = facts.effective_threshold
        out.update(eta=facts.eta, threshold=facts.threshold, effective_threshold=thr)
        if not self.rule.rule.adaptive:  # P = I / eta
            out.update(effective_sharpness=facts.eta * out["sharpness"], edge_ratio=out["sharpness"] / facts.threshold)
            return
        try:
            P = dict(zip(params, preconditioner(self.optimizer, self.rule)))
        except ValueError:  # before the optimizer's first step there is no P_t yet
            out.update(effective_sharpness=math.nan, edge_ratio=math.nan)
            return
        P = {n: p.detach().to(params[n].dtype) for n, p in P.items()}
        if self._pstate is None:
            res, self._pstate = self.ptracker.init(self.loss, params, precond=P, seed=self.seed + 1)
        else:
            res, self._pstate = self.ptracker.update(self.loss, params, self._pstate, precond=P)
        lam = float(res.eigenvalues[0])
        out.update(effective_sharpness=lam, edge_ratio=lam / thr, effective_sharpness_hvps=float(res.num_hvps),
                   effective_sharpness_error=float(res.errors[0]), effective_sharpness_converged=float(res.converged))
        out["converged"] = out["converged"] and bool(res.converged)
