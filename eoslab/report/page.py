"""The report page: a :class:`~eoslab.report.data.Report` as one self-contained HTML document.

Everything is inline: the style sheet, the figures (PNG data URIs), the
curves' data (JSON in a ``<script type="application/json">`` tag) and the
script that draws them (``curves.js``, package data).  The page loads
nothing: it reads the same offline as online.
"""
from __future__ import annotations

import datetime as _dt
import json
from html import escape
from importlib import resources

from eoslab.report.curves import CHART_POINTS
from eoslab.report.data import ClaimRow, Report, RunRow

MARKS = {"pass": "✓ pass", "fail": "✗ fail", "n/a": "– n/a"}

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.2em 3em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin: 0.8em 0 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta, .note { color: #555; } nav a { margin-right: 1em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.mark { white-space: nowrap; font-weight: 600; }
tr.pass td.mark { color: #17803d; background: #e9f7ee; } tr.fail td.mark { color: #b42318; background: #fdecea; }
tr.na td.mark { color: #666; background: #f1f1f1; }
.status-diverged { color: #b42318; } .status-failed { color: #b42318; font-weight: 600; }
.status-running { color: #a15c00; }
pre { background: #f7f7f9; padding: 0.6em; overflow-x: auto; font-size: 12px; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-family: ui-monospace, monospace; }
.chart { margin: 1.2em 0; } .chart h3 { margin: 0 0 0.2em; font-size: 1.05em; }
.chart svg { width: 100%; height: auto; user-select: none; cursor: crosshair; display: block; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 10px; max-height: 9em; overflow-y: auto; font-size: 12px; }
.legend button { border: 0; background: none; padding: 1px 2px; cursor: pointer; font: inherit; color: inherit; }
.legend button.off { opacity: 0.35; text-decoration: line-through; }
.legend .swatch { display: inline-block; width: 14px; height: 3px; margin: 0 4px 3px 0; vertical-align: middle; }
.legend .all { color: #0b57d0; }
.controls { font-size: 12px; color: #444; } .controls label { margin-right: 1.2em; }
.outliers { color: #a15c00; }
.readout { font-size: 12px; color: #555; min-height: 1.2em; font-variant-numeric: tabular-nums; }
"""


def render(report: Report) -> str:
    """The HTML document of ``report``."""
    title = f"eoslab report: {report.directory.resolve().name}" + (" (quick)" if report.quick else "")
    sections = [_claims(report), _table(report), _figures(report), _curves(report), _runs(report)]
    sections = [s for s in sections if s]
    nav = " ".join(f'<a href="#{key}">{escape(label)}</a>' for key, label, _ in sections)
    body = "\n".join(html for _, _, html in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{escape(title)}</h1>
<p class="meta">{_summary(report)}</p>
<nav>{nav}</nav>
</header>
{body}
</body>
</html>
"""


def _summary(report: Report) -> str:
    """One line under the title: the directory, when the page was written, the runs and the claims."""
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"Directory <code>{escape(str(report.directory.resolve()))}</code>", f"written {when}"]
    if report.runs is not None:
        counts: dict[str, int] = {}
        for r in report.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        parts.append(f"{len(report.runs)} runs" + (" (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")"
                                                   if counts else ""))
    if report.claims is not None:
        marks = [c.mark for c in report.claims]
        parts.append(f"claims: {marks.count('pass')} pass, {marks.count('fail')} fail, {marks.count('n/a')} n/a")
    if report.quick:
        parts.append("a --quick reproduction (shortened runs)")
    return " · ".join(parts)


def _section(key: str, title: str, inner: str) -> tuple[str, str, str]:
    """A section of the page as (anchor, title, HTML): the navigation links to it by its anchor."""
    return key, title, f'<section id="{key}"><h2>{escape(title)}</h2>\n{inner}\n</section>'


def _claims(report: Report):
    """The claims table (from claims.json; claims.md as text where there is no claims.json), or None."""
    if report.claims is None:
        if report.claims_md is None:
            return None
        return _section("claims", "Claims", f"<pre>{escape(report.claims_md)}</pre>")
    rows = "\n".join(_claim_row(i, c) for i, c in enumerate(report.claims, 1))
    table = ('<table class="claims"><thead><tr><th>#</th><th>result</th><th>claim</th><th>quantity</th>'
             f'<th>value</th><th>criterion / reason</th></tr></thead>\n<tbody>\n{rows}\n</tbody></table>')
    empty = "" if report.claims else '<p class="note">claims.json lists no claims.</p>'
    return _section("claims", "Claims", empty + table)


def _claim_row(i: int, c: ClaimRow) -> str:
    """One claim: its mark, statement (and paper), quantity, value, and criterion or reason."""
    cls = "na" if c.mark == "n/a" else c.mark
    criterion = escape(c.criterion)
    if c.accuracy:
        criterion += f'<br><span class="note">{escape(c.accuracy)}</span>'
    claim = escape(c.claim) + (f'<br><span class="note">{escape(c.paper)}</span>' if c.paper else "")
    return (f'<tr class="claim {cls}"><td class="num">{i}</td><td class="mark">{MARKS[c.mark]}</td>'
            f'<td>{claim}</td><td>{escape(c.quantity)}</td><td class="num">{escape(c.value)}</td>'
            f'<td>{criterion}</td></tr>')


def _table(report: Report):
    """table.txt as it is, or None."""
    if report.table is None:
        return None
    return _section("table", "Table", f"<pre>{escape(report.table)}</pre>")


def _figures(report: Report):
    """Every PNG figure with its file name as caption, or None."""
    if not report.figures:
        return None
    figs = "\n".join(f'<figure><img src="{f.data_uri}" alt="{escape(f.name)}"><figcaption>{escape(f.name)}'
                     f'</figcaption></figure>' for f in report.figures)
    return _section("figures", "Figures", figs)


def _curves(report: Report):
    """The charts: what the reader can do, what was downsampled, the data and the script; None without runs."""
    curves = report.curves
    if curves is None:
        return None
    if not curves.data["charts"]:
        return _section("curves", "Curves", '<p class="note">The stored runs have no loss, sharpness or edge-ratio '
                        'series.</p>')
    note = ""
    if curves.downsampled:
        note = (f'<p class="note">Downsampled: {curves.downsampled} of {curves.series} series are drawn with at most '
                f'about {curves.cap} points each (of about {CHART_POINTS:,} per chart), keeping the first and last '
                'point, every evaluation step, and the smallest and largest value of each range of steps in '
                'between.</p>')
    if any("diverged" in s for c in curves.data["charts"] for s in c["series"]):
        note += ('<p class="note">A diverged run is drawn up to its divergence step (×): the trainer freezes it '
                 'there, and the values stored after it repeat the frozen state.  The axes are scaled to the runs '
                 'that did not diverge; hide those (legend: none, then click the runs) to see diverged ones '
                 'whole.</p>')
    data = json.dumps(curves.data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    script = resources.files("eoslab.report").joinpath("curves.js").read_text(encoding="utf-8")
    html = f"""<p class="note">Click a legend entry to hide or show a run (in every chart); drag a box to zoom;
double-click to zoom out again.</p>
{note}
<div id="charts"></div>
<noscript><p class="note">The curves need JavaScript.</p></noscript>
<script type="application/json" id="eoslab-data">{data}</script>
<script>
{script}
</script>"""
    return _section("curves", "Curves", html)


def _runs(report: Report):
    """The runs table, or None without a run store."""
    if report.runs is None:
        return None
    if not report.runs:
        return _section("runs", "Runs", '<p class="note">The run store holds no runs.</p>')
    rows = "\n".join(_run_row(r) for r in report.runs)
    table = ('<table class="runs"><thead><tr><th>id</th><th>name</th><th>status</th><th>rule</th>'
             f'<th>step size η</th><th>seed</th><th>config</th></tr></thead>\n<tbody>\n{rows}\n</tbody></table>')
    return _section("runs", "Runs", table)


def _run_row(r: RunRow) -> str:
    """One run: id, name (and group), status (with the divergence step or the error), rule, eta, seed, config."""
    status = escape(r.status)
    if r.status == "diverged" and r.diverged_step is not None:
        status = f"diverged at step {r.diverged_step}"
    error = f'<details><summary>error</summary><pre>{escape(r.error)}</pre></details>' if r.error else ""
    config = escape(config_json(r.config), quote=False)
    group = f'<br><span class="note">{escape(r.group)}</span>' if r.group else ""
    seed = "—" if r.seed is None else str(r.seed)
    return (f'<tr class="run" data-run="{r.id}"><td class="num">{r.id}</td><td>{escape(r.name)}{group}</td>'
            f'<td class="status-{escape(r.status)}">{status}{error}</td><td>{escape(r.rule)}</td>'
            f'<td class="num">{escape(r.step_size)}</td><td class="num">{seed}</td>'
            f'<td><details><summary>config</summary><pre>{config}</pre></details></td></tr>')


def config_json(config: dict) -> str:
    """A config as JSON with one line per top-level key (its sections: data, model, optimizer, ...)."""
    if not isinstance(config, dict) or not config:
        return json.dumps(config, ensure_ascii=False, default=str)
    lines = [f" {json.dumps(str(k), ensure_ascii=False)}: "
             f"{json.dumps(v, sort_keys=True, ensure_ascii=False, default=str, separators=(', ', ': '))}"
             for k, v in sorted(config.items(), key=lambda kv: str(kv[0]))]
    return "{\n" + ",\n".join(lines) + "\n}"
