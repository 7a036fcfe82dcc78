"""The uv model's phase diagram: the analytic check c_loss = 2, c_max = 4 (closed-form sharpness: exact)."""
from __future__ import annotations

import math

import numpy as np

from eoslab.experiments.claims import Claim
from eoslab.experiments.phases.critical import PAPER, Critical, first_c, last_stable_c, loss_rises, sharpness_rises
from eoslab.experiments.statistics import spread

UV_WIDTH = 512
UV_STEPS = 1000
UV_SEEDS = 8
UV_TOLERANCE = 0.05


def uv_phase_diagram(*, width: int = UV_WIDTH, steps: int = UV_STEPS, seeds: int = UV_SEEDS,
                     cs: np.ndarray | None = None, y: float = 0.0) -> dict:
    """GD on the uv model for every (c, initialisation) as one ensemble (:func:`~eoslab.train.ensemble.scan_members`);
    per-seed c_loss, c_sharp, c_max."""
    import jax
    import jax.numpy as jnp

    from eoslab.models.toy import UVModel, require_x64
    from eoslab.train.ensemble import scan_members
    require_x64()
    model = UVModel(width=width, x=1.0, y=y)
    cs = 2.0 ** np.arange(0.5, 2.5 + 1e-9, 0.01) if cs is None else np.asarray(cs, float)
    theta0 = model.init(jax.random.PRNGKey(0), seeds)
    lam0 = jax.vmap(model.sharpness)(theta0)

    def step(member, t):  # one (c, initialisation): GD with its own step size
        theta, eta = member
        return (theta - eta * model.grad(theta), eta), (model.loss(theta), model.sharpness(theta))

    grid = jnp.asarray(cs)[:, None] / lam0[None, :]  # [c, seed]
    members = (jnp.broadcast_to(theta0, (len(cs), *theta0.shape)).reshape(-1, theta0.shape[-1]), grid.reshape(-1))
    run = jax.jit(lambda m: scan_members(step, m, jnp.arange(steps))[1])
    losses, sharp = (r.reshape(len(cs), seeds, steps) for r in run(members))
    losses, sharp = np.asarray(losses), np.asarray(sharp)
    diverged = ~np.isfinite(losses[:, :, -1]) | (losses[:, :, -1] > 1e6)
    per_seed = []
    for s in range(seeds):
        per_seed.append(Critical(
            first_c(cs, np.array([loss_rises(losses[i, s]) for i in range(len(cs))])),
            first_c(cs, np.array([sharpness_rises(sharp[i, s]) for i in range(len(cs))])),
            math.nan, last_stable_c(cs, diverged[:, s])))
    return dict(cs=cs, per_seed=per_seed, losses=losses, sharpness=sharp, diverged=diverged,
                lambda0=np.asarray(lam0), width=width, steps=steps, y=y)


def uv_claims(uv: dict) -> list[Claim]:
    """c_loss = 2 and c_max = 4 on the uv model (closed-form sharpness: exact, no certificate needed)."""
    crit = uv["per_seed"]
    out = []
    for name, target in (("c_loss", 2.0), ("c_max", 4.0)):
        vals = [getattr(c, name) for c in crit]
        s = spread(vals)
        worst = max(abs(v - target) / target for v in vals)
        out.append(Claim(
            f"uv model: {name} = {target:g}",
            f"{name} per initialisation (median [min, max] over {len(vals)}), width {uv['width']}, "
            f"grid step 2^0.01, {uv['steps']} GD steps",
            s["median"], bool(worst <= UV_TOLERANCE), PAPER,
            f"[{s['min']:.4g}, {s['max']:.4g}] n={s['n']}; largest relative error {worst:.2%} "
            f"(tolerance {UV_TOLERANCE:.0%}); sharpness in closed form (exact)"))
    return out


def plot_uv(uv: dict, *, title: str = ""):
    """Fraction of initialisations whose loss rises early, sharpness rises early, or that diverge, against c.

    Three step curves on a log-2 c axis (solid, dashed, dotted, so that where
    they coincide each is still seen), the paper's c_loss = 2 and c_max = 4 as
    thin vertical lines, the legend to the right of the axes.
    """
    import matplotlib.pyplot as plt

    from eoslab.plots import suptitle
    cs = uv["cs"]
    seeds = len(uv["per_seed"])
    rise = np.array([[loss_rises(uv["losses"][i, s]) for s in range(seeds)] for i in range(len(cs))]).mean(1)
    srise = np.array([[sharpness_rises(uv["sharpness"][i, s]) for s in range(seeds)]
                      for i in range(len(cs))]).mean(1)
    div = uv["diverged"].mean(1)
    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    ax.plot(cs, rise, ls="-", lw=2.4, label="loss rises in 10 steps")
    ax.plot(cs, srise, ls="--", lw=1.8, label="sharpness rises in 10 steps")
    ax.plot(cs, div, ls=":", lw=2.4, label=f"diverges in {uv['steps']} steps")
    for v in (2, 4):
        ax.axvline(v, color="0.4", ls="-", lw=0.7, zorder=0)
    ax.set_xscale("log", base=2)
    ticks = [t for t in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8) if cs[0] <= t <= cs[-1]]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("c = η λ₀")
    ax.set_ylabel("fraction of initialisations")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    suptitle(fig, title or f"uv model, width {uv['width']}: c_loss = 2, c_max = 4", fontsize=11)
    return fig
