"""Live edge-of-stability events: what happened to the curvature, detected as the measurements arrive.

:class:`EventDetector` reads one measurement at a time (step, loss,
sharpness, edge ratio) and fires each event once, at the measurement where
its rule first holds.  The rules are fixed here, with their defaults
(:class:`EventRules`), so that a stored event means the same thing in every run:

* ``progressive_sharpening`` (Cohen et al. 2021): the sharpness has risen
  to ``(1 + sharpening_rise)`` times its lowest value so far (default +10%)
  while the edge ratio is still below ``edge`` and the edge has not been
  reached before (sharpening that starts at the edge is not progressive);
  the event's ``since`` is the step of that lowest value (where the rise
  began).  Once per run.
* ``edge_reached``: the edge ratio reaches ``edge`` (default 0.95: within 5% of
  the threshold, where GD's iterates stop contracting along the top
  eigenvector) for the first time.  Once per run.
* ``above_edge`` (a divergence warning): the edge ratio stays at or above
  ``above`` (default 1.25) for ``above_count`` consecutive measurements
  (default 3).  At the edge of stability the ratio oscillates around 1; a
  sustained excursion well above it means the dynamics are no longer
  self-stabilising.  Fires once per excursion (again after the ratio fell
  back below 1).
* ``catapult`` (Lewkowycz et al. 2020): over the last ``window`` + 1
  measurements (default 5 + 1), the loss rose to at least ``spike`` times
  (default 2) its value at the start of the window, and the sharpness is now
  at most ``drop`` times (default 0.8) its largest value in the window: a
  loss spike that relieved the curvature.  Fires once per spike (again
  once a later window holds no spike).
* ``divergence``: the loss or the sharpness is not finite.  Once per run.

Each event is a :class:`Event` (name, step, the values that fired it, a
sentence).  Measurements whose sharpness is NaN (not measured or not
certified) only feed the loss rules.
"""
from __future__ import annotations

import dataclasses
import math
from collections import deque


@dataclasses.dataclass(frozen=True)
class EventRules:
    """The thresholds of the event rules (see the module docstring); fixed before a run."""
    edge: float = 0.95
    sharpening_rise: float = 0.10
    above: float = 1.25
    above_count: int = 3
    spike: float = 2.0
    drop: float = 0.8
    window: int = 5

    def __post_init__(self):
        checks = [(0 < self.edge, "edge", "must be > 0"), (self.sharpening_rise > 0, "sharpening_rise", "must be > 0"),
                  (self.above > 0, "above", "must be > 0"), (self.above_count >= 1, "above_count", "must be >= 1"),
                  (self.spike > 1, "spike", "must be > 1"), (0 < self.drop < 1, "drop", "must lie in (0, 1)"),
                  (self.window >= 1, "window", "must be >= 1")]
        for ok, key, msg in checks:
            if not ok:
                raise ValueError(f"EventRules {key}={getattr(self, key)!r} {msg}.")


@dataclasses.dataclass(frozen=True)
class Event:
    name: str
    step: int
    message: str
    values: dict


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


class EventDetector:
    """Fires the events of :class:`EventRules` from a stream of measurements (see the module docstring)."""

    def __init__(self, rules: EventRules | None = None):
        self.rules = rules or EventRules()
        self.events: list[Event] = []
        self._fired: set[str] = set()
        self._min_sharp: tuple[float, int] | None = None  # (value, step)
        self._above_run = 0
        self._above_armed = True
        self._history: deque = deque(maxlen=self.rules.window + 1)  # (step, loss, sharpness)
        self._spike_armed = True  # no catapult fired for the spike now in the window

    def _fire(self, name: str, step: int, message: str, **values) -> Event:
        ev = Event(name, int(step), message, values)
        self.events.append(ev)
        return ev

    def update(self, step: int, loss: float, sharpness: float = math.nan, edge_ratio: float = math.nan) -> list[Event]:
        """The events that fire at this measurement (usually none)."""
        r, out = self.rules, []
        if "divergence" not in self._fired and (not math.isfinite(loss) or
                                                (sharpness is not None and math.isinf(sharpness))):
            self._fired.add("divergence")
            out.append(self._fire("divergence", step, f"divergence at step {step}: the loss is {loss}",
                                  loss=loss, sharpness=sharpness))
            return out
        if "divergence" in self._fired:
            return out
        lam_ok, ratio_ok = _finite(sharpness), _finite(edge_ratio)
        if lam_ok:
            if self._min_sharp is None or sharpness < self._min_sharp[0]:
                self._min_sharp = (sharpness, step)
            low, since = self._min_sharp
            if ("progressive_sharpening" not in self._fired and "edge_reached" not in self._fired and low > 0
                    and sharpness >= (1 + r.sharpening_rise) * low and (not ratio_ok or edge_ratio < r.edge)):
                self._fired.add("progressive_sharpening")
                out.append(self._fire("progressive_sharpening", step,
                                      f"progressive sharpening since step {since}: sharpness {low:.4g} -> "
                                      f"{sharpness:.4g} (+{sharpness / low - 1:.0%})",
                                      sharpness=sharpness, since=since, lowest=low))
        if ratio_ok:
            if "edge_reached" not in self._fired and edge_ratio >= r.edge:
                self._fired.add("edge_reached")
                out.append(self._fire("edge_reached", step, f"edge of stability reached at step {step}: edge ratio "
                                      f"{edge_ratio:.3g}", edge_ratio=edge_ratio))
            self._above_run = self._above_run + 1 if edge_ratio >= r.above else 0
            if edge_ratio < 1.0:
                self._above_armed = True
            if self._above_armed and self._above_run >= r.above_count:
                self._above_armed = False
                out.append(self._fire("above_edge", step, f"above the edge since {r.above_count} measurements "
                                      f"(edge ratio {edge_ratio:.3g} >= {r.above:g}): divergence warning",
                                      edge_ratio=edge_ratio))
        self._history.append((step, loss, sharpness if lam_ok else math.nan))
        if len(self._history) >= 2:
            _, loss0, _ = self._history[0]
            loss_max = max(lo for _, lo, _ in self._history)
            sharp_max = max((s for _, _, s in self._history if math.isfinite(s)), default=math.nan)
            spiking = loss0 > 0 and loss_max >= r.spike * loss0
            if not spiking:
                self._spike_armed = True  # the window holds no spike: the next one may fire
            if (self._spike_armed and spiking and lam_ok and math.isfinite(sharp_max)
                    and sharpness <= r.drop * sharp_max):
                self._spike_armed = False
                out.append(self._fire("catapult", step, f"catapult at step {step}: loss {loss0:.4g} -> {loss_max:.4g} "
                                      f"while the sharpness fell {sharp_max:.4g} -> {sharpness:.4g}",
                                      loss_max=loss_max, loss_before=loss0, sharpness=sharpness,
                                      sharpness_max=sharp_max))
        return out


def detect_events(metrics: dict, rules: EventRules | None = None, *, loss: str = "train_loss") -> list[Event]:
    """The events of a stored run, replayed measurement by measurement from its metrics.

    ``metrics``: ``{name: (steps, values)}`` as the run store returns them.
    The measurements are the steps of ``loss`` (the training loss at
    evaluation steps); the sharpness and edge ratio count where their solve
    converged (``sharpness_converged``), as in :class:`~eoslab.monitor.Monitor`.
    """
    det = EventDetector(rules)
    at = lambda name: dict(zip(*(a.tolist() for a in metrics[name]))) if name in metrics else {}
    lam, ratio, conv = at("sharpness"), at("edge_ratio"), at("sharpness_converged")
    steps, losses = metrics[loss]
    for t, value in zip(steps.tolist(), losses.tolist()):
        ok = conv.get(t, 1.0) == 1.0
        det.update(t, value, lam.get(t, math.nan) if ok else math.nan, ratio.get(t, math.nan) if ok else math.nan)
    return det.events
