"""One row per member of a tuners run: losses, certified sharpness, eta_t * lambda_t statistics, cost per step.

"Final loss" is the median training loss over the last 10% of the steps: at
the edge of stability the loss is non-monotone (Polyak's spikes by 10x), so
the loss after the last step alone would be a draw.  Statistics of
eta_t * lambda_t use every step where it is recorded at every step
(:func:`eoslab.experiments.statistics.level_stats`: over disjoint pairs of
consecutive steps, both phases of the period-2 oscillation weighed equally),
and only converged eigenvalue solves
(:func:`~eoslab.experiments.claims.certified_series`).
"""
from __future__ import annotations

import numpy as np

from eoslab.experiments import statistics as st
from eoslab.experiments.claims import Accuracy, certified_series
from eoslab.experiments.tuners.settings import Method
from eoslab.train import TrainResult

EDGE = 2.0  # the edge of stability of eta_t * lambda_t
LAMBDA_WINDOW = 0.05  # sharpness "at 10% of the steps": its median over steps 10%-15% (likewise 75%, end)


def _series(metrics: dict, name: str, lo: int = 0, hi: int | None = None):
    return st.window(*metrics.get(name, (np.zeros(0, int), np.zeros(0))), lo, hi)


def certified_edge(metrics: dict) -> tuple[np.ndarray, np.ndarray, Accuracy]:
    """eta_t * lambda_t (``effective_sharpness``) at the steps whose sharpness solve converged.

    Its relative error is that of lambda_t (eta_t is exact); the accuracy record is the sharpness's.
    """
    s, _, acc = certified_series(metrics, "sharpness")
    es, eff = _series(metrics, "effective_sharpness")
    keep = np.isin(es, s)
    return es[keep], eff[keep], acc


def _lambda_at(steps, lam, total: int, frac: float) -> float:
    """Median sharpness over the steps frac*total .. (frac + 0.05)*total (at least one step)."""
    lo = int(frac * total)
    return st.median(st.window(steps, lam, lo, max(lo, int((frac + LAMBDA_WINDOW) * total)))[1])


def summarise_member(metrics: dict, *, lr: float, total: int, tuner: bool, minibatch: bool,
                     status: str = "completed", diverged_step: int | None = None) -> dict:
    """One member's losses, certified sharpness and eta_t * lambda_t statistics, and cost per step."""
    bad = status != "completed"
    # the last step with good parameters: a diverged member's metrics from its divergence on are bad
    end = diverged_step - 1 if bad and diverged_step is not None else total
    ls, lam, acc = certified_series(metrics, "sharpness")
    ls, lam = st.window(ls, lam, 0, end)
    es, eff, _ = certified_edge(metrics)
    es, eff = st.window(es, eff, 1, end)  # eta_t * lambda_t at the steps after the first
    _, tl = _series(metrics, "train_loss", 0, end)
    # final loss: the median over the last 10% of the steps (at the edge of stability the loss is
    # non-monotone and one step can sit on a spike); full batch: the per-step loss, which is the
    # training loss; minibatches: the full training loss at the eval steps
    _, tail = _series(metrics, "train_loss" if minibatch else "loss", total - max(1, total // 10), end)
    _, acc_test = _series(metrics, "test_accuracy", 0, end)
    if tuner:
        _, eta_half = _series(metrics, "step_size", total // 2, end - 1)
        _, nv = _series(metrics, "tuner_values", 0, end - 1)
        _, ng = _series(metrics, "tuner_grads", 0, end - 1)
        _, ok = _series(metrics, "tuner_success", 0, end - 1)
    else:
        eta_half, nv, ng, ok = np.asarray([lr]), np.zeros(1), np.zeros(1), np.ones(1)
    _, curv = _series(metrics, "step_curvature", total // 2, end - 1)
    lam10, lam75, lam_end = (_lambda_at(ls, lam, total, f) for f in (0.10, 0.75, 1 - LAMBDA_WINDOW))
    return dict(
        lr=float(lr), steps=total, status=status, diverged_step=diverged_step,
        final_loss=st.median(tail) if not bad else float("nan"),
        last_loss=float(tl[-1]) if len(tl) and not bad else float("nan"),
        final_test_accuracy=float(acc_test[-1]) if len(acc_test) and not bad else float("nan"),
        lambda0=float(lam[0]) if len(ls) and ls[0] == 0 else float("nan"),
        lambda10=lam10, lambda75=lam75, lambda_end=lam_end, growth=lam_end / lam10, late_growth=lam_end / lam75,
        median_eta=st.median(eta_half),
        edge=st.level_stats(es, eff, EDGE, 1, end),
        edge_second_half=st.level_stats(es, eff, EDGE, total // 2, end),
        edge_first_quarter=st.level_stats(es, eff, EDGE, 1, total // 4),
        edge_samples=(st.median(eff), st.median(st.window(es, eff, total // 2, end)[1]), st.fraction_above(eff, EDGE)),
        below_edge_steps=int(np.count_nonzero(st.finite(eff) < EDGE)), edge_values=len(st.finite(eff)),
        median_step_curvature=st.median(curv),
        loss_evals=1 + float(np.mean(nv)), grad_evals=1 + float(np.mean(ng)),
        success=float(np.mean(ok)), accuracy=acc,
    )


def summarise(result: TrainResult, method: Method) -> list[dict]:
    """One row per member (step size or cap) of a run: losses, sharpness, eta_t, eta_t*lambda_t, cost."""
    cfg = result.config
    rows = []
    for i, lr in enumerate(result.lrs):
        row = summarise_member(result.metrics[i], lr=lr, total=cfg.train.steps, tuner=cfg.optimizer.name != "gd",
                               minibatch=cfg.optimizer.batch_size > 0, status=result.status[i],
                               diverged_step=result.diverged_step[i])
        rows.append(dict(method=method.key, label=method.label, recipe=cfg.name, batch_size=cfg.optimizer.batch_size,
                         seed=cfg.seed, run_id=result.run_ids[i], **row))
    return rows


def best(rows: list[dict]) -> dict:
    """The member with the lowest final training loss (diverged members excluded)."""
    ok = [r for r in rows if np.isfinite(r["final_loss"])]
    return min(ok, key=lambda r: r["final_loss"]) if ok else rows[0]
