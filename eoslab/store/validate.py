"""Input checks of the run store's arguments: one sentence naming the bad value (InputError)."""
from __future__ import annotations

import contextlib
import itertools
import numbers
import operator
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from eoslab.errors import InputError


def _run_id(run_id: Any) -> int:
    if isinstance(run_id, bool):
        raise InputError(f"run id {run_id!r} is not an integer; pass the id returned by start_run.")
    try:
        return operator.index(run_id)
    except TypeError:
        raise InputError(
            f"run id {run_id!r} is not an integer; pass the id returned by start_run."
        ) from None


def _optional_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{what} {value!r} is a boolean; pass an integer or None.")
    try:
        return operator.index(value)
    except TypeError:
        raise InputError(f"{what} {value!r} is not an integer; pass an integer or None.") from None


def _optional_str(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InputError(f"{what} {value!r} is not a string; pass a string or None.")
    return value


def _metric_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InputError(f"metric name {name!r} is not a non-empty string; name metrics with strings.")
    return name


def _step(step: Any, name: str) -> int:
    if not isinstance(step, bool):
        with contextlib.suppress(TypeError):
            return operator.index(step)
        if isinstance(step, (float, np.floating)) and float(step).is_integer():
            return int(step)
    raise InputError(f"step {step!r} of metric {name!r} is not an integer; log integer steps.")


def _value(value: Any, name: str, step: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (str, bytes, complex, np.complexfloating)):
        with contextlib.suppress(TypeError, ValueError):
            return float(value)
    raise InputError(
        f"metric {name!r} at step {step} has value {value!r}, which is not a real "
        "number; log floats (NaN and inf are fine)."
    )


def _steps_array(steps: Any, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(steps))
    if arr.ndim != 1:
        raise InputError(f"steps of metric {name!r} have shape {arr.shape}; pass a 1-D array of steps.")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    if arr.dtype.kind == "O":
        return np.array([_step(s, name) for s in arr.tolist()], dtype=np.int64)
    raise InputError(f"steps of metric {name!r} are not integers (dtype {arr.dtype}); log integer steps.")


def _values_list(values: Any, name: str, steps: np.ndarray) -> list:
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1:
        raise InputError(f"values of metric {name!r} have shape {arr.shape}; pass a 1-D array of values.")
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64, copy=False).tolist()
    if arr.dtype.kind == "O":
        return [_value(v, name, s) for v, s in zip(arr.tolist(), steps.tolist())]
    bad = arr.flat[0] if arr.size else arr.dtype
    raise InputError(
        f"values of metric {name!r} are not real numbers (e.g. {bad!r}); log float arrays."
    )


def _metric_rows(run_id: int, rows: Any) -> Iterator[tuple]:
    """Yield ``(run_id, step, name, value)`` rows, checking each lazily."""
    if isinstance(rows, Mapping):
        for name, spec in rows.items():
            name = _metric_name(name)
            try:
                steps, values = spec
            except (TypeError, ValueError):
                raise InputError(
                    f"metric {name!r} must map to a pair (steps, values); pass "
                    "{name: (steps_array, values_array)}."
                ) from None
            steps = _steps_array(steps, name)
            values = _values_list(values, name, steps)
            if len(values) != len(steps):
                raise InputError(
                    f"metric {name!r} has {len(steps)} steps but {len(values)} values; "
                    "pass arrays of equal length."
                )
            yield from zip(itertools.repeat(run_id), steps.tolist(),
                           itertools.repeat(name), values)
        return
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise InputError(
            f"metric rows of type {type(rows).__name__} are not supported; pass "
            "(step, name, value) tuples or {name: (steps, values)}."
        )
    for row in rows:
        try:
            step, name, value = row
        except (TypeError, ValueError):
            raise InputError(
                f"metric row {row!r} is not a (step, name, value) triple; log triples."
            ) from None
        name = _metric_name(name)
        yield run_id, _step(step, name), name, _value(value, name, step)


def _as_list(value: Any) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, numbers.Number)) or not isinstance(value, Iterable):
        return [value]
    return list(value)
