r"""The line profiles of a PAL run: replay its trajectory and measure the loss along its update direction.

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

XLA note: on CPU (jax/jaxlib 0.10.2) the value of a softmax cross-entropy
reduced over a [B, N, classes] array with B * N > 32768 (a ``vmap`` over B of
a loss on N examples) comes out wrong, by 0.05-0.9 here; ``line_profile``'s
single ``vmap`` over the grid hits it for CE, so the profiles evaluate the
grid in chunks (``batch_size``) of at most 16384 examples x grid points.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.pytree import tree_vdot
from eoslab.rules import find_state
from eoslab.train import RunConfig, Trainer, TrainResult
from eoslab.tuners import tuner_info
from eoslab.tuners.parabolic import ParabolicState
from eoslab.tuners.profile import line_profile

WIDE_PER_MU = 20  # wide grid: spacing mu / 20
LOCAL_HALF = 20  # local grid: 2 * 20 + 1 points on [-2 s_t, 2 s_t]
MAX_ROWS_PER_CHUNK = 16384  # examples x grid points per profile chunk (the XLA note)


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
