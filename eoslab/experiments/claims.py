"""Claims tables: every reproduction ends with what its paper claims and what we measured.

``claims.json`` is a list of objects with at least ``claim``, ``quantity``,
``value`` and ``holds`` (plus ``quick``: whether the run was a ``--quick`` one,
and ``accuracy`` where the claim rests on measured eigenvalues); ``claims.md``
is the same as a Markdown table.  A claim that does not hold here is reported
as such, never dropped; a claim a mode does not run is a row with
``holds: None`` and the reason.

Measured eigenvalues enter claims only through :func:`certified_series`: it
keeps the values whose solve converged (error estimate <= tol * |lambda|),
counts those it dropped, and returns the largest relative error estimate of
the values it kept, which the table prints.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eoslab.jsonable import jsonable


@dataclasses.dataclass(frozen=True)
class Claim:
    claim: str  # what the paper says, in one sentence
    quantity: str  # what was measured, with its definition
    value: Any  # the measured value (number, string or small dict)
    holds: bool | None  # None: not testable in this run (e.g. missing data)
    paper: str = ""
    detail: str = ""  # target, tolerance, spread over seeds, ...
    accuracy: "Accuracy | None" = None  # the eigenvalue measurements the claim used, if any
    quick: bool = False  # set by write_claims for --quick runs

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["value"] = jsonable(self.value)
        d["accuracy"] = None if self.accuracy is None else jsonable(dataclasses.asdict(self.accuracy))
        return d


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """How trustworthy the eigenvalues behind a claim are.

    used: values the claim used (converged solves only);
    unconverged: values left out because their solve did not reach its tolerance
      (or carried no convergence record);
    max_rel_error: the largest error estimate |error| / |lambda| among the used values.
    """
    used: int
    unconverged: int
    max_rel_error: float

    def __add__(self, other: "Accuracy") -> "Accuracy":
        return Accuracy(self.used + other.used, self.unconverged + other.unconverged,
                        max(self.max_rel_error, other.max_rel_error))

    def describe(self) -> str:
        s = f"{self.used} eigenvalues, largest relative error estimate {self.max_rel_error:.1e}"
        return s + (f"; {self.unconverged} unconverged left out" if self.unconverged else "")


NO_MEASUREMENTS = Accuracy(0, 0, 0.0)


def combine(accuracies) -> Accuracy | None:
    """The sum of several :class:`Accuracy` records (None if there are none)."""
    acc = [a for a in accuracies if a is not None]
    return sum(acc[1:], acc[0]) if acc else None


def certified_series(metrics: dict, name: str = "sharpness"):
    """``(steps, values, Accuracy)`` of a stored eigenvalue series, converged values only.

    ``metrics`` is a run's ``{metric: (steps, values)}`` (``RunStore.get_metrics``,
    ``TrainResult.metrics[i]``).  A value is kept when ``{name}_converged`` is 1
    at its step; its relative error is ``{name}_error / |value|``.  A series
    stored without those records (an older store) keeps no value: nothing is
    used as exact that was not certified.  ``edge_ratio`` uses the records of
    ``effective_sharpness``, and ``sharpness_2`` ... those of ``sharpness``.
    """
    base = "effective_sharpness" if name == "edge_ratio" else re.sub(r"^sharpness_\d+$", "sharpness", name)
    empty = (np.zeros(0, np.int64), np.zeros(0))
    arrays = lambda key: tuple(np.asarray(a) for a in metrics.get(key, empty))
    steps, values = arrays(name)
    if len(steps) == 0:
        return steps, values, NO_MEASUREMENTS
    c_steps, conv = arrays(f"{base}_converged")
    e_steps, err = arrays(f"{base}_error")
    ok = np.zeros(len(steps), bool)
    rel = np.full(len(steps), np.inf)
    conv_at = dict(zip(c_steps.tolist(), conv.tolist()))
    err_at = dict(zip(e_steps.tolist(), err.tolist()))
    base_values = dict(zip(*(a.tolist() for a in arrays(base)))) if base != name else None
    for i, s in enumerate(steps.tolist()):
        if conv_at.get(s, 0.0) == 1.0 and s in err_at and np.isfinite(values[i]):
            ok[i] = True
            ref = abs(base_values[s]) if base_values is not None and s in base_values else abs(values[i])
            rel[i] = err_at[s] / ref if ref > 0 else (0.0 if err_at[s] == 0 else np.inf)
    used = int(ok.sum())
    acc = Accuracy(used, int(len(steps) - used), float(rel[ok].max()) if used else 0.0)
    return steps[ok], values[ok], acc


def across_seeds(per_seed: Sequence[Sequence[Claim]], seeds: Sequence[int]) -> list[Claim]:
    """One claim per row from the same claims measured in several seeds (``per_seed[i]`` is seed ``seeds[i]``'s).

    The rule, fixed before any run: a claim holds when it holds in every seed where it is testable, fails
    when it fails in any seed, and is not testable (``holds = None``) when it is testable in none.  The
    value is the median over the seeds of a numeric value (the seeds' values otherwise); the detail gives
    every seed's value, their range and the first seed's own detail.  With one seed the claim says so.
    """
    if not per_seed or any(len(c) != len(per_seed[0]) for c in per_seed):
        raise ValueError("across_seeds needs the same claims in every seed.")
    out = []
    for row in zip(*per_seed):
        first = row[0]
        values = [c.value for c in row]
        numeric = all(isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
                      for v in values)
        marks = [c.holds for c in row]
        tested = [h for h in marks if h is not None]
        holds = None if not tested else bool(all(tested))
        if numeric:
            arr = np.asarray(values, float)
            value = float(np.median(arr))
            shown = ", ".join(f"seed {s}: {v:.4g}" for s, v in zip(seeds, arr))
            spread = f"range {np.nanmin(arr):.4g}-{np.nanmax(arr):.4g}" if np.isfinite(arr).any() else "no finite value"
        else:
            value = {f"seed {s}": v for s, v in zip(seeds, values)}
            shown, spread = format_value(value), "values per seed"
        count = sum(1 for h in marks if h)
        head = (f"{len(seeds)} seeds: {shown} ({spread}); holds in {count} of {len(seeds)} (holds if it holds in "
                f"every seed where it is testable)" if len(seeds) > 1 else f"1 seed ({seeds[0]}) only")
        detail = f"{head}; seed {seeds[0]}: {first.detail}" if first.detail else head
        out.append(dataclasses.replace(first, value=value, holds=holds, detail=detail,
                                       accuracy=combine(c.accuracy for c in row)))
    return out


def format_value(x) -> str:
    """A measured value in 4 significant digits (dicts and lists element-wise)."""
    x = jsonable(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in x) + "]"
    return str(x)


QUICK_MARK = " (--quick: shortened runs)"


def quick_title(title: str, quick: bool) -> str:
    """``title`` marked as a ``--quick`` run where it is one (for figures and tables)."""
    return title + QUICK_MARK if quick and not title.endswith(QUICK_MARK) else title


def claims_markdown(claims: Sequence[Claim], title: str, quick: bool = False) -> str:
    lines = [f"# {quick_title(title, quick)}", ""]
    total = combine(c.accuracy for c in claims)
    if total is not None:
        lines += [f"Eigenvalues behind these claims: {total.describe()}.", ""]
    lines += ["| claim | quantity | value | holds | detail |", "|---|---|---|---|---|"]
    for c in claims:
        holds = {True: "yes", False: "**no**", None: "n/a"}[c.holds]
        detail = c.detail
        if c.accuracy is not None:
            detail = (detail + "; " if detail else "") + c.accuracy.describe()
        cells = [c.claim, c.quantity, format_value(c.value), holds, detail]
        lines.append("| " + " | ".join(s.replace("|", "\\|").replace("\n", " ") for s in cells) + " |")
    return "\n".join(lines) + "\n"


def write_claims(out_dir: str | Path, claims: Sequence[Claim], title: str, *,
                 quick: bool) -> tuple[Path, Path]:
    """Write ``claims.md`` and ``claims.json`` into ``out_dir``; returns their paths.

    ``quick`` marks the title and every claim object (``"quick": true``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "claims.md", out / "claims.json"
    claims = [dataclasses.replace(c, quick=bool(quick)) for c in claims]
    md.write_text(claims_markdown(claims, title, quick))
    js.write_text(json.dumps([c.to_json() for c in claims], indent=2) + "\n")
    return md, js
