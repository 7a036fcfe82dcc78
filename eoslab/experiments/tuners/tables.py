"""``table.txt`` of the tuners reproduction: one line per member, and the note that says what each column is."""
from __future__ import annotations


def format_table(rows: list[dict], title: str) -> str:
    head = (f"{'method':<18} {'η / cap':>7} {'batch':>5} {'seed':>4} {'status':>9} {'final loss':>10} "
            f"{'last loss':>9} {'test acc':>8} {'λ0':>6} {'λ@10%':>6} {'λ_end':>6} {'growth':>6} {'med η_t':>8} "
            f"{'med ηλ':>7} {'ηλ 2nd½':>7} {'ηλ>2':>5} {'η·uHu':>6} {'f/step':>6} {'∇/step':>6}")
    lines = [f"[{title}]", head]
    for r in rows:
        status = r["status"] if r["status"] == "completed" else f"div@{r['diverged_step']}"
        lines.append(
            f"{r['label']:<18} {r['lr']:>7.3g} {r['batch_size'] or 'full':>5} {r['seed']:>4} {status:>9} "
            f"{r['final_loss']:>10.4g} {r['last_loss']:>9.4g} "
            f"{r['final_test_accuracy']:>8.3f} {r['lambda0']:>6.3g} {r['lambda10']:>6.3g} {r['lambda_end']:>6.3g} "
            f"{r['growth']:>6.2f} {r['median_eta']:>8.3g} {_edge_median(r, 'edge', 0):>7.3f} "
            f"{_edge_median(r, 'edge_second_half', 1):>7.3f} {_edge_above(r):>5.2f} {r['median_step_curvature']:>6.3f} "
            f"{r['loss_evals']:>6.2f} {r['grad_evals']:>6.2f}")
    return "\n".join(lines)


def _edge_median(row: dict, key: str, i: int) -> float:
    """The period-2-safe median where the series has consecutive steps, else that of the eval samples."""
    return row[key].median if row[key].n else row["edge_samples"][i]


def _edge_above(row: dict) -> float:
    return row["edge"].above if row["edge"].n else row["edge_samples"][2]


TABLE_NOTE = """\
final loss: median training loss over the last 10% of the steps (full batch: every step; minibatches: the
full training loss at the eval steps; diverged: nan); last loss: the full training loss after the last
step; test acc: the test accuracy there; λ: sharpness (top Hessian eigenvalue of the full training loss,
converged solves only) at step 0, and its median over steps 10%-15% and over the last 5% of the steps;
growth = λ_end / λ@10%; med η_t: median step over the second half; med ηλ: median of η_t·λ_t over the
steps after step 0 (η_t the step the rule takes there; the edge of stability is 2): where η_t·λ_t is
recorded at every step, the median over disjoint pairs of consecutive steps (one value of each phase of
the period-2 oscillation per pair, so it cannot alias), else the median of the eval-step samples (aliased
where η_t·λ_t oscillates); ηλ 2nd½: the same over the second half; ηλ>2: the fraction of those values
above 2; η·uHu: median over the second half of η_t·u.Hu/|u|^2 along the step u (nan: not recorded);
f/step, ∇/step: mean loss evaluations and gradient evaluations (HVPs counted as gradients) per step, the
step's own value and gradient included.
CDAT: η_t·λ_t >= σ is an identity (η_t = σ|g|²/g.Hg >= σ/λ_1 whenever g.Hg > 0 and η_t is below its cap),
not a measurement; CDAT's η·uHu is σ by construction.
"""
