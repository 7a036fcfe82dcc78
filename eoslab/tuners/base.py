"""What every step-size tuner shares: the info record, validation, the calling convention.

A tuner is an optax ``GradientTransformationExtraArgs`` with optax's
line-search calling convention::

    updates, state = tuner.update(u, state, params, value=f(w), grad=g, value_fn=f, **extra_args)

where ``u`` is the incoming search direction (``-g`` after ``optax.scale(-1.0)``
or ``optax.sgd(1.0)``, or any other transform's output), ``w = params``,
``g = grad f(w)`` and ``value_fn(params, **kw) -> scalar`` the objective (for
minibatches, the batch loss).  It returns ``s * u`` (or ``s * u / |u|`` for the
parabolic tuner, which works on the normalised direction), so
``optax.apply_updates(params, out)`` takes the step, as
``optax.scale_by_backtracking_linesearch`` does.  Extra keyword arguments are
handed to ``value_fn`` when its signature names them (or takes ``**kwargs``)
and ignored otherwise, so a tuner can sit anywhere in an ``optax.chain``.

Every tuner state has a field ``info: TunerInfo`` describing the last step;
:func:`tuner_info` finds it inside any (chained, nested) optax state.

Hyper-parameters used arithmetically may be traced jax scalars (an ensemble
over them is one ``vmap``); the validation helpers below check only concrete
values and raise :class:`eoslab.errors.ConfigError` with one sentence naming
the parameter, its value and the valid range.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import ConfigError
from eoslab.pytree import find_node, scalar_dtype

PyTree = Any


class TunerInfo(NamedTuple):
    """What a tuner did on its last step.

    Attributes:
      step_size: the step s actually taken (0 when the tuner declined to move).
      num_values: ``value_fn`` evaluations spent on this step, not counting the given ``value``.
      num_grads: extra gradient evaluations or Hessian-vector products spent on this step.
      success: whether the tuner's condition was met / its step was well defined
        (each tuner's docstring says exactly when it is False).
      curvature: the curvature u.H.u / |u|^2 along the direction when the tuner
        computed it (exactly or by a secant), else NaN.
    """
    step_size: jax.Array
    num_values: jax.Array
    num_grads: jax.Array
    success: jax.Array
    curvature: jax.Array


def make_info(dtype, step_size, num_values, num_grads, success, curvature=jnp.nan) -> TunerInfo:
    """A :class:`TunerInfo` with the fixed dtypes of a tuner state (so it can be a scan carry)."""
    return TunerInfo(step_size=jnp.asarray(step_size, dtype), num_values=jnp.asarray(num_values, jnp.int32),
                     num_grads=jnp.asarray(num_grads, jnp.int32), success=jnp.asarray(success, jnp.bool_),
                     curvature=jnp.asarray(curvature, dtype))


def initial_info(params: PyTree) -> TunerInfo:
    """Step size 0, no evaluations, success True, curvature NaN, in the dtype of ``params``."""
    return make_info(scalar_dtype(params), 0.0, 0, 0, True, jnp.nan)


def tuner_info(opt_state: Any) -> TunerInfo | None:
    """The first :class:`TunerInfo` found in a (possibly chained or nested) optax state, or None."""
    return find_node(opt_state, TunerInfo)


# ---- calling convention -----------------------------------------------------

def bind_value_fn(value_fn: Callable, extra_args: dict) -> Callable[[PyTree], jax.Array]:
    """``params -> value_fn(params, **kw)`` with kw the extra arguments ``value_fn`` accepts.

    An argument is passed when ``value_fn`` names it or takes ``**kwargs``;
    the others are meant for other transforms of the chain and are dropped.
    """
    if not extra_args:
        return value_fn
    try:
        sig = inspect.signature(value_fn)
    except (TypeError, ValueError):  # no introspectable signature: pass nothing
        return value_fn
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        kw = dict(extra_args)
    else:
        kw = {k: v for k, v in extra_args.items() if k in sig.parameters}
    return functools.partial(value_fn, **kw) if kw else value_fn


def require_params(params: PyTree, tuner: str) -> None:
    if params is None:
        raise ValueError(f"{tuner} needs params: call update(updates, state, params, value=..., grad=..., "
                         f"value_fn=...).")


# ---- validation -------------------------------------------------------------

def is_traced(x: Any) -> bool:
    """Whether ``x`` is (or holds) a jax tracer, whose value cannot be checked."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _show(x: Any) -> str:
    if isinstance(x, (jax.Array, np.ndarray, np.generic)) and np.ndim(x) == 0:
        return repr(np.asarray(x).item())
    return repr(x)


def _numbers(tuner: str, name: str, value: Any, meaning: str) -> np.ndarray | None:
    """``value`` as a float array, None when traced; a ConfigError when it is not a real number."""
    if is_traced(value):
        return None
    try:
        if isinstance(value, (bool, np.bool_, str)):
            raise TypeError
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{tuner} {name}={_show(value)} must be a real number ({meaning}).") from None
    return arr


def check_interval(tuner: str, name: str, value: Any, lo: float, hi: float, meaning: str, *,
                   closed_lo: bool = False, closed_hi: bool = False) -> None:
    """Require lo < value < hi, with either end closed on request."""
    arr = _numbers(tuner, name, value, meaning)
    if arr is None:
        return
    ok_lo = arr >= lo if closed_lo else arr > lo
    ok_hi = arr <= hi if closed_hi else arr < hi
    if not bool(np.all(ok_lo & ok_hi)):
        def fmt(v):
            return "inf" if v == np.inf else "-inf" if v == -np.inf else f"{v:g}"
        span = f"{'[' if closed_lo else '('}{fmt(lo)}, {fmt(hi)}{']' if closed_hi else ')'}"
        raise ConfigError(f"{tuner} {name}={_show(value)} must lie in {span} ({meaning}).")


def check_positive(tuner: str, name: str, value: Any, meaning: str, *, finite: bool = False) -> None:
    """Require value > 0 (and finite on request; inf is allowed otherwise)."""
    arr = _numbers(tuner, name, value, meaning)
    if arr is None:
        return
    if not bool(np.all(arr > 0)) or (finite and not bool(np.all(np.isfinite(arr)))):
        what = "a finite number > 0" if finite else "> 0"
        raise ConfigError(f"{tuner} {name}={_show(value)} must be {what} ({meaning}).")


def check_at_least(tuner: str, name: str, value: Any, lo: float, meaning: str) -> None:
    """Require lo <= value < inf."""
    arr = _numbers(tuner, name, value, meaning)
    if arr is None:
        return
    if not bool(np.all((arr >= lo) & np.isfinite(arr))):
        raise ConfigError(f"{tuner} {name}={_show(value)} must be a finite number >= {lo:g} ({meaning}).")


def check_integer_at_least(tuner: str, name: str, value: Any, lo: int, meaning: str) -> None:
    """Require an integer >= lo (a traced integer is accepted unchecked)."""
    if is_traced(value):
        return
    integral = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) == 0:
        integral = jnp.issubdtype(value.dtype, jnp.integer)
    if not integral or int(value) < lo:
        raise ConfigError(f"{tuner} {name}={_show(value)} must be an integer >= {lo} ({meaning}).")


def check_choice(tuner: str, name: str, value: Any, choices: tuple[str, ...], meaning: str) -> None:
    """Require one of the named strategies."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{tuner} {name}={value!r} must be one of {', '.join(map(repr, choices))} ({meaning}).")
