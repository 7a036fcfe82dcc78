"""``eoslab report``: one self-contained HTML page for a results directory.

:func:`write_report` reads a results directory (a reproduction's
``claims.json``, ``table.txt`` and figures, and the runs of its ``runs.db``;
either part may be missing) and writes one HTML file that needs nothing else
to be read: the claims table with a pass / fail / n/a mark per claim, every
PNG figure, the runs with their configs, and interactive charts of each run's
loss, sharpness and edge ratio (drawn by a small hand-written script,
``curves.js``, from data inlined in the page; no network access).

* :mod:`~eoslab.report.data`: the directory read into plain records;
* :mod:`~eoslab.report.curves`: the charts' series, downsampled;
* :mod:`~eoslab.report.page`: the HTML document;
* ``curves.js``: the charts in the browser (legend toggles, box zoom, log loss axis).
"""
from __future__ import annotations

import os
from pathlib import Path

from eoslab.report.data import collect
from eoslab.report.page import render

REPORT_NAME = "report.html"


def write_report(results_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``results_dir`` to ``out`` (default ``results_dir/report.html``; a directory
    gets ``report.html`` inside it) and return its path.  Prints nothing; bad input is an
    :class:`~eoslab.errors.InputError` raised before anything is written."""
    report = collect(results_dir)
    html = render(report)
    path = Path(results_dir) / REPORT_NAME if out is None else Path(out)
    if path.is_dir():
        path = path / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


__all__ = ["REPORT_NAME", "write_report"]
