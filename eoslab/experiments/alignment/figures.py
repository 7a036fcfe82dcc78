"""The alignment figure of one toy model: trajectories in (p, q) with both curves, and the sharpness over steps."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from eoslab.experiments.alignment.theory import curve_q
from eoslab.experiments.claims import quick_title
from eoslab.models.toy import SingleNeuron


def figure(name: str, model, results: list, cfg: dict, out: Path, quick: bool = False) -> list[Path]:
    """Draw the figure of one toy model (:func:`draw`) and write ``alignment_{name}.png`` and ``.pdf`` in ``out``."""
    fig = draw(name, model, results, cfg, quick)
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"alignment_{name}.{ext}"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def draw(name: str, model, results: list, cfg: dict, quick: bool = False):
    """The alignment figure of one toy model; returns the matplotlib Figure.

    One column per step size (``results``: ``(Ensemble, summary)`` pairs):
    top, the first ``cfg["plot_trajectories"]`` trajectories in (p, q) with
    the paper's curve r(p) (dashed) and the slow manifold Q(p) (solid), their
    alignment distances in the title; bottom, the sharpness of the same
    trajectories over the steps against 2/eta (dashed), with the final
    sharpness ratio and the edge-of-stability fraction in the title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(results)
    fig = Figure(figsize=(4.2 * k, 7.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, k, squeeze=False)
    m = cfg["plot_trajectories"]
    for j, (ens, summ) in enumerate(results):
        eta = ens.eta
        idx = np.arange(min(m, ens.n))
        colours = [f"C{i % 10}" for i in idx]
        ax = axes[0, j]
        for i, col in zip(idx, colours):
            ax.plot(ens.p[:, i], ens.q[:, i], ".", ms=1.5, color=col, alpha=0.6, rasterized=True)
        finite = np.isfinite(ens.p[:, idx])
        pmax = float(np.percentile(np.abs(ens.p[:, idx][finite]), 99)) if finite.any() else 1.0
        pmax = max(pmax, 0.5)
        grid = np.linspace(-pmax, pmax, 801)
        ax.plot(grid, np.asarray(curve_q(model, grid, eta, order=0)), "k--", lw=1.0, label="r(p) (paper)")
        ax.plot(grid, np.asarray(curve_q(model, grid, eta, order=1)), "k-", lw=1.0, label="Q(p) (slow manifold)")
        qv = ens.q[:, idx][np.isfinite(ens.q[:, idx])]
        if qv.size:
            ax.set_ylim(max(0.0, float(np.percentile(qv, 0.5)) - 0.05), float(np.percentile(qv, 99.5)) + 0.05)
        ax.set_xlim(-pmax, pmax)
        sm, rc = summ["slow_manifold"], summ["r_curve"]
        ax.set_title(
            f"{name}, η = {eta:g}\n|q − Q(p)|: median {sm['median']:.1e}, p99 {sm['p99']:.1e}\n"
            f"|q − r(p)|: median {rc['median']:.1e}, p99 {rc['p99']:.1e}", fontsize=9,
        )
        ax.set_xlabel("p")
        ax.set_ylabel(r"$q = 2\,/\,(\eta\,\|\nabla f\|^2)$" if not isinstance(model, SingleNeuron)
                      else r"$q = 2\,/\,(\eta\, x^2 v^2)$")
        ax.legend(fontsize=8, loc="lower right")
        ax = axes[1, j]
        t = np.arange(ens.steps + 1)
        for i, col in zip(idx, colours):
            ax.plot(t, ens.sharpness[:, i], lw=0.6, color=col, alpha=0.6, rasterized=True)
        ax.axhline(2.0 / eta, color="k", ls="--", lw=1.0, label="2/η")
        fs = summ["final_sharpness_ratio"]
        ax.set_title(
            f"final sharpness / (2/η): median {fs['median']:.4f}\n"
            f"within {cfg['sharpness_tol']:.0%}: {fs['fraction_within_tol']:.1%}; EoS: {summ['eos_fraction']:.1%}",
            fontsize=9,
        )
        ax.set_xlabel("step")
        ax.set_ylabel(f"sharpness ({model.loss_fn.name} loss)")
        ax.set_ylim(0, 2.0 * 2.0 / eta)
        ax.legend(fontsize=8)
    fig.suptitle(quick_title(f"trajectory alignment: {name}, {results[0][0].n} initialisations", quick),
                 fontsize=11)
    return fig
