"""Every figure the project draws passes the layout check at its default size (tests/figures/layout.py).

Each figure is built from small synthetic inputs (tests/figures/synthetic.py)
with the titles and labels the reproductions and the CLI give it (the
longest variant: ``--quick`` titles), then drawn with the Agg canvas: no text
leaves the figure, no tick labels of one axis overlap, no text of one panel
runs into another, and no text is below 8 pt.
"""
import matplotlib

matplotlib.use("Agg")

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from eoslab.experiments.claims import quick_title  # noqa: E402
from tests.figures import synthetic  # noqa: E402
from tests.figures.layout import MIN_FONTSIZE, assert_layout_ok, layout_problems  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---- the check itself: it finds what it is meant to find ---------------------------------------------

def _kinds(fig):
    return {p.kind for p in layout_problems(fig)}


def test_check_passes_a_clean_figure():
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1, 2], [1, 4, 9], label="data")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("a title")
    ax.legend(fontsize=9)
    assert layout_problems(fig) == []


def test_check_finds_clipped_small_and_overlapping_text():
    fig = Figure(figsize=(3, 2))  # no layout engine: the long labels run off the figure
    ax = fig.add_axes((0.02, 0.05, 0.96, 0.9))
    ax.plot([0, 1], [0, 1])
    ax.set_ylabel("a y label that the figure clips on the left")
    ax.set_xticks(np.linspace(0, 1, 11), [f"{v:.4f}" for v in np.linspace(0, 1, 11)])
    ax.set_title("a very long title that is much wider than a three inch figure can hold")
    ax.text(0.5, 0.5, "tiny", fontsize=5)
    problems = layout_problems(fig)
    kinds = {p.kind for p in problems}
    assert {"outside", "ticks", "small"} <= kinds
    assert any(p.kind == "outside" and p.role == "ylabel" for p in problems)
    assert any(p.kind == "small" and p.text == "tiny" for p in problems)
    with pytest.raises(AssertionError, match="layout problems"):
        assert_layout_ok(fig)


def test_check_finds_a_panel_running_into_another_and_ignores_ticks_outside_the_view():
    fig = Figure(figsize=(6, 3))
    left = fig.add_axes((0.1, 0.15, 0.35, 0.75))
    right = fig.add_axes((0.5, 0.15, 0.4, 0.75))
    left.plot([0, 1], [0, 1])
    right.plot([0, 1], [0, 1])
    right.set_ylabel("a y label drawn on top of the left panel", fontsize=12)
    problems = layout_problems(fig)
    assert any(p.kind in ("intrudes", "overlap") and p.role == "ylabel" for p in problems)
    # a log axis over less than a decade labels its minor ticks; only the ones inside the view are drawn
    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot([0.02, 0.6], [1, 2])
    ax.set_xscale("log")
    ax.set_xlim(0.015, 0.7)
    drawn = [p for p in layout_problems(fig) if p.kind == "ticks"]
    assert drawn, "the minor tick labels of 2e-2 ... 6e-1 collide at 4 in"
    ax.set_xlim(0.2, 0.3)
    assert all(p.kind != "outside" for p in layout_problems(fig))


def test_check_reports_texts_below_the_minimum_size():
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    ax.legend(fontsize=MIN_FONTSIZE - 1)
    assert [p.role for p in layout_problems(fig) if p.kind == "small"] == ["legend"]
    assert layout_problems(fig, min_fontsize=MIN_FONTSIZE - 1) == []


# ---- every figure of the project ------------------------------------------------------------------

def test_curvature_runs_figure():
    """The eos reproduction's and `eoslab plot`'s figure: loss and sharpness, one colour per step size."""
    from eoslab.plots import plot_curvature_runs
    res = synthetic.train_result("eos")
    runs = [dict(label=f"η={lr:g}", metrics=res.metrics[i], threshold=res.thresholds[i],
                 diverged_step=res.diverged_step[i]) for i, lr in enumerate(res.lrs)]
    fig = plot_curvature_runs(runs, title=quick_title("eos-gd: fc-tanh [200, 200] on digits", True),
                              loss_name="mse")
    assert_layout_ok(fig)
    # adaptive rules and tuners in `eoslab plot`: the effective sharpness, unconverged solves marked
    res = synthetic.train_result("adaptive-eos", unconverged=3)
    runs = [dict(label=f"adam η={lr}", metrics=res.metrics[i], threshold=res.thresholds[i],
                 curvature="effective_sharpness", diverged_step=None) for i, lr in enumerate(res.lrs)]
    runs[0]["curvature"] = "sharpness"
    assert_layout_ok(plot_curvature_runs(runs, loss_name="mse-mean"))


def test_curvature_runs_figure_names_the_loss_readably():
    from eoslab.plots import plot_curvature_runs
    res = synthetic.train_result("eos")
    fig = plot_curvature_runs([dict(label="η=0.1", metrics=res.metrics[0], threshold=20.0)], loss_name="mse")
    ylabel = fig.axes[0].yaxis.label
    assert ylabel.get_fontsize() >= 9
    assert "MSE" in ylabel.get_text() and len(ylabel.get_text()) <= 40


def _density(spread=4.0):
    rng = np.random.default_rng(1)
    nodes = np.sort(np.concatenate([rng.normal(0, 0.02, (8, 60)), rng.uniform(-1.2, spread, (8, 20))], axis=1))
    weights = np.where(np.abs(nodes) < 0.1, 1.0, 1e-3)
    weights /= weights.sum(1, keepdims=True)
    from eoslab.curvature.density import SpectralDensity
    return SpectralDensity(jnp.asarray(nodes), jnp.asarray(weights), 640)


def test_spectral_density_figure():
    """`eoslab spectrum`'s figure: the SLQ density on a log axis."""
    from eoslab.curvature import plot_spectral_density
    ax = plot_spectral_density(_density())
    assert_layout_ok(ax.figure)
    ax = plot_spectral_density(_density(), log=False)
    assert_layout_ok(ax.figure)


def test_spectral_density_range_starts_near_the_peak_not_at_the_padding():
    from eoslab.curvature import plot_spectral_density
    dens = _density()
    ax = plot_spectral_density(dens)
    (line,) = ax.lines
    peak = float(np.max(line.get_ydata()))
    lo, hi = ax.get_ylim()
    assert hi > peak  # the peak is inside the axes
    assert peak * 1e-8 <= lo <= peak * 1e-3  # a floor relative to the peak, not 1e-12
    assert ax.get_yscale() == "log"
    lo_lin, hi_lin = plot_spectral_density(dens, log=False).get_ylim()
    assert lo_lin == pytest.approx(0.0, abs=1e-12) and hi_lin > peak


def test_spectral_density_into_a_given_axes_keeps_every_curve_in_range():
    from eoslab.curvature import plot_spectral_density
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
    out = plot_spectral_density(_density(), ax=axes[1], label="init")
    assert out is axes[1] and out.figure is fig
    first = out.get_ylim()
    plot_spectral_density(_density(spread=9.0), ax=axes[1], label="later", sigma=0.5)  # lower, wider density
    lo, hi = out.get_ylim()
    peaks = [float(np.max(line.get_ydata())) for line in out.lines]
    assert hi >= max(peaks) and lo <= first[0] and lo <= min(peaks) * 1e-6 * 1.0001
    assert out.get_xlim()[1] > 9.0
    out.legend()
    assert_layout_ok(fig)


def test_phase_diagram_figure():
    from eoslab.experiments.phases import plot_phase_diagram
    rows, _ = synthetic.phase_rows()
    fig = plot_phase_diagram(rows, title=quick_title("phase diagram: digits, fc-relu, SGD 512, mse-mean", True))
    assert_layout_ok(fig)
    quick_rows, _ = synthetic.phase_rows(dws=((2, 16), (2, 128), (8, 16), (8, 128)), seeds=(0, 1),
                                         cs=synthetic.C_GRID[::2])
    assert_layout_ok(plot_phase_diagram(quick_rows))


def test_phase_diagram_shades_the_regimes_of_the_measured_grid():
    """One filled cell per (d, w) and c, coloured by the median regime over seeds; the critical curves on top."""
    from matplotlib.collections import QuadMesh

    from eoslab.experiments.phases import plot_phase_diagram
    from eoslab.experiments.phases.diagram import PHASE_REGIMES, regime_grid
    rows, _ = synthetic.phase_rows()
    columns, cs, codes = regime_grid(rows)
    assert len(columns) == 9 and len(cs) == len(synthetic.C_GRID) and codes.shape == (9, len(cs))
    # d / w ascending (ties by depth), and each column's regimes in the paper's order as c grows
    assert [c["ratio"] for c in columns] == sorted(c["ratio"] for c in columns)
    for row in codes:
        known = row[row >= 0]
        assert np.all(np.diff(known) >= 0)
        assert known[0] == 0  # sharpness reduction at c = 1
    assert codes[0, -1] == 3 and codes[-1, -1] != 3  # divergence at c = 64 at the smallest d / w only
    assert {0, 1, 2, 3} <= set(codes.ravel().tolist())
    # the median over seeds: where the critical values of all seeds agree, the cell is the regime between them
    col = next(i for i, c in enumerate(columns) if (c["depth"], c["width"]) == (2, 128))
    row = next(r for r in rows if (r["depth"], r["width"]) == (2, 128))
    for j, c in enumerate(cs):
        crit = row["per_seed"]
        if all(c < k.c_loss for k in crit):
            assert codes[col, j] == 0
        if all(c > k.c_max for k in crit):
            assert codes[col, j] == 3
    fig = plot_phase_diagram(rows)
    ax = fig.axes[0]
    meshes = [m for m in ax.collections if isinstance(m, QuadMesh)]
    assert len(meshes) == 1
    legend_texts = [t.get_text() for leg in [ax.get_legend(), *fig.legends] if leg for t in leg.get_texts()]
    for name in PHASE_REGIMES:
        assert name in legend_texts
    for name in ("c_loss", "c_sharp", "c_max"):
        assert any(name in t for t in legend_texts)
    curves = [ln for ln in ax.lines if ln.get_marker() not in (None, "None", "")]
    assert len(curves) >= 3 and all(ln.get_zorder() > meshes[0].get_zorder() for ln in curves)
    # c_max where no seed diverges up to the top c is a lower bound, drawn open; where every seed diverged, filled
    by_key = {(r["depth"], r["width"]): r for r in rows}
    top = [c for c in columns if max(k.c_max for k in by_key[(c["depth"], c["width"])]["per_seed"]) >= cs[-1]]
    open_marks = [ln for ln in ax.lines if ln.get_markerfacecolor() == "white" and ln.get_marker() == "v"]
    assert top and len(open_marks) == 1 and len(open_marks[0].get_xdata()) == len(top)
    assert any(t.startswith("c_max ≥") for t in legend_texts)


def test_phase_diagram_marks_undetermined_cells():
    from eoslab.experiments.phases.diagram import regime_grid
    rows, _ = synthetic.phase_rows(dws=((4, 64),), seeds=(1,))
    _, cs, codes = regime_grid(rows)
    # seed 1's run at c = C_GRID[12] has no certified eigenvalue: c_sharp undetermined, so the cells it decides
    # (c >= c_loss, below c_max) are undetermined (-1), never guessed
    assert (codes == -1).any()
    assert codes[0, 0] == 0


def test_early_trajectories_figure():
    from eoslab.experiments.phases import plot_early_trajectories
    _, collected = synthetic.phase_rows()
    entry = collected[(8, 16)]
    cs = sorted(entry["runs"][0])
    rep = sorted({min(cs, key=lambda c: abs(c - x)) for x in (cs[0], 2.5, 6, 16, 45)})
    fig = plot_early_trajectories(entry, 0, rep, title=quick_title("first 10 steps, d=8, w=16, seed 0", True))
    assert_layout_ok(fig)


def test_uv_figure():
    from eoslab.experiments.phases import plot_uv
    fig = plot_uv(synthetic.uv_result(), title=quick_title("uv model, width 512: c_loss = 2, c_max = 4", True))
    assert_layout_ok(fig)


def test_regimes_figure():
    from eoslab.experiments.phases import REGIMES, plot_regimes
    res = synthetic.train_result("phases", ["train.steps=800", "train.eval_every=1"])
    onsets = [{r: (None if (i + k) % 3 == 0 else 10 * (k + 1) ** 2) for k, r in enumerate(REGIMES)}
              for i in range(len(res.lrs))]
    title = quick_title("sharpness over training: Kalra init, d=4, w=128, 800 steps, SGD 512", True)
    assert_layout_ok(plot_regimes(res, onsets, title=title))


def test_adaptive_eos_figure():
    from eoslab.experiments import adaptive_eos
    results = [(label, synthetic.train_result(recipe, ["train.steps=1000"], threshold_factor=38.0))
               for recipe, label, _ in adaptive_eos.RECIPES]
    assert_layout_ok(adaptive_eos.plot(results, quick=True))


def test_pal_profiles_figure():
    from eoslab.experiments.pal.figures import plot_profiles
    for minibatch in (True, False):
        names = ("batch", "full") if minibatch else ("full",)
        fig = plot_profiles("MSE, batch 128, PAL β=0.4", synthetic.pal_records(names), minibatch, 1.67, quick=True)
        assert_layout_ok(fig)


def test_pal_training_figure():
    from eoslab.experiments.pal.figures import plot_training
    title = quick_title("PAL (Mutschler & Zell 2020) and constant steps: training", True)
    assert_layout_ok(plot_training(synthetic.pal_panels(), title=title))


def _tuner_results(methods, overrides=()):
    out = []
    for m in methods:
        out.append((m, synthetic.train_result(m.recipe, ["train.steps=400", *overrides], tuner=m.key != "gd",
                                              diverge_last=m.key == "gd")))
    return out


def test_tuners_full_batch_figure():
    from eoslab.experiments.tuners.figures import plot_full_batch
    from eoslab.experiments.tuners.settings import FULL_BATCH, PAPER
    title = quick_title(f"Step-size tuners ({PAPER}): fc-tanh [200, 200] on digits, full batch", True)
    assert_layout_ok(plot_full_batch(_tuner_results(FULL_BATCH), title))


def test_tuners_stochastic_figure():
    from eoslab.experiments.tuners.figures import plot_stochastic
    from eoslab.experiments.tuners.settings import PAPER, STOCHASTIC
    by_batch = {bs: _tuner_results(STOCHASTIC, [f"optimizer.batch_size={bs}", "train.eval_every=25"])
                for bs in (64, 256)}
    title = quick_title(f"Step-size tuners ({PAPER}): fc-tanh [200, 200] on digits, minibatches, seed 0 (loss and "
                        f"sharpness: full training set)", True)
    assert_layout_ok(plot_stochastic(by_batch, title))


@pytest.mark.parametrize("name", ["logcosh2", "two_layer_linear", "single_neuron", "uv"])
def test_alignment_figure(name, tmp_path):
    from eoslab.experiments.alignment.figures import draw, figure
    model, results, cfg = synthetic.alignment_inputs(name)
    assert_layout_ok(draw(name, model, results, cfg, quick=True))
    paths = figure(name, model, results, cfg, tmp_path, quick=True)
    assert [p.name for p in paths] == [f"alignment_{name}.png", f"alignment_{name}.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_line_profiles_figure():
    import jax
    from eoslab.tuners.profile import line_profile
    from eoslab.tuners.profile_plot import plot_line_profiles
    params = {"w": jnp.array([0.3, -0.7, 1.1])}
    fns = {"batch": lambda p: jnp.sum((p["w"] - 1.0) ** 2), "full": lambda p: jnp.sum((p["w"] - 0.8) ** 2) + 0.1}
    directions = [{"w": jnp.array([0.7, 1.7, -0.1]) * k} for k in (1.0, 0.5, 0.25)]
    profiles = [line_profile(fns, params, d, num=21, s_max=2.0, fit_window=1.0) for d in directions]
    jax.block_until_ready(profiles)
    fig = plot_line_profiles(profiles, taken=[0.1, None, 0.2], labels=["step 0", "step 10", "step 20"])
    assert_layout_ok(fig)


# ---- no figure goes unchecked -------------------------------------------------------------------------

CHECKED = {  # module -> the test above that draws its figures
    "eoslab/plots.py": test_curvature_runs_figure,
    "eoslab/curvature/density.py": test_spectral_density_figure,
    "eoslab/experiments/phases/diagram.py": test_phase_diagram_figure,
    "eoslab/experiments/phases/uv.py": test_uv_figure,
    "eoslab/experiments/phases/regimes.py": test_regimes_figure,
    "eoslab/experiments/adaptive_eos.py": test_adaptive_eos_figure,
    "eoslab/experiments/pal/figures.py": test_pal_profiles_figure,
    "eoslab/experiments/tuners/figures.py": test_tuners_full_batch_figure,
    "eoslab/experiments/alignment/figures.py": test_alignment_figure,
    "eoslab/tuners/profile_plot.py": test_line_profiles_figure,
}


def test_central_flows_figure():
    from eoslab.experiments.central_flows import plot
    assert_layout_ok(plot(synthetic.central_flow_rows(), quick=True))


CHECKED["eoslab/experiments/central_flows.py"] = test_central_flows_figure


def test_every_module_that_draws_a_figure_has_a_layout_test():
    """A new figure (a module creating a matplotlib figure) needs its test here, or this fails."""
    import re
    from pathlib import Path

    import eoslab
    root = Path(eoslab.__file__).parent
    drawing = re.compile(r"plt\.subplots\(|plt\.figure\(|\bFigure\(|subplot_mosaic\(")
    found = set()
    for p in root.rglob("*.py"):
        text = p.read_text(encoding="utf-8")
        if "matplotlib" in text and drawing.search(text):  # (a class of its own named Figure does not count)
            found.add(f"eoslab/{p.relative_to(root).as_posix()}")
    assert "eoslab/plots.py" in found and "eoslab/experiments/phases/diagram.py" in found  # the scan works
    missing = sorted(found - set(CHECKED))
    assert not missing, f"figures without a layout test in tests/figures/test_layout.py: {missing}"
