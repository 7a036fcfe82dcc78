"""Warm-started tracking of the top Hessian eigenpairs along a PyTorch training run.

As :class:`eoslab.curvature.SharpnessTracker`: between two steps the Hessian
changes little, so the previous k eigenvectors, plus a guard (the next Ritz
vector, so a crossing with the (k+1)-th eigenvalue is seen), each with a
random component of relative size ``noise`` (so no direction has weight
zero), start the next block Lanczos solve (:mod:`eoslab.torch.eigen`); it
reaches the same certified accuracy in a few products.  An update whose top
value moved by more than ``jump`` (relative) or that did not converge, and
every update with ``refresh=True``, also runs a cold solve from random
vectors and keeps the one with the larger top value (each Ritz value is a
lower bound of the eigenvalue of its rank).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from eoslab.torch.eigen import EigenResult, default_max_hvps, operator, solve
from eoslab.torch.products import Params, unflatten


@dataclasses.dataclass
class TrackerState:
    vectors: torch.Tensor  # (k + 1, n): the tracked eigenvectors and the guard
    eigenvalues: torch.Tensor  # (k,)
    updates: int
    generator: torch.Generator


@dataclasses.dataclass(frozen=True)
class SharpnessTracker:
    """Track the k largest eigenpairs of H (or P^{-1/2} H P^{-1/2} with ``precond``)."""
    k: int = 1
    tol: float = 1e-4
    max_hvps: int = 20
    cold_max_hvps: int | None = None
    jump: float = 0.1
    noise: float = 0.01

    def _cold(self, op, n, like: torch.Tensor, gen) -> tuple:
        start = torch.randn(self.k, n, generator=gen, dtype=like.dtype).to(like.device)
        return solve(op, n, self.k, tol=self.tol, max_hvps=self.cold_max_hvps or default_max_hvps(n, self.k),
                     start=start, gen=gen)

    @staticmethod
    def _result(out, params) -> EigenResult:
        values, vecs, err, res, m, ok = out
        return EigenResult(values, [unflatten(v, params) for v in vecs[:len(values)]], err, res, m, ok)

    def _state(self, out, n, like, gen, updates) -> TrackerState:
        values, vecs = out[0], out[1]
        if vecs.shape[0] < self.k + 1:  # no guard yet: a random one
            vecs = torch.cat([vecs, torch.randn(1, n, generator=gen, dtype=like.dtype).to(like.device)])
        return TrackerState(vecs, values, updates, gen)

    def init(self, loss_fn: Callable, params: Params, *, precond: Params | None = None,
             seed: int = 0) -> tuple[EigenResult, TrackerState]:
        """A cold solve at ``params``."""
        op, n = operator(loss_fn, params, precond)
        like = next(iter(params.values()))
        gen = torch.Generator().manual_seed(seed)
        out = self._cold(op, n, like, gen)
        return self._result(out, params), self._state(out, n, like, gen, 0)

    def update(self, loss_fn: Callable, params: Params, state: TrackerState, *, precond: Params | None = None,
               refresh: bool = False) -> tuple[EigenResult, TrackerState]:
        """A warm solve at new ``params`` from the previous vectors (and a cold check when asked or doubtful)."""
        op, n = operator(loss_fn, params, precond)
        like = next(iter(params.values()))
        gen = state.generator
        start = state.vectors.to(like.dtype)
        z = torch.randn(start.shape, generator=gen, dtype=like.dtype).to(like.device)
        start = start + self.noise * z * (start.norm(dim=1, keepdim=True) / z.norm(dim=1, keepdim=True))
        out = solve(op, n, self.k, tol=self.tol, max_hvps=self.max_hvps, start=start, gen=gen)
        if out[4] == 0 or not torch.isfinite(out[0]).all():
            return self._result(out, params), state
        moved = abs(float(out[0][0]) - float(state.eigenvalues[0])) > self.jump * abs(float(state.eigenvalues[0]))
        if refresh or moved or not out[5]:
            cold = self._cold(op, n, like, gen)
            hvps = out[4] + cold[4]
            best = cold if float(cold[0][0]) > float(out[0][0]) else out
            out = (*best[:4], hvps, best[5])
        return self._result(out, params), self._state(out, n, like, gen, state.updates + 1)
