"""Block Lanczos with full reorthogonalisation: extreme eigenpairs with certified accuracy.

The eigensolver behind :func:`~eoslab.curvature.top_eigenpairs` and
:class:`~eoslab.curvature.SharpnessTracker`, on flat vectors.

**Process** (band Lanczos, Ruhe 1979; block Lanczos, Golub & Underwood 1977).
The first ``b`` basis vectors q_0 .. q_{b-1} are the orthonormalised start
block.  Step j applies A to q_j and appends the part of A q_j orthogonal to
every basis vector so far (Gram-Schmidt twice, Giraud et al. 2005) as
q_{j+b}, keeping the coefficients h_ij = q_i . A q_j.  After m steps, with
Q_m = [q_0 .. q_{m-1}] and the b pending vectors Q_p = [q_m .. q_{m+b-1}],

    A Q_m = Q_m T_m + Q_p C_m,   T_m = Q_m^T A Q_m,   C_m = Q_p^T A Q_m,

both small matrices known from the coefficients.  Rayleigh-Ritz on T_m gives
Ritz pairs (theta_i, y_i = Q_m s_i), and the residual of each is *exactly*
||A y_i - theta_i y_i|| = ||C_m s_i||, with no further product.

**Breakdown.**  When the new direction vanishes (A q_j lies in the span of the
basis, the Krylov space is invariant), a random unit vector orthogonal to the
basis takes its place with coupling 0, so the iteration goes on in the
orthogonal complement: k pairs always exist when the dimension allows, and an
invariant subspace smaller than k (H = I, say) is never padded out.

**Multiplicity.**  A block Krylov space of b start vectors holds up to b
independent eigenvectors of each eigenvalue, so an eigenvalue of multiplicity
up to b appears as that many Ritz values; a single start vector (b = 1) finds
one copy only (in exact arithmetic).  :func:`~eoslab.curvature.top_eigenpairs`
uses b = k.

**Accuracy.**  For each Ritz value with residual r_i (Parlett, *The Symmetric
Eigenvalue Problem*, 11.5 and 11.7):

* deterministic: some eigenvalue of A lies within r_i of theta_i, and (Cauchy
  interlacing) theta_i <= lambda_i, the i-th largest eigenvalue;
* estimate: the error is about r_i^2 / g_i once that is smaller than r_i
  (the gap theorem), g_i the gap from theta_i to the rest of the spectrum.
  The true gap is unknown; g_i = min_j (|theta_i - theta_j| - r_j) over the
  other Ritz values stands in for it, each neighbour moved towards theta_i
  by its own residual, so a neighbour that is not yet resolved (a poor Ritz
  value far below the eigenvalue it approximates) shrinks the gap instead of
  inflating it; ``errors = min(r_i, r_i^2 / g_i)``.

The solve stops when every one of the k largest pairs has error estimate
<= tol * max|theta| (eigenvalue accuracy relative to the top of the spectrum),
when the buffer of ``max_steps`` products is spent, when the space is
exhausted, or after a non-finite product (a diverged run).

**What is not guaranteed** is that the theta_i are the *top* k eigenvalues:
that needs the start block to have a component along each of their
eigenvectors.  A Gaussian random start block has one with probability 1, and
for it Kuczynski & Wozniakowski (1992) bound the chance that m Lanczos steps
leave a relative error above e in the top eigenvalue by about
1.648 sqrt(n) exp(-sqrt(e) (2m - 1)).  Warm starts carry a random component
for the same reason (:mod:`eoslab.curvature.tracker`).

Everything has fixed shapes and a bounded ``lax.while_loop``: ``jit``- and
``vmap``-safe.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class BlockKrylov(NamedTuple):
    """The state of a block Lanczos run with a buffer of ``max_steps`` products."""
    basis: jax.Array  # (max_steps + b, n): q_0 .. q_{m+b-1}; unused rows zero
    coeffs: jax.Array  # (max_steps + b, max_steps): coeffs[i, j] = q_i . A q_j for applied j
    valid: jax.Array  # (max_steps + b,): the row is a unit basis vector (False: unused, or space exhausted)
    num_steps: jax.Array  # m, the number of products spent
    num_restarts: jax.Array  # vanished directions replaced by random vectors (breakdowns)
    finite: jax.Array  # every product so far was finite


class Ritz(NamedTuple):
    """The largest Ritz pairs of a run, with residuals and error estimates."""
    values: jax.Array  # (p,), descending
    coeffs: jax.Array  # (max_steps, p): s_i, zero outside the applied vectors
    residuals: jax.Array  # (p,): ||A y_i - theta_i y_i||, exact
    errors: jax.Array  # (p,): min(r_i, r_i^2 / gap_i), the eigenvalue error estimate
    num_active: jax.Array  # number of applied (valid) vectors: Ritz values that are real


def _orthogonalise(basis: jax.Array, count, w: jax.Array):
    """w minus its projection on basis rows < count (twice), and the coefficients removed."""
    mask = (jnp.arange(basis.shape[0]) < count).astype(w.dtype)
    h = jnp.zeros(basis.shape[0], w.dtype)
    for _ in range(2):
        c = mask * (basis @ w)
        w = w - basis.T @ c
        h = h + c
    return w, h


def _random_direction(basis: jax.Array, count, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A random unit vector orthogonal to basis rows < count, and whether one exists.

    The vector is the Gaussian vector ``z`` (drawn once per run) cyclically
    shifted by ``count``: a permutation of i.i.d. Gaussian entries is Gaussian,
    and the n shifts of a Gaussian vector are independent with probability 1
    (its circulant matrix is nonsingular), so every row index in use (count <
    n) gives a direction outside the span of the earlier ones.  One draw per
    run instead of one per replacement keeps the compiled loop small.
    """
    z = jnp.roll(z, count)
    w, _ = _orthogonalise(basis, count, z)
    norm = jnp.linalg.norm(w)
    ok = norm > jnp.sqrt(jnp.finfo(basis.dtype).eps) * jnp.linalg.norm(z)
    return jnp.where(ok, w / jnp.where(ok, norm, 1.0), 0.0), ok


def _start(start_block: jax.Array, max_steps: int, z: jax.Array) -> BlockKrylov:
    """Orthonormalise the start block into the first b rows (a dependent or zero vector becomes random)."""
    b, n = start_block.shape
    dtype = start_block.dtype

    def row(i, carry):  # a loop, not unrolled: one copy of the Gram-Schmidt in the compiled program
        basis, valid = carry
        v = start_block[i]
        w, _ = _orthogonalise(basis, i, v)
        norm = jnp.linalg.norm(w)
        good = jnp.isfinite(norm) & (norm > jnp.sqrt(jnp.finfo(dtype).eps) * jnp.linalg.norm(v))
        fresh, fresh_ok = _random_direction(basis, i, z)
        return basis.at[i].set(jnp.where(good, w / jnp.where(good, norm, 1.0), fresh)), valid.at[i].set(good | fresh_ok)

    basis, valid = jax.lax.fori_loop(0, b, row, (jnp.zeros((max_steps + b, n), dtype),
                                                 jnp.zeros((max_steps + b,), bool)))
    zero = jnp.asarray(0, jnp.int32)
    return BlockKrylov(basis, jnp.zeros((max_steps + b, max_steps), dtype), valid, zero, zero,
                       jnp.asarray(True))


def projected_matrix(kr: BlockKrylov) -> tuple[jax.Array, jax.Array]:
    """T_m = Q_m^T A Q_m in a max_steps x max_steps matrix whose padding sits below its spectrum,
    and the mask of its active (applied, valid) rows."""
    s = kr.coeffs.shape[1]
    idx = jnp.arange(s)
    active = (idx < kr.num_steps) & kr.valid[:s]
    t = kr.coeffs[:s]
    t = jnp.where(active[:, None] & active[None, :], (t + t.T) / 2, 0.0)
    radius = jnp.sum(jnp.abs(t), axis=1) - jnp.abs(jnp.diag(t))
    lower = jnp.min(jnp.where(active, jnp.diag(t) - radius, jnp.inf))
    width = jnp.max(jnp.where(active, jnp.abs(jnp.diag(t)) + radius, 0.0))
    lower = jnp.where(jnp.isfinite(lower), lower, 0.0)
    pad = lower - 1.0 - width  # strictly below every eigenvalue of the active block (Gershgorin)
    return t + jnp.diag(jnp.where(active, 0.0, pad)), active


def ritz(kr: BlockKrylov, p: int, block: int) -> Ritz:
    """The ``p`` largest Ritz pairs of a run with start block size ``block``."""
    t, active = projected_matrix(kr)
    evals, evecs = jnp.linalg.eigh(t)
    values, coeffs = evals[::-1], evecs[:, ::-1]
    num_active = jnp.sum(active)
    pending = jax.lax.dynamic_slice_in_dim(kr.coeffs, kr.num_steps, block, axis=0)  # C_m: (b, max_steps)
    all_residuals = jnp.linalg.norm(pending @ coeffs, axis=0)
    residuals = all_residuals[:p]
    size = values.shape[0]
    real = jnp.arange(size) < num_active
    # the gap to each other Ritz value, less that value's own residual: an unresolved neighbour shrinks it
    diff = jnp.abs(values[:p, None] - values[None, :]) - all_residuals[None, :]
    others = real[None, :] & (jnp.arange(size)[None, :] != jnp.arange(p)[:, None])
    gap = jnp.min(jnp.where(others, diff, jnp.inf), axis=1)
    resolved = jnp.isfinite(gap) & (gap > residuals)  # no other Ritz value (gap inf): nothing to sharpen with
    errors = jnp.where(resolved, residuals ** 2 / jnp.where(resolved, gap, 1.0), residuals)
    finite = kr.finite & jnp.all(jnp.isfinite(values[:p]))
    nan = jnp.asarray(jnp.nan, values.dtype)
    return Ritz(jnp.where(finite, values[:p], nan), coeffs[:, :p], jnp.where(finite, residuals, nan),
                jnp.where(finite, errors, nan), num_active)


def ritz_converged(r: Ritz, k: int, tol: float) -> jax.Array:
    """Whether the k largest pairs all have error estimate <= tol * max|theta| (k real pairs needed)."""
    scale = jnp.max(jnp.abs(r.values[:k]))
    return (r.num_active >= k) & jnp.all(r.errors[:k] <= tol * scale)


def ritz_vectors(kr: BlockKrylov, r: Ritz) -> jax.Array:
    """Ritz vectors y_i = Q_m s_i as rows of a (p, n) array."""
    s = kr.coeffs.shape[1]
    return r.coeffs.T @ kr.basis[:s]


def block_lanczos(matvec: Callable[[jax.Array], jax.Array], start_block: jax.Array, max_steps: int, *,
                  k: int = 1, tol: float = 0.0, key: jax.Array | None = None,
                  restart: bool = True, limit: jax.Array | int | None = None) -> BlockKrylov:
    """Block Lanczos from the rows of ``start_block`` (b, n), at most ``max_steps`` products.

    With ``tol > 0`` it stops once the ``k`` largest Ritz pairs have error
    estimates <= tol * max|theta| (tested at every step up to 32, then about
    every m/16 steps); it also stops when the space is exhausted and after a
    non-finite product.  ``key`` draws the random directions that replace
    vanished ones (default PRNGKey(0)); with ``restart=False`` a vanished
    direction is not replaced and the run ends on an invariant subspace (what
    Gauss quadrature wants: :func:`~eoslab.curvature.lanczos.tridiag_sym`).
    ``limit`` (an int, possibly traced) stops the run after that many products
    within the ``max_steps`` buffer: runs with different budgets then share
    one compiled loop.
    """
    b = start_block.shape[0]
    eps = jnp.finfo(start_block.dtype).eps
    key = jax.random.PRNGKey(0) if key is None else key
    z = jax.random.normal(key, start_block.shape[1:], start_block.dtype)  # source of replacement directions
    limit = max_steps if limit is None else limit

    def check(kr):
        return ritz_converged(ritz(kr, k, b), k, tol)

    def body(carry):
        kr, _ = carry
        j = kr.num_steps
        count = j + b  # rows in use: m applied + b pending
        q = kr.basis[j]
        w = matvec(q)
        finite = jnp.all(jnp.isfinite(w))
        w = jnp.where(finite, w, 0.0)
        hq = jnp.linalg.norm(w)
        w, h = _orthogonalise(kr.basis, count, w)
        beta = jnp.linalg.norm(w)
        vanished = beta <= 100 * eps * hq
        # a random replacement only when needed: outside vmap the branch is skipped, and it costs two more sweeps
        none = lambda: (jnp.zeros_like(w), jnp.asarray(False))
        fresh, fresh_ok = (jax.lax.cond(vanished, lambda: _random_direction(kr.basis, count, z), none)
                           if restart else none())
        new_valid = jnp.where(vanished, fresh_ok & restart, True) & kr.valid[j]
        new = jnp.where(vanished, fresh, w / jnp.where(vanished, 1.0, beta))
        coeffs = kr.coeffs.at[:, j].set(h).at[count, j].set(jnp.where(vanished, 0.0, beta))
        kr = BlockKrylov(kr.basis.at[count].set(jnp.where(new_valid, new, 0.0)), coeffs,
                         kr.valid.at[count].set(new_valid), j + 1,
                         kr.num_restarts + (vanished & new_valid).astype(jnp.int32), kr.finite & finite)
        m = j + 1
        exhausted = ~jnp.any(jax.lax.dynamic_slice_in_dim(kr.valid, m, b))  # nothing pending: invariant
        done = exhausted | ~kr.finite
        if tol > 0:
            scheduled = (m >= k) & ((m <= 32) | (m % jnp.maximum(1, m // 16) == 0))
            done = done | jax.lax.cond(scheduled, check, lambda _: jnp.asarray(False), kr)
        return kr, done

    # The buffers grow in stages (32, 128, ... rows up to max_steps): each product's Gram-Schmidt sweeps and each
    # convergence test cost in proportion to the buffer, not to the steps taken, so a solve that converges early
    # never pays for the whole budget.
    carry = (_start(start_block, _stages(max_steps)[0], z), jnp.asarray(False))
    for size in _stages(max_steps):
        carry = (_grow(carry[0], size), carry[1])
        carry = jax.lax.while_loop(lambda c, size=size: (c[0].num_steps < jnp.minimum(size, limit)) & ~c[1],
                                   body, carry)
    return carry[0]


def _stages(max_steps: int, first: int = 32, factor: int = 4) -> list[int]:
    """Buffer sizes first, 4 first, 16 first, ... below max_steps, then max_steps.

    Each stage is a copy of the loop in the compiled program; a factor of 4
    keeps typical budgets (<= 128) to two copies, while a solve still pays
    for at most 4 times the buffer it needs."""
    sizes, size = [], first
    while size < max_steps:
        sizes.append(size)
        size *= factor
    return sizes + [max_steps]


def _grow(kr: BlockKrylov, size: int) -> BlockKrylov:
    """The same run in buffers of ``size`` products (zero rows and columns appended)."""
    extra = size - kr.coeffs.shape[1]
    if extra == 0:
        return kr
    return kr._replace(basis=jnp.pad(kr.basis, ((0, extra), (0, 0))),
                       coeffs=jnp.pad(kr.coeffs, ((0, extra), (0, extra))),
                       valid=jnp.pad(kr.valid, (0, extra)))
