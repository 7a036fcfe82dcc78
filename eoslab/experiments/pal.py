r"""Reproduction of the parabolic approximation line search, PAL (Mutschler & Zell 2020).

The paper's empirical basis: the minibatch loss along the (normalised)
update direction, l(s) = L_batch(theta_t + s d_t/|d_t|), is locally almost a
parabola and mostly convex, so the parabola PAL fits from l(0), l'(0) and
l(mu) puts its step near the minimum of the line; PAL (step alpha = 1/0.6
times the vertex, capped at s_max) then trains about as well as tuned SGD.

Setting: fc-tanh [200, 200] on digits (1,500 training examples; flat inputs:
the configs have no image option for digits, so no CNN), float32, PAL with
the published defaults (``configs/pal.toml``: mu = 1, alpha = 1/0.6,
s_max = 3.16) and its conjugate variant (beta = 0.4,
``configs/pal-conjugate.toml``), MSE (0.5 sum over outputs, mean over
examples) and cross-entropy (``configs/pal-ce.toml``, 300 steps), with
minibatches of 128 and in full batch (``optimizer.batch_size=0``); the
constant-step baselines (``configs/pal-sgd.toml``, ``configs/pal-ce-sgd.toml``)
train a grid of step sizes spaced ~3x apart.

How the profiles are taken.  Every run is trained with
:func:`eoslab.train.train` (stored in the run store of ``out_dir``).  A second
:class:`~eoslab.train.Trainer` built from the same config replays the
trajectory with ``run_chunk`` (the same compiled steps; the per-step losses of
the replay are compared with the stored ones in ``table.txt``) and stops at
the profile steps t (0, then steps spread geometrically early in training and
evenly later).  There
it calls the rule's own update on the step's loss (as the trainer's step
does) to get PAL's direction d_t (``ParabolicState.direction``: -g_t, or
-g_t + beta d_{t-1}), the distance s_t PAL travels along d_t/|d_t|, and PAL's
own parabola (l(0), b = l'(0), a = curvature / 2).  Along d_t,
:func:`eoslab.tuners.profile.line_profile` measures the minibatch loss of
step t ("batch", the loss PAL fits) and the full training loss ("full") on
two grids (s in distance along d/|d|, PAL's axis):

* *wide*: s in [-mu, max(2 mu, 1.25 s_max)], spacing mu / 20 (s = 0 and
  s = mu are grid points); parabola fitted on the window |s| <= mu, the
  interval PAL's own two-point fit spans;
* *local*: s in [-2 s_t, 2 s_t], 41 points (s_t is a grid point); parabola
  fitted on the whole grid |s| <= 2 s_t, the scale of the step actually taken.

Per profile: R^2 of each fit, its curvature a (locally convex: a > 0), the
exact line-search minimiser s* (the least measured loss, refined by the
parabola through its neighbours; from the local grid when its minimum lies
there and no wide-grid point outside it is lower, else from the wide grid,
else "beyond the grid"), and PAL's step s_t.  Consistency checks (in
``table.txt``): the profile at s = 0 equals the step's loss, and at s = mu
equals PAL's own l(mu) = l(0) + b mu + a mu^2.

R^2 measures how much of the loss variation over a window a parabola
explains; over a window much shorter than the distance to the minimum the
line is nearly straight and any parabola (a straight line too) has R^2 near 1.
So each R^2 comes with that of the best straight line over the same window
(``r2_linear`` in ``profiles.json``, 'R²l line' in ``table.txt``, the claims'
detail): a parabola's R^2 says the line is parabolic only where the straight
line's is clearly lower, and the claim is "not testable" (holds = None) when
the straight line's median R^2 passes the same threshold.

Claims (thresholds fixed before measuring), per PAL run:

1. the batch loss along the update direction is locally almost parabolic:
   median R^2 >= 0.95 and 10th percentile >= 0.80 over the profiles, in
   PAL's window |s| <= mu; the same at the step's scale |s| <= 2 s_t;
2. the line is locally convex: the fitted a > 0 in >= 90% of the profiles
   (window |s| <= mu);
3. PAL's step lands near the line minimum: PAL steps alpha = 1/0.6 times its
   vertex on purpose, so on an exact parabola s_t / s* = alpha; holds if the
   median of s_t / s* (batch loss) lies within a factor 1.5 of alpha, i.e.
   the vertex of PAL's parabola is within a factor 1.5 of the exact minimiser;
4. PAL is competitive with tuned SGD / GD: final training loss (the same
   number of steps; a PAL step costs one extra forward pass) at most 2x
   that of the best constant step of the grid.

The minibatch settings run seeds 0, 1 and 2 (PAL and its baseline grid in
each; :data:`SEEDS`): a claim holds there when it holds in every seed where
it is testable, its value is the median over the seeds, and its detail gives
each seed's value and their range
(:func:`~eoslab.experiments.claims.across_seeds`).  Full-batch settings are
deterministic and run once.

``--quick``: the MSE settings only (PAL and PAL beta=0.4 with minibatches, PAL
in full batch, and their baselines), 500 steps, 8 profiles per run, seed 0
only (its minibatch claims say "1 seed (0) only").  The full
run adds PAL beta=0.4 in full batch and the cross-entropy settings, 1000
steps (CE: 300) and 12 profiles per run.  The claims of the runs ``--quick`` skips are
rows of its table with holds = None and the reason; its titles and
``claims.json`` (``"quick": true``) say it is a quick run.  The claims rest on
line profiles and losses, not on eigenvalues; the table's eta_t * lambda_1 / 2
uses certified (converged) eigenvalues only.

XLA note: on CPU (jax/jaxlib 0.10.2) the value of a softmax cross-entropy
reduced over a [B, N, classes] array with B * N > 32768 (a ``vmap`` over B of
a loss on N examples) comes out wrong, by 0.05-0.9 here; ``line_profile``'s
single ``vmap`` over the grid hits it for CE, so the profiles evaluate the
grid in chunks (``batch_size``) of at most 16384 examples x grid points.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Claim, across_seeds, certified_series, quick_title, write_claims
from eoslab.train.recipes import load_recipe
from eoslab.jsonable import jsonable
from eoslab.plots import LOSS_LABELS, save_figure
from eoslab.pytree import tree_vdot
from eoslab.rules import find_state
from eoslab.train import RunConfig, Trainer, TrainResult, train
from eoslab.tuners import tuner_info
from eoslab.tuners.parabolic import ParabolicState
from eoslab.tuners.profile import line_profile

PAPER = "Mutschler & Zell 2020"

R2_MEDIAN = 0.95  # claim 1: median R^2 at least this ...
R2_P10 = 0.80  # ... and 10th percentile at least this
CONVEX_FRACTION = 0.90  # claim 2
RATIO_FACTOR = 1.5  # claim 3: median s_t / s* within this factor of alpha
LOSS_FACTOR = 2.0  # claim 4: PAL's final loss at most this times the best constant step's
WIDE_PER_MU = 20  # wide grid: spacing mu / 20
LOCAL_HALF = 20  # local grid: 2 * 20 + 1 points on [-2 s_t, 2 s_t]
MAX_ROWS_PER_CHUNK = 16384  # examples x grid points per profile chunk (the XLA note)
QUICK_STEPS = 500
QUICK_PROFILES = 8
SEEDS = (0, 1, 2)  # minibatch settings (--quick: the first only)
FULL_PROFILES = 12


@dataclasses.dataclass(frozen=True)
class PalRun:
    recipe: str
    label: str
    overrides: tuple[str, ...] = ()
    suffix: str = ""  # appended to the config name
    quick: bool = False


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    label: str
    runs: tuple[PalRun, ...]
    baseline: str  # recipe of the constant-step grid
    overrides: tuple[str, ...] = ()
    suffix: str = ""
    quick: bool = False


CONJ = ("optimizer.beta=0.4",)
SETTINGS = (
    Setting("mse-minibatch", "MSE, batch 128",
            (PalRun("pal", "PAL", quick=True), PalRun("pal-conjugate", "PAL β=0.4", quick=True)), "pal-sgd",
            quick=True),
    Setting("mse-fullbatch", "MSE, full batch",
            (PalRun("pal", "PAL", quick=True), PalRun("pal-conjugate", "PAL β=0.4")), "pal-sgd",
            ("optimizer.batch_size=0",), "-fullbatch", quick=True),
    Setting("ce-minibatch", "CE, batch 128",
            (PalRun("pal-ce", "PAL"), PalRun("pal-ce", "PAL β=0.4", CONJ, "-conjugate")), "pal-ce-sgd"),
    Setting("ce-fullbatch", "CE, full batch", (PalRun("pal-ce", "PAL"),), "pal-ce-sgd",
            ("optimizer.batch_size=0",), "-fullbatch"),
)


# ---- configs -------------------------------------------------------------------

def _config(recipe: str, overrides: list[str], suffix: str) -> RunConfig:
    cfg = load_recipe(recipe, overrides)
    return dataclasses.replace(cfg, name=cfg.name + suffix) if suffix else cfg


def _overrides(setting: Setting, run: PalRun | None, quick: bool, user: list[str] | None) -> list[str]:
    """The setting's and run's overrides, then --quick's, then the caller's (which win)."""
    out = list(setting.overrides) + (list(run.overrides) if run else [])
    if quick:
        out.append(f"train.steps={QUICK_STEPS}")
    return out + list(user or [])


def profile_steps(total: int, num: int, chunk: int) -> list[int]:
    """About ``num`` steps in [0, total), multiples of ``chunk``: 0, geometric early, even later (last chunk's start).

    Half of them geometric over [chunk, total - chunk] (training changes fastest early), the rest evenly
    spaced over [0, total - chunk]; rounded to multiples of ``chunk`` (coinciding steps are kept once).
    """
    last = (total - 1) // chunk * chunk
    if last <= 0:
        return [0]
    n_geo = (num - 1) // 2 + 1
    geo = np.geomspace(chunk, last, n_geo)
    lin = np.linspace(0, last, num - n_geo + 1)
    picked = {int(round(x / chunk)) * chunk for x in np.concatenate([geo, lin])}
    return sorted(x for x in picked if 0 <= x <= last)


def replay_chunk(total: int) -> int:
    """The replay's chunk length: the largest divisor of ``total`` up to total / 50 (one compiled length)."""
    return max(d for d in range(1, max(total // 50, 1) + 1) if total % d == 0)


def wide_grid(mu: float, s_max: float) -> np.ndarray:
    """s in [-mu, max(2 mu, 1.25 s_max)], spacing mu / WIDE_PER_MU; s = 0 and s = mu are grid points."""
    top = max(2 * mu, 1.25 * s_max)
    k = np.arange(-WIDE_PER_MU, math.ceil(top / mu * WIDE_PER_MU) + 1)
    return mu * k / WIDE_PER_MU


# ---- the profiles --------------------------------------------------------------

class Profiler:
    """Replays a PAL run with the Trainer and profiles the loss along its update direction at chosen steps."""

    def __init__(self, cfg: RunConfig):
        if cfg.optimizer.name != "parabolic" or len(cfg.lrs) != 1:
            raise ValueError(f"config {cfg.name!r} is not a single PAL run (optimizer.name='parabolic', one lr).")
        # probes do not change the trajectory; the replay needs none of them
        self.cfg = cfg
        self.trainer = Trainer(dataclasses.replace(cfg, probes=dataclasses.replace(cfg.probes, sharpness_k=0)))
        tr, prob = self.trainer, self.trainer.problem
        self.mu, self.alpha, self.s_max = cfg.optimizer.hp.mu, cfg.optimizer.hp.alpha, cfg.lrs[0]
        self.minibatch = tr.minibatch
        self.names = ("batch", "full") if self.minibatch else ("full",)
        self.wide = wide_grid(self.mu, self.s_max)
        dtype = tr.dtype
        wide = jnp.asarray(self.wide, dtype)
        local_k = jnp.arange(-LOCAL_HALF, LOCAL_HALF + 1, dtype=dtype) / (LOCAL_HALF / 2)  # [-2, 2]
        chunk = max(1, MAX_ROWS_PER_CHUNK // prob.x_train.shape[0])
        lr = jnp.asarray(cfg.lrs[0], dtype)
        mu = jnp.asarray(self.mu, dtype)

        def loss_fns(t):
            fns = {"full": prob.train_loss}
            if self.minibatch:
                fns["batch"] = tr.step_loss_fn(t)
            return fns

        @jax.jit
        def probe(params, opt_state, t):
            """The step t of the rule, as the trainer's step takes it: direction, step, PAL's parabola."""
            loss_fn = tr.step_loss_fn(t)
            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, new_state = tr.update(params, opt_state, lr, loss, grads, loss_fn)
            d = find_state(new_state, ParabolicState).direction
            info = tuner_info(new_state)
            dnorm = jnp.sqrt(tree_vdot(d, d))
            return dict(loss=loss, grad_norm=jnp.sqrt(tree_vdot(grads, grads)), direction=d, direction_norm=dnorm,
                        slope=tree_vdot(grads, d) / dnorm, step=info.step_size, curvature=info.curvature,
                        success=info.success, update_norm=jnp.sqrt(tree_vdot(updates, updates)))

        @jax.jit
        def profiles(params, d, t, s_taken):
            fns = loss_fns(t)
            r = jnp.where(s_taken > 0, s_taken, mu / WIDE_PER_MU)
            w = line_profile(fns, params, d, wide, fit_window=mu, batch_size=chunk)
            loc = line_profile(fns, params, d, r * local_k, fit_window=2 * r, batch_size=chunk)
            return w, loc

        self._probe, self._profiles = probe, profiles

    def run(self, steps: list[int]) -> tuple[list[dict], np.ndarray]:
        """Profiles at ``steps`` (multiples of the replay chunk) and the replay's per-step losses."""
        tr, total = self.trainer, self.cfg.train.steps
        chunk = replay_chunk(total)
        if any(s % chunk for s in steps):
            raise ValueError(f"profile steps must be multiples of the replay chunk {chunk}; got {steps}.")
        first = lambda tree: jax.tree_util.tree_map(lambda a: a[0], tree)
        carry, t, losses, records = tr.init_carry(), 0, [], []
        wanted = set(steps)
        while t < total:
            if t in wanted:
                records.append(self._profile_at(first(carry.params), first(carry.opt_state), t))
            n = min(chunk, total - t)
            carry, outs = tr.run_chunk(carry, t, n)
            losses.append(np.asarray(outs["loss"][0], np.float64))
            t += n
        return records, np.concatenate(losses)

    def _profile_at(self, params, opt_state, t: int) -> dict:
        probed = self._probe(params, opt_state, jnp.asarray(t, jnp.int32))
        direction = probed.pop("direction")
        p = jax.device_get(probed)
        rec = dict(step=t, loss=float(p["loss"]), grad_norm=float(p["grad_norm"]),
                   direction_norm=float(p["direction_norm"]), slope=float(p["slope"]),
                   step_taken=float(p["step"]), pal_a=float(p["curvature"]) / 2, success=bool(p["success"]),
                   update_norm=float(p["update_norm"]))
        rec["branch"] = _branch(rec, self.mu, self.s_max)
        rec["pal_vertex"] = (-rec["slope"] / (2 * rec["pal_a"]) if rec["pal_a"] > 0 and rec["slope"] < 0
                             else float("nan"))
        finite = np.isfinite(rec["loss"]) and np.isfinite(rec["direction_norm"]) and rec["direction_norm"] > 0
        if not finite:  # diverged or no direction: nothing to profile
            rec.update(wide=None, local=None)
            return rec
        w, loc = jax.device_get(self._profiles(params, direction, jnp.asarray(t, jnp.int32),
                                               jnp.asarray(rec["step_taken"], self.trainer.dtype)))
        rec["wide"] = _profile_dict(w, self.names, self.mu)
        rec["local"] = _profile_dict(loc, self.names, 2 * rec["step_taken"]) if rec["step_taken"] > 0 else None
        for name in self.names:
            rec[f"minimiser_{name}"], rec[f"minimiser_{name}_from"] = exact_minimiser(rec["wide"], rec["local"], name)
        if not self.minibatch:
            rec["minimiser_batch"], rec["minimiser_batch_from"] = rec["minimiser_full"], rec["minimiser_full_from"]
        # consistency: the profile at 0 is the step's loss, at mu PAL's own measurement
        own = "batch" if self.minibatch else "full"
        wl = np.asarray(rec["wide"]["losses"][own])
        s = np.asarray(rec["wide"]["steps"])
        rec["check_l0"] = float(wl[np.argmin(np.abs(s))] - rec["loss"])
        l_mu = rec["loss"] + rec["slope"] * self.mu + rec["pal_a"] * self.mu ** 2
        rec["check_lmu"] = float(wl[np.argmin(np.abs(s - self.mu))] - l_mu)
        return rec


def _branch(rec: dict, mu: float, s_max: float) -> str:
    """Which case of PAL's rule gave the step (see eoslab.tuners.parabolic)."""
    if not rec["success"]:
        return "failed"
    if rec["slope"] >= 0:
        return "no descent"
    if math.isclose(rec["step_taken"], s_max, rel_tol=1e-6):
        return "clipped"
    if rec["pal_a"] <= 0:
        return "concave"
    return "vertex"


def _profile_dict(prof, names, window) -> dict:
    steps = np.asarray(prof.steps, float)
    losses = {n: np.asarray(prof.losses[n], float) for n in names}
    return dict(steps=steps.tolist(), window=float(window), losses={n: v.tolist() for n, v in losses.items()},
                a={n: float(prof.fit[n].a) for n in names}, b={n: float(prof.fit[n].b) for n in names},
                c={n: float(prof.fit[n].c) for n in names}, r2={n: float(prof.fit[n].r2) for n in names},
                r2_linear={n: linear_r2(steps, losses[n], window) for n in names},
                argmin={n: float(prof.argmin[n]) for n in names},
                min_loss={n: float(prof.min_loss[n]) for n in names})


def linear_r2(steps: np.ndarray, losses: np.ndarray, window: float) -> float:
    """R^2 of the best straight line over |s| <= window: near 1 means the window is too small to see the
    curvature, so a parabola's R^2 near 1 there says little about the line being a parabola."""
    keep = (np.abs(steps) <= window * (1 + 1e-6)) & np.isfinite(losses)
    if keep.sum() < 3:
        return float("nan")
    s, l = steps[keep], losses[keep]
    resid = l - np.polyval(np.polyfit(s, l, 1), s)
    tot = np.sum((l - l.mean()) ** 2)
    return float(1 - np.sum(resid ** 2) / tot) if tot > 0 else 1.0


def exact_minimiser(wide: dict, local: dict | None, name: str) -> tuple[float, str]:
    """The exact line-search minimiser of loss ``name``: (s*, where it was found).

    From the local grid when its least loss is interior and no wide-grid point
    outside the local range is lower (the finer grid resolves the same
    minimum); else from the wide grid when interior; else NaN, "beyond the grid".
    """
    sw, lw = np.asarray(wide["steps"]), np.asarray(wide["losses"][name], float)
    if local is not None:
        sl, ll = np.asarray(local["steps"]), np.asarray(local["losses"][name], float)
        a = local["argmin"][name]
        outside = ((sw < sl[0]) | (sw > sl[-1])) & np.isfinite(lw)
        best = np.min(ll[np.isfinite(ll)]) if np.isfinite(ll).any() else np.inf
        if np.isfinite(a) and sl[0] < a < sl[-1] and not np.any(lw[outside] < best):
            return float(a), "local"
    a = wide["argmin"][name]
    if np.isfinite(a) and sw[0] < a < sw[-1]:
        return float(a), "wide"
    return float("nan"), "beyond the grid"


# ---- summaries and claims --------------------------------------------------------

def _values(records: list[dict], grid: str, key: str, name: str) -> np.ndarray:
    out = []
    for r in records:
        g = r.get(grid)
        out.append(g[key][name] if g is not None else np.nan)
    return np.asarray(out, float)


def summarise_profiles(records: list[dict], alpha: float, minibatch: bool) -> dict:
    """Medians, 10th percentiles and fractions over the profiles of one run (NaNs left out)."""
    own = "batch" if minibatch else "full"
    out = dict(n=len(records), loss=own)
    for grid in ("wide", "local"):
        for name in ("batch", "full"):
            src = own if name == "batch" else "full"
            r2 = _values(records, grid, "r2", src)
            a = _values(records, grid, "a", src)
            ok = np.isfinite(r2)
            out[f"r2_{grid}_{name}_median"] = float(np.median(r2[ok])) if ok.any() else float("nan")
            out[f"r2_{grid}_{name}_p10"] = float(np.percentile(r2[ok], 10)) if ok.any() else float("nan")
            out[f"r2_{grid}_{name}_n"] = int(ok.sum())
            lin = _values(records, grid, "r2_linear", src)
            out[f"r2_linear_{grid}_{name}_median"] = (float(np.median(lin[np.isfinite(lin)]))
                                                      if np.isfinite(lin).any() else float("nan"))
            fa = np.isfinite(a)
            out[f"convex_{grid}_{name}"] = float(np.mean(a[fa] > 0)) if fa.any() else float("nan")
    s = np.asarray([r["step_taken"] for r in records], float)
    for name in ("batch", "full"):
        star = np.asarray([r.get(f"minimiser_{name}", np.nan) for r in records], float)
        ok = (s > 0) & np.isfinite(star) & (star > 0)
        ratio = s[ok] / star[ok]
        out[f"ratio_{name}_median"] = float(np.median(ratio)) if ok.any() else float("nan")
        out[f"ratio_{name}_p10"] = float(np.percentile(ratio, 10)) if ok.any() else float("nan")
        out[f"ratio_{name}_p90"] = float(np.percentile(ratio, 90)) if ok.any() else float("nan")
        out[f"ratio_{name}_n"] = int(ok.sum())
        out[f"minimiser_{name}_beyond"] = int(sum(r.get(f"minimiser_{name}_from") == "beyond the grid"
                                                  for r in records))
    out["vertex_ratio_median"] = out["ratio_batch_median"] / alpha
    branches = [r["branch"] for r in records]
    out["branches"] = {b: branches.count(b) for b in sorted(set(branches))}
    checks = [abs(r[k]) for r in records for k in ("check_l0", "check_lmu") if k in r]
    out["max_check"] = float(max(checks)) if checks else float("nan")
    return out


def profile_run(cfg: RunConfig, result: TrainResult, num_profiles: int) -> tuple[list[dict], bool, float]:
    """Replay a trained PAL run and profile it at ``num_profiles`` steps: (records, minibatch, replay difference).

    The replay difference is the largest |loss| difference between the replay and the stored run (0: the
    replay is the stored trajectory).
    """
    profiler = Profiler(cfg)
    records, replay_losses = profiler.run(profile_steps(cfg.train.steps, num_profiles, replay_chunk(cfg.train.steps)))
    _, stored = result.series(0, "loss")
    m = min(len(stored), len(replay_losses))
    replay_diff = float(np.max(np.abs(stored[:m] - replay_losses[:m]))) if m else float("nan")
    return records, profiler.minibatch, replay_diff


def final_loss(result: TrainResult, member: int) -> float:
    """The training loss at the last evaluation; inf for a diverged member."""
    if result.status[member] == "diverged":
        return float("inf")
    _, v = result.series(member, "train_loss")
    return float(v[-1]) if len(v) else float("nan")


def claim_texts(tag: str, loss_word: str, alpha: float, counts: dict | None = None) -> list[tuple[str, str]]:
    """``(claim, quantity)`` of the five claims of one PAL run, in table order (run or not run).

    ``counts``: the number of profiles behind the wide and local fits and the ratio (``n`` when not run).
    """
    n = {"wide": "n", "local": "n", "ratio": "n", **(counts or {})}
    out = []
    for window, grid in (("|s| ≤ μ", "wide"), ("|s| ≤ 2 s_t", "local")):
        out.append((f"{tag} the {loss_word} loss along the update direction is locally almost a parabola ({window})",
                    f"median R² of the least-squares parabola over {window} ({n[grid]} profiles)"))
    out.append((f"{tag} the {loss_word} loss along the update direction is locally convex",
                "fraction of profiles whose fitted parabola over |s| ≤ μ has a > 0"))
    out.append((f"{tag} PAL's step lands near the minimum of the line (it steps α = {alpha:.3g} × its parabola's "
                f"vertex)",
                f"median of s_t / s* (PAL's step / exact line-search minimiser of the {loss_word} loss, "
                f"{n['ratio']} profiles)"))
    out.append((f"{tag} PAL is competitive with a tuned constant step",
                "final training loss of PAL / that of the best constant step of the grid (same number of steps)"))
    return out


def claims_for_run(tag: str, summary: dict, alpha: float, pal_loss: float, best: tuple[float, float],
                   grid_losses: dict) -> list[Claim]:
    """The four claims of one PAL run (module docstring), thresholds fixed in the module constants."""
    loss_word = "minibatch" if summary["loss"] == "batch" else "full-batch"
    texts = claim_texts(tag, loss_word, alpha, dict(wide=summary["r2_wide_batch_n"],
                                                    local=summary["r2_local_batch_n"], ratio=summary["ratio_batch_n"]))
    claims = []
    for (claim, quantity), grid in zip(texts[:2], ("wide", "local")):
        med, p10 = summary[f"r2_{grid}_batch_median"], summary[f"r2_{grid}_batch_p10"]
        line = summary[f"r2_linear_{grid}_batch_median"]
        holds = bool(med >= R2_MEDIAN and p10 >= R2_P10) if np.isfinite(med) else None
        if holds and line >= R2_MEDIAN:  # a straight line passes the same test: the window cannot tell
            holds = None
        claims.append(Claim(
            claim, quantity, med, holds, PAPER,
            f"10th percentile {p10:.4f}; full-batch loss along the same lines: median "
            f"{summary[f'r2_{grid}_full_median']:.4f}, 10th percentile {summary[f'r2_{grid}_full_p10']:.4f}; "
            f"a straight line over the same window: median R² {summary[f'r2_linear_{grid}_batch_median']:.4f} "
            f"(near 1: the window is too short to test the curvature); "
            f"holds if median ≥ {R2_MEDIAN} and 10th percentile ≥ {R2_P10}, not testable (n/a) when the straight "
            f"line's median R² is ≥ {R2_MEDIAN} too"))
    conv = summary["convex_wide_batch"]
    claims.append(Claim(
        *texts[2], conv, bool(conv >= CONVEX_FRACTION) if np.isfinite(conv) else None, PAPER,
        f"over |s| ≤ 2 s_t: {summary['convex_local_batch']:.3f}; full-batch loss: "
        f"{summary['convex_wide_full']:.3f} / {summary['convex_local_full']:.3f}; holds if ≥ {CONVEX_FRACTION}"))
    ratio = summary["ratio_batch_median"]
    lo, hi = alpha / RATIO_FACTOR, alpha * RATIO_FACTOR
    claims.append(Claim(
        *texts[3], ratio, bool(lo <= ratio <= hi) if np.isfinite(ratio) else None, PAPER,
        f"vertex / s* = {summary['vertex_ratio_median']:.3f}; 10th-90th percentile of s_t / s*: "
        f"{summary['ratio_batch_p10']:.3f}-{summary['ratio_batch_p90']:.3f}; against the full-batch minimiser "
        f"{summary['ratio_full_median']:.3f}; PAL's branches {summary['branches']}; minimiser beyond the grid "
        f"{summary['minimiser_batch_beyond']}x; holds if in [{lo:.3g}, {hi:.3g}] (α within a factor "
        f"{RATIO_FACTOR})"))
    best_lr, best_loss = best
    rel = pal_loss / best_loss if best_loss > 0 else float("nan")
    holds = None if not np.isfinite(best_loss) else bool(rel <= LOSS_FACTOR)  # no baseline finished: untestable
    claims.append(Claim(
        *texts[4], rel, holds, PAPER,
        f"PAL {pal_loss:.4g}; best η={best_lr:g}: {best_loss:.4g}; grid "
        + ", ".join(f"η={k:g}: {v:.3g}" for k, v in grid_losses.items())
        + f"; holds if ≤ {LOSS_FACTOR:g}; a PAL step costs one extra forward pass"))
    return claims


def not_run_claims(setting: Setting, run: PalRun, reason: str) -> list[Claim]:
    """The rows of a PAL run this mode does not train: its five claims with holds = None and the reason."""
    cfg = _config(run.recipe, list(setting.overrides) + list(run.overrides), setting.suffix + run.suffix)
    loss_word = "full-batch" if cfg.optimizer.batch_size == 0 else "minibatch"
    tag = f"[{setting.label}, {run.label}]"
    return [Claim(claim, quantity, "not run", None, PAPER, reason)
            for claim, quantity in claim_texts(tag, loss_word, cfg.optimizer.hp.alpha)]


# ---- tables and figures ------------------------------------------------------------

def format_profiles(tag: str, records: list[dict], minibatch: bool, replay_diff: float) -> str:
    own = "batch" if minibatch else "full"
    lines = [f"[{tag}] per profile (s: distance along d/|d|; R² of a parabola over |s| ≤ μ (w) and |s| ≤ 2 s_t "
             f"(l), 'R²l line' that of a straight line over |s| ≤ 2 s_t; 'batch' is the loss PAL fits"
             f"{'' if minibatch else ' = the full loss'}); replay vs stored run: "
             f"max |Δ per-step loss| = {replay_diff:.3g}",
             f"{'step':>5} {'loss':>9} {'|d|':>8} {'s_t':>8} {'branch':>8} {'vertex':>8} {'s* batch':>9} "
             f"{'s* full':>9} {'s_t/s*':>7} {'R²w batch':>10} {'R²w full':>9} {'R²l batch':>10} {'R²l full':>9} "
             f"{'a_w>0':>6} {'check':>8}"]
    for r in records:
        w, loc = r.get("wide"), r.get("local")
        sb, sf = r.get("minimiser_batch", np.nan), r.get("minimiser_full", np.nan)
        ratio = r["step_taken"] / sb if sb and np.isfinite(sb) and sb > 0 else float("nan")
        get = lambda g, k, n: (g[k][n] if g is not None else float("nan"))
        check = max(abs(r.get("check_l0", np.nan)), abs(r.get("check_lmu", np.nan)))
        lines.append(
            f"{r['step']:>5d} {r['loss']:>9.4g} {r['direction_norm']:>8.3g} {r['step_taken']:>8.4g} "
            f"{r['branch']:>8} {r['pal_vertex']:>8.4g} {sb:>9.4g} {sf:>9.4g} {ratio:>7.3f} "
            f"{get(w, 'r2', own):>10.4f} {get(w, 'r2', 'full'):>9.4f} {get(loc, 'r2', own):>10.4f} "
            f"{get(loc, 'r2', 'full'):>9.4f} {get(loc, 'r2_linear', own):>9.4f} {str(get(w, 'a', own) > 0):>6} "
            f"{check:>8.1e}")
    return "\n".join(lines)


def format_training(label: str, rows: list[tuple[str, float, str]]) -> str:
    lines = [f"[{label}] final training loss", f"{'run':>24} {'final loss':>11} {'notes':>6}"]
    for name, loss, note in rows:
        lines.append(f"{name:>24} {loss:>11.4g} {note}")
    return "\n".join(lines)


def plot_profiles(tag: str, records: list[dict], minibatch: bool, alpha: float, num: int = 4, quick: bool = False):
    """Two rows (wide grid, local grid) x ``num`` profile steps: batch and full loss, fits, minimisers, step."""
    import matplotlib.pyplot as plt
    shown = [r for r in records if r.get("wide") is not None]
    idx = np.unique(np.linspace(0, len(shown) - 1, min(num, len(shown))).round().astype(int))
    shown = [shown[i] for i in idx]
    fig, axes = plt.subplots(2, len(shown), figsize=(3.6 * len(shown), 6.4), squeeze=False)
    names = ("batch", "full") if minibatch else ("full",)
    for col, r in enumerate(shown):
        for row, grid in enumerate(("wide", "local")):
            ax, g = axes[row][col], r.get(grid)
            if g is None:
                ax.set_axis_off()
                continue
            s = np.asarray(g["steps"])
            inside = np.abs(s) <= g["window"] * (1 + 1e-6)
            for k, name in enumerate(names):
                c = f"C{k}"
                ax.plot(s, g["losses"][name], "-", color=c, lw=1.3, label=f"{name} (R²={g['r2'][name]:.4f})")
                x = s[inside]
                ax.plot(x, g["a"][name] * x ** 2 + g["b"][name] * x + g["c"][name], "--", color=c, lw=1.0)
                m = r.get(f"minimiser_{name}", np.nan)
                if np.isfinite(m) and s[0] <= m <= s[-1]:
                    ax.axvline(m, color=c, ls="-.", lw=0.8)
                elif np.isfinite(m):  # off this grid (local grid shorter than the distance to the minimum)
                    ax.plot([], [], ls="-.", color=c, lw=0.8, label=f"{name} s*={m:.3g} (off the panel)")
            ax.axvline(r["step_taken"], color="k", ls=":", lw=1.2, label=f"PAL step s_t={r['step_taken']:.3g}")
            ax.axvspan(-g["window"], g["window"], color="0.9", zorder=0)
            if grid == "wide":  # the interesting part: up to past the step and the measuring point
                right = max(2 * g["window"], 1.3 * r["step_taken"])
                seen = (s <= right) & np.isfinite(np.asarray(g["losses"][names[0]]))
                vals = np.concatenate([np.asarray(g["losses"][n])[seen] for n in names])
                vals = vals[np.isfinite(vals)]
                if len(vals):
                    pad = 0.05 * (vals.max() - vals.min() or 1.0)
                    ax.set_ylim(vals.min() - pad, vals.max() + pad)
                ax.set_xlim(s[0], right)
            ax.set_title(f"step {r['step']} ({grid}: fit over |s| ≤ {g['window']:.3g})", fontsize=8)
            ax.set_xlabel("s (distance along d/|d|)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
    axes[0][0].set_ylabel("loss along the line")
    axes[1][0].set_ylabel("loss along the line")
    fig.suptitle(quick_title(f"{tag}: loss along PAL's update direction (dashed: parabola fit on the shaded window; "
                 f"dash-dot: exact minimiser; dotted: PAL's step = α·vertex, α={alpha:.3g})", quick), fontsize=9)
    fig.tight_layout()
    return fig


def plot_training(panels: list[dict], title: str = ""):
    """One row per setting: training loss and step size eta_t of PAL runs and the constant-step grid."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 3.4 * len(panels)), squeeze=False)
    for (ax_l, ax_s), panel in zip(axes, panels):
        for k, (label, res) in enumerate(panel["pal"]):
            c = f"C{k}"
            s, v = res.series(0, "train_loss")
            ax_l.plot(s, v, color=c, lw=1.8, label=label)
            s, v = res.series(0, "step_size")
            if len(v):
                ax_s.plot(s, v, color=c, lw=0.5, alpha=0.35)
                win = max(1, len(v) // 50)
                smooth = np.convolve(v, np.ones(win) / win, mode="valid")
                ax_s.plot(s[win - 1:], smooth, color=c, lw=1.5, label=f"{label} (running mean of {win})")
        base = panel["baseline"]
        greys = np.linspace(0.15, 0.7, len(base.lrs))
        for i, lr in enumerate(base.lrs):
            c = str(greys[i])
            s, v = base.series(i, "train_loss")
            stop = base.diverged_step[i]
            keep = s <= stop if stop is not None else np.ones(len(s), bool)
            ax_l.plot(s[keep], v[keep], color=c, lw=1.0, ls="--",
                      label=f"constant η={lr:g}" + (" (diverged)" if stop is not None else ""))
            ax_s.axhline(lr, color=c, lw=1.0, ls="--")
        ax_l.set_yscale("log")
        ax_s.set_yscale("log")
        ax_l.set_xlabel("step")
        ax_s.set_xlabel("step")
        ax_l.set_ylabel(f"train loss ({LOSS_LABELS.get(panel['loss'], panel['loss'])})", fontsize=7)
        ax_s.set_ylabel("step size η_t = |Δθ| / |g|", fontsize=8)
        ax_l.set_title(panel["label"], fontsize=9)
        ax_s.set_title(f"{panel['label']}: PAL's η_t; dashed: the constant steps", fontsize=9)
        ax_l.legend(fontsize=7)
        ax_s.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def edge_note(metrics: dict) -> str:
    """η_t·λ1/2 at the last eval step whose eigenvalue is certified (converged), with its error estimate."""
    steps, edge, acc = certified_series(metrics, "edge_ratio")
    total = acc.used + acc.unconverged
    if not len(edge):
        return f"η_t·λ1/2: none of {total} eigenvalues certified" if total else "no η_t·λ1/2 measured"
    return (f"η_t·λ1/2 at step {int(steps[-1])} {edge[-1]:.3g} ({acc.used}/{total} certified, relative error "
            f"≤ {acc.max_rel_error:.1e})")


# ---- the reproduction ------------------------------------------------------------

def _slug(text: str) -> str:
    keep = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in text.lower().replace("β", "beta"))
    return "-".join(part for part in keep.split("-") if part)


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None,
              overrides: list[str] | None = None, settings: tuple[str, ...] | None = None,
              seeds: tuple[int, ...] = SEEDS) -> list[Claim]:
    """Train, profile and write pal-*.png/pdf, profiles.json, table.txt, claims.md and claims.json into ``out_dir``.

    ``settings``: keys of :data:`SETTINGS` to run (default: all, or the quick ones with ``quick``);
    ``seeds``: those of the minibatch settings (``quick``: the first only).
    """
    out = Path(out_dir)
    t_start = time.perf_counter()
    chosen = [s for s in SETTINGS if (s.key in settings if settings is not None else (s.quick or not quick))]
    if not chosen:
        raise ValueError(f"no setting among {settings}; choose from {', '.join(s.key for s in SETTINGS)}.")
    if not seeds:
        raise ValueError("no seeds given; pass at least one, e.g. seeds=(0, 1, 2).")
    num_profiles = QUICK_PROFILES if quick else FULL_PROFILES
    claims: list[Claim] = []
    tables: list[str] = []
    panels: list[dict] = []
    dump: dict = {"grids": {"wide": "s in [-mu, max(2 mu, 1.25 s_max)], spacing mu/20; fit |s| <= mu",
                            "local": "s in [-2 s_t, 2 s_t], 41 points; fit on all of it"}, "runs": {}}
    with store_in(out, store) as store:
        for setting in SETTINGS:
            if setting not in chosen:
                why = (f"not selected (settings={list(settings)})" if settings is not None else
                       "--quick runs the MSE settings only")
                claims += [c for run in setting.runs for c in not_run_claims(setting, run, why)]
                continue
            runs = [r for r in setting.runs if r.quick or not quick]
            stochastic = _config(setting.runs[0].recipe, _overrides(setting, None, quick, overrides),
                                 setting.suffix).optimizer.batch_size > 0
            run_seeds = (tuple(seeds)[:1] if quick else tuple(seeds)) if stochastic else (None,)
            if any(o.split("=", 1)[0].strip() == "seed" for o in overrides or []):
                run_seeds = (None,)  # the caller chose the seed
            per_run: dict[str, list[list[Claim]]] = {r.label: [] for r in runs}
            train_rows = []
            for seed in run_seeds:
                user = ([] if seed is None else [f"seed={seed}"]) + list(overrides or [])
                base_cfg = _config(setting.baseline, _overrides(setting, None, quick, user), setting.suffix)
                base = train(base_cfg, results_dir=out, store=store, progress=progress)
                grid_losses = {float(lr): final_loss(base, i) for i, lr in enumerate(base.lrs)}
                done = {k: v for k, v in grid_losses.items() if np.isfinite(v)}
                best = min(done.items(), key=lambda kv: kv[1]) if done else (float("nan"), float("nan"))
                pal_results = []
                seed_tag = "" if seed is None else f", seed {seed}"
                first_seed = seed == run_seeds[0]  # the figures show the first seed (or the only run)
                for run in runs:
                    cfg = _config(run.recipe, _overrides(setting, run, quick, user), setting.suffix + run.suffix)
                    tag = f"{setting.label}, {run.label}"
                    result = train(cfg, results_dir=out, store=store, progress=progress)
                    pal_results.append((run.label, result))
                    records, minibatch, replay_diff = profile_run(cfg, result, num_profiles)
                    summary = summarise_profiles(records, cfg.optimizer.hp.alpha, minibatch)
                    pal_loss = final_loss(result, 0)
                    per_run[run.label].append(
                        claims_for_run(f"[{tag}]", summary, cfg.optimizer.hp.alpha, pal_loss, best, grid_losses))
                    tables.append(format_profiles(tag + seed_tag, records, minibatch, replay_diff))
                    eta = result.series(0, "step_size")[1]
                    note = (f"median η_t over the second half {np.median(eta[len(eta) // 2:]):.3g}, "
                            + edge_note(result.metrics[0]))
                    train_rows.append((run.label + seed_tag, pal_loss, note))
                    key = _slug(f"{setting.key}-{run.label}") + ("" if seed is None else f"-seed{seed}")
                    if first_seed:
                        save_figure(plot_profiles(tag, records, minibatch, cfg.optimizer.hp.alpha, quick=quick),
                                    out / f"pal-profiles-{_slug(f'{setting.key}-{run.label}')}")
                    dump["runs"][key] = dict(label=tag, setting=setting.key, seed=cfg.seed, run_id=result.run_ids[0],
                                             baseline_run_ids=list(base.run_ids), config=cfg.to_dict(),
                                             minibatch=minibatch,
                                             summary=summary, replay_max_abs_loss_diff=replay_diff,
                                             final_loss=pal_loss, profiles=records)
                for i, lr in enumerate(base.lrs):
                    train_rows.append((f"constant η={lr:g}{seed_tag}", grid_losses[float(lr)], base.status[i]))
                if first_seed:
                    panels.append(dict(label=setting.label, loss=base_cfg.loss.name, pal=pal_results, baseline=base))
            for run in setting.runs:
                if run not in runs:
                    claims += not_run_claims(setting, run, f"--quick runs {', '.join(r.label for r in runs)} here")
                elif run_seeds == (None,):
                    claims += per_run[run.label][0]
                else:
                    claims += across_seeds(per_run[run.label], run_seeds)
            tables.append(format_training(setting.label, train_rows))
    save_figure(plot_training(panels, title=quick_title("PAL (Mutschler & Zell 2020) and constant steps: training",
                                                        quick)), out / "pal-training")
    (out / "profiles.json").write_text(json.dumps(jsonable(dump)) + "\n")
    elapsed = time.perf_counter() - t_start
    (out / "table.txt").write_text("\n\n".join(tables) + f"\n\n(total {elapsed:.0f} s)\n")
    write_claims(out, claims, "Parabolic approximation line search (Mutschler & Zell 2020): claims", quick=quick)
    return claims
