"""A figure's layout as a reader sees it at its default size: every drawn text inside the figure, readable, apart.

:func:`layout_problems` draws a matplotlib ``Figure`` with the Agg canvas
(at the figure's own size and dpi) and reports, for every text that is
drawn -- suptitles, axes titles, axis labels, tick labels (major and minor,
only those of ticks inside the view), offset texts, legend entries and
titles, annotations and free texts --

* ``outside``: its window extent leaves the figure's bounds (it would be
  clipped in the saved file);
* ``small``: its font is smaller than ``min_fontsize`` points;
* ``ticks``: two tick labels of the same axis overlap each other;
* ``overlap``: it overlaps a text of another axes (or a figure-level text
  overlaps any other), or a legend box of another axes;
* ``intrudes``: it (or a legend box) covers part of the plotting area of
  another axes;
* ``wide``: the figure is wider than ``MAX_WIDTH`` inches: shown at a
  page's or a README's width (about 7 in) its 8 pt text would fall below
  4.5 pt.

Texts of the same axes are not compared with each other (besides the tick
labels of one axis): an annotation may sit on its own axes' legend area by
design.  Twin axes (the same position) count as one axes.
"""
from __future__ import annotations

import dataclasses

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

MIN_FONTSIZE = 8.0  # points, at the figure's default size
TOLERANCE = 0.5  # pixels: extents that touch within this much do not count
MAX_WIDTH = 13.0  # inches


@dataclasses.dataclass(frozen=True)
class Problem:
    kind: str  # outside, small, ticks, overlap, intrudes, wide
    text: str  # the text (or "legend") it is about
    role: str  # title, xlabel, xtick, legend, ...
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.role} {self.text!r}: {self.detail}"


@dataclasses.dataclass
class _Item:
    text: str
    role: str
    bbox: Bbox
    owner: int | None  # the axes group (or figure legend) it belongs to; None: a figure-level text
    fontsize: float | None  # None: a legend box, not a text
    axis: int | None = None  # id of the Axis of a tick label


def _visible(t) -> bool:
    return t.get_visible() and bool(t.get_text().strip())


def _drawn_ticks(axis):
    """The ticks the axis draws (inside its view interval), positions and labels updated as in ``draw``."""
    return axis._update_ticks()  # the list Axis.draw uses; its own filtering of ticks outside the view


def _axes_group(fig_axes) -> dict[int, int]:
    """Axes at the same position (twins, a twinx / twiny pair) share one owner id."""
    groups, seen = {}, []
    for ax in fig_axes:
        pos = tuple(round(v, 6) for v in ax.get_position().bounds)
        for other_pos, gid in seen:
            if other_pos == pos:
                groups[id(ax)] = gid
                break
        else:
            seen.append((pos, id(ax)))
            groups[id(ax)] = id(ax)
    return groups


def _all_axes(fig):
    out = []

    def add(ax):
        out.append(ax)
        for child in getattr(ax, "child_axes", []):
            add(child)
    for ax in fig.get_axes():
        add(ax)
    return out


def _figure_texts(fig):
    """Figure-level texts: suptitle, supxlabel, supylabel, fig.text; of subfigures too."""
    texts = list(fig.texts)
    for name in ("_suptitle", "_supxlabel", "_supylabel"):
        t = getattr(fig, name, None)
        if t is not None and t not in texts:
            texts.append(t)
    for sub in getattr(fig, "subfigs", []):
        texts += _figure_texts(sub)
    return texts


def _figure_legends(fig):
    legends = list(fig.legends)
    for sub in getattr(fig, "subfigs", []):
        legends += _figure_legends(sub)
    return legends


def _legend_items(leg, renderer, owner) -> list[_Item]:
    if leg is None or not leg.get_visible():
        return []
    items = [_Item(t.get_text(), "legend", t.get_window_extent(renderer), owner, t.get_fontsize())
             for t in [*leg.get_texts(), leg.get_title()] if _visible(t)]
    items.append(_Item("legend", "legend box", leg.get_window_extent(renderer), owner, None))
    return items


def collect_texts(fig: Figure, renderer) -> tuple[list[_Item], dict]:
    """Every drawn text of ``fig`` (after a draw) with its window extent; and each owner's plotting area."""
    items: list[_Item] = []
    axes = [ax for ax in _all_axes(fig) if ax.get_visible()]
    groups = _axes_group(axes)
    areas: dict[int, list[Bbox]] = {}
    for ax in axes:
        owner = groups[id(ax)]
        if ax.axison:
            areas.setdefault(owner, []).append(ax.get_window_extent(renderer))
        titles = [getattr(ax, n, None) for n in ("title", "_left_title", "_right_title")]
        for t in titles:
            if t is not None and _visible(t):
                items.append(_Item(t.get_text(), "title", t.get_window_extent(renderer), owner, t.get_fontsize()))
        if ax.axison:
            for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
                if not axis.get_visible():
                    continue
                for t, role in ((axis.label, f"{name}label"), (axis.offsetText, f"{name} offset")):
                    if _visible(t):
                        items.append(_Item(t.get_text(), role, t.get_window_extent(renderer), owner,
                                           t.get_fontsize()))
                for tick in _drawn_ticks(axis):
                    for t in (tick.label1, tick.label2):
                        if _visible(t):
                            items.append(_Item(t.get_text(), f"{name}tick", t.get_window_extent(renderer), owner,
                                               t.get_fontsize(), axis=id(axis)))
        for t in ax.texts:
            if _visible(t):
                items.append(_Item(t.get_text(), "text", t.get_window_extent(renderer), owner, t.get_fontsize()))
        items += _legend_items(ax.get_legend(), renderer, owner)
    for t in _figure_texts(fig):
        if _visible(t):
            items.append(_Item(t.get_text(), "figure text", t.get_window_extent(renderer), None, t.get_fontsize()))
    for leg in _figure_legends(fig):  # a figure legend: its texts and its box are one owner
        items += _legend_items(leg, renderer, id(leg))
    return items, areas


def _overlap(a: Bbox, b: Bbox, tol: float = TOLERANCE) -> bool:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > tol and h > tol


def _short(s: str, n: int = 60) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n - 1] + "…"


def layout_problems(fig: Figure, *, min_fontsize: float = MIN_FONTSIZE, tolerance: float = TOLERANCE
                    ) -> list[Problem]:
    """Draw ``fig`` with the Agg canvas and list what a reader would object to (module docstring)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    items, areas = collect_texts(fig, renderer)
    W, H = fig.bbox.width, fig.bbox.height
    problems: list[Problem] = []
    width = fig.get_figwidth()
    if width > MAX_WIDTH + 1e-9:
        problems.append(Problem("wide", "figure", "figure", f"{width:g} in > {MAX_WIDTH:g} in"))
    for it in items:
        b = it.bbox
        if it.fontsize is not None and it.fontsize < min_fontsize - 1e-9:
            problems.append(Problem("small", _short(it.text), it.role,
                                    f"{it.fontsize:g} pt < {min_fontsize:g} pt"))
        if b.x0 < -tolerance or b.y0 < -tolerance or b.x1 > W + tolerance or b.y1 > H + tolerance:
            problems.append(Problem("outside", _short(it.text), it.role,
                                    f"extent x {b.x0:.0f}..{b.x1:.0f}, y {b.y0:.0f}..{b.y1:.0f} px; "
                                    f"figure {W:.0f} x {H:.0f} px"))
    ticks: dict[int, list[_Item]] = {}
    for it in items:
        if it.axis is not None:
            ticks.setdefault(it.axis, []).append(it)
    for labels in ticks.values():
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                if _overlap(a.bbox, b.bbox, tolerance):
                    problems.append(Problem("ticks", _short(a.text), a.role, f"overlaps the tick label {b.text!r}"))
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if a.owner is not None and a.owner == b.owner:
                continue
            if _overlap(a.bbox, b.bbox, tolerance):
                problems.append(Problem("overlap", _short(a.text), a.role,
                                        f"overlaps the {b.role} {_short(b.text)!r}"))
        for owner, boxes in areas.items():
            if owner == a.owner:
                continue
            if any(_overlap(a.bbox, box, tolerance) for box in boxes):
                problems.append(Problem("intrudes", _short(a.text), a.role,
                                        "covers part of the plotting area of another axes"))
    return problems


def assert_layout_ok(fig: Figure, **kwargs) -> None:
    """Raise AssertionError listing every problem of :func:`layout_problems` (none: passes)."""
    problems = layout_problems(fig, **kwargs)
    assert not problems, f"{len(problems)} layout problems:\n" + "\n".join(f"  {p}" for p in problems)
