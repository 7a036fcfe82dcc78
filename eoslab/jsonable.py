"""Plain JSON values from results: one converter for claims, profiles and benchmark reports.

``json.dumps`` accepts dicts with string keys, lists, str, int, float, bool and
None.  :func:`jsonable` turns the rest of what results hold into those:
dataclasses (as dicts), tuples, numpy arrays (nested lists) and numpy or jax
scalars (Python numbers).  JSON has no NaN or infinity; they become the strings
"nan", "inf", "-inf" (``nonfinite="string"``, which keeps the distinction) or
null (``nonfinite="null"``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def jsonable(x: Any, *, nonfinite: str = "string") -> Any:
    """``x`` as plain JSON values (see the module docstring)."""
    if nonfinite not in ("string", "null"):
        raise ValueError(f"nonfinite={nonfinite!r} must be 'string' or 'null'.")
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return jsonable(dataclasses.asdict(x), nonfinite=nonfinite)
    if isinstance(x, dict):
        return {str(k): jsonable(v, nonfinite=nonfinite) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v, nonfinite=nonfinite) for v in x]
    if hasattr(x, "shape") and hasattr(x, "tolist"):  # numpy / jax arrays and scalars
        x = x.tolist() if getattr(x, "shape", None) != () else x.item()
        if isinstance(x, list):
            return jsonable(x, nonfinite=nonfinite)
    if isinstance(x, float) and not math.isfinite(x):
        return str(x) if nonfinite == "string" else None
    return x


__all__ = ["jsonable"]
