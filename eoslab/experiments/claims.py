"""Claims tables: every reproduction ends with what its paper claims and what we measured.

``claims.json`` is a list of objects with at least ``claim``, ``quantity``,
``value`` and ``holds``; ``claims.md`` is the same as a Markdown table.  A
claim that does not hold here is reported as such, never dropped.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence


@dataclasses.dataclass(frozen=True)
class Claim:
    claim: str  # what the paper says, in one sentence
    quantity: str  # what was measured, with its definition
    value: Any  # the measured value (number, string or small dict)
    holds: bool | None  # None: not testable in this run (e.g. missing data)
    paper: str = ""
    detail: str = ""  # target, tolerance, spread over seeds, ...

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["value"] = _jsonable(self.value)
        return d


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and getattr(x, "shape", None) == ():
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def format_value(x) -> str:
    """A measured value in 4 significant digits (dicts and lists element-wise)."""
    x = _jsonable(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in x) + "]"
    return str(x)


def claims_markdown(claims: Sequence[Claim], title: str) -> str:
    lines = [f"# {title}", "", "| claim | quantity | value | holds | detail |", "|---|---|---|---|---|"]
    for c in claims:
        holds = {True: "yes", False: "**no**", None: "n/a"}[c.holds]
        cells = [c.claim, c.quantity, format_value(c.value), holds, c.detail]
        lines.append("| " + " | ".join(s.replace("|", "\\|").replace("\n", " ") for s in cells) + " |")
    return "\n".join(lines) + "\n"


def write_claims(out_dir: str | Path, claims: Sequence[Claim], title: str) -> tuple[Path, Path]:
    """Write ``claims.md`` and ``claims.json`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "claims.md", out / "claims.json"
    md.write_text(claims_markdown(claims, title))
    js.write_text(json.dumps([c.to_json() for c in claims], indent=2) + "\n")
    return md, js
