"""Certified extreme eigenpairs of a PyTorch Hessian: block Lanczos with full reorthogonalisation.

The same method and certificate as the JAX engine
(:mod:`eoslab.curvature.block_lanczos`), written for eager PyTorch.  From an
orthonormal start block of b = k Gaussian vectors, step j applies A to q_j
and appends the part of A q_j orthogonal to every basis vector (Gram-Schmidt
twice) as q_{j+b}, keeping h_ij = q_i . A q_j.  After m products,

    A Q_m = Q_m T_m + Q_p C_m,   T_m = Q_m^T A Q_m,   C_m = Q_p^T A Q_m,

so each Ritz pair (theta_i, y_i = Q_m s_i) of T_m has the exact residual
r_i = ||C_m s_i||: some eigenvalue lies within r_i of theta_i, and theta_i <=
lambda_i (interlacing).  The error estimate is min(r_i, r_i^2 / g_i) with g_i
= min_j (|theta_i - theta_j| - r_j) over the other Ritz values (the gap
theorem; Parlett, *The Symmetric Eigenvalue Problem*, 11.5, 11.7).  The solve
stops when each of the k wanted pairs has error estimate <= tol * max|theta|,
when ``max_hvps`` products are spent (``converged`` False: the values are
budget-capped), when the space is exhausted, or after a non-finite product.
A vanished direction (an invariant subspace, e.g. H = I) is replaced by a
random vector orthogonal to the basis with coupling 0, so k pairs always exist.

``which="smallest"`` runs on -A.  ``precond`` (a positive dict like params,
P_t including the step size) gives the eigenvalues of P^{-1} H through the
symmetric P^{-1/2} H P^{-1/2}; the eigenvectors returned are those of that
symmetric operator.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from eoslab.torch.products import Params, flat_hvp, flatten, unflatten


@dataclasses.dataclass
class EigenResult:
    """As :class:`eoslab.curvature.EigenResult`: k pairs, descending (``smallest``: ascending), certified."""
    eigenvalues: torch.Tensor  # (k,)
    eigenvectors: list[Params]  # k unit vectors (dicts like params)
    errors: torch.Tensor  # (k,) eigenvalue error estimates
    residuals: torch.Tensor  # (k,) ||A y - theta y||, exact
    num_hvps: int
    converged: bool


def default_max_hvps(dim: int, k: int) -> int:
    """As the JAX engine: min(dim, max(100, 20 k))."""
    return min(dim, max(100, 20 * k))


def _orthogonalise(basis: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h = torch.zeros(basis.shape[0], dtype=w.dtype, device=w.device)
    for _ in range(2):
        c = basis @ w
        w = w - basis.T @ c
        h = h + c
    return w, h


def _random_unit(basis: torch.Tensor, n: int, gen: torch.Generator, dtype, device) -> torch.Tensor | None:
    """A random unit vector orthogonal to the rows of ``basis``, or None when they span the space."""
    if basis.shape[0] >= n:
        return None
    z = torch.randn(n, generator=gen, dtype=dtype).to(device)
    w, _ = _orthogonalise(basis, z) if basis.shape[0] else (z, None)
    norm = torch.linalg.vector_norm(w)
    return w / norm if norm > math.sqrt(torch.finfo(dtype).eps) * torch.linalg.vector_norm(z) else None


def _ritz(coeffs: torch.Tensor, m: int, count: int):
    """Ritz values (descending), vectors in the basis, exact residuals and error estimates after m products."""
    t = coeffs[:m, :m]
    t = 0.5 * (t + t.T)
    theta, s = torch.linalg.eigh(t)
    theta, s = theta.flip(0), s.flip(1)
    c = coeffs[m:count, :m]
    res = torch.linalg.vector_norm(c @ s, dim=0) if c.shape[0] else torch.zeros_like(theta)
    dist = (theta[:, None] - theta[None, :]).abs() - res[None, :]
    dist.fill_diagonal_(float("inf"))
    # one Ritz value has no neighbour to measure a gap from: its error estimate is its residual
    gap = dist.min(dim=1).values if len(theta) > 1 else torch.full_like(theta, float("nan"))
    err = torch.where(gap > 0, torch.minimum(res, res ** 2 / gap.clamp_min(torch.finfo(theta.dtype).tiny)), res)
    return theta, s, res, err


def solve(matvec: Callable, n: int, k: int, *, tol: float, max_hvps: int, start: torch.Tensor,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, bool]:
    """Block Lanczos on flat vectors: (values, vectors [k, n], errors, residuals, products, converged)."""
    dtype, device = start.dtype, start.device
    rows: list[torch.Tensor] = []
    for v in start:  # orthonormal start block; a dependent or zero vector becomes random
        basis = torch.stack(rows) if rows else torch.zeros(0, n, dtype=dtype, device=device)
        w = _orthogonalise(basis, v)[0] if rows else v
        norm = torch.linalg.vector_norm(w)
        if torch.isfinite(norm) and norm > math.sqrt(torch.finfo(dtype).eps) * torch.linalg.vector_norm(v):
            rows.append(w / norm)
        else:
            fresh = _random_unit(basis, n, gen, dtype, device)
            if fresh is not None:
                rows.append(fresh)
    budget = min(max_hvps, n)
    coeffs = torch.zeros(budget + len(rows) + 1, budget, dtype=dtype, device=device)
    m, out = 0, None
    while m < min(budget, len(rows)):
        aq = matvec(rows[m])
        if not bool(torch.isfinite(aq).all()):
            break
        basis = torch.stack(rows)
        w, h = _orthogonalise(basis, aq)
        coeffs[:len(rows), m] = h
        norm = torch.linalg.vector_norm(w)
        if norm > math.sqrt(torch.finfo(dtype).eps) * torch.linalg.vector_norm(aq).clamp_min(1e-300):
            coeffs[len(rows), m] = norm
            rows.append(w / norm)
        else:  # breakdown: the Krylov space is invariant; go on in its complement with coupling 0
            fresh = _random_unit(basis, n, gen, dtype, device)
            if fresh is not None:
                rows.append(fresh)
        m += 1
        if m >= k:
            theta, s, res, err = _ritz(coeffs, m, len(rows))
            scale = theta.abs().max()
            done = bool((err[:k] <= tol * scale).all()) or m == n
            out = (theta, s, res, err, done)
            if done:
                break
    if out is None:  # fewer than k products (non-finite at once, or k > n)
        theta, s, res, err = _ritz(coeffs, max(m, 1), len(rows)) if m else (None,) * 4
        if theta is None:
            nan = torch.full((k,), float("nan"), dtype=dtype, device=device)
            return nan, torch.zeros(k, n, dtype=dtype, device=device), nan, nan, m, False
        out = (theta, s, res, err, False)
    theta, s, res, err, done = out
    q = torch.stack(rows[:m])
    vecs = (s[:, :k + 1].T @ q)  # the k wanted Ritz vectors and, when there is one, the next (a tracker's guard)
    return theta[:k], vecs, err[:k], res[:k], m, done and m >= k


def operator(loss_fn: Callable, params: Params, precond: Params | None = None,
             mode: str = "auto") -> tuple[Callable, int]:
    """(x -> A x on flat vectors, the dimension): A = H, or P^{-1/2} H P^{-1/2} with ``precond`` (checked:
    a positive dict with the names and shapes of ``params``)."""
    matvec, n = flat_hvp(loss_fn, params, mode=mode)
    if precond is None:
        return matvec, n
    if set(precond) != set(params) or any(precond[name].shape != params[name].shape for name in params):
        raise ValueError("precond must be a dict with the names and shapes of params (P_t, positive).")
    d = flatten({name: precond[name] for name in params}).to(next(iter(params.values())).dtype)
    if not bool((d > 0).all()):
        raise ValueError("precond must be positive everywhere (P_t includes the step size, e.g. sqrt(v)/lr).")
    r = d.rsqrt()
    return (lambda x: r * matvec(r * x)), n


def top_eigenpairs(loss_fn: Callable, params: Params, k: int = 1, *, tol: float = 1e-4, which: str = "largest",
                   precond: Params | None = None, max_hvps: int | None = None, seed: int = 0,
                   mode: str = "auto") -> EigenResult:
    """The k largest (or most negative) eigenvalues of the Hessian of ``loss_fn`` at ``params``, certified.

    ``params``: a dict of named tensors; ``precond``: a positive dict like it
    (eigenvalues of P^{-1} H); ``max_hvps``: budget (default min(dim, max(100, 20 k)));
    ``mode``: the Hessian-vector product (:mod:`eoslab.torch.products`; "auto": one kept gradient graph
    per solve, one backward pass per product).
    """
    if not isinstance(params, dict) or not params:
        raise TypeError("params must be a non-empty dict of named tensors, e.g. "
                        "{k: v.detach() for k, v in model.named_parameters()}.")
    if which not in ("largest", "smallest"):
        raise ValueError(f"which={which!r} must be 'largest' or 'smallest'.")
    op, n = operator(loss_fn, params, precond, mode)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k={k!r} must be an integer between 1 and the number of parameters ({n}).")
    if not tol > 0:
        raise ValueError(f"tol={tol!r} must be > 0 (relative eigenvalue accuracy, e.g. 1e-4).")
    budget = default_max_hvps(n, k) if max_hvps is None else int(max_hvps)
    if budget < k:
        raise ValueError(f"max_hvps={max_hvps!r} must be at least k={k}.")
    first = next(iter(params.values()))
    dtype, device = first.dtype, first.device
    sign = 1.0 if which == "largest" else -1.0
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(k, n, generator=gen, dtype=dtype).to(device)
    values, vecs, err, res, m, ok = solve(lambda x: sign * op(x), n, k, tol=tol, max_hvps=budget, start=start,
                                          gen=gen)
    return EigenResult(sign * values, [unflatten(v, params) for v in vecs[:k]], err, res, m, ok)
