/* eoslab report: the interactive curves (hand-written, plain ES2017, no libraries, loads nothing).
 *
 * Reads the JSON of <script id="eoslab-data">:
 *   {runs: [{id, label}],
 *    charts: [{key, title, log, hline, metrics,
 *            series: [{run, metric, x, y, ref: {x, y} (optional), diverged: step (optional)}]}]}
 * (y values null where not finite) and draws one SVG chart per entry of charts into <div id="charts">,
 * every run a series in its own colour, its reference (threshold) dashed, a diverged run's end marked with
 * a cross (its series stop at the divergence step).  The reader can
 *   - click a legend entry to hide or show that run in every chart ("all" / "none": every run);
 *   - drag a box to zoom into it, and double-click to see all the data again;
 *   - switch the y-axis between linear and log, and ask for the full y-range where a few outliers would
 *     squash the rest (the default range then leaves them out, and says how many);
 *   - read the step and value under the cursor below the chart.
 */
(function () {
  'use strict';

  const W = 860, H = 330;                                   // the SVG's own units; it scales to the page
  const M = {left: 72, right: 18, top: 12, bottom: 40};      // margins around the plot area
  const PW = W - M.left - M.right, PH = H - M.top - M.bottom;
  const PALETTE = ['#1f6fb4', '#e8710a', '#2a9d3a', '#c8322f', '#8a5cc2',
                   '#8c564b', '#d6549f', '#6b6b6b', '#a8a31d', '#17a2b8'];

  // The SVG namespace, read from an element the HTML parser made (so the page holds no address).
  const NS = (function () {
    const d = document.createElement('div');
    d.innerHTML = '<svg></svg>';
    return d.firstChild.namespaceURI;
  })();

  /** A new SVG element with attributes, appended to parent. */
  function svgEl(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  /** A new HTML element with a class and text, appended to parent. */
  function htmlEl(tag, cls, text, parent) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  /** The colour of the i-th run: a fixed palette, then hues spaced by the golden angle. */
  function colour(i) {
    return i < PALETTE.length ? PALETTE[i] : `hsl(${Math.round((i * 137.508) % 360)}, 62%, 40%)`;
  }

  /** Ticks of a linear axis on [lo, hi], about count of them, at 1, 2 or 5 times a power of ten. */
  function linearTicks(lo, hi, count) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    const step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
    const out = [];
    for (let k = Math.ceil(lo / step); k * step <= hi + step * 1e-9; k++) out.push(k * step);
    return out;
  }

  /** Ticks of a log axis on [lo, hi] (positive): powers of ten, with 2 and 5 between over few decades. */
  function logTicks(lo, hi) {
    const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
    const mult = b - a <= 2 ? [1, 2, 5] : [1];
    const every = Math.max(1, Math.ceil((b - a) / 8));
    const out = [];
    for (let e = a; e <= b; e += every) {
      for (const m of mult) {
        const v = m * Math.pow(10, e);
        if (v >= lo && v <= hi) out.push(v);
      }
    }
    return out.length >= 2 ? out : linearTicks(lo, hi, 4).filter(v => v > 0);
  }

  /** A tick label or readout: 4 significant digits, exponent notation for very large or small values. */
  function fmt(v) {
    if (v === 0) return '0';
    const a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
    return String(+v.toPrecision(4));
  }

  /** The SVG path of one series: a gap at each null (or non-positive value on a log axis). */
  function pathData(xs, ys, sc, log) {
    const parts = [];
    let run = 0;
    for (let i = 0; i < xs.length; i++) {
      const y = ys[i];
      if (y === null || (log && y <= 0)) {
        if (run === 1) parts.push('h0.1');            // a lone point: a dot (round line caps)
        run = 0;
        continue;
      }
      const py = Math.max(-1e5, Math.min(1e5, sc.y(y)));
      parts.push((run ? 'L' : 'M') + sc.x(xs[i]).toFixed(1) + ' ' + py.toFixed(1));
      run++;
    }
    if (run === 1) parts.push('h0.1');
    return parts.join('');
  }

  /** One chart: its SVG, legend and readout; draws the series of the runs that are not hidden. */
  class Chart {
    constructor(spec, state, root) {
      this.spec = spec;
      this.state = state;
      this.log = !!spec.log;     // a log y-axis (the reader can switch)
      this.full = false;         // the reader asked for the full y-range despite outliers
      this.zoom = null;          // the reader's zoom {x0, x1, y0, y1}, or null for all the data
      this.domain = null;        // what is drawn now
      const box = htmlEl('div', 'chart', null, root);
      box.dataset.chart = spec.key;
      htmlEl('h3', null, spec.title, box);
      const controls = htmlEl('div', 'controls', null, box);
      this.logBox = this.checkbox(controls, 'log y-axis', this.log, on => { this.log = on; });
      this.fullBox = this.checkbox(controls, 'full y-range', false, on => { this.full = on; });
      this.outliers = htmlEl('span', 'outliers', '', controls);
      this.svg = svgEl('svg', {viewBox: `0 0 ${W} ${H}`, class: 'eos-chart', role: 'img',
                               'aria-label': spec.title}, box);
      const clip = svgEl('clipPath', {id: 'clip-' + spec.key}, svgEl('defs', {}, this.svg));
      svgEl('rect', {x: M.left, y: M.top, width: PW, height: PH}, clip);
      this.axes = svgEl('g', {class: 'axes'}, this.svg);
      this.plot = svgEl('g', {class: 'plot', 'clip-path': `url(#clip-${spec.key})`}, this.svg);
      this.box = svgEl('rect', {class: 'zoom-box', fill: 'rgba(11,87,208,0.12)', stroke: '#0b57d0',
                                visibility: 'hidden'}, this.svg);
      this.readout = htmlEl('div', 'readout', '', box);
      this.legend = htmlEl('div', 'legend', null, box);
      this.buildLegend();
      this.listen();
    }

    /** A labelled checkbox in parent; a change calls set(checked), drops the zoom and redraws. */
    checkbox(parent, text, checked, set) {
      const label = htmlEl('label', null, null, parent), input = htmlEl('input', null, null, label);
      input.type = 'checkbox';
      input.checked = checked;
      label.appendChild(document.createTextNode(' ' + text));
      input.addEventListener('change', () => { set(input.checked); this.zoom = null; this.draw(); });
      return input;
    }

    /** Legend entries of the runs with a series here (buttons that toggle the run), and all / none. */
    buildLegend() {
      const ids = this.spec.series.map(s => s.run);
      this.entries = [];
      for (const id of ids) {
        const b = htmlEl('button', 'legend-item', null, this.legend);
        b.type = 'button';
        b.dataset.run = id;
        b.title = 'click to hide or show this run';
        htmlEl('span', 'swatch', null, b).style.background = this.state.colour.get(id);
        b.appendChild(document.createTextNode(this.state.label.get(id)));
        b.addEventListener('click', () => this.state.toggle([id]));
        this.entries.push(b);
      }
      if (ids.length > 1) {
        for (const [text, show] of [['all', true], ['none', false]]) {
          const b = htmlEl('button', 'all', text, this.legend);
          b.type = 'button';
          b.addEventListener('click', () => this.state.toggle(ids, show));
        }
      }
    }

    /** The extent of the visible data (with references and the horizontal line), padded; null if none.
     *  Diverged runs count only when no other run is visible: their blow-up would squash the others.
     *  Where a few values lie more than 50 times the spread of the middle 98% away, the y-range is that
     *  middle 98% (this.cut: how many values it leaves out) unless the reader asked for the full range. */
    extent() {
      const log = this.log, ty = log ? Math.log10 : (v => v);
      let x0 = Infinity, x1 = -Infinity;
      const ys = [];
      const take = (xs, yv) => {
        for (let i = 0; i < xs.length; i++) {
          const y = yv[i];
          if (y === null || (log && y <= 0)) continue;
          x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]);
          ys.push(ty(y));
        }
      };
      const shown = this.visible(), calm = shown.filter(s => s.diverged === undefined);
      for (const s of calm.length ? calm : shown) {
        take(s.x, s.y);
        if (s.ref) take(s.ref.x, s.ref.y);
      }
      this.cut = 0;
      if (!ys.length) return null;
      ys.sort((a, b) => a - b);
      let lo = ys[0], hi = ys[ys.length - 1];
      const q0 = ys[Math.floor(0.01 * (ys.length - 1))], q1 = ys[Math.ceil(0.99 * (ys.length - 1))];
      if (!this.full && ys.length >= 50 && q1 > q0 && hi - lo > 50 * (q1 - q0)) {
        this.cut = ys.filter(y => y < q0 || y > q1).length;
        lo = q0; hi = q1;
      }
      const h = this.spec.hline;
      if (h !== null && h !== undefined && (!log || h > 0)) { lo = Math.min(lo, ty(h)); hi = Math.max(hi, ty(h)); }
      if (x0 === x1) { x0 -= 1; x1 += 1; }
      const pad = hi > lo ? 0.05 * (hi - lo) : (log ? 0.3 : Math.abs(lo) * 0.1 || 1);
      const back = log ? (t => Math.pow(10, t)) : (t => t);
      return {x0, x1, y0: back(lo - pad), y1: back(hi + pad)};
    }

    /** The series of the runs that are not hidden. */
    visible() {
      return this.spec.series.filter(s => !this.state.hidden.has(s.run));
    }

    /** Maps between data and SVG coordinates for a domain. */
    scales(d) {
      const ty = this.log ? Math.log10 : (v => v);
      const a = ty(d.y0), b = ty(d.y1);
      return {
        x: v => M.left + (v - d.x0) / (d.x1 - d.x0) * PW,
        y: v => M.top + (1 - (ty(v) - a) / (b - a)) * PH,
        ix: px => d.x0 + (px - M.left) / PW * (d.x1 - d.x0),
        iy: py => {
          const t = a + (1 - (py - M.top) / PH) * (b - a);
          return this.log ? Math.pow(10, t) : t;
        },
      };
    }

    /** Redraw axes and series for the current zoom and hidden runs. */
    draw() {
      this.axes.textContent = '';
      this.plot.textContent = '';
      for (const b of this.entries) b.classList.toggle('off', this.state.hidden.has(+b.dataset.run));
      const d = this.zoom || this.extent();
      this.domain = d;
      this.outliers.textContent = this.cut && !this.zoom ?
        `${this.cut} values outside the 1st-99th percentile are off the scale` : '';
      this.fullBox.parentNode.style.display = this.cut || this.full ? '' : 'none';
      svgEl('rect', {x: M.left, y: M.top, width: PW, height: PH, fill: 'none', stroke: '#999'}, this.axes);
      if (!d) {
        svgEl('text', {x: M.left + PW / 2, y: M.top + PH / 2, 'text-anchor': 'middle', fill: '#777'}, this.axes)
          .textContent = 'every run is hidden: click a legend entry';
        return;
      }
      const sc = this.scales(d), log = this.log;
      const small = {'font-size': 11, fill: '#444'};
      for (const v of linearTicks(d.x0, d.x1, 8)) {
        const x = sc.x(v);
        svgEl('line', {x1: x, x2: x, y1: M.top, y2: M.top + PH, stroke: '#eee'}, this.axes);
        svgEl('text', Object.assign({x, y: M.top + PH + 15, 'text-anchor': 'middle'}, small), this.axes)
          .textContent = fmt(v);
      }
      for (const v of log ? logTicks(d.y0, d.y1) : linearTicks(d.y0, d.y1, 6)) {
        const y = sc.y(v);
        svgEl('line', {x1: M.left, x2: M.left + PW, y1: y, y2: y, stroke: '#eee'}, this.axes);
        svgEl('text', Object.assign({x: M.left - 6, y: y + 4, 'text-anchor': 'end'}, small), this.axes)
          .textContent = fmt(v);
      }
      svgEl('text', Object.assign({x: M.left + PW / 2, y: H - 6, 'text-anchor': 'middle'}, small), this.axes)
        .textContent = 'step';
      svgEl('text', Object.assign({x: 14, y: M.top + PH / 2, 'text-anchor': 'middle',
                                   transform: `rotate(-90 14 ${M.top + PH / 2})`}, small), this.axes)
        .textContent = this.spec.metrics.join(' / ') + (log ? ' (log)' : '');
      const h = this.spec.hline;
      if (h !== null && h !== undefined && (!log || h > 0)) {
        const y = sc.y(h);
        svgEl('line', {x1: M.left, x2: M.left + PW, y1: y, y2: y, stroke: '#333', 'stroke-dasharray': '6 4',
                       class: 'hline'}, this.plot);
      }
      for (const s of this.visible()) {
        const c = this.state.colour.get(s.run);
        if (s.ref) {
          svgEl('path', {d: pathData(s.ref.x, s.ref.y, sc, log), fill: 'none', stroke: c, 'stroke-width': 1.2,
                         'stroke-dasharray': '6 4', class: 'reference', 'data-run': s.run}, this.plot);
        }
        svgEl('path', {d: pathData(s.x, s.y, sc, log), fill: 'none', stroke: c, 'stroke-width': 1.3,
                       'stroke-linejoin': 'round', 'stroke-linecap': 'round', class: 'series',
                       'data-run': s.run, 'data-metric': s.metric}, this.plot);
        if (s.diverged !== undefined) this.crossAtEnd(s, sc, c);
      }
    }

    /** A cross at the last drawable point of a diverged run's series (it diverged there). */
    crossAtEnd(s, sc, c) {
      for (let i = s.y.length - 1; i >= 0; i--) {
        const y = s.y[i];
        if (y === null || (this.log && y <= 0)) continue;
        const x = sc.x(s.x[i]), y0 = Math.max(-1e5, Math.min(1e5, sc.y(y))), r = 5;
        const d = `M${x - r} ${y0 - r}L${x + r} ${y0 + r}M${x - r} ${y0 + r}L${x + r} ${y0 - r}`;
        const mark = svgEl('path', {d, stroke: c, 'stroke-width': 2, class: 'diverged-mark', 'data-run': s.run},
                           this.plot);
        svgEl('title', {}, mark).textContent = `diverged at step ${s.diverged}`;
        return;
      }
    }

    /** Mouse handling: drag a box to zoom, double-click to zoom out, the cursor's position as a readout. */
    listen() {
      const svg = this.svg;
      const at = ev => {
        const p = svg.createSVGPoint();
        p.x = ev.clientX; p.y = ev.clientY;
        const q = p.matrixTransform(svg.getScreenCTM().inverse());
        return {x: Math.max(M.left, Math.min(M.left + PW, q.x)), y: Math.max(M.top, Math.min(M.top + PH, q.y)),
                inside: q.x >= M.left && q.x <= M.left + PW && q.y >= M.top && q.y <= M.top + PH};
      };
      let start = null;
      svg.addEventListener('mousedown', ev => {
        const p = at(ev);
        if (ev.button !== 0 || !p.inside || !this.domain) return;
        start = p;
        ev.preventDefault();
      });
      window.addEventListener('mousemove', ev => {
        if (!start) return;
        const p = at(ev);
        this.box.setAttribute('x', Math.min(start.x, p.x));
        this.box.setAttribute('y', Math.min(start.y, p.y));
        this.box.setAttribute('width', Math.abs(p.x - start.x));
        this.box.setAttribute('height', Math.abs(p.y - start.y));
        this.box.setAttribute('visibility', 'visible');
      });
      window.addEventListener('mouseup', ev => {
        if (!start) return;
        const p = at(ev), s = start;
        start = null;
        this.box.setAttribute('visibility', 'hidden');
        if (Math.abs(p.x - s.x) < 5 || Math.abs(p.y - s.y) < 5) return;
        const sc = this.scales(this.domain);
        this.zoom = {x0: sc.ix(Math.min(s.x, p.x)), x1: sc.ix(Math.max(s.x, p.x)),
                     y0: sc.iy(Math.max(s.y, p.y)), y1: sc.iy(Math.min(s.y, p.y))};
        this.draw();
      });
      svg.addEventListener('dblclick', () => { this.zoom = null; this.draw(); });
      svg.addEventListener('mousemove', ev => {
        const p = at(ev);
        if (!p.inside || !this.domain) { this.readout.textContent = ''; return; }
        const sc = this.scales(this.domain);
        this.readout.textContent = `step ${fmt(Math.round(sc.ix(p.x)))} · value ${fmt(sc.iy(p.y))}` +
          (this.zoom ? ' · zoomed (double-click to reset)' : '');
      });
      svg.addEventListener('mouseleave', () => { this.readout.textContent = ''; });
    }
  }

  /** Build every chart from the page's data; the hidden runs are shared by all charts. */
  function main() {
    const source = document.getElementById('eoslab-data'), root = document.getElementById('charts');
    if (!source || !root) return;
    const data = JSON.parse(source.textContent);
    const charts = [];
    const state = {
      hidden: new Set(),
      colour: new Map(data.runs.map((r, i) => [r.id, colour(i)])),
      label: new Map(data.runs.map(r => [r.id, r.label])),
      /** Hide or show runs (show: true or false; undefined flips each) and redraw every chart. */
      toggle(ids, show) {
        for (const id of ids) {
          const hide = show === undefined ? !this.hidden.has(id) : !show;
          if (hide) this.hidden.add(id); else this.hidden.delete(id);
        }
        for (const c of charts) c.draw();
      },
    };
    for (const spec of data.charts) charts.push(new Chart(spec, state, root));
    for (const c of charts) c.draw();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
  else main();
})();
