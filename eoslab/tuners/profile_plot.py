"""The figure of line-loss profiles: loss against step size, the fitted parabola, the minimum, the step taken."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from eoslab.errors import InputError
from eoslab.tuners.profile import LineProfile, unstack_profiles


def plot_line_profiles(profiles: LineProfile | Sequence[LineProfile], *, taken: Sequence[float | None] | None = None,
                       labels: Sequence[str] | None = None, names: Sequence[str] | None = None,
                       ax=None, path: str | Path | None = None, num_points: int = 200):
    """Loss against step size for several profiles (e.g. at several training steps); returns the Figure.

    One panel per loss name (``names``, default all); per profile, one colour:
    the measured line (solid, 1 - R^2 in the legend), the fitted parabola over its
    fit window (dashed), a marker at the exact line minimiser, and a dotted
    vertical line at the step actually taken (``taken[k]``, in the units of
    ``steps``; ``None`` to skip); the legend also keys the three styles.  ``profiles`` may be a vmapped profile.
    ``ax``: an axes, or one per name, to draw into.  ``path``: also write the
    figure there (PNG unless the suffix names another format).
    """
    from matplotlib.lines import Line2D

    profs = []
    for p in ([profiles] if isinstance(profiles, LineProfile) else list(profiles)):
        profs.extend(unstack_profiles(p))
    if not profs:
        raise InputError("profiles is empty; pass at least one LineProfile.")
    names = list(profs[0].names if names is None else names)
    for k, p in enumerate(profs):
        missing = [n for n in names if n not in p.losses]
        if missing:
            raise InputError(f"profile {k} has no loss named {missing[0]!r} (it has {list(p.names)}); "
                             f"pass names= present in every profile.")
    taken = [None] * len(profs) if taken is None else list(taken)
    labels = [f"profile {k}" for k in range(len(profs))] if labels is None else list(labels)
    if len(taken) != len(profs) or len(labels) != len(profs):
        raise InputError(f"got {len(profs)} profiles, {len(taken)} taken steps and {len(labels)} labels; "
                         f"give one taken step (or None) and one label per profile.")

    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.0 * len(names), 3.8), layout="constrained")
        FigureCanvasAgg(fig)
        axes = list(np.atleast_1d(fig.subplots(1, len(names), squeeze=False)[0]))
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != len(names):
            raise InputError(f"got {len(axes)} axes for {len(names)} loss names; pass one axes per name "
                             f"(or names= to choose which to plot).")
        fig = axes[0].figure

    normalised = all(float(p.unit_length) == 1.0 for p in profs)
    for axis, name in zip(axes, names):
        for k, (p, label) in enumerate(zip(profs, labels)):
            colour = f"C{k % 10}"
            s, l = np.asarray(p.steps), np.asarray(p.losses[name])
            fit = p.fit[name]
            axis.plot(s, l, "-", color=colour, lw=1.2, label=f"{label} (1-R²={1.0 - float(fit.r2):.1e})")
            w = float(p.fit_window)
            lo, hi = max(float(s[0]), -w), min(float(s[-1]), w)
            grid = np.linspace(lo, hi, num_points)
            axis.plot(grid, float(fit.a) * grid**2 + float(fit.b) * grid + float(fit.c), "--", color=colour, lw=1.0)
            axis.plot([float(p.argmin[name])], [float(p.min_loss[name])], "o", color=colour, ms=5)
            if taken[k] is not None:
                axis.axvline(float(taken[k]), color=colour, ls=":", lw=1.0)
        # the line styles' key, in black, after the profiles' own entries (legend handles only, not drawn)
        handles = axis.get_legend_handles_labels()[0]
        handles += [Line2D([], [], ls="--", color="k", lw=1.0, label="parabola fit"),
                    Line2D([], [], ls="none", marker="o", color="k", ms=5, label="line minimum")]
        if any(t is not None for t in taken):
            handles.append(Line2D([], [], ls=":", color="k", lw=1.0, label="step taken"))
        axis.set_xlabel("step s (distance along d/|d|)" if normalised else "step s (multiples of d)")
        axis.set_ylabel(f"{name} loss")
        axis.set_title(f"{name} loss along the line", fontsize=10)
        axis.legend(handles=handles, fontsize=8)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
    return fig
